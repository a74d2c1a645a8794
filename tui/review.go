package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
)

type reviewScreen struct {
	vp       viewport.Model
	plan     []install.PlannedPhase // what the engine will run, from its own list
	planErr  string
	showPlan bool // the pane shows the plan's hosts instead of the answers file
	secrets  bool // write the password and passphrase into the file: only when asked
	asking   bool // the save path prompt is open
	path     textinput.Model
	saved    string
	err      string
	text     []byte
}

func newReviewScreen(m *Model) reviewScreen {
	p := textinput.New()
	p.Prompt = ""
	p.SetValue(m.opts.AnswersPath)
	return reviewScreen{vp: viewport.New(), path: p}
}

func (s *reviewScreen) title(*Model) string { return "Review" }
func (s *reviewScreen) shown(m *Model) bool { return preflightScreen{}.shown(m) }
func (s *reviewScreen) typing() bool        { return s.asking }
func (s *reviewScreen) enter(m *Model) tea.Cmd {
	s.refresh(m)
	return nil
}

func (s *reviewScreen) bindings(m *Model) []key.Binding {
	k := m.keys
	return []key.Binding{k.Enter, k.Save, k.Secrets, k.Plan, k.PageDown, k.Back, k.Help}
}

func (s *reviewScreen) setSize(w, h int) {
	s.vp.SetWidth(w)
	s.vp.SetHeight(max(h-6, 3))
	s.path.SetWidth(min(50, max(w-30, 10)))
}

// refresh renders the answers file as it will be saved, and the plan the
// engine makes of it. The screen shows secrets the file includes as ***:
// asking to save them is no reason to show them to whoever looks at the
// terminal.
func (s *reviewScreen) refresh(m *Model) {
	s.plan, s.planErr = nil, ""
	if plan, err := install.Plan(m.c, m.action); err != nil {
		s.planErr = err.Error()
	} else {
		s.plan = plan
	}
	if s.showPlan {
		s.vp.SetContent(s.planText(m))
	}
	opts := cluster.MarshalOptions{IncludeSecrets: s.secrets}
	b, err := m.c.Marshal(opts)
	if err != nil {
		s.err = err.Error()
		return
	}
	shown := b
	if s.secrets {
		if shown, err = maskSecrets(m.c).Marshal(opts); err != nil {
			s.err = err.Error()
			return
		}
	}
	s.text = b
	if !s.showPlan {
		s.vp.SetContent(strings.TrimRight(string(shown), "\n"))
	}
}

// planSummary is the plan on a line or two: each phase with its number of
// hosts, wrapped to the screen.
func (s *reviewScreen) planSummary(m *Model) string {
	if s.planErr != "" {
		return m.st.Fail.Render("✗ " + s.planErr)
	}
	all := len(m.c.All())
	parts := make([]string, len(s.plan))
	for i, p := range s.plan {
		parts[i] = p.Name
		if len(p.Hosts) < all {
			// Most phases run everywhere; the others say on how many.
			parts[i] += " (" + itoa(len(p.Hosts)) + ")"
		}
	}
	head := strings.ToUpper(m.action[:1]) + m.action[1:] + " on " + plural(all, "host") + ": "
	return wrapJoin(head, parts, " › ", "  ", m.width)
}

// wrapJoin joins parts with sep after head, breaking lines between parts
// only (a phase name such as init-host stays whole), later lines indented.
func wrapJoin(head string, parts []string, sep, indent string, w int) string {
	line, out := head, []string{}
	for i, p := range parts {
		if i < len(parts)-1 {
			p += strings.TrimRight(sep, " ")
		}
		switch {
		case line == head || line == indent:
			line += p
		case lipgloss.Width(line)+1+lipgloss.Width(p) > w:
			out = append(out, line)
			line = indent + p
		default:
			line += " " + p
		}
	}
	return strings.Join(append(out, line), "\n")
}

// planText is the plan with every phase's hosts, for the pane.
func (s *reviewScreen) planText(m *Model) string {
	w := 0
	for _, p := range s.plan {
		w = max(w, lipgloss.Width(p.Name))
	}
	var lines []string
	for i, p := range s.plan {
		head := fmt.Sprintf("%2d. %s  ", i+1, padRight(p.Name, w))
		lines = append(lines, head+hostList(p.Hosts, m.width-lipgloss.Width(head)))
	}
	lines = append(lines, "", m.st.Faint.Render("Steps a host already finished are skipped."))
	return strings.Join(lines, "\n")
}

// hostList names the hosts in w cells: all of them when they fit, else the
// first and last with their number.
func hostList(ips []string, w int) string {
	if all := strings.Join(ips, ", "); lipgloss.Width(all) <= w || len(ips) < 3 {
		return all
	}
	return fmt.Sprintf("%s … %s (%d hosts)", ips[0], ips[len(ips)-1], len(ips))
}

// maskSecrets is a copy of c with every inline secret replaced by ***.
func maskSecrets(c *cluster.Cluster) *cluster.Cluster {
	out := cloneCluster(c)
	mask := func(s *cluster.SSH) {
		for _, p := range []*cluster.Secret{&s.Password, &s.PrivateKeyPassword} {
			if *p != "" {
				*p = cluster.Secret(p.String())
			}
		}
	}
	mask(&out.SSH)
	for i := range out.Hosts {
		mask(&out.Hosts[i].SSH)
	}
	return out
}

// inlineSecrets names the secrets the file would lose unless asked to hold
// them: typed in the wizard or inline in the answers, not from an
// environment variable or a file (those are saved as that reference).
func inlineSecrets(c *cluster.Cluster) (password, passphrase bool) {
	for _, s := range append([]cluster.SSH{c.SSH}, hostSSH(c)...) {
		password = password || s.Password != "" && s.PasswordEnv == "" && s.PasswordFile == ""
		passphrase = passphrase || s.PrivateKeyPassword != "" && s.PrivateKeyPasswordEnv == "" && s.PrivateKeyPasswordFile == ""
	}
	return password, passphrase
}

func hostSSH(c *cluster.Cluster) []cluster.SSH {
	out := make([]cluster.SSH, len(c.Hosts))
	for i, h := range c.Hosts {
		out[i] = h.SSH
	}
	return out
}

// secretWords is "password", "key passphrase", "password and key
// passphrase" or "" for the inline secrets of c, with the verb and pronoun
// that go with it.
func secretWords(c *cluster.Cluster) (what, is, it string) {
	switch pw, pp := inlineSecrets(c); {
	case pw && pp:
		return "password and key passphrase", "are", "them"
	case pp:
		return "key passphrase", "is", "it"
	case pw:
		return "password", "is", "it"
	}
	return "", "is", "it"
}

// secretFields says where to put the secrets left out of the file.
func secretFields(c *cluster.Cluster) string {
	switch pw, pp := inlineSecrets(c); {
	case pw && pp:
		return "ssh.passwdEnv and ssh.pkPasswdEnv (or passwd, pkPasswd)"
	case pp:
		return "ssh.pkPasswdEnv or ssh.pkPasswd"
	}
	return "ssh.passwdEnv or ssh.passwd"
}

func saveCmd(path string, data []byte, auto bool) tea.Cmd {
	return func() tea.Msg {
		// The file may hold a password, and always holds addresses and
		// pinned keys: Save makes it 0600, whatever was there before.
		err := cluster.Save(path, data)
		return savedMsg{path: path, err: err, auto: auto}
	}
}

func (s *reviewScreen) onSaved(m *Model, msg savedMsg) tea.Cmd {
	if msg.err != nil {
		s.err = msg.err.Error()
		if msg.auto {
			// The install must not start without a file to resume from.
			m.install.running = false
			return m.install.finished(m, msg.err)
		}
		return nil
	}
	s.saved, s.err = msg.path, ""
	m.result.Saved = msg.path
	m.dirty = false
	if msg.auto {
		return m.installCmd()
	}
	return nil
}

func (s *reviewScreen) update(m *Model, msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	if s.asking {
		switch {
		case key.Matches(msg, k.Back):
			s.asking = false
			s.path.Blur()
		case key.Matches(msg, k.Enter):
			s.asking = false
			s.path.Blur()
			s.refresh(m)
			return saveCmd(strings.TrimSpace(s.path.Value()), s.text, false)
		default:
			var cmd tea.Cmd
			s.path, cmd = s.path.Update(msg)
			return cmd
		}
		return nil
	}
	switch {
	case key.Matches(msg, k.Back):
		return m.back()
	case key.Matches(msg, k.Save):
		s.asking = true
		return s.path.Focus()
	case key.Matches(msg, k.Secrets):
		s.secrets = !s.secrets
		s.refresh(m)
	case key.Matches(msg, k.Plan):
		s.showPlan = !s.showPlan
		s.refresh(m)
		s.vp.GotoTop()
	case key.Matches(msg, k.Enter):
		if !m.preflightOK {
			// Answers from a file, or edited since the checks: connect and
			// check them first; Preflight comes back here.
			return m.toConnect()
		}
		return m.goTo(ScreenInstall)
	default:
		var cmd tea.Cmd
		s.vp, cmd = s.vp.Update(msg)
		return cmd
	}
	return nil
}

func (s *reviewScreen) view(m *Model) string {
	st := m.st
	var b strings.Builder
	what := "  the answers file as it will be saved (tab: the plan's hosts)"
	if s.showPlan {
		what = "  what " + m.action + " runs, phase by phase (tab: the answers file)"
	}
	b.WriteString(st.Title.Render("Review") + st.Faint.Render(what) + "\n")
	summary := s.planSummary(m)
	b.WriteString(summary + "\n")
	// The pane takes what the summary leaves: the body is the title, the
	// summary, the pane, a rule and two lines of status.
	s.vp.SetHeight(max(m.bodyHeight()-4-strings.Count(summary, "\n")-1, 3))
	b.WriteString(s.vp.View() + "\n")
	b.WriteString(st.Faint.Render(strings.Repeat("─", m.width)) + "\n")
	switch what, is, it := secretWords(m.c); {
	case what == "":
		b.WriteString("\n")
	case s.secrets:
		b.WriteString(st.Warn.Render("! The "+what+" "+is+" saved in plain text (p to leave "+it+" out).") + "\n")
	default:
		b.WriteString(st.Faint.Render("The "+what+" "+is+" left out of the file (p to include "+it+").") + "\n")
	}
	switch {
	case m.ssh.checking:
		b.WriteString(st.Info.Render("… reading the SSH key file"))
	case s.asking:
		b.WriteString(st.Focused.Render("> Save to: ") + "[" + s.path.View() + "]" + st.Faint.Render(" enter saves, esc cancels"))
	case s.err != "":
		b.WriteString(st.Fail.Render("✗ " + s.err))
	case s.saved != "":
		b.WriteString(st.Pass.Render("✓ Saved "+s.saved) + ". Enter installs.")
	case !m.preflightOK:
		b.WriteString("s saves. Enter connects and checks the hosts, then comes back here.")
	default:
		b.WriteString("s saves. Enter installs (and saves to " + strings.TrimSpace(s.path.Value()) + ").")
	}
	return b.String()
}
