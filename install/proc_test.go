package install

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/testbed"
)

// bedEngine returns an engine for the first host of bed, logged in as root.
func bedEngine(t testing.TB, bed *testbed.Bed) *Engine {
	t.Helper()
	h := bed.Hosts[0]
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, bed.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	c := oneMaster(h.IP.String(), h.Port)
	c.Hosts[0].SSH = cluster.SSH{User: testbed.Root, PrivateKey: bed.KeyPath, Port: h.Port}
	e, err := New(Options{Cluster: c, Bundle: &bundle.Bundle{}, HostKeys: HostKeyPolicy{KnownHosts: kh}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// A pid file left behind names whatever process has that pid now: only the
// process it recorded (its start time, its command line) is ever killed.
func TestStalePidFilesKillNothingElse(t *testing.T) {
	bed := testbed.New(t, 1)
	e := bedEngine(t, bed)
	c, err := e.conn(t.Context(), e.c.Master0())
	if err != nil {
		t.Fatal(err)
	}
	run := func(cmd string) string {
		t.Helper()
		out, err := c.Output(t.Context(), cmd, 0)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	registryPid := filepath.Join(e.registryDir(), "supervisor.pid")
	blobsPid := e.remote("state", "blobs.pid")
	for _, tc := range []struct {
		name, pidFile, stop string
		process             string // started with setsid on the host
		record              string // the pid file: %[1]d pid, %[2]s its start time
		killed              bool
	}{
		{"registry: pid reused by another program", registryPid, e.stopRegistryScript(), "sleep 1000", "%[1]d %[2]s", false},
		{"registry: pid only, another program", registryPid, e.stopRegistryScript(), "sleep 1000", "%[1]d", false},
		{"registry: its command line, another start time", registryPid, e.stopRegistryScript(), "sh -c \"while :; do 'x' 'registry' 'serve'; sleep 1; done\"", "%[1]d 1", false},
		{"registry: the supervisor itself", registryPid, e.stopRegistryScript(), "sh -c \"while :; do 'x' 'registry' 'serve'; sleep 1; done\"", "%[1]d %[2]s", true},
		{"blobs: pid reused by another program", blobsPid, e.stopBlobServerScript(), "sleep 1000", "%[1]d %[2]s", false},
		{"blobs: pid only, another program", blobsPid, e.stopBlobServerScript(), "sleep 1000", "%[1]d", false},
		{"blobs: the blob server itself", blobsPid, e.stopBlobServerScript(), "sh -c 'sleep 1000 # serve-blobs'", "%[1]d %[2]s", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pid := run("setsid " + tc.process + " >/dev/null 2>&1 </dev/null & echo $!")
			defer run("kill -9 -" + pid + " 2>/dev/null; true")
			start := run(procShell + "pidrecord " + pid + " | cut -d' ' -f2")
			var n int
			fmt.Sscan(pid, &n)
			line := fmt.Sprintf(tc.record, n, start)
			run(fmt.Sprintf("mkdir -p \"$(dirname %[1]s)\" && echo %[2]s > %[1]s", shellQuote(tc.pidFile), shellQuote(line)))
			run(tc.stop)
			alive := run("sleep 0.3; " + procShell + "alive " + pid + " " + start + " && echo alive || true")
			if killed := alive == ""; killed != tc.killed {
				t.Errorf("pid file %q: process %s killed = %v, want %v", line, tc.process, killed, tc.killed)
			}
			if left := run("ls " + shellQuote(tc.pidFile) + " 2>/dev/null || true"); left != "" {
				t.Errorf("the pid file %s is left", tc.pidFile)
			}
		})
	}
}

// sha256ok takes a file whose digest matches, with openssl or, on a host
// without it, with sha256sum, and refuses any other; in sh and in bash (the
// program fetch runs it under bash -c).
func TestSHA256Shell(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "blob")
	if err := os.WriteFile(f, []byte("sealpack\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const good = "85d4091fdc8df8fa4ff6537f3b93e480bcafd77f4ec2e96a09b156a615c614c3"
	// a PATH whose sha256sum is the real one and whose openssl is missing
	noOpenSSL := filepath.Join(dir, "bin")
	os.Mkdir(noOpenSSL, 0o755)
	for _, p := range []string{"sha256sum"} {
		real, err := exec.LookPath(p)
		if err != nil {
			t.Fatal(err)
		}
		os.Symlink(real, filepath.Join(noOpenSSL, p))
	}
	if _, err := exec.LookPath("openssl"); err != nil && os.Getenv("CI") == "true" {
		t.Fatal("openssl is not installed: the openssl case cannot run")
	}
	for _, shell := range []string{"sh", "bash"} {
		for _, tc := range []struct {
			name, path, hex, file string
			ok                    bool
		}{
			{"openssl, matching", os.Getenv("PATH"), good, f, true},
			{"openssl, another digest", os.Getenv("PATH"), strings.Repeat("0", 64), f, false},
			{"openssl, no file", os.Getenv("PATH"), good, f + ".missing", false},
			{"sha256sum, matching", noOpenSSL, good, f, true},
			{"sha256sum, another digest", noOpenSSL, strings.Repeat("0", 64), f, false},
			{"sha256sum, no file", noOpenSSL, good, f + ".missing", false},
		} {
			t.Run(shell+"/"+tc.name, func(t *testing.T) {
				sh, _ := exec.LookPath(shell)
				cmd := exec.Command(sh, "-c", sha256Shell+`sha256ok "$1" "$2"`, "sh", tc.hex, tc.file)
				cmd.Env = []string{"PATH=" + tc.path}
				out, err := cmd.CombinedOutput()
				if (err == nil) != tc.ok {
					t.Errorf("sha256ok %s %s: %v, want ok=%v: %s", tc.hex, tc.file, err, tc.ok, out)
				}
			})
		}
	}
}

// Steps are skipped by the markers an earlier run left, read in one
// command per host: the same id skips, another id redoes the step, and a
// marker written in this run is known without reading it again.
func TestStepMarkers(t *testing.T) {
	bed := testbed.New(t, 1)
	ran := map[string]int{}
	step := func(e *Engine, name, id string) {
		t.Helper()
		err := e.stepID(t.Context(), e.c.Master0(), "test", name, id, func(context.Context, *Conn) (string, error) {
			ran[name+"="+id]++
			return "", nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	first := bedEngine(t, bed)
	step(first, "a", "sha256:1")
	step(first, "b", "")
	step(first, "a", "sha256:1") // this run's own marker
	// the next run reads both markers from the host
	second := bedEngine(t, bed)
	step(second, "a", "sha256:1")
	step(second, "b", "")
	step(second, "a", "sha256:2") // a newer bundle: done again
	step(second, "a", "sha256:2")
	want := map[string]int{"a=sha256:1": 1, "b=": 1, "a=sha256:2": 1}
	if !reflect.DeepEqual(ran, want) {
		t.Errorf("steps ran %v, want %v", ran, want)
	}
	c, err := second.conn(t.Context(), second.c.Master0())
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := c.Output(t.Context(), "cat "+second.markerPath("a"), 0); strings.TrimSpace(out) != "sha256:2" {
		t.Errorf("marker a on the host: %q", out)
	}
}

func TestParseMarkers(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      map[string]string
	}{
		{"none", "", map[string]string{}},
		{"digest and time", "layers.done:sha256:ab\ninit-host.done:2026-12-06T03:00:00Z\n",
			map[string]string{"layers": "sha256:ab", "init-host": "2026-12-06T03:00:00Z"}},
		{"a name with a colon", "plugin-x:y.done:sha256:1\n", map[string]string{"plugin-x:y": "sha256:1"}},
		{"an empty marker", "apps.done:\n", map[string]string{"apps": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseMarkers(tc.out); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseMarkers(%q) = %v, want %v", tc.out, got, tc.want)
			}
		})
	}
}
