package install

import (
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/testbed"
)

// The answers file's env (spec.env, a host's env) and an app's env reach
// the scripts byte for byte but never a command line: not in any process's
// arguments on the host, not in sudo's SUDO_COMMAND, not in sudo's log.
func TestScriptEnvNeverOnACommandLine(t *testing.T) {
	bed := testbed.New(t, 1)
	h := bed.Hosts[0]
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, bed.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	// sudo asks for the password and logs every command line it runs (in
	// /var/lib, which is the host's own; /var/log is this machine's).
	sudoers := `Defaults logfile=/var/lib/sealpack-sudo-test.log\nsp ALL=(ALL) ALL\n`
	if _, err := bed.Exec(t.Context(), 0, "printf '"+sudoers+"' > /etc/sudoers.d/sealpack-testbed && rm -f /var/lib/sealpack-sudo-test.log"); err != nil {
		t.Fatal(err)
	}
	value := func(name string) string {
		return name + "-7c1e9 with 'single' \"double\" $HOME `id` \\ back;|&\n\tsecond line\n"
	}
	vars := map[string]string{
		"CLUSTER_SECRET": value("cluster-secret"),
		"HOST_SECRET":    value("host-secret"),
		"APP_SECRET":     value("app-secret"),
	}
	// What the script writes for each variable, then a pause while the
	// test looks at every process on the host.
	var report strings.Builder
	for k := range vars {
		fmt.Fprintf(&report, "printf '%%s' \"$%[1]s\" > \"$SEALPACK_DATA_ROOT/out/%[1]s\"\n", k)
	}
	report.WriteString("sleep 2.5\n")

	cases := []struct {
		name string
		ssh  cluster.SSH
	}{
		{"root", cluster.SSH{User: testbed.Root, PrivateKey: bed.KeyPath, Port: h.Port}},
		{"sudo with a password", cluster.SSH{User: bed.User, Password: cluster.Secret(bed.Password), Port: h.Port}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := "/var/lib/sealpack-envtest-" + tc.ssh.User
			c := &cluster.Cluster{
				Name:     "envtest",
				Hosts:    []cluster.Host{{IPs: []string{h.IP.String()}, Roles: []string{cluster.RoleMaster}, Env: []string{"HOST_SECRET=" + vars["HOST_SECRET"]}}},
				SSH:      tc.ssh,
				Env:      []string{"CLUSTER_SECRET=" + vars["CLUSTER_SECRET"]},
				DataRoot: root,
			}
			c.ApplyDefaults()
			b := &bundle.Bundle{Index: &bundle.Index{Config: bundle.Config{
				Apps:   []bundle.App{{Name: "app", Type: "shell", Cmds: []string{report.String()}, Env: []string{"APP_SECRET=" + vars["APP_SECRET"]}}},
				Launch: []string{"app"},
			}}}
			e, err := New(Options{Cluster: c, Bundle: b, HostKeys: HostKeyPolicy{KnownHosts: kh}})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			scripts := path.Join(root, "rootfs", "scripts")
			setup := fmt.Sprintf("mkdir -p %s %s %s && printf '%%s' %s > %s/init-host.sh",
				scripts, path.Join(root, "rootfs", "application", "apps", "app"), path.Join(root, "out"), shellQuote(report.String()), scripts)
			if _, err := bed.Exec(t.Context(), 0, setup); err != nil {
				t.Fatal(err)
			}

			for _, run := range []struct {
				name string
				fn   func() error
				want []string
			}{
				{"init-host", func() error { return e.runPhase(t.Context(), c.Master0(), PhaseInitHost) }, []string{"CLUSTER_SECRET", "HOST_SECRET"}},
				{"apps", func() error { return e.apps(t.Context(), c.Master0(), "") }, []string{"CLUSTER_SECRET", "HOST_SECRET", "APP_SECRET"}},
			} {
				if _, err := bed.Exec(t.Context(), 0, "rm -f "+root+"/out/*"); err != nil {
					t.Fatal(err)
				}
				seen := watchProcesses(t, func() {
					if err := run.fn(); err != nil {
						t.Errorf("%s: %v", run.name, err)
					}
				})
				if !strings.Contains(seen, "sleep 2.5") {
					t.Fatalf("%s: never saw the script running, so the processes were not checked:\n%s", run.name, seen)
				}
				for k, v := range vars {
					if token := strings.SplitN(v, " ", 2)[0]; strings.Contains(seen, token) {
						t.Errorf("%s: %s shows on a command line or in SUDO_COMMAND:\n%s", run.name, k, grepLines(seen, token))
					}
				}
				for _, k := range run.want {
					got, err := bed.Exec(t.Context(), 0, "cat "+root+"/out/"+k)
					if err != nil || got != vars[k] {
						t.Errorf("%s: the script saw %s = %q (%v), want %q", run.name, k, got, err, vars[k])
					}
				}
			}
			log, err := bed.Exec(t.Context(), 0, "cat /var/lib/sealpack-sudo-test.log 2>/dev/null || true")
			if err != nil {
				t.Fatal(err)
			}
			if tc.ssh.User != testbed.Root && !strings.Contains(log, "COMMAND=") {
				t.Errorf("sudo logged nothing: the sudo path was not taken:\n%s", log)
			}
			for k, v := range vars {
				if token := strings.SplitN(v, " ", 2)[0]; strings.Contains(log, token) {
					t.Errorf("%s shows in sudo's log:\n%s", k, grepLines(log, token))
				}
			}
		})
	}
}

// watchProcesses runs fn while reading, over and over, the command line
// of every process and the SUDO_COMMAND of its environment; it returns the
// lines that show a secret's token or the scripts' pause. The bed's hosts
// share this machine's process table, so the test reads /proc itself: a
// listing run on the host through the bed takes seconds on a busy machine.
func watchProcesses(t *testing.T, fn func()) string {
	t.Helper()
	seen := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			procs, _ := filepath.Glob("/proc/[0-9]*")
			for _, p := range procs {
				lines := []string{}
				if b, err := os.ReadFile(p + "/cmdline"); err == nil {
					lines = append(lines, strings.ReplaceAll(string(b), "\x00", " "))
				}
				if b, err := os.ReadFile(p + "/environ"); err == nil {
					for kv := range strings.SplitSeq(string(b), "\x00") {
						if strings.HasPrefix(kv, "SUDO_COMMAND=") {
							lines = append(lines, kv)
						}
					}
				}
				for _, l := range lines {
					if strings.Contains(l, "7c1e9") || strings.Contains(l, "sleep 2.5") {
						seen[l] = true
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return strings.Join(slices.Sorted(maps.Keys(seen)), "\n")
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
