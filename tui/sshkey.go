package tui

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/cluster"
)

// The ways a private key can stop the wizard before it connects. The
// engine would fail on every host with the same cause, so the SSH screen
// asks once instead.
var (
	errPassphraseMissing = errors.New("the key is encrypted")
	errPassphraseWrong   = errors.New("wrong passphrase")
)

// keyCheckedMsg is the result of reading the private key before connecting.
type keyCheckedMsg struct {
	gen  int
	path string
	err  error // nil: the key loads as given
}

// checkKey loads a private key as the engine will (install.loadKey): as
// is, or with the passphrase when it is encrypted. Its errors never hold
// the passphrase.
func checkKey(path string, passphrase cluster.Secret) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		return err
	}
	if passphrase == "" {
		return errPassphraseMissing
	}
	_, err = ssh.ParsePrivateKeyWithPassphrase(data, []byte(passphrase.Reveal()))
	if errors.Is(err, x509.IncorrectPasswordError) {
		return errPassphraseWrong
	}
	return err
}

// toConnect goes to Connect once the private key, if one is named, loads:
// an encrypted key needs its passphrase, which the SSH screen asks for.
// Reading the file (and deriving a key from the passphrase, which takes a
// moment) is I/O, so it runs in a command.
func (m *Model) toConnect() tea.Cmd {
	s := m.c.SSH
	if s.PrivateKey == "" {
		return m.goTo(ScreenConnect)
	}
	m.ssh.keyGen++
	m.ssh.checking = true
	gen, path, pass := m.ssh.keyGen, s.PrivateKey, s.PrivateKeyPassword
	return func() tea.Msg {
		return keyCheckedMsg{gen: gen, path: path, err: checkKey(path, pass)}
	}
}

// cancelCheck forgets a key check in flight: the user went back.
func (s *sshScreen) cancelCheck() {
	s.checking = false
	s.keyGen++
}

// onKeyChecked connects when the key loads, else opens the SSH screen at
// the field to fix with what is wrong.
func (s *sshScreen) onKeyChecked(m *Model, msg keyCheckedMsg) tea.Cmd {
	if msg.gen != s.keyGen || !s.checking {
		return nil
	}
	s.checking = false
	if msg.err == nil {
		return m.goTo(ScreenConnect)
	}
	s.usePassword = false
	switch {
	case errors.Is(msg.err, errPassphraseMissing):
		s.askPassphrase = true
		s.focus = sshPassphrase
		s.err = fmt.Sprintf("the key %s is encrypted: type its passphrase", msg.path)
	case errors.Is(msg.err, errPassphraseWrong):
		s.askPassphrase = true
		s.focus = sshPassphrase
		s.inputs[sshPassphrase].SetValue("")
		s.err = fmt.Sprintf("wrong passphrase for %s: type it again", msg.path)
	default:
		s.focus = sshKey
		s.err = "key file: " + msg.err.Error()
	}
	return m.goTo(ScreenSSH)
}
