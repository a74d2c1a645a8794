package install

import (
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/testbed"
)

// oneMaster is the smallest cluster an engine accepts.
func oneMaster(ip string, port int) *cluster.Cluster {
	return &cluster.Cluster{
		Name:     "test",
		DataRoot: "/var/lib/sealpack",
		Hosts:    []cluster.Host{{IPs: []string{ip}, Roles: []string{cluster.RoleMaster}, SSH: cluster.SSH{Port: port}}},
	}
}

// warnings collects the engine's warning events.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Event(e Event) {
	if e.Kind == Warning {
		w.mu.Lock()
		w.msgs = append(w.msgs, e.Message)
		w.mu.Unlock()
	}
}

func TestUnreadableStateIsSetAside(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(path string) error
	}{
		{"garbage", func(p string) error { return os.WriteFile(p, []byte("\x00\x00\x00"), 0o600) }},
		{"truncated", func(p string) error { return os.WriteFile(p, []byte(`{"hosts": {"10.0.0.1": {"init-ho`), 0o600) }},
		{"wrong shape", func(p string) error { return os.WriteFile(p, []byte(`{"hosts": ["10.0.0.1"]}`), 0o600) }},
		{"a directory", func(p string) error { return os.Mkdir(p, 0o700) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			if err := tc.write(path); err != nil {
				t.Fatal(err)
			}
			var w warnings
			e, err := New(Options{Cluster: oneMaster("10.0.0.1", 22), Bundle: &bundle.Bundle{}, StateFile: path, Sink: &w})
			if err != nil {
				t.Fatalf("New with an unreadable state file: %v", err)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("set aside as %v, want one %s.corrupt-TIME", aside, path)
			}
			if len(w.msgs) != 1 || !strings.Contains(w.msgs[0], path) || !strings.Contains(w.msgs[0], aside[0]) {
				t.Errorf("warnings %q, want one naming %s and %s", w.msgs, path, aside[0])
			}
			// The run goes on with an empty record, written where the old one was.
			e.state.record("10.0.0.1", "init-host")
			if err := e.state.save(); err != nil {
				t.Fatal(err)
			}
			st, err := loadState(path, func(msg string) { t.Errorf("saved state unreadable: %s", msg) })
			if err != nil || len(st.Hosts["10.0.0.1"]) != 1 {
				t.Errorf("state after save: %v, %v", st.Hosts, err)
			}
		})
	}
}

// The state file's bytes are synced before its rename and the directory
// after it, so a power cut leaves the old state or the new one, never an
// empty file: seen by strace in a child test process that saves it.
func TestStateIsSyncedAroundItsRename(t *testing.T) {
	if p := os.Getenv("SEALPACK_TEST_SAVE_STATE"); p != "" {
		st, err := loadState(p, func(string) {})
		if err != nil {
			t.Fatal(err)
		}
		st.record("10.0.0.1", "init-host")
		if err := st.save(); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("needs strace")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command("strace", "-f", "-y", "-o", trace, "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
		os.Args[0], "-test.run=^TestStateIsSyncedAroundItsRename$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SEALPACK_TEST_SAVE_STATE="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strace the save: %v\n%s", err, out)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	assertSyncedRename(t, string(b), path, dir)
}

// assertSyncedRename checks an strace -y log: path.tmp is fsynced, then
// renamed to path, then dir is fsynced.
func assertSyncedRename(t *testing.T, log, path, dir string) {
	t.Helper()
	q := regexp.QuoteMeta
	order := []*regexp.Regexp{
		regexp.MustCompile(`f(data)?sync\(\d+<` + q(path+".tmp") + `>\) += 0`),
		regexp.MustCompile(`rename(at2?)?\(.*` + q(filepath.Base(path)) + `\.tmp",.*` + q(filepath.Base(path)) + `".*\) += 0`),
		regexp.MustCompile(`f(data)?sync\(\d+<` + q(dir) + `>\) += 0`),
	}
	rest := log
	for _, re := range order {
		loc := re.FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("no %s after the earlier calls in the trace:\n%s", re, log)
		}
		rest = rest[loc[1]:]
	}
}

// A host's step marker is synced before its rename and its directory after
// it: seen by strace attached to the host's sshd while the engine marks a
// step there.
func TestHostMarkersAreSynced(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("needs strace")
	}
	bed := testbed.New(t, 1)
	h := bed.Hosts[0]
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, bed.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	c := oneMaster(h.IP.String(), h.Port)
	c.SSH = cluster.SSH{User: testbed.Root, PrivateKey: bed.KeyPath}
	c.Hosts[0].SSH = cluster.SSH{User: testbed.Root, PrivateKey: bed.KeyPath, Port: h.Port}
	e, err := New(Options{Cluster: c, Bundle: &bundle.Bundle{}, HostKeys: HostKeyPolicy{KnownHosts: kh}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pid, err := os.ReadFile(filepath.Join(bed.Dir, "h1", "sshd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(t.TempDir(), "trace")
	strace := exec.Command("strace", "-f", "-y", "-o", trace, "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", "-p", strings.TrimSpace(string(pid)))
	stderr, err := strace.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := strace.Start(); err != nil {
		t.Fatal(err)
	}
	// strace says when it is attached; only then may the connection start.
	attached := make(chan bool, 1)
	go func() {
		buf := make([]byte, 4096)
		var seen strings.Builder
		for {
			n, err := stderr.Read(buf)
			seen.Write(buf[:n])
			if strings.Contains(seen.String(), "attached") {
				attached <- true
				io.Copy(io.Discard, stderr)
				return
			}
			if err != nil {
				attached <- false
				return
			}
		}
	}()
	if !<-attached {
		t.Fatal("strace did not attach to sshd")
	}
	conn, err := e.conn(t.Context(), c.Master0())
	if err == nil {
		err = e.mark(t.Context(), conn, "synced-step", "sha256:x")
	}
	strace.Process.Signal(os.Interrupt)
	strace.Wait()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	assertSyncedRename(t, string(b), e.markerPath("synced-step"), path.Dir(e.markerPath("synced-step")))
}
