package stub_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/generator"
	"github.com/sealpack/sealpack/install"
	"github.com/sealpack/sealpack/internal/testbed"
	"github.com/sealpack/sealpack/stub"
)

// Without a terminal and without --answers, install explains how to run
// unattended instead of opening the wizard.
func TestInstallWithoutTerminalOrAnswers(t *testing.T) {
	var out, errOut bytes.Buffer
	env := &stub.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Open: func() (*bundle.Bundle, error) {
		t.Fatal("opened the bundle")
		return nil, nil
	}}
	code := stub.Main(context.Background(), env, []string{"install"})
	if code != 2 || !strings.Contains(errOut.String(), "answers init > cluster.yaml") || !strings.Contains(errOut.String(), "--answers cluster.yaml --yes") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
	}
}

// tmux drives a program in a detached tmux session of a fixed size, as a
// user at an 80x24 terminal would.
type tmux struct {
	t      *testing.T
	socket string
}

func newTmux(t *testing.T, dir string, env []string, cmd string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed (CI=true: not skipping)")
		}
		t.Skip("tmux is not installed (apt-get install tmux)")
	}
	// A server of its own per session: a second session in the same test
	// does not race the first one's server going away.
	x := &tmux{t: t, socket: fmt.Sprintf("sealpack-wizard-%d-%d", os.Getpid(), time.Now().UnixNano())}
	args := []string{"new-session", "-d", "-x", "80", "-y", "24", "-s", "w", "-c", dir}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	// Keep the pane after the program exits, so its last words and exit
	// status can be read.
	args = append(args, cmd+`; echo "EXIT=$?"; sleep 600`)
	x.run(args...)
	t.Cleanup(func() { exec.Command("tmux", "-L", x.socket, "kill-server").Run() })
	return x
}

func (x *tmux) run(args ...string) string {
	x.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", x.socket}, args...)...).CombinedOutput()
	if err != nil {
		x.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (x *tmux) screen() string { return x.run("capture-pane", "-p", "-t", "w") }

// keys sends tmux key names (Enter, Tab, Space, BSpace, C-c).
func (x *tmux) keys(keys ...string) { x.run(append([]string{"send-keys", "-t", "w"}, keys...)...) }

// text types s literally.
func (x *tmux) text(s string) { x.run("send-keys", "-t", "w", "-l", s) }

// waitFor polls the screen until it shows every one of subs.
func (x *tmux) waitFor(timeout time.Duration, subs ...string) string {
	x.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := x.screen()
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(s, sub)
		}
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("screen did not show %q within %v:\n%s", subs, timeout, s)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func buildInstaller(t *testing.T, dir string) string {
	t.Helper()
	stubPath := filepath.Join(dir, "stub")
	cmd := exec.Command("go", "build", "-trimpath", "-o", stubPath, "../cmd/stub")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build stub: %v\n%s", err, b)
	}
	stubBytes, err := os.ReadFile(stubPath)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "installer.run")
	_, err = generator.Build(context.Background(), generator.Options{
		Kubefile: "../testdata/e2e/image/Kubefile", Output: out, Arch: "amd64", Stub: stubBytes, CreatedBy: "wizard-test",
		CacheDir: filepath.Join(dir, "cache"), StoreDir: filepath.Join(dir, "store"), Offline: true,
	})
	if err != nil {
		t.Fatalf("build installer: %v", err)
	}
	return out
}

// TestWizardInstallsUnderTmux types a whole install into the real
// installer on an 80x24 terminal: three hosts (one master, two nodes), key
// login, each unknown host key confirmed by its fingerprint, checks, review,
// install, Done; then checks what landed on the hosts.
func TestWizardInstallsUnderTmux(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds an installer and installs on three hosts")
	}
	bed := testbed.New(t, 3)
	dir := t.TempDir()
	inst := buildInstaller(t, dir)
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	ip := func(i int) string { return bed.Hosts[i].IP.String() }
	env := []string{"HOME=" + home, "TERM=xterm-256color", "NO_COLOR="}
	command := "./" + filepath.Base(inst) + " --known-hosts " + filepath.Join(dir, "known_hosts") + " --state-dir " + filepath.Join(dir, "state")
	x := newTmux(t, dir, env, command)

	x.waitFor(30*time.Second, "[Welcome]", "Press Enter to start.", "linux/amd64", "not signed")
	x.keys("Enter")
	x.waitFor(5*time.Second, "[Hosts]", "Add IPs:")
	x.text(ip(0))
	x.keys("Enter")
	x.waitFor(5*time.Second, "1 master, 0 nodes")
	x.text(ip(1) + "," + ip(2))
	x.waitFor(5*time.Second, "Enter adds 2 hosts")
	x.keys("Enter")
	x.waitFor(5*time.Second, "1 master, 2 nodes")
	x.keys("Enter")
	x.waitFor(5*time.Second, "[SSH]", "User:")
	x.keys("Enter", "Enter", "Enter") // root, port 22, key file
	x.waitFor(5*time.Second, "Key file:")
	x.text(bed.KeyPath)
	x.keys("Enter")

	// Each unknown host key is shown with its fingerprint; trust only the
	// bed's own.
	fps := map[string]string{}
	for i := range bed.Hosts {
		fps[ip(i)] = bed.Hosts[i].Fingerprint
	}
	for asked := 0; asked < 3; {
		s := x.waitFor(60*time.Second, "")
		if strings.Contains(s, "All hosts connected.") {
			t.Fatalf("connected after %d host key questions, want 3:\n%s", asked, s)
		}
		if !strings.Contains(s, "Unknown host key") {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var host string
		for h, fp := range fps {
			if strings.Contains(s, "Host:        "+h+"\n") {
				host = h
				if !strings.Contains(s, fp) {
					t.Fatalf("host %s: screen does not show its fingerprint %s:\n%s", h, fp, s)
				}
			}
		}
		if host == "" {
			t.Fatalf("host key question for no bed host:\n%s", s)
		}
		delete(fps, host)
		x.keys("y")
		asked++
		for deadline := time.Now().Add(10 * time.Second); strings.Contains(x.screen(), "Host:        "+host+"\n"); {
			if time.Now().After(deadline) {
				t.Fatalf("question about %s stayed after y", host)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	x.waitFor(60*time.Second, "All hosts connected.", "✓ connected")
	x.keys("Enter")
	x.waitFor(60*time.Second, "[Preflight]", "All checks passed.")
	x.keys("Enter")
	s := x.waitFor(10*time.Second, "[Review]", "apiVersion: sealer.io/v2", "Enter installs")
	if !strings.Contains(s, ip(0)) {
		t.Fatalf("review lacks the master:\n%s", s)
	}
	x.keys("Enter")
	x.waitFor(30*time.Second, "[Install]")
	s = x.waitFor(5*time.Minute, "[Done]", "Installed installer.run", "Masters:  "+ip(0), "Nodes:    "+ip(1)+", "+ip(2))
	if !strings.Contains(s, "./installer.run reset --answers cluster.yaml --yes") {
		t.Fatalf("Done lacks the reset command:\n%s", s)
	}
	x.keys("Enter")
	x.waitFor(10*time.Second, "EXIT=0")

	for i := range 3 {
		out, err := bed.Exec(context.Background(), i, "cat /etc/sealpack-test/log")
		if err != nil {
			t.Fatal(err)
		}
		role := "node"
		if i == 0 {
			role = "master"
		}
		if want := fmt.Sprintf("init-host role=%s ip=%s master0=%s", role, ip(i), ip(0)); !strings.Contains(out, want) {
			t.Errorf("host %d log lacks %q:\n%s", i, want, out)
		}
	}
	// The saved answers pin every host key the user confirmed, so an
	// unattended re-run verifies them.
	c, err := cluster.Load(filepath.Join(dir, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.All() {
		if n.HostKey == "" {
			t.Errorf("saved answers: %s has no pinned host key", n.IP)
		}
	}
	if len(c.Masters()) != 1 || len(c.Nodes()) != 2 {
		t.Errorf("saved answers: masters %v nodes %v", c.Masters(), c.Nodes())
	}

	// Run again with no arguments: this machine holds the installed
	// cluster, so the wizard opens at Start; reset it from there.
	x = newTmux(t, dir, env, command)
	x.waitFor(30*time.Second, "[Start]", "Cluster     "+c.Name, "Masters     "+ip(0), "> Add hosts", "Reset")
	x.keys("Down", "Enter")
	x.waitFor(5*time.Second, "Reset "+c.Name+"?", "from 3 hosts: "+ip(0)+", "+ip(1)+", "+ip(2))
	x.keys("y")
	// Logging in comes first (the record keeps no typed password): the key
	// file is the record's, the host keys are pinned in it.
	x.waitFor(5*time.Second, "[SSH]", bed.KeyPath)
	x.keys("Enter", "Enter", "Enter", "Enter")
	x.waitFor(60*time.Second, "[Connect]", "All hosts connected. Enter resets them.")
	x.keys("Enter")
	x.waitFor(5*time.Minute, "[Done]", "✓ Reset "+c.Name)
	x.keys("Enter")
	x.waitFor(10*time.Second, "EXIT=0")
	if rec, err := install.InstalledCluster(filepath.Join(dir, "state")); rec != nil || err != nil {
		t.Errorf("after the reset, the cluster is still recorded as installed: %v, %v", rec, err)
	}
	for i := range 3 {
		if out, _ := bed.Exec(context.Background(), i, "ls -d /var/lib/sealpack 2>/dev/null || true"); strings.TrimSpace(out) != "" {
			t.Errorf("host %d keeps %s after the reset", i, out)
		}
	}
}
