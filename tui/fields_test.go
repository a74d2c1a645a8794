package tui

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
)

// toName walks to the Hosts screen, adds a host and clears the name field,
// which has the focus afterwards.
func toName(d *driver) {
	d.keys("enter")
	d.typeText("10.0.0.10")
	d.keys("enter", "up")
	for range len(d.m.hosts.name.Value()) {
		d.send(keyMsg("backspace"))
	}
	d.settle()
}

func TestClusterName(t *testing.T) {
	for _, tc := range []struct {
		name   string
		typed  string
		err    string // shown under the field; empty: accepted
		golden string
	}{
		{name: "empty", typed: "", err: "✗ name: missing (the cluster needs a name)"},
		{name: "upper case", typed: "Lab", err: `✗ name: "Lab": want lower-case letters, digits,`, golden: "hosts-name"},
		{name: "underscore", typed: "my_lab", err: `✗ name: "my_lab": want lower-case letters, digits,`},
		{name: "slash", typed: "lab/../x", err: `✗ name: "lab/../x": want lower-case letters`},
		{name: "leading dash", typed: "-lab", err: `✗ name: "-lab": want`},
		{name: "trailing dot", typed: "lab.", err: `✗ name: "lab.": want`},
		{name: "space", typed: "my lab", err: `✗ name: "my lab": want`},
		{name: "too long", typed: strings.Repeat("a", 64), err: "at most 63"},
		{name: "dns label", typed: "lab-1"},
		{name: "dotted", typed: "edge.lab"},
		{name: "longest", typed: strings.Repeat("a", 63)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, Options{NewEngine: (&fakes{}).new})
			toName(d)
			if d.m.hosts.focus != hostsFocusName {
				t.Fatalf("focus %d, want the name field", d.m.hosts.focus)
			}
			d.typeText(tc.typed)
			if tc.err == "" {
				d.rejectScreen("✗ name")
				d.keys("enter")
				if d.m.screen != ScreenSSH || d.m.c.Name != tc.typed {
					t.Fatalf("screen %v name %q, want SSH with %q:\n%s", d.m.screen, d.m.c.Name, tc.typed, d.screen())
				}
				if err := d.m.c.Validate(); err != nil {
					t.Fatal(err)
				}
				return
			}
			// The message is wrapped, never cut.
			d.wantText(tc.err)
			checkFrame(t, d.screen(), d.m.width, d.m.height)
			if tc.golden != "" {
				d.golden(tc.golden)
			}
			d.keys("enter")
			if d.m.screen != ScreenHosts || d.m.hosts.focus != hostsFocusName {
				t.Fatalf("went on to %v (focus %d) with name %q", d.m.screen, d.m.hosts.focus, tc.typed)
			}
			if nameProblem(d.m.c.Name) != "" {
				t.Fatalf("the cluster took the invalid name %q", d.m.c.Name)
			}
		})
	}
}

func TestClusterNameFromAnswers(t *testing.T) {
	c := &cluster.Cluster{Name: "edge-7", Hosts: []cluster.Host{{IPs: []string{"10.3.0.1"}, Roles: []string{"master"}}}}
	d := newDriver(t, Options{Cluster: c, AnswersPath: "edge.yaml", NewEngine: passing().new})
	d.wantScreen("name: edge-7")
	d.keys("esc", "esc", "esc", "esc")
	if d.m.screen != ScreenHosts {
		t.Fatalf("screen %v, want Hosts", d.m.screen)
	}
	d.wantScreen("Name:    [edge-7")
	// Tab order: IPs, role, list, then the name.
	d.keys("tab", "tab", "tab")
	if d.m.hosts.focus != hostsFocusName {
		t.Fatalf("focus %d, want the name field", d.m.hosts.focus)
	}
	d.typeText("b")
	d.keys("enter")
	if d.m.screen != ScreenSSH || d.m.c.Name != "edge-7b" || d.m.preflightOK {
		t.Fatalf("screen %v name %q checked %v", d.m.screen, d.m.c.Name, d.m.preflightOK)
	}
	// Typed in the name field, ? is a character, not help.
	d.keys("esc", "?")
	d.rejectScreen("Keys on the")
	if v := d.m.hosts.name.Value(); v != "edge-7b?" {
		t.Fatalf("name field %q", v)
	}
	d.wantText(`✗ name: "edge-7b?": want`)
}

// wantText looks for each of subs in the screen read as one line, runs of
// spaces and line breaks as one space: messages are wrapped to the width.
func (d *driver) wantText(subs ...string) {
	d.t.Helper()
	s := strings.Join(strings.Fields(d.screen()), " ")
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			d.t.Fatalf("screen lacks %q:\n%s", sub, d.screen())
		}
	}
}

// writeKey writes a new ed25519 private key, encrypted when passphrase is
// not empty, and returns its path.
func writeKey(t *testing.T, passphrase string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckKey(t *testing.T) {
	const pass = "correct horse 7"
	enc, plain := writeKey(t, pass), writeKey(t, "")
	junk := filepath.Join(t.TempDir(), "id_rsa.pub")
	if err := os.WriteFile(junk, []byte("ssh-ed25519 AAAA test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, pass string
		want       error
		msg        string
	}{
		{path: plain},
		{path: plain, pass: "ignored"},
		{path: enc, pass: pass},
		{path: enc, want: errPassphraseMissing},
		{path: enc, pass: "hunter2", want: errPassphraseWrong},
		{path: filepath.Join(t.TempDir(), "none"), msg: "no such file"},
		{path: junk, pass: pass, msg: "no key found"},
	} {
		err := checkKey(tc.path, cluster.Secret(tc.pass))
		switch {
		case tc.msg != "":
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("checkKey(%s, %q) = %v, want %q", tc.path, tc.pass, err, tc.msg)
			}
		case err != tc.want:
			t.Errorf("checkKey(%s, %q) = %v, want %v", tc.path, tc.pass, err, tc.want)
		}
		if err != nil && tc.pass != "" && strings.Contains(err.Error(), tc.pass) {
			t.Errorf("error %q holds the passphrase", err)
		}
	}
}

// keyStep is one thing the user does in a passphrase case, then what the
// wizard must show.
type keyStep struct {
	text   string   // typed first
	keys   []string // then pressed
	screen Screen
	want   []string
}

func TestKeyPassphrase(t *testing.T) {
	const (
		pass  = "correct horse 7"
		wrong = "hunter2"
	)
	enc, plain := writeKey(t, pass), writeKey(t, "")
	t.Setenv("LAB_PK", pass)
	fromFile := func(key string, s cluster.SSH) *cluster.Cluster {
		s.PrivateKey = key
		return &cluster.Cluster{Name: "lab", SSH: s, Hosts: []cluster.Host{{IPs: []string{"10.4.0.1"}, Roles: []string{"master"}}}}
	}
	// walk goes from Welcome to the SSH screen's key field and presses
	// Enter there: the key is read before connecting.
	walk := []keyStep{
		{keys: []string{"enter"}, screen: ScreenHosts},
		{text: "10.0.0.10", keys: []string{"enter", "enter"}, screen: ScreenSSH},
		{keys: []string{"enter", "enter", "enter"}, screen: ScreenSSH, want: []string{"> Key file:"}},
	}
	asked := keyStep{keys: []string{"enter"}, screen: ScreenSSH, want: []string{"> Passphrase: [the key's passphrase", "✗ the key " + enc + " is encrypted: type its passphrase"}}
	for _, tc := range []struct {
		name    string
		key     string
		answers *cluster.Cluster
		steps   []keyStep
		// pass is the passphrase the engine must get; env the pkPasswdEnv
		// the saved file must name.
		pass, env string
	}{
		{
			name:  "plain key connects without asking",
			key:   plain,
			steps: append(walk, keyStep{keys: []string{"enter"}, screen: ScreenConnect}),
		},
		{
			name: "encrypted key asks, then connects",
			key:  enc,
			steps: append(walk, asked,
				keyStep{text: pass, keys: []string{"enter"}, screen: ScreenConnect}),
			pass: pass,
		},
		{
			name: "wrong passphrase asks again",
			key:  enc,
			steps: append(walk, asked,
				keyStep{text: wrong, keys: []string{"enter"}, screen: ScreenSSH, want: []string{"✗ wrong passphrase for " + enc + ": type it again", "> Passphrase: [the key's passphrase"}},
				keyStep{text: wrong, screen: ScreenSSH, want: []string{"> Passphrase: [******* "}},
				keyStep{keys: []string{"enter"}, screen: ScreenSSH, want: []string{"✗ wrong passphrase"}},
				keyStep{text: pass, keys: []string{"enter"}, screen: ScreenConnect}),
			pass: pass,
		},
		{
			name: "escape while asked goes back",
			key:  enc,
			steps: append(walk, asked,
				keyStep{keys: []string{"esc"}, screen: ScreenHosts},
				keyStep{keys: []string{"enter"}, screen: ScreenSSH, want: []string{"Passphrase:"}}),
		},
		{
			name:    "passphrase from pkPasswdEnv is used and kept",
			answers: fromFile(enc, cluster.SSH{PrivateKeyPassword: pass, PrivateKeyPasswordEnv: "LAB_PK"}),
			steps: []keyStep{
				{screen: ScreenReview, want: []string{"pkPasswdEnv: LAB_PK"}},
				{keys: []string{"enter"}, screen: ScreenConnect},
				// Through the SSH screen and back: the passphrase, as it
				// came, keeps naming its variable.
				{keys: []string{"esc"}, screen: ScreenSSH, want: []string{"Passphrase: [*************** "}},
				{keys: []string{"enter", "enter", "enter", "enter", "enter"}, screen: ScreenConnect},
			},
			pass: pass, env: "LAB_PK",
		},
		{
			name:    "wrong passphrase in the answers opens the SSH screen",
			answers: fromFile(enc, cluster.SSH{PrivateKeyPassword: wrong}),
			steps: []keyStep{
				{keys: []string{"enter"}, screen: ScreenSSH, want: []string{"✗ wrong passphrase for " + enc, "> Passphrase:"}},
				{text: pass, keys: []string{"enter"}, screen: ScreenConnect},
			},
			pass: pass,
		},
		{
			name:    "missing key file",
			answers: fromFile(enc+".gone", cluster.SSH{}),
			steps: []keyStep{
				{keys: []string{"enter"}, screen: ScreenSSH, want: []string{"✗ key file: open " + enc + ".gone: no such file", "> Key file:"}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := passing()
			d := newDriver(t, Options{DefaultKey: tc.key, Cluster: tc.answers, AnswersPath: "cluster.yaml", NewEngine: fs.new})
			t.Chdir(t.TempDir())
			for i, st := range tc.steps {
				if st.text != "" {
					d.typeText(st.text)
				}
				d.keys(st.keys...)
				d.until(func() bool { return !d.m.ssh.checking })
				if d.m.screen != st.screen {
					t.Fatalf("step %d: screen %v, want %v:\n%s", i, d.m.screen, st.screen, d.screen())
				}
				d.wantText(st.want...)
				d.rejectScreen(pass, wrong)
				checkFrame(t, d.screen(), d.m.width, d.m.height)
			}
			if d.m.screen != ScreenConnect {
				return
			}
			d.wantScreen("All hosts connected.")
			if got := fs.last.cfg.Cluster.SSH.PrivateKeyPassword.Reveal(); got != tc.pass {
				t.Fatalf("engine got passphrase %q, want %q", got, tc.pass)
			}
			saved := reviewAndSave(t, d, pass, wrong)
			if tc.env != "" && !bytes.Contains(saved, []byte("pkPasswdEnv: "+tc.env)) {
				t.Fatalf("saved file does not name %s:\n%s", tc.env, saved)
			}
			if tc.env == "" && tc.pass != "" && !bytes.Contains(saved, []byte("pkPasswd not saved: set pkPasswdEnv or pkPasswdFile")) {
				t.Fatalf("saved file does not say how to supply the passphrase:\n%s", saved)
			}
		})
	}
}

func TestKeyPassphraseGolden(t *testing.T) {
	key := writeKey(t, "pass phrase")
	d := newDriver(t, Options{DefaultKey: filepath.Base(key), NewEngine: passing().new})
	// A relative key path keeps the temporary directory off the screen.
	t.Chdir(filepath.Dir(key))
	d.keys("enter")
	d.typeText("10.0.0.10")
	d.keys("enter", "enter", "enter", "enter", "enter", "enter")
	d.until(func() bool { return !d.m.ssh.checking })
	d.golden("ssh-passphrase")
}

// reviewAndSave goes from Connect to Review, saves the answers and returns
// them, checking that no secret is on screen or in the file.
func reviewAndSave(t *testing.T, d *driver, secrets ...string) []byte {
	t.Helper()
	d.keys("enter", "enter")
	if d.m.screen != ScreenReview {
		t.Fatalf("screen %v, want Review", d.m.screen)
	}
	d.rejectScreen(secrets...)
	d.keys("s", "enter")
	// The save runs in a command: wait for it, however loaded the machine.
	d.until(func() bool { return d.m.review.saved != "" || d.m.review.err != "" })
	d.wantScreen("✓ Saved cluster.yaml")
	b, err := os.ReadFile("cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			t.Fatalf("saved file holds %q:\n%s", s, b)
		}
	}
	// Asked to include secrets, the screen still does not show them.
	d.keys("p")
	d.rejectScreen(secrets...)
	d.keys("p")
	return b
}

// TestSecretsNeverShown types a password and a key passphrase, installs
// with an engine that logs its SSH settings, and checks every screen on the
// way and the saved file.
func TestSecretsNeverShown(t *testing.T) {
	const (
		pass = "s3cret-phrase"
		pw   = "sudo-pw-9"
	)
	key := writeKey(t, pass)
	fs := &fakes{make: func(cfg EngineConfig) *fakeEngine {
		return &fakeEngine{checks: passChecks(cfg.Cluster), install: func(ctx context.Context, sink install.Sink) error {
			// An engine that logs its settings must not leak them.
			sink.Event(install.Event{Kind: install.Log, Host: "10.0.0.10", Phase: "connect", Message: fmt.Sprintf("ssh %v %+v", cfg.Cluster.SSH, cfg.Cluster.SSH)})
			return fmt.Errorf("failed with %v", cfg.Cluster.SSH.PrivateKeyPassword)
		}}
	}}
	d := newDriver(t, Options{DefaultKey: key, AnswersPath: "cluster.yaml", NewEngine: fs.new})
	t.Chdir(t.TempDir())
	screens := []string{}
	look := func() {
		t.Helper()
		d.rejectScreen(pass, pw)
		screens = append(screens, d.screen())
	}
	d.keys("enter")
	d.typeText("10.0.0.10")
	d.keys("enter", "enter")
	// A user who needs sudo: the password field shows too, last.
	for range 4 {
		d.keys("backspace")
	}
	d.typeText("deploy")
	d.keys("enter", "enter", "enter", "enter")
	d.typeText(pw)
	look()
	d.keys("enter")
	d.until(func() bool { return !d.m.ssh.checking })
	d.wantScreen("> Passphrase:", "Sudo password:", "password and passphrase stay out")
	d.typeText(pass)
	look()
	d.keys("enter", "enter")
	d.until(func() bool { return !d.m.ssh.checking })
	look()
	if d.m.screen != ScreenConnect {
		t.Fatalf("screen %v, want Connect:\n%s", d.m.screen, d.screen())
	}
	d.keys("enter", "enter")
	d.wantScreen("The password and key passphrase are left out of the file (p to include them).")
	look()
	d.keys("p")
	d.wantScreen("! The password and key passphrase are saved in plain text (p to leave them out).", "passwd: '***'", "pkPasswd: '***'")
	look()
	d.keys("p", "enter")
	// Saving, then the install, run in commands: wait for their end, which
	// a loaded machine may take longer than settle's pause to reach.
	d.until(func() bool { return d.m.screen == ScreenDone })
	look()
	d.wantScreen("The install did not finish", "failed with ***")
	d.wantText("The password and key passphrase are not in cluster.yaml: add ssh.passwdEnv and ssh.pkPasswdEnv")
	if logs := strings.Join(d.m.install.logs, "\n"); !strings.Contains(logs, "ssh {deploy ***") || strings.Contains(logs, pass) || strings.Contains(logs, pw) {
		t.Fatalf("install log:\n%s", logs)
	}
	b, err := os.ReadFile("cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(pass)) || bytes.Contains(b, []byte(pw)) {
		t.Fatalf("saved file holds a secret:\n%s", b)
	}
	if !bytes.Contains(b, []byte("passwd not saved: set passwdEnv or passwdFile. pkPasswd not saved: set pkPasswdEnv or pkPasswdFile.")) {
		t.Fatalf("saved file does not say how to supply the secrets:\n%s", b)
	}
	c, err := cluster.Parse("cluster.yaml", b)
	if err != nil || c.SSH.PrivateKey != key || c.SSH.User != "deploy" {
		t.Fatalf("saved file does not parse back: %v\n%s", err, b)
	}
	for _, s := range screens {
		if strings.Contains(s, pass) || strings.Contains(s, pw) {
			t.Fatalf("a screen shows a secret:\n%s", s)
		}
	}
	if r := d.m.Result(); r.Err == nil || strings.Contains(r.Err.Error(), pass) {
		t.Fatalf("result error %v", r.Err)
	}
}
