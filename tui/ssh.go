package tui

import (
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/sealpack/sealpack/cluster"
)

// SSH screen fields, in focus order.
const (
	sshUser = iota
	sshPort
	sshAuth
	sshKey
	sshPassphrase // the key's, shown once the key turns out encrypted
	sshPassword
	sshFields
)

type sshField struct {
	label  string
	isText bool
}

type sshScreen struct {
	inputs      [sshFields]textinput.Model // sshAuth has none
	usePassword bool
	// askPassphrase shows the passphrase field: the key was found
	// encrypted, or the answers gave a passphrase.
	askPassphrase bool
	focus         int
	err           string
	// checking is true while the key file is read before connecting;
	// keyGen numbers those reads so a cancelled one is ignored.
	checking bool
	keyGen   int
}

func newSSHScreen(m *Model) sshScreen {
	s := sshScreen{}
	for i := range s.inputs {
		in := textinput.New()
		in.Prompt = ""
		in.CharLimit = 256
		s.inputs[i] = in
	}
	c := m.c.SSH
	s.inputs[sshUser].SetValue(c.User)
	s.inputs[sshPort].SetValue(strconv.Itoa(c.Port))
	s.inputs[sshPort].CharLimit = 5
	key := c.PrivateKey
	if key == "" {
		key = m.opts.DefaultKey
	}
	s.inputs[sshKey].SetValue(key)
	s.inputs[sshKey].Placeholder = "~/.ssh/id_* and ssh-agent"
	s.inputs[sshPassword].EchoMode = textinput.EchoPassword
	s.inputs[sshPassword].SetValue(c.Password.Reveal())
	if c.PasswordEnv != "" || c.PasswordFile != "" {
		s.inputs[sshPassword].Placeholder = "from " + c.PasswordEnv + c.PasswordFile
	}
	s.inputs[sshPassphrase].EchoMode = textinput.EchoPassword
	s.inputs[sshPassphrase].CharLimit = 1024
	s.inputs[sshPassphrase].SetValue(c.PrivateKeyPassword.Reveal())
	s.inputs[sshPassphrase].Placeholder = "the key's passphrase"
	if c.PrivateKeyPasswordEnv != "" || c.PrivateKeyPasswordFile != "" {
		s.inputs[sshPassphrase].Placeholder = "from " + c.PrivateKeyPasswordEnv + c.PrivateKeyPasswordFile
	}
	s.askPassphrase = c.PrivateKeyPassword != "" || c.PrivateKeyPasswordEnv != "" || c.PrivateKeyPasswordFile != ""
	s.usePassword = c.PrivateKey == "" && (c.Password != "" || c.PasswordEnv != "" || c.PasswordFile != "") && m.opts.DefaultKey == ""
	return s
}

func (s *sshScreen) title(*Model) string { return "SSH" }

// shown: every action logs in; a password typed here is not in the
// installed cluster's record, so a reset or upgrade asks for it too.
func (s *sshScreen) shown(*Model) bool      { return true }
func (s *sshScreen) enter(m *Model) tea.Cmd { return s.focusCurrent() }
func (s *sshScreen) typing() bool           { return s.focused().isText }
func (s *sshScreen) bindings(m *Model) []key.Binding {
	k := m.keys
	return []key.Binding{k.Enter, k.Next, k.Prev, k.AuthMode, k.Back, k.Help}
}

func (s *sshScreen) setSize(w, _ int) {
	for i := range s.inputs {
		s.inputs[i].SetWidth(min(50, max(w-26, 10)))
	}
}

func (s *sshScreen) field(i int) sshField {
	pw := "Password:"
	if !s.usePassword {
		pw = "Sudo password:"
	}
	return [...]sshField{{"User:", true}, {"Port:", true}, {"Log in with:", false}, {"Key file:", true}, {"Passphrase:", true}, {pw, true}}[i]
}

func (s *sshScreen) focused() sshField { return s.field(s.focus) }

// visible reports whether a field is shown: the key file only for key
// login, its passphrase only for an encrypted key, the password field for
// password login or a non-root user (sudo).
func (s *sshScreen) visible(i int) bool {
	switch i {
	case sshKey:
		return !s.usePassword
	case sshPassphrase:
		return !s.usePassword && s.askPassphrase
	case sshPassword:
		return s.usePassword || strings.TrimSpace(s.inputs[sshUser].Value()) != "root"
	}
	return true
}

func (s *sshScreen) move(d int) tea.Cmd {
	for i := s.focus + d; i >= 0 && i < sshFields; i += d {
		if s.visible(i) {
			s.focus = i
			break
		}
	}
	return s.focusCurrent()
}

func (s *sshScreen) focusCurrent() tea.Cmd {
	var cmd tea.Cmd
	for i := range s.inputs {
		if i == s.focus && s.field(i).isText {
			cmd = s.inputs[i].Focus()
		} else {
			s.inputs[i].Blur()
		}
	}
	return cmd
}

// last is the last visible field: Enter there continues.
func (s *sshScreen) last() int {
	for i := sshFields - 1; i > 0; i-- {
		if s.visible(i) {
			return i
		}
	}
	return 0
}

// check validates what is typed and, when good, writes it to the cluster.
func (s *sshScreen) check(m *Model) string {
	user := strings.TrimSpace(s.inputs[sshUser].Value())
	if user == "" || strings.ContainsAny(user, " \t:@") {
		return "user: a login name, such as root"
	}
	port, err := strconv.Atoi(s.inputs[sshPort].Value())
	if err != nil || port < 1 || port > 65535 {
		return "port: a number from 1 to 65535"
	}
	pw := s.inputs[sshPassword].Value()
	old := m.c.SSH
	n := old
	n.User, n.Port = user, port
	// A secret typed here replaces its passwdEnv/passwdFile source; one
	// left as it came (from that source) keeps it, so the saved answers
	// still name the variable or file instead of leaving the secret out.
	n.Password = cluster.Secret(pw)
	if pw != old.Password.Reveal() {
		n.PasswordEnv, n.PasswordFile = "", ""
	}
	pp := s.inputs[sshPassphrase].Value()
	n.PrivateKeyPassword = cluster.Secret(pp)
	if pp != old.PrivateKeyPassword.Reveal() {
		n.PrivateKeyPasswordEnv, n.PrivateKeyPasswordFile = "", ""
	}
	if s.usePassword {
		if pw == "" && n.PasswordEnv == "" && n.PasswordFile == "" {
			return "password: type the SSH password"
		}
		n.PrivateKey = ""
	} else {
		n.PrivateKey = strings.TrimSpace(s.inputs[sshKey].Value())
	}
	if n != old {
		m.c.SSH = n
		m.edited()
	}
	return ""
}

func (s *sshScreen) update(m *Model, msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	s.err = ""
	switch {
	case key.Matches(msg, k.Back):
		s.check(m)
		return m.back()
	case key.Matches(msg, k.Next, k.Down):
		return s.move(1)
	case key.Matches(msg, k.Prev, k.Up):
		return s.move(-1)
	case key.Matches(msg, k.Enter):
		if s.focus < s.last() {
			return s.move(1)
		}
		if s.err = s.check(m); s.err != "" {
			return nil
		}
		return m.toConnect()
	case s.focus == sshAuth && key.Matches(msg, k.AuthMode, k.Left, k.Right):
		s.usePassword = !s.usePassword
		return nil
	}
	if s.focused().isText {
		var cmd tea.Cmd
		s.inputs[s.focus], cmd = s.inputs[s.focus].Update(msg)
		return cmd
	}
	return nil
}

func (s *sshScreen) view(m *Model) string {
	st := m.st
	var b strings.Builder
	b.WriteString(st.Title.Render("SSH") + st.Faint.Render("  how this machine logs in to every host") + "\n\n")
	for i := 0; i < sshFields; i++ {
		if !s.visible(i) {
			continue
		}
		f := s.field(i)
		prefix := "  "
		if i == s.focus {
			prefix = st.Focused.Render("> ")
		}
		var val string
		if i == sshAuth {
			key, pw := "( ) key file", "( ) password"
			if s.usePassword {
				pw = "(•) password"
			} else {
				key = "(•) key file"
			}
			val = key + "  " + pw
			if i == s.focus {
				val += st.Faint.Render("  space changes")
			}
		} else {
			val = "[" + s.inputs[i].View() + "]"
		}
		b.WriteString(prefix + padRight(f.label, 15) + val + "\n")
	}
	b.WriteString("\n")
	user := strings.TrimSpace(s.inputs[sshUser].Value())
	if user == "root" {
		b.WriteString(st.Faint.Render("Sudo: not needed, commands run as root.") + "\n")
	} else {
		b.WriteString(st.Faint.Render("Sudo: "+user+" runs commands through sudo; passwordless sudo is") + "\n")
		b.WriteString(st.Faint.Render("      used when allowed, otherwise the password above.") + "\n")
	}
	if !s.usePassword {
		b.WriteString(st.Faint.Render("An empty key file tries ~/.ssh/id_ed25519, id_ecdsa, id_rsa and ssh-agent.") + "\n")
	}
	if s.visible(sshPassphrase) {
		b.WriteString(st.Faint.Render("The password and passphrase stay out of the saved answers unless you ask.") + "\n\n")
	} else {
		b.WriteString(st.Faint.Render("The password is kept out of the saved answers file unless you ask.") + "\n\n")
	}
	switch {
	case s.checking:
		b.WriteString(st.Info.Render("… reading the key file") + "\n")
	case s.err != "":
		b.WriteString(indentWrap(st.Fail, "✗ "+s.err, 0, m.width))
	default:
		b.WriteString(st.Faint.Render("Enter on the last field connects to the hosts.") + "\n")
	}
	return b.String()
}
