package registry

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needTool skips (or, in CI, fails) a test that needs a Debian package or root.
func needTool(t *testing.T, pkg string, bins ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			why = fmt.Sprintf("needs %s (Debian package %s)", b, pkg)
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// TestContainerdMirror pulls every image with a real containerd whose
// hosts.toml makes this registry the mirror of docker.io, registry.k8s.io
// and quay.io, trusting the generated CA: the way cluster hosts pull.
func TestContainerdMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd")
	}
	needTool(t, "containerd", "containerd", "ctr")
	fixtures := defaultFixtures(t, 64<<10)
	ts := startServer(t, tempBundle(t, fixtures), serverConfig{})

	// Short paths: the socket path must fit in sun_path.
	dir, err := os.MkdirTemp("", "ctrd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs strings.Builder
	cmd := exec.CommandContext(ctx, "containerd", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if out, err := exec.Command("ctr", "-a", sock, "version").CombinedOutput(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("containerd did not start: %v\n%s\n%s", err, out, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	hostsDir := filepath.Join(dir, "certs.d")
	for _, upstream := range []string{"docker.io", "registry.k8s.io", "quay.io"} {
		server := "https://" + upstream
		if upstream == "docker.io" {
			server = "https://registry-1.docker.io"
		}
		hosts := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n", server, "https://"+ts.host, ts.caFile)
		if err := os.MkdirAll(filepath.Join(hostsDir, upstream), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hostsDir, upstream, "hosts.toml"), []byte(hosts), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range fixtures {
		t.Run(f.repo, func(t *testing.T) {
			out, err := exec.Command("ctr", "-a", sock, "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", f.ref).CombinedOutput()
			if err != nil {
				t.Fatalf("ctr pull %s: %v\n%s", f.ref, err, out)
			}
			out, err = exec.Command("ctr", "-a", sock, "images", "ls", "-q", "name=="+f.ref).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != f.ref {
				t.Fatalf("ctr images ls: %v %s", err, out)
			}
			out, err = exec.Command("ctr", "-a", sock, "images", "ls", "name=="+f.ref).CombinedOutput()
			if err != nil || !strings.Contains(string(out), f.digest) {
				t.Errorf("containerd has %s with another digest than %s:\n%s", f.ref, f.digest, out)
			}
		})
	}
}
