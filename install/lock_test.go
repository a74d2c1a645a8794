package install_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// background is an installer run started and left running.
type background struct {
	cmd *exec.Cmd
	out lockedBuffer
}

// lockedBuffer is a buffer written by a process and read by a test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitOutput waits until the run has printed want.
func (b *background) waitOutput(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(b.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the run never printed %q:\n%s", want, b.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wait waits for the run to end and returns its output and exit code.
func (b *background) wait() (string, int) {
	b.cmd.Wait()
	return b.out.String(), b.cmd.ProcessState.ExitCode()
}

// start starts the installer like run does, without waiting for it.
func (r *rig) start(verb string, extra ...string) *background {
	r.t.Helper()
	args := append([]string{verb, "--answers", r.answers, "--yes", "--known-hosts", r.knownHosts, "--state-dir", filepath.Join(r.dir, "state")}, extra...)
	b := &background{cmd: exec.Command(r.inst, args...)}
	b.cmd.Env = append(os.Environ(), r.env...)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		b.cmd.Process.Kill()
		b.cmd.Wait()
	})
	return b
}

// waitFile waits until host i has the file p.
func (r *rig) waitFile(i int, p string) {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for r.exec(i, "cat "+p+" 2>/dev/null || true") == "" {
		if time.Now().After(deadline) {
			r.t.Fatalf("host %d never had %s", i, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A second install of the same cluster, from this machine or another one,
// stops and names the run that holds the cluster; once that run is killed
// with kill -9, the next run proceeds.
func TestOneRunAtATime(t *testing.T) {
	r := newRig(t, 2)
	r.writeAnswers(fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n", r.ip(0), r.ip(1)) + rootSSH(r.bed.KeyPath))
	r.exec(1, "mkdir -p /etc/sealpack-test && touch /etc/sealpack-test/hold")
	first := r.start("install")
	r.waitFile(1, "/etc/sealpack-test/join-node-started")
	host, _ := os.Hostname()
	holder := fmt.Sprintf("install e2e, pid %d on %s, started ", first.cmd.Process.Pid, host)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	for _, tc := range []struct {
		name, verb, stateDir, want string
	}{
		{"install from this machine", "install", filepath.Join(r.dir, "state"), "the state directory " + filepath.Join(r.dir, "state") + " is in use by " + holder},
		{"reset from this machine", "reset", filepath.Join(r.dir, "state"), "the state directory " + filepath.Join(r.dir, "state") + " is in use by " + holder},
		{"install from another machine", "install", filepath.Join(r.dir, "elsewhere"), "host " + r.ip(0) + " is in use by " + holder},
		{"join from another machine", "join", filepath.Join(r.dir, "elsewhere"), "host " + r.ip(0) + " is in use by " + holder},
	} {
		out, code := r.run(ctx, tc.verb, "--state-dir", tc.stateDir)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s while another runs: exit %d, want a failure saying %q:\n%s", tc.name, code, tc.want, out)
		}
	}
	if log := r.exec(1, "cat /etc/sealpack-test/log"); strings.Count(log, "init-host") != 1 {
		t.Errorf("a refused run touched the node:\n%s", log)
	}

	if err := first.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	first.cmd.Wait()
	r.exec(1, "rm /etc/sealpack-test/hold")
	out, code := r.run(ctx, "install")
	if code != 0 {
		t.Fatalf("install after the first run was killed: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, r.ip(1)+"] join-node: done") {
		t.Errorf("the run after kill -9 did not finish join-node:\n%s", out)
	}
	if lock, err := os.ReadFile(filepath.Join(r.dir, "state", "lock")); err != nil || strings.Contains(string(lock), `"pid":`+strconv.Itoa(first.cmd.Process.Pid)) {
		t.Errorf("the state directory's lock still names the killed run: %s %v", lock, err)
	}
}

// A phase whose connection drops while it runs is not started a second time
// while it may still run: the retry on a new connection, or the next run
// after the installer was killed, waits for the same process and takes its
// result. join-node.sh appends a line to join-node-started each time it starts.
func TestPhaseStartsOnceWhenItsLinkDrops(t *testing.T) {
	for _, tc := range []struct {
		name string
		// drop cuts the node's link while join-node runs and returns the
		// run that must finish it.
		drop func(r *rig, first *background) *background
	}{
		{"sshd killed and restarted: the run retries", func(r *rig, first *background) *background {
			if err := r.bed.StopSSH(t.Context(), 1); err != nil {
				t.Fatal(err)
			}
			if err := r.bed.StartSSH(t.Context(), 1); err != nil {
				t.Fatal(err)
			}
			return first
		}},
		{"link down and the installer killed: the next run", func(r *rig, first *background) *background {
			ns := r.bed.Hosts[1].Netns
			if out, err := exec.Command("ip", "-n", ns, "link", "set", "eth0", "down").CombinedOutput(); err != nil {
				t.Fatalf("link down: %v: %s", err, out)
			}
			first.cmd.Process.Signal(os.Kill)
			first.wait()
			if out, err := exec.Command("ip", "-n", ns, "link", "set", "eth0", "up").CombinedOutput(); err != nil {
				t.Fatalf("link up: %v: %s", err, out)
			}
			return r.start("install")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 2)
			r.writeAnswers(fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n", r.ip(0), r.ip(1)) + rootSSH(r.bed.KeyPath))
			r.exec(1, "mkdir -p /etc/sealpack-test && touch /etc/sealpack-test/hold")
			first := r.start("install")
			r.waitFile(1, "/etc/sealpack-test/join-node-started")
			last := tc.drop(r, first)
			t.Cleanup(func() {
				if t.Failed() {
					logs, _ := filepath.Glob(filepath.Join(r.dir, "state", "logs", "*", "*.log"))
					for _, l := range logs {
						b, _ := os.ReadFile(l)
						t.Logf("%s:\n%s", l, b)
					}
				}
			})
			last.waitOutput(t, r.ip(1)+"] scripts/join-node.sh: still running from an earlier connection")
			r.exec(1, "rm /etc/sealpack-test/hold")
			out, code := last.wait()
			if code != 0 {
				t.Fatalf("install: exit %d\n%s", code, out)
			}
			if started := r.exec(1, "cat /etc/sealpack-test/join-node-started"); started != "started\n" {
				t.Errorf("join-node started %d times, want once:\n%s", strings.Count(started, "started"), out)
			}
			if log := r.exec(1, "cat /etc/sealpack-test/log"); strings.Count(log, "join-node") != 1 {
				t.Errorf("node log:\n%s\nwant join-node once", log)
			}
			if !strings.Contains(out, r.ip(1)+"] join-node: done") {
				t.Errorf("join-node not done:\n%s", out)
			}
		})
	}
}
