package testbed

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestBed proves the properties every end-to-end test relies on, on one bed
// of three hosts.
func TestBed(t *testing.T) {
	t.Parallel()
	b := New(t, 3)
	ctx := t.Context()

	t.Run("login", func(t *testing.T) {
		seen := map[string]int{}
		for i, h := range b.Hosts {
			for _, user := range []string{Root, b.User} {
				c := dial(t, b, i, user)
				got := strings.TrimSpace(run(t, c, "hostname"))
				if got != h.Name {
					t.Errorf("%s@%s: hostname %q, want %q", user, h.Name, got, h.Name)
				}
				seen[got]++
				if id := strings.TrimSpace(run(t, c, "id -un")); id != user {
					t.Errorf("%s@%s: id -un says %q", user, h.Name, id)
				}
			}
		}
		if len(seen) != len(b.Hosts) {
			t.Errorf("hostnames %v: want %d different ones", seen, len(b.Hosts))
		}
	})

	t.Run("host key pinned", func(t *testing.T) {
		// h1 presenting h2's key must be refused: proves both that keys
		// differ per host and that FixedHostKey is what lets us in.
		cfg, err := b.ClientConfig(0, Root)
		if err != nil {
			t.Fatal(err)
		}
		cfg.HostKeyCallback = ssh.FixedHostKey(b.Hosts[1].HostKey)
		if c, err := ssh.Dial("tcp", b.Hosts[0].Addr(), cfg); err == nil {
			c.Close()
			t.Fatal("dial h1 pinned to h2's host key succeeded")
		}
		// known_hosts lines verify through the standard parser.
		path := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(path, b.KnownHosts(), 0o600); err != nil {
			t.Fatal(err)
		}
		cb, err := knownhosts.New(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range b.Hosts {
			cfg, err := b.ClientConfig(i, Root)
			if err != nil {
				t.Fatal(err)
			}
			cfg.HostKeyCallback = cb
			c, err := ssh.Dial("tcp", h.Addr(), cfg)
			if err != nil {
				t.Fatalf("dial %s with known_hosts: %v", h.Name, err)
			}
			c.Close()
			// The fingerprint is the one the host itself reports.
			out, err := b.Exec(ctx, i, "ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, h.Fingerprint) {
				t.Errorf("%s: fingerprint %s not in ssh-keygen's %q", h.Name, h.Fingerprint, out)
			}
		}
	})

	t.Run("private filesystems", func(t *testing.T) {
		root := dial(t, b, 0, Root)
		for _, dir := range []string{"/var/lib", "/etc", "/opt", "/usr/local", "/root", "/tmp", "/home", "/run"} {
			t.Run(dir, func(t *testing.T) {
				file := dir + "/sealpack-testbed-probe-" + randHex(t)
				run(t, root, "echo probe > "+file)
				if out, err := b.Exec(ctx, 0, "cat "+file); err != nil || out != "probe\n" {
					t.Errorf("h1 cannot read back %s: %q, %v", file, out, err)
				}
				if out, err := b.Exec(ctx, 1, "ls "+file); err == nil {
					t.Errorf("h2 sees h1's %s: %q", file, out)
				}
				if _, err := os.Lstat(file); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the real machine sees h1's %s (stat: %v)", file, err)
				}
			})
		}
	})

	t.Run("network", func(t *testing.T) {
		c := dial(t, b, 0, Root)
		other := b.Hosts[1].IP.String()
		if _, err := exec.LookPath("ping"); err == nil {
			run(t, c, "ping -c 1 -W 2 "+other)
		} else {
			t.Log("ping is not installed here; checking TCP only")
		}
		banner := run(t, c, "exec 3<>/dev/tcp/"+other+"/22 && head -c 7 <&3")
		if banner != "SSH-2.0" {
			t.Errorf("h1 -> h2:22 read %q, want the SSH banner", banner)
		}
		run(t, c, "exec 3<>/dev/tcp/"+b.Hosts[2].Name+"/22") // names resolve through /etc/hosts
		for i, h := range b.Hosts {
			for _, cmd := range []string{"ip -4 route show default", "ip -6 route show default"} {
				if out, err := b.Exec(ctx, i, cmd); err != nil || strings.TrimSpace(out) != "" {
					t.Errorf("%s: %s: %q, %v; want no default route", h.Name, cmd, out, err)
				}
			}
			if out, err := b.Exec(ctx, i, "ip route get 192.0.2.1"); err == nil {
				t.Errorf("%s reaches an outside address: %s", h.Name, out)
			}
		}
	})

	t.Run("sudo", func(t *testing.T) {
		for i := range b.Hosts {
			c := dial(t, b, i, b.User)
			run(t, c, "sudo -n true")
			if uid := strings.TrimSpace(run(t, c, "sudo -n id -u")); uid != "0" {
				t.Errorf("%s: sudo -n id -u = %q", b.Hosts[i].Name, uid)
			}
		}
	})

	t.Run("sessions over one connection", func(t *testing.T) {
		// The bed's sshd keeps OpenSSH's default MaxSessions (10), as a
		// site's hosts do: 10 sessions at once over one connection run,
		// and 20 at once do not all get one (the engine must stay below).
		at := func(n int) (refused int) {
			c := dial(t, b, 0, Root)
			errs := make(chan error, n)
			for range n {
				go func() {
					s, err := c.NewSession()
					if err != nil {
						errs <- err
						return
					}
					defer s.Close()
					errs <- s.Run("sleep 0.5")
				}()
			}
			for range n {
				if err := <-errs; err != nil {
					refused++
				}
			}
			return refused
		}
		if r := at(10); r != 0 {
			t.Errorf("10 sessions at once: %d refused, want none", r)
		}
		if r := at(20); r == 0 {
			t.Error("20 sessions at once all ran: the bed's sshd does not keep the default MaxSessions 10")
		}
	})
}

func TestDiskLimit(t *testing.T) {
	t.Parallel()
	b := New(t, 2, WithDiskLimit(1, "32M"))
	ctx := t.Context()
	size := func(i int) int64 {
		out, err := b.Exec(ctx, i, "df -B1 --output=size /var/lib | tail -n 1")
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			t.Fatalf("df on %s: %v", b.Hosts[i].Name, err)
		}
		return n
	}
	if got, want := size(1), int64(32<<20); got != want {
		t.Errorf("limited h2: /var/lib size %d, want %d", got, want)
	}
	if got := size(0); got <= 32<<20 {
		t.Errorf("unlimited h1: /var/lib size %d", got)
	}
	if b.Hosts[1].DiskLimit != "32M" || b.Hosts[0].DiskLimit != "" {
		t.Errorf("DiskLimit fields %q, %q", b.Hosts[0].DiskLimit, b.Hosts[1].DiskLimit)
	}
	// The limit is real, and the real /var/lib still shows through.
	if out, err := b.Exec(ctx, 1, "head -c 40M /dev/zero > /var/lib/big"); err == nil {
		t.Errorf("writing 40M into a 32M /var/lib succeeded: %s", out)
	}
	if _, err := b.Exec(ctx, 1, "test -d /var/lib/dpkg"); err != nil {
		t.Errorf("the limited /var/lib hides the real one: %v", err)
	}
}

func TestStopStartSSH(t *testing.T) {
	t.Parallel()
	b := New(t, 2)
	ctx := t.Context()
	c := dial(t, b, 0, Root)
	run(t, c, "echo kept > /var/lib/kept")

	if err := b.StopSSH(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// The open connection dies with sshd, and new ones are refused.
	if s, err := c.NewSession(); err == nil {
		if err := s.Run("true"); err == nil {
			t.Error("a session on the old connection still runs after StopSSH")
		}
		s.Close()
	}
	cfg, err := b.ClientConfig(0, Root)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ssh.Dial("tcp", b.Hosts[0].Addr(), cfg); err == nil {
		c.Close()
		t.Fatal("dial after StopSSH succeeded")
	}
	run(t, dial(t, b, 1, Root), "true") // the other host is untouched

	if err := b.StartSSH(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// cfg pins the key read before the restart: same host key.
	c2, err := ssh.Dial("tcp", b.Hosts[0].Addr(), cfg)
	if err != nil {
		t.Fatalf("dial after StartSSH: %v", err)
	}
	defer c2.Close()
	if got := run(t, c2, "cat /var/lib/kept"); got != "kept\n" {
		t.Errorf("file written before the restart: %q", got)
	}
	if err := b.StartSSH(ctx, 0); err == nil {
		t.Error("StartSSH on a running sshd did not fail")
	}
}

func TestBandwidth(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("tc"); err != nil {
		skipOrFail(t, "bandwidth limits need tc (apt-get install iproute2)")
	}
	b := New(t, 2, WithBandwidth(0, "8mbit"))
	ctx := t.Context()
	// 1 MB at 8 Mbit/s takes about a second; unlimited, a few milliseconds.
	send := func(i int) time.Duration {
		c := dial(t, b, i, Root)
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Stdin = io.LimitReader(rand.Reader, 1<<20)
		start := time.Now()
		if err := s.Run("cat > /dev/null"); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	// Only the limited time has a hard floor; the others are compared with
	// it, so a loaded machine slows both sides.
	limited := send(0)
	if limited < 600*time.Millisecond {
		t.Errorf("1 MB to h1 at 8mbit took %v, want about 1s", limited)
	}
	if d := send(1); d > limited/2 {
		t.Errorf("1 MB to unlimited h2 took %v, limited h1 %v", d, limited)
	}
	if err := b.SetBandwidth(ctx, 0, "off"); err != nil {
		t.Fatal(err)
	}
	if d := send(0); d > limited/2 {
		t.Errorf("1 MB to h1 after SetBandwidth off took %v, limited %v", d, limited)
	}
	if err := b.SetBandwidth(ctx, 0, "fast"); err == nil {
		t.Error("SetBandwidth accepted rate \"fast\"")
	}
}

// TestCloseLeavesNothing checks that Close removes namespaces, interfaces,
// mounts, processes (including one started over SSH) and files.
func TestCloseLeavesNothing(t *testing.T) {
	t.Parallel()
	b := New(t, 2)
	run(t, dial(t, b, 1, Root), "setsid sleep 1000 </dev/null >/dev/null 2>&1 &")
	var pids []int
	for _, h := range b.Hosts {
		// Not pgrep inside the host: hosts share the machine's pid namespace.
		for _, f := range strings.Fields(command(t, "ip", "netns", "pids", h.Netns)) {
			pid, _ := strconv.Atoi(f)
			pids = append(pids, pid)
		}
	}
	if len(pids) < 5 { // two holders, two sshd listeners, one sleep
		t.Fatalf("found only pids %v in the hosts", pids)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	netns := command(t, "ip", "netns", "list")
	links := command(t, "ip", "-o", "link", "show")
	for _, h := range b.Hosts {
		if strings.Contains(netns, h.Netns) {
			t.Errorf("netns %s left: %s", h.Netns, netns)
		}
	}
	for _, name := range []string{b.Bridge + ":", "spv" + strings.TrimPrefix(b.Bridge, "spb") + "-"} {
		if strings.Contains(links, " "+name) {
			t.Errorf("interface %s left:\n%s", name, links)
		}
	}
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{b.Dir, "/run/netns/" + b.Hosts[0].Netns} {
		if bytes.Contains(mounts, []byte(s)) {
			t.Errorf("mount of %s left", s)
		}
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d of the bed still runs", pid)
		}
	}
	if out, err := exec.Command("pgrep", "-f", "sealpack-testbed-holder:"+regexp.QuoteMeta(b.Name)+":").Output(); err == nil {
		t.Errorf("holder still runs: %s", out)
	}
	if _, err := os.Stat(b.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bed directory %s left (stat: %v)", b.Dir, err)
	}
	if _, err := os.Stat("/run/sealpack-testbed/beds/" + b.Name + ".env"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("registry entry left (stat: %v)", err)
	}
}

// TestStaleBed plays a killed run: a bed whose owner died is torn down by
// the next New of the same name, while one whose owner lives is refused.
func TestStaleBed(t *testing.T) {
	t.Parallel()
	if reason := missingRequirement(); reason != "" {
		skipOrFail(t, reason)
	}
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	name := "stale-" + randHex(t)
	owner := exec.Command("sleep", "60")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	defer owner.Process.Kill()
	staleDir := t.TempDir()
	up := exec.Command("bash", script, "up", name, "1", "--dir", staleDir, "--owner", strconv.Itoa(owner.Process.Pid))
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("bash", script, "down", name).Run() })
	holder := readPid(t, filepath.Join(staleDir, "h1", "holder.pid"))

	again := exec.Command("bash", script, "up", name, "1", "--dir", t.TempDir())
	if out, err := again.CombinedOutput(); err == nil || !strings.Contains(string(out), "in use by live process") {
		t.Fatalf("up over a live bed: %v\n%s", err, out)
	}

	owner.Process.Kill()
	owner.Wait()
	b := New(t, 1, WithName(name))
	if alive(holder) {
		t.Errorf("holder %d of the stale bed still runs", holder)
	}
	if _, err := os.Stat(staleDir + "/h1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale bed directory left (stat: %v)", err)
	}
	run(t, dial(t, b, 0, Root), "true")
}

// TestConcurrentBeds builds beds at the same time, as tests of different
// packages do in one go test ./... run, and checks that live beds never share
// a subnet. It drives the script directly: go test runs only GOMAXPROCS
// parallel tests, too few to hold several New beds up at once.
func TestConcurrentBeds(t *testing.T) {
	t.Parallel()
	if reason := missingRequirement(); reason != "" {
		skipOrFail(t, reason)
	}
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	prefix := "conc-" + randHex(t)
	dirs := make([]string, n)
	errs := make(chan error, n)
	for i := range n {
		dirs[i] = t.TempDir()
		name := fmt.Sprintf("%s-%d", prefix, i)
		t.Cleanup(func() {
			if out, err := exec.Command("bash", script, "down", name).CombinedOutput(); err != nil {
				t.Errorf("down %s: %v\n%s", name, err, out)
			}
		})
		go func() {
			out, err := exec.Command("bash", script, "up", name, "1", "--dir", dirs[i], "--owner", strconv.Itoa(os.Getpid())).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("up %s: %w\n%s", name, err, out)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	seen := map[string]int{}
	for i, dir := range dirs {
		env, err := readEnv(filepath.Join(dir, "bed.env"))
		if err != nil {
			t.Fatal(err)
		}
		if j, ok := seen[env["SUBNET"]]; ok {
			t.Errorf("beds %d and %d share subnet %s", j, i, env["SUBNET"])
		}
		seen[env["SUBNET"]] = i
	}
}

func TestSkipOrFail(t *testing.T) {
	for _, tc := range []struct {
		ci         string
		skip, fail bool
	}{
		{ci: "", skip: true},
		{ci: "false", skip: true},
		{ci: "true", fail: true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{TB: t}
			done := make(chan struct{})
			go func() { // Skip and Fatal end the goroutine like the real ones
				defer close(done)
				skipOrFail(r, "no sshd")
			}()
			<-done
			if r.skipped != tc.skip || r.failed != tc.fail {
				t.Errorf("skipped=%v failed=%v, want %v %v", r.skipped, r.failed, tc.skip, tc.fail)
			}
			if !strings.Contains(r.msg, "no sshd") {
				t.Errorf("message %q lacks the reason", r.msg)
			}
		})
	}
}

func TestDeriveName(t *testing.T) {
	long := strings.Repeat("TestVeryLong/sub test/", 10)
	a, b := deriveName(long, "/tmp/x/001"), deriveName(long, "/tmp/y/002")
	for _, n := range []string{a, b} {
		if !validName.MatchString(n) {
			t.Errorf("derived name %q is not valid", n)
		}
	}
	if a == b {
		t.Errorf("two beds of one test share the name %q", a)
	}
	if a != deriveName(long, "/tmp/other-run/001") {
		t.Error("the name changes between runs of the same test")
	}
}

// recorder catches Skip and Fatal instead of ending the test.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func dial(t *testing.T, b *Bed, i int, user string) *ssh.Client {
	t.Helper()
	cfg, err := b.ClientConfig(i, user)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", b.Hosts[i].Addr(), cfg)
	if err != nil {
		t.Fatalf("dial %s@%s: %v", user, b.Hosts[i].Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session for %q: %v", cmd, err)
	}
	defer s.Close()
	var stderr bytes.Buffer
	s.Stderr = &stderr
	out, err := s.Output(cmd)
	if err != nil {
		t.Fatalf("%q over SSH: %v: %s", cmd, err, stderr.String())
	}
	return string(out)
}

func command(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// alive reports whether pid runs; a zombie waiting for PID 1 to reap it
// counts as dead.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	return !bytes.HasPrefix(bytes.TrimSpace(rest), []byte("Z"))
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func randHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
