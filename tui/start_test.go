package tui

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
)

// installed writes a cluster's record as the engine leaves it in a state
// directory, and returns it as the stub finds it.
func installed(t *testing.T, name string, hosts ...cluster.Host) InstalledCluster {
	t.Helper()
	c := &cluster.Cluster{Name: name, Hosts: hosts}
	c.ApplyDefaults()
	b, err := c.Marshal(cluster.MarshalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, install.ClusterRecord)
	if err := cluster.Save(p, b); err != nil {
		t.Fatal(err)
	}
	got, err := install.InstalledCluster(dir)
	if err != nil || got == nil {
		t.Fatalf("record of %s: %v, %v", name, got, err)
	}
	return InstalledCluster{Cluster: got, AnswersPath: p}
}

func labHosts() []cluster.Host {
	return []cluster.Host{
		{IPs: []string{"10.3.0.1"}, Roles: []string{"master"}},
		{IPs: []string{"10.3.0.2", "10.3.0.3"}, Roles: []string{"node"}},
	}
}

// startDriver opens the wizard as the installer does with no arguments on
// a machine that installed lab; every engine's Install, Join and Reset run
// run (nil: succeed at once).
func startDriver(t *testing.T, run func(ctx context.Context, sink install.Sink) error, more ...InstalledCluster) (*driver, *fakes, InstalledCluster) {
	t.Helper()
	lab := installed(t, "lab", labHosts()...)
	fs := &fakes{make: func(cfg EngineConfig) *fakeEngine {
		return &fakeEngine{checks: passChecks(cfg.Cluster), install: run}
	}}
	d := newDriver(t, Options{Installed: append([]InstalledCluster{lab}, more...), NewEngine: fs.new})
	if d.m.screen != ScreenStart {
		t.Fatalf("the wizard opens at %v, want Start", d.m.screen)
	}
	return d, fs, lab
}

func TestStartScreen(t *testing.T) {
	d, _, lab := startDriver(t, nil)
	d.wantScreen("[Start] > Hosts > SSH > Connect > Preflight > Review > Join > Done",
		"Cluster     lab", "Masters     10.3.0.1", "Nodes       10.3.0.2, 10.3.0.3", "Answers     "+lab.AnswersPath,
		"> Add hosts", "Reset", "New cluster")
	d.rejectScreen("Welcome")
	checkFrame(t, d.screen(), 80, 24)
	// Upgrade is offered when the engine has an upgrade plan, and then
	// goes straight to connecting: the hosts are the installed ones.
	if _, err := install.Plan(lab.Cluster, actionUpgrade); errors.Is(err, install.ErrUnknownAction) {
		d.rejectScreen("Upgrade")
	} else {
		d.choose("Upgrade")
		d.wantScreen("> Upgrade", "to this installer's versions (Kubernetes v1.33.1)", "[Start] > SSH > Connect > Preflight > Review > Upgrade > Done")
	}
	// The step bar follows the choice: a reset logs in, with no hosts to
	// edit and nothing to check.
	d.choose("Reset")
	d.wantScreen("[Start] > SSH > Connect > Reset > Done")
	d.keys("?")
	d.wantScreen("Keys on the Start screen", "nothing changes on the hosts before Reset.")
	d.keys("esc")
	d.choose("New cluster")
	d.wantScreen("[Start] > Welcome > Hosts > SSH")
}

// choose moves the start screen's selection to the choice labelled label.
func (d *driver) choose(label string) {
	d.t.Helper()
	s := d.m.cur().(*startScreen)
	for i, c := range s.choices(d.m) {
		if c.label == label {
			for s.sel > i {
				d.keys("up")
			}
			for s.sel < i {
				d.keys("down")
			}
			return
		}
	}
	d.t.Fatalf("no choice %q on:\n%s", label, d.screen())
}

// Add hosts: the installed cluster's hosts are loaded, the new one is
// added, Review plans a join of all of them, the engine's Join runs, and
// the record is where the answers are saved.
func TestStartAddHosts(t *testing.T) {
	d, fs, lab := startDriver(t, nil)
	t.Chdir(t.TempDir())
	d.keys("enter")
	if d.m.screen != ScreenHosts {
		t.Fatalf("Add hosts went to %v, want Hosts", d.m.screen)
	}
	d.wantScreen("10.3.0.1", "10.3.0.3", "1 master, 2 nodes")
	d.typeText("10.3.0.4")
	d.keys("enter")
	d.wantScreen("10.3.0.4", "1 master, 3 nodes")
	d.keys("enter", "enter", "enter", "enter", "enter")
	if d.m.screen != ScreenConnect {
		t.Fatalf("screen %v, want Connect:\n%s", d.m.screen, d.screen())
	}
	d.keys("enter", "enter")
	if d.m.screen != ScreenReview {
		t.Fatalf("screen %v, want Review", d.m.screen)
	}
	d.wantScreen("Join on 4 hosts:", "join-node (3)")
	d.keys("enter")
	// Saving the added host, then the join, run in commands.
	d.until(func() bool { return d.m.screen == ScreenDone })
	if d.m.screen != ScreenDone {
		t.Fatalf("screen %v, want Done", d.m.screen)
	}
	if got := fs.last.actions; strings.Join(got, ",") != "join" {
		t.Errorf("the engine ran %v, want join", got)
	}
	d.wantScreen("✓ Hosts added: lab runs on 4 hosts", "Answers:  "+lab.AnswersPath)
	if b, err := os.ReadFile(lab.AnswersPath); err != nil || !strings.Contains(string(b), "10.3.0.4") {
		t.Errorf("the added host is not saved in %s: %v\n%s", lab.AnswersPath, err, b)
	}
	if r := d.m.Result(); !r.Installed || r.Action != install.ActionJoin {
		t.Errorf("result %+v", r)
	}
}

// Reset asks first, naming every host; n keeps the cluster, y runs the
// engine's Reset and nothing else.
func TestStartReset(t *testing.T) {
	d, fs, lab := startDriver(t, nil)
	before, _ := os.ReadFile(lab.AnswersPath)
	d.choose("Reset")
	d.keys("enter")
	d.wantScreen("Reset lab?", "from 3 hosts: 10.3.0.1, 10.3.0.2, 10.3.0.3", "y reset")
	d.m.opts.Installed[0].AnswersPath = "/state/lab/cluster.yaml"
	d.golden("start-reset")
	d.keys("n")
	d.wantScreen("> Reset")
	if fs.n != 0 {
		t.Fatalf("%d engines built before the reset was confirmed", fs.n)
	}
	d.keys("enter", "y")
	// The record holds no typed password: the SSH screen comes first, then
	// every host is connected to before anything is reset.
	if d.m.screen != ScreenSSH {
		t.Fatalf("a confirmed reset went to %v, want SSH", d.m.screen)
	}
	d.keys("enter", "enter", "enter", "enter")
	d.wantScreen("Start > SSH > [Connect] > Reset > Done", "All hosts connected. Enter resets them.")
	if got := fs.last.actions; len(got) != 0 {
		t.Fatalf("the engine ran %v before the last Enter", got)
	}
	d.keys("enter")
	d.until(func() bool { return d.m.screen == ScreenDone })
	if d.m.screen != ScreenDone {
		t.Fatalf("screen %v, want Done", d.m.screen)
	}
	if got := fs.last.actions; strings.Join(got, ",") != "reset" {
		t.Errorf("the engine ran %v, want reset", got)
	}
	d.wantScreen("✓ Reset lab: the install is undone on 3 hosts")
	d.rejectScreen("Add hosts later", "Kubeconfig")
	if after, _ := os.ReadFile(lab.AnswersPath); string(after) != string(before) {
		t.Errorf("the reset rewrote the answers:\n%s", after)
	}
}

// A failed reset says so and how to run it again.
func TestStartResetFails(t *testing.T) {
	d, _, _ := startDriver(t, func(ctx context.Context, sink install.Sink) error {
		return &install.NodesFailedError{Failed: []install.HostFailure{{Host: "10.3.0.2", Phase: "reset", Err: context.DeadlineExceeded}}, Hosts: 3}
	})
	d.choose("Reset")
	d.keys("enter", "y", "enter", "enter", "enter", "enter", "enter")
	d.until(func() bool { return d.m.screen == ScreenDone })
	d.wantScreen("✗ The reset did not finish", "10.3.0.2 in reset", "reset --answers")
}

// New cluster leaves the installed one alone: an empty wizard at Welcome,
// and Esc comes back to Start with lab loaded again.
func TestStartNewCluster(t *testing.T) {
	other := installed(t, "edge", cluster.Host{IPs: []string{"10.4.0.1"}, Roles: []string{"master"}})
	d, _, _ := startDriver(t, nil, other)
	d.wantScreen("lab  (1 of 2: ←/→ for the others)")
	d.keys("right")
	d.wantScreen("edge  (2 of 2", "Masters     10.4.0.1")
	d.keys("left")
	d.choose("New cluster")
	d.keys("enter")
	if d.m.screen != ScreenWelcome || len(d.m.c.Hosts) != 0 {
		t.Fatalf("New cluster: screen %v with hosts %v, want an empty Welcome", d.m.screen, d.m.c.Hosts)
	}
	d.wantScreen("Start > [Welcome] > Hosts")
	d.keys("esc")
	if d.m.screen != ScreenStart {
		t.Fatalf("Esc on Welcome went to %v, want Start", d.m.screen)
	}
	d.choose("Add hosts")
	d.keys("enter")
	d.wantScreen("[Hosts]", "10.3.0.2")
}
