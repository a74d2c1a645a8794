package tui

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
)

func TestParseIPs(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "10.0.0.1", want: "10.0.0.1"},
		{in: "10.0.0.1, 10.0.0.5 10.0.0.9", want: "10.0.0.1 10.0.0.5 10.0.0.9"},
		{in: "192.168.0.10-12", want: "192.168.0.10 192.168.0.11 192.168.0.12"},
		{in: "10.0.0.254-10.0.1.1", want: "10.0.0.254 10.0.0.255 10.0.1.0 10.0.1.1"},
		{in: "fd00::a-c", want: "fd00::a fd00::b fd00::c"},
		{in: "10.0.0.x", err: `"10.0.0.x" is not an IP address`},
		{in: "10.0.0.9-3", err: "ends before it starts"},
		{in: "10.0.0.1-10.0.9.1", err: "more than 256"},
		{in: "10.0.0.1-fd00::1", err: "mixes IPv4 and IPv6"},
		{in: "10.0.0.1-300", err: "last octet"},
	} {
		ips, err := parseIPs(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseIPs(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(ips, " ") != tc.want {
			t.Errorf("parseIPs(%q) = %v, %v; want %s", tc.in, ips, err, tc.want)
		}
	}
}

func TestWelcome(t *testing.T) {
	d := newDriver(t, Options{NewEngine: (&fakes{}).new})
	d.wantScreen("[Welcome]", "Kubernetes  v1.33.1", "calico, metrics-server", "Images      12", "734.0 MiB", "linux/amd64", "not signed")
	d.golden("welcome")
	d.keys("?")
	d.wantScreen("Keys on the Welcome screen", "enter")
	d.keys("esc", "enter")
	d.wantScreen("[Hosts]")
}

// TestWelcomeSignature: an unchecked signature is shown as the file's own
// claim, saying that it proves nothing; a checked one names the signer.
func TestWelcomeSignature(t *testing.T) {
	for _, c := range []struct {
		name, sig string
		trusted   bool
		want      []string
	}{
		{"claim", "key SHA256:vTM0tm8zgW9z2U1mGG0bhmHcWE9Pbc7Bzq6dXzKOV0E, unchecked\na file's check of itself proves nothing: use ssh-keygen -Y verify", false,
			[]string{"Signature   key SHA256:vTM0tm8zgW9z2U1mGG0bhmHcWE9Pbc7Bzq6dXzKOV0E, unchecked\n", "            a file's check of itself proves nothing: use ssh-keygen -Y verify\n", "Press Enter to start."}},
		{"trusted", "release@example.com, trusted by release.allowed_signers:1\nkey SHA256:vTM0tm8zgW9z2U1mGG0bhmHcWE9Pbc7Bzq6dXzKOV0E", true,
			[]string{"Signature   release@example.com, trusted by release.allowed_signers:1\n", "            key SHA256:vTM0tm8zgW9z2U1mGG0bhmHcWE9Pbc7Bzq6dXzKOV0E\n", "Press Enter to start."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bi := testBundle()
			bi.Signature, bi.Trusted = c.sig, c.trusted
			d := newDriver(t, Options{Bundle: bi, NewEngine: (&fakes{}).new})
			d.wantScreen(c.want...)
		})
	}
}

func TestHostsValidation(t *testing.T) {
	d := newDriver(t, Options{NewEngine: (&fakes{}).new})
	d.keys("enter")
	d.keys("enter")
	d.wantScreen("add at least one host")

	d.typeText("10.0.0.x")
	d.wantScreen(`✗ "10.0.0.x" is not an IP address`)
	for range 8 {
		d.keys("backspace")
	}
	d.typeText("10.0.0.10-12")
	d.wantScreen("✓ Enter adds 3 hosts: 10.0.0.10, 10.0.0.11, 10.0.0.12")
	d.keys("enter")
	// The first added host is the master, the rest workers.
	if got := d.m.c.Masters(); len(got) != 1 || got[0].IP != "10.0.0.10" {
		t.Fatalf("masters = %v", got)
	}
	if n := len(d.m.c.Nodes()); n != 2 {
		t.Fatalf("%d nodes, want 2", n)
	}
	d.typeText("10.0.0.11")
	d.wantScreen("✗ 10.0.0.11 is already in the list")
	d.keys("enter")
	d.wantScreen("✗ 10.0.0.11 is already in the list")
	if len(d.m.c.All()) != 3 {
		t.Fatalf("duplicate added: %v", d.m.c.All())
	}
	for range 9 {
		d.keys("backspace")
	}
	d.golden("hosts")

	// Make the second host a master too: an even number warns.
	d.keys("down", "down", "space")
	d.wantScreen("2 masters: an even number adds no fault tolerance")
	// Remove both masters: no way on.
	d.keys("up", "d", "d")
	d.keys("tab", "enter")
	d.wantScreen("no master")
	if d.m.screen != ScreenHosts {
		t.Fatalf("went on to %v without a master", d.m.screen)
	}
	d.keys("shift+tab", "space")
	d.rejectScreen("no master")
	d.keys("enter")
	if d.m.screen != ScreenSSH {
		t.Fatalf("screen %v, want SSH", d.m.screen)
	}
	if err := d.m.c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestHostsFromFileKeepSettings(t *testing.T) {
	c := &cluster.Cluster{Name: "lab", Hosts: []cluster.Host{
		{IPs: []string{"10.1.0.1"}, Roles: []string{"master"}, Labels: map[string]string{"zone": "a"}},
		{IPs: []string{"10.1.0.2", "10.1.0.3"}, Roles: []string{"node"}, SSH: cluster.SSH{Port: 2222}},
	}}
	d := newDriver(t, Options{Cluster: c, AnswersPath: "lab.yaml", NewEngine: (&fakes{}).new})
	if d.m.screen != ScreenReview {
		t.Fatalf("prefilled wizard opens at %v, want Review", d.m.screen)
	}
	d.wantScreen("[Review]", "name: lab", "10.1.0.2", "zone: a", "port: 2222")
	// Back to Hosts, add one: the entries from the file keep their settings.
	d.keys("esc", "esc", "esc", "esc")
	if d.m.screen != ScreenHosts {
		t.Fatalf("screen %v, want Hosts", d.m.screen)
	}
	d.typeText("10.1.0.4")
	d.keys("enter")
	if got := d.m.c.Hosts; len(got) != 3 || got[1].SSH.Port != 2222 || len(got[1].IPs) != 2 || got[0].Labels["zone"] != "a" || got[2].IPs[0] != "10.1.0.4" {
		t.Fatalf("hosts = %+v", got)
	}
	if !d.m.dirty || d.m.preflightOK {
		t.Fatal("an edit must clear the checks")
	}
}

func TestSSH(t *testing.T) {
	d := newDriver(t, Options{DefaultKey: "/home/u/.ssh/id_ed25519", NewEngine: (&fakes{}).new})
	d.keys("enter")
	d.typeText("10.0.0.1")
	d.keys("enter", "enter")
	d.wantScreen("[SSH]", "User:", "[root", "/home/u/.ssh/id_ed25519", "Sudo: not needed")
	d.golden("ssh")
	// Port: out of range is refused on Enter at the last field.
	d.keys("tab")
	for range 2 {
		d.keys("backspace")
	}
	d.typeText("70000")
	d.keys("enter", "enter", "enter")
	d.wantScreen("port: a number from 1 to 65535")
	if d.m.screen != ScreenSSH {
		t.Fatalf("screen %v with a bad port", d.m.screen)
	}
	d.keys("shift+tab", "shift+tab")
	for range 5 {
		d.keys("backspace")
	}
	d.typeText("2222")
	// User: not root, so a sudo password field appears.
	d.keys("shift+tab")
	for range 4 {
		d.keys("backspace")
	}
	d.typeText("deploy")
	d.wantScreen("Sudo password:", "deploy runs commands through sudo")
	// Password login: the key field goes, the password is masked.
	d.keys("tab", "tab", "space", "tab")
	d.typeText("s3cret")
	d.rejectScreen("s3cret", "Key file:")
	d.wantScreen("Password:", "******")
	if s := d.check(); s != "" {
		t.Fatal(s)
	}
	d.keys("enter")
	got := d.m.c.SSH
	if got.User != "deploy" || got.Port != 2222 || got.Password.Reveal() != "s3cret" || got.PrivateKey != "" {
		t.Fatalf("ssh = %+v", got)
	}
	if d.m.screen != ScreenConnect {
		t.Fatalf("screen %v, want Connect", d.m.screen)
	}
}

func (d *driver) check() string { return d.m.ssh.check(d.m) }

// toConnect walks Welcome, Hosts and SSH with three hosts.
func toConnect(d *driver) { toConnectHosts(d, "10.0.0.10-12") }

// toConnectHosts walks the wizard to Connect with the hosts of a range.
func toConnectHosts(d *driver, hosts string) {
	d.keys("enter")
	d.typeText(hosts)
	d.keys("enter", "enter", "enter", "enter", "enter", "enter")
}

// fixedKey is a host key that is the same on every run, for golden screens.
func fixedKey(t *testing.T, seed byte) ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)).Public())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestConnectAsksAboutHostKeys(t *testing.T) {
	key := fixedKey(t, 1)
	fs := &fakes{make: func(EngineConfig) *fakeEngine {
		return &fakeEngine{unknownKey: map[string]ssh.PublicKey{"10.0.0.11": key, "10.0.0.12": fixedKey(t, 2)}}
	}}
	d := newDriver(t, Options{NewEngine: fs.new})
	toConnect(d)
	if d.m.screen != ScreenConnect {
		t.Fatalf("screen %v, want Connect", d.m.screen)
	}
	d.wantScreen("Unknown host key", "10.0.0.11", ssh.FingerprintSHA256(key))
	d.golden("hostkey")
	d.keys("y")
	d.wantScreen("Unknown host key", "10.0.0.12")
	d.keys("n")
	d.wantScreen("✓ connected", "✗ failed", "host key refused", "1 host not reachable")
	d.golden("connect-failed")
	d.keys("enter")
	if d.m.screen != ScreenConnect {
		t.Fatal("Enter went on past a failed host")
	}
	// The trusted key is pinned in the answers.
	var pinned bool
	for _, h := range d.m.c.Hosts {
		if len(h.IPs) == 1 && h.IPs[0] == "10.0.0.11" && strings.HasPrefix(h.HostKey, "ssh-ed25519 ") {
			pinned = true
		}
	}
	if !pinned {
		t.Fatalf("key of 10.0.0.11 not pinned: %+v", d.m.c.Hosts)
	}
	// Retry with a new engine; this time say yes.
	d.keys("r")
	d.keys("y", "y")
	d.wantScreen("All hosts connected.")
	d.keys("enter")
	if d.m.screen != ScreenPreflight {
		t.Fatalf("screen %v, want Preflight", d.m.screen)
	}
}

func TestPreflightNoWayPastFailure(t *testing.T) {
	fs := &fakes{}
	fs.make = func(cfg EngineConfig) *fakeEngine {
		checks := passChecks(cfg.Cluster)
		checks[5] = install.CheckResult{Host: "10.0.0.10", Check: "disk", Status: install.Fail, Reason: "needs 2.0 GiB free under /var/lib/sealpack, has 1.0 GiB"}
		checks[13] = install.CheckResult{Host: "10.0.0.11", Check: "disk", Status: install.Warn, Reason: "little room left"}
		return &fakeEngine{checks: checks, checkErr: &install.PreflightError{Failed: checks[5:6]}}
	}
	d := newDriver(t, Options{NewEngine: fs.new})
	toConnect(d)
	d.keys("enter")
	d.wantScreen("[Preflight]", "HOST", "hostname", "FAIL", "warn", "✗ 10.0.0.10 disk: needs 2.0 GiB", "! 10.0.0.11 disk: little room left", "1 check failed.")
	d.golden("preflight-failed")
	d.keys("enter")
	if d.m.screen != ScreenPreflight {
		t.Fatalf("Enter went on past a failed check to %v", d.m.screen)
	}
	// Fixed on the host: re-run passes.
	fs.last.mu.Lock()
	fs.last.checks, fs.last.checkErr = passChecks(d.m.c), nil
	fs.last.mu.Unlock()
	d.keys("r")
	d.wantScreen("All checks passed.")
	d.keys("down")
	d.wantScreen("10.0.0.11:", "clock     clock fine")
	d.keys("enter")
	if d.m.screen != ScreenReview {
		t.Fatalf("screen %v, want Review", d.m.screen)
	}
}

func passing() *fakes {
	return &fakes{make: func(cfg EngineConfig) *fakeEngine { return &fakeEngine{checks: passChecks(cfg.Cluster)} }}
}

func TestReviewSave(t *testing.T) {
	path := "answers.yaml"
	d := newDriver(t, Options{AnswersPath: path, NewEngine: passing().new})
	// Relative paths keep the golden screens free of temporary directories.
	t.Chdir(t.TempDir())
	d.keys("enter")
	d.typeText("10.0.0.10")
	d.keys("enter", "enter", "tab", "tab", "space", "tab")
	d.typeText("pw-42")
	d.keys("enter", "enter", "enter")
	if d.m.screen != ScreenReview {
		t.Fatalf("screen %v, want Review", d.m.screen)
	}
	d.wantScreen("apiVersion: sealer.io/v2", "10.0.0.10", "password is left out")
	d.rejectScreen("pw-42")
	d.golden("review")
	d.keys("s")
	d.wantScreen("Save to:", path)
	d.keys("enter")
	d.until(func() bool { return d.m.review.saved != "" || d.m.review.err != "" })
	d.wantScreen("✓ Saved " + path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "pw-42") {
		t.Fatalf("saved file holds the password:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	c, err := cluster.Parse(path, b)
	if err != nil || len(c.All()) != 1 {
		t.Fatalf("saved file does not parse back: %v\n%s", err, b)
	}
	// Asked for: the password is written, but not shown; a file that was
	// readable by others before is not any more, and no temporary is left.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	d.keys("p")
	d.wantScreen("passwd: '***'", "saved in plain text")
	d.rejectScreen("pw-42")
	d.m.review.saved = ""
	d.keys("s", "enter")
	d.until(func() bool { return d.m.review.saved != "" || d.m.review.err != "" })
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "pw-42") {
		t.Fatalf("password not saved when asked:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after saving the password over a 0644 file, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir("."); len(entries) != 1 {
		t.Errorf("directory holds %v, want only %s", entries, path)
	}
}

func TestReviewFromFileChecksFirst(t *testing.T) {
	c := &cluster.Cluster{Hosts: []cluster.Host{{IPs: []string{"10.2.0.1"}, Roles: []string{"master"}}}}
	fs := passing()
	d := newDriver(t, Options{Cluster: c, AnswersPath: "c.yaml", NewEngine: fs.new})
	d.wantScreen("Enter connects and checks the hosts")
	d.keys("enter")
	if d.m.screen != ScreenConnect {
		t.Fatalf("unchecked answers went to %v, want Connect", d.m.screen)
	}
	d.keys("enter", "enter")
	if d.m.screen != ScreenReview || !d.m.preflightOK {
		t.Fatalf("screen %v ok=%v, want Review after checks", d.m.screen, d.m.preflightOK)
	}
	d.wantScreen("Enter installs")
}

// installTo walks to the Install screen with a fake install.
func installTo(t *testing.T, run func(ctx context.Context, sink install.Sink) error) (*driver, *fakes) {
	return installToHosts(t, "10.0.0.10-12", run)
}

func installToHosts(t *testing.T, hosts string, run func(ctx context.Context, sink install.Sink) error) (*driver, *fakes) {
	fs := &fakes{make: func(cfg EngineConfig) *fakeEngine {
		return &fakeEngine{checks: passChecks(cfg.Cluster), install: run}
	}}
	path := "cluster.yaml"
	d := newDriver(t, Options{AnswersPath: path, NewEngine: fs.new, Command: func(verb, answers string) string {
		return "./installer.run " + verb + " --answers " + filepath.Base(answers) + " --yes"
	}})
	t.Chdir(t.TempDir())
	toConnectHosts(d, hosts)
	d.keys("enter", "enter")
	if d.m.screen != ScreenReview {
		t.Fatalf("screen %v, want Review", d.m.screen)
	}
	d.keys("enter")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("answers not saved before the install: %v", err)
	}
	return d, fs
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestInstallProgressAndStop(t *testing.T) {
	release := make(chan struct{})
	d, _ := installTo(t, func(ctx context.Context, sink install.Sink) error {
		ev := func(sec int, e install.Event) { e.Time = t0.Add(time.Duration(sec) * time.Second); sink.Event(e) }
		ev(0, install.Event{Kind: install.StepStart, Host: "10.0.0.10", Phase: "distribute", Step: "bundle"})
		ev(1, install.Event{Kind: install.Progress, Host: "10.0.0.10", Phase: "distribute", Step: "bundle", Bytes: 100 << 20, Total: 1000 << 20})
		ev(3, install.Event{Kind: install.Progress, Host: "10.0.0.10", Phase: "distribute", Step: "bundle", Bytes: 300 << 20, Total: 1000 << 20})
		ev(3, install.Event{Kind: install.StepDone, Host: "10.0.0.11", Phase: "distribute", Step: "layers", Elapsed: 2 * time.Second})
		ev(4, install.Event{Kind: install.Log, Host: "10.0.0.11", Phase: "init-host", Step: "init-host", Message: "installing containerd"})
		ev(5, install.Event{Kind: install.StepFailed, Host: "10.0.0.12", Phase: "init-host", Step: "init-host", Err: errors.New("exit status 3")})
		<-release
		<-ctx.Done()
		return ctx.Err()
	})
	defer close(release)
	d.wantScreen("[Install]", "10.0.0.10", "distribute/bundle", "[####------------]  30%", "300.0 MiB of 1000.0 MiB, 100.0 MiB/s, ETA 7s",
		"✓ 1 steps", "✗ 10.0.0.12 init-host: exit status 3", "[10.0.0.11] init-host: installing containerd", "FAILED: exit status 3")
	d.golden("install")
	// Ctrl-C asks; n keeps going; y stops and leaves the resume command.
	d.keys("ctrl+c")
	d.wantScreen("Stop the install?")
	d.keys("n")
	d.rejectScreen("Stop the install?")
	d.keys("ctrl+c", "y")
	release <- struct{}{}
	d.settle()
	if d.m.screen != ScreenDone {
		t.Fatalf("screen %v, want Done", d.m.screen)
	}
	d.wantScreen("The install did not finish", "stopped at your request", "./installer.run install --answers cluster.yaml --yes", "/state/logs")
	d.golden("done-failed")
	if r := d.m.Result(); r.Installed || r.Err == nil {
		t.Fatalf("result %+v", r)
	}
	d.keys("enter")
	if !d.quit {
		t.Fatal("Enter on Done does not quit")
	}
}

func TestInstallDone(t *testing.T) {
	d, _ := installTo(t, func(ctx context.Context, sink install.Sink) error {
		sink.Event(install.Event{Time: t0, Kind: install.StepStart, Host: "10.0.0.10", Phase: "init-master0", Step: "init-master0"})
		sink.Event(install.Event{Time: t0.Add(65 * time.Second), Kind: install.Info, Message: "cluster installed on 3 hosts"})
		return nil
	})
	if d.m.screen != ScreenDone {
		t.Fatalf("screen %v, want Done", d.m.screen)
	}
	d.wantScreen("✓ Installed installer.run (Kubernetes v1.33.1) on 3 hosts in 1m5s", "Masters:  10.0.0.10", "Nodes:    10.0.0.11, 10.0.0.12",
		"join --answers cluster.yaml", "reset --answers cluster.yaml", "Logs:     /state/logs")
	d.golden("done")
	if r := d.m.Result(); !r.Installed || r.Saved == "" {
		t.Fatalf("result %+v", r)
	}
}

func TestResize(t *testing.T) {
	d, _ := installTo(t, func(ctx context.Context, sink install.Sink) error {
		for i := range 100 {
			sink.Event(install.Event{Kind: install.Log, Host: "10.0.0.10", Phase: "init-host", Message: strings.Repeat("x", i)})
		}
		<-ctx.Done()
		return ctx.Err()
	})
	for _, sz := range [][2]int{{80, 24}, {120, 40}, {60, 16}, {80, 24}} {
		d.send(tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		d.settle()
		checkFrame(t, d.screen(), sz[0], sz[1])
	}
	// The log pane scrolls back.
	d.wantScreen("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
	for range 10 {
		d.keys("pgup")
	}
	d.wantScreen("[10.0.0.10] init-host: xxx ")
	d.keys("ctrl+c", "y")
}

func TestQuitBeforeInstall(t *testing.T) {
	d := newDriver(t, Options{NewEngine: (&fakes{}).new})
	d.keys("enter", "ctrl+c")
	if !d.quit || !d.m.Result().Aborted {
		t.Fatalf("quit=%v result %+v", d.quit, d.m.Result())
	}
}

// TestInstallBigCluster: 40 hosts fit 80x24 as phases with their counts and
// a list of the hosts that failed or are slow; the log pane follows the
// newest line until the user scrolls up, and again once they scroll down.
func TestInstallBigCluster(t *testing.T) {
	more := make(chan struct{})
	d, _ := installToHosts(t, "10.0.0.10-49", func(ctx context.Context, sink install.Sink) error {
		ev := func(sec int, e install.Event) { e.Time = t0.Add(time.Duration(sec) * time.Second); sink.Event(e) }
		ev(0, install.Event{Kind: install.PhaseStart, Phase: "distribute", Hosts: install.HostCount{Total: 40}})
		ev(20, install.Event{Kind: install.PhaseDone, Phase: "distribute", Hosts: install.HostCount{Done: 40, Total: 40}, Elapsed: 20 * time.Second})
		ev(20, install.Event{Kind: install.PhaseStart, Phase: "join-node", Hosts: install.HostCount{Total: 39}})
		for i := 11; i < 50; i++ {
			ev(21, install.Event{Kind: install.StepStart, Host: fmt.Sprintf("10.0.0.%d", i), Phase: "join-node", Step: "join-node"})
		}
		ev(30, install.Event{Kind: install.StepFailed, Host: "10.0.0.13", Phase: "join-node", Step: "join-node", Err: errors.New("exit status 1")})
		for i := 15; i < 35; i++ {
			ev(40, install.Event{Kind: install.StepDone, Host: fmt.Sprintf("10.0.0.%d", i), Phase: "join-node", Step: "join-node", Elapsed: 19 * time.Second})
		}
		ev(40, install.Event{Kind: install.PhaseProgress, Phase: "join-node", Hosts: install.HostCount{Done: 20, Failed: 1, Total: 39}})
		for i := range 60 {
			ev(200, install.Event{Kind: install.Log, Host: "10.0.0.10", Phase: "join-node", Message: fmt.Sprintf("line %d", i)})
		}
		<-more
		ev(201, install.Event{Kind: install.Log, Host: "10.0.0.10", Phase: "join-node", Message: "newest while scrolled"})
		<-more
		ev(202, install.Event{Kind: install.Log, Host: "10.0.0.10", Phase: "join-node", Message: "newest after scrolling back"})
		<-ctx.Done()
		return ctx.Err()
	})
	d.settle()
	screen := d.screen()
	checkFrame(t, screen, 80, 24)
	d.wantScreen("40 hosts", "✓ distribute", "… join-node", "20/39, 1 failed", "✗ 10.0.0.13", "hosts failed or slow",
		"! 10.0.0.11", "line 59")
	d.rejectScreen("10.0.0.40 ") // no line per host
	d.keys("pgup")
	d.rejectScreen("line 59")
	more <- struct{}{}
	d.settle()
	d.rejectScreen("newest while scrolled", "line 59")
	for range 30 {
		d.keys("pgdown")
	}
	more <- struct{}{}
	d.settle()
	d.wantScreen("newest after scrolling back")
	// tab scrolls the list of hosts instead of the log.
	d.keys("tab")
	d.wantScreen("tab: back to the log")
	d.keys("ctrl+c", "y")
	close(more)
}

// TestReviewShowsPlan: Review names the phases the engine's own list
// holds for the answers, phases without hosts left out, and tab shows
// each phase's hosts.
func TestReviewShowsPlan(t *testing.T) {
	tests := []struct {
		name    string
		hosts   []cluster.Host
		summary []string // lines of the summary, as shown
		absent  []string
		detail  []string
	}{
		{
			name: "one master, two nodes",
			hosts: []cluster.Host{
				{IPs: []string{"10.3.0.1"}, Roles: []string{"master"}},
				{IPs: []string{"10.3.0.2", "10.3.0.3"}, Roles: []string{"node"}},
			},
			summary: []string{
				"Install on 3 hosts: distribute › registry › pre-install plugins › init-host ›",
				"  init-master0 (1) › share (2) › join-node (2) › apps (1) › post-install plugins",
			},
			absent: []string{"join-master"},
			detail: []string{
				" 1. distribute            10.3.0.1, 10.3.0.2, 10.3.0.3",
				" 5. init-master0          10.3.0.1 ",
				" 6. share                 10.3.0.2, 10.3.0.3 ",
				" 7. join-node             10.3.0.2, 10.3.0.3 ",
				" 9. post-install plugins  10.3.0.1, 10.3.0.2, 10.3.0.3",
			},
		},
		{
			name:    "one host: no share, no joins",
			hosts:   []cluster.Host{{IPs: []string{"10.3.0.1"}, Roles: []string{"master"}}},
			summary: []string{"Install on 1 host: distribute › registry › pre-install plugins › init-host ›"},
			absent:  []string{"share", "join-master", "join-node"},
			detail:  []string{" 6. apps                  10.3.0.1 ", " 7. post-install plugins  10.3.0.1 "},
		},
		{
			name: "three masters",
			hosts: []cluster.Host{
				{IPs: []string{"10.3.0.1", "10.3.0.2", "10.3.0.3"}, Roles: []string{"master"}},
			},
			summary: []string{"  init-master0 (1) › share (2) › join-master (2) › apps (1) ›\n  post-install plugins\n"},
			absent:  []string{"join-node"},
			detail:  []string{" 7. join-master           10.3.0.2, 10.3.0.3 "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &cluster.Cluster{Name: "lab", Hosts: tt.hosts}
			d := newDriver(t, Options{Cluster: c, AnswersPath: "lab.yaml", NewEngine: (&fakes{}).new})
			d.wantScreen(tt.summary...)
			d.rejectScreen(tt.absent...)
			d.keys("tab")
			d.wantScreen(tt.detail...)
			d.rejectScreen(tt.absent...)
			// Every phase of the engine's plan is on the pane, in order.
			plan, err := install.Plan(d.m.c, install.ActionInstall)
			if err != nil {
				t.Fatal(err)
			}
			s, at := d.screen(), 0
			for i, p := range plan {
				j := strings.Index(s[at:], fmt.Sprintf("%2d. %s ", i+1, p.Name))
				if j < 0 {
					t.Fatalf("phase %d %s missing or out of order:\n%s", i+1, p.Name, s)
				}
				at += j
			}
			d.keys("tab")
			d.wantScreen("apiVersion: sealer.io/v2")
		})
	}
}
