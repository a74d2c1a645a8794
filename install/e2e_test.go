package install_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/sealpack/sealpack/generator"
	"github.com/sealpack/sealpack/install"
	"github.com/sealpack/sealpack/internal/testbed"
)

// testImage is the container image the installer carries; the phase
// scripts pull it from the cluster's registry.
const testImage = "test/hello:v1"

// installer builds the test cluster image (testdata/e2e/image) into an
// installer once per test binary, with an image fetched from a registry on
// loopback, and returns its path.
var installer = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sealpack-e2e-")
	if err != nil {
		return "", err
	}
	return buildInstaller(dir, "../testdata/e2e/image", nil, testImage)
})

// programs are the stub and the agent, built once per test binary.
var programs = sync.OnceValues(func() ([2][]byte, error) {
	var p [2][]byte
	dir, err := os.MkdirTemp("", "sealpack-e2e-programs-")
	if err != nil {
		return p, err
	}
	defer os.RemoveAll(dir)
	for i, name := range []string{"stub", "agent"} {
		if p[i], err = buildProgram(dir, name); err != nil {
			return p, err
		}
	}
	return p, nil
})

// buildInstaller builds the image in the folder image (its Kubefile) with the build
// args into dir/installer.run, carrying a random image under each name,
// which it pushes to a registry on loopback first.
func buildInstaller(dir, image string, args map[string]string, images ...string) (string, error) {
	progs, err := programs()
	if err != nil {
		return "", err
	}
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	var refs []string
	for _, im := range images {
		img, err := random.Image(2048, 2)
		if err != nil {
			return "", err
		}
		ref := strings.TrimPrefix(srv.URL, "http://") + "/" + im
		tag, err := name.ParseReference(ref)
		if err != nil {
			return "", err
		}
		if err := remote.Write(tag, img); err != nil {
			return "", err
		}
		refs = append(refs, ref)
	}
	out := filepath.Join(dir, "installer.run")
	_, err = generator.Build(context.Background(), generator.Options{
		Kubefile: filepath.Join(image, "Kubefile"), Output: out, Arch: "amd64", Stub: progs[0], Agent: progs[1], CreatedBy: "e2e",
		Images: refs, CacheDir: filepath.Join(dir, "cache"), BuildArgs: args,
	})
	return out, err
}

func buildProgram(dir, name string) ([]byte, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "../cmd/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %v\n%s", name, err, b)
	}
	return os.ReadFile(out)
}

func mustInstaller(t *testing.T) string {
	t.Helper()
	p, err := installer()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rig is one test's bed, answers file and installer invocation.
type rig struct {
	t          *testing.T
	bed        *testbed.Bed
	dir        string
	answers    string
	knownHosts string
	inst       string
	env        []string
}

func newRig(t *testing.T, n int, opts ...testbed.Option) *rig {
	t.Helper()
	inst := mustInstaller(t)
	bed := testbed.New(t, n, opts...)
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, bed.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, bed: bed, dir: dir, knownHosts: kh, inst: inst}
}

// writeAnswers writes a Clusterfile with the given hosts section and SSH settings.
func (r *rig) writeAnswers(body string) {
	r.t.Helper()
	r.answers = filepath.Join(r.dir, "cluster.yaml")
	text := "apiVersion: sealer.io/v2\nkind: Cluster\nmetadata:\n  name: e2e\nspec:\n" + body
	if err := os.WriteFile(r.answers, []byte(text), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) ip(i int) string { return r.bed.Hosts[i].IP.String() }

// run runs the installer with a verb and returns its combined output and exit code.
func (r *rig) run(ctx context.Context, verb string, extra ...string) (string, int) {
	r.t.Helper()
	args := append([]string{verb, "--answers", r.answers, "--yes", "--known-hosts", r.knownHosts, "--state-dir", filepath.Join(r.dir, "state")}, extra...)
	cmd := exec.CommandContext(ctx, r.inst, args...)
	cmd.Env = append(os.Environ(), r.env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("run installer: %v", err)
	}
	return string(out), code
}

func (r *rig) exec(i int, cmd string) string {
	r.t.Helper()
	out, err := r.bed.Exec(context.Background(), i, cmd)
	if err != nil {
		r.t.Fatalf("on %s: %v", r.bed.Hosts[i].Name, err)
	}
	return out
}

// snapshot lists what host i itself has changed: the upper layers of its
// overlays (/etc, /opt, /var/lib, /usr/local) and its private /root and
// /home, as the bed keeps them. Files appearing in the real directories
// under the overlays (other work on this machine) do not count.
func (r *rig) snapshot(i int) string {
	r.t.Helper()
	hd := filepath.Join(r.bed.Dir, fmt.Sprintf("h%d", i+1))
	out, err := exec.Command("sh", "-c", "cd "+hd+" && find upper root home -xdev 2>/dev/null | sort").Output()
	if err != nil {
		r.t.Fatalf("snapshot of host %d: %v", i, err)
	}
	return string(out)
}

func rootSSH(key string) string {
	return fmt.Sprintf("  ssh:\n    user: root\n    pk: %s\n", key)
}

func TestInstallOneMasterTwoNodes(t *testing.T) {
	r := newRig(t, 3)
	r.writeAnswers(fmt.Sprintf(`  hosts:
    - ips: [%s]
      roles: [master]
      env: [TEST_HOST_ENV=host-one]
    - ips: [%s, %s]
      roles: [node]
  env: [TEST_CLUSTER_ENV=cluster-wide, TEST_IMAGE=%s]
`, r.ip(0), r.ip(1), r.ip(2), testImage) + rootSSH(r.bed.KeyPath))
	before := []string{r.snapshot(0), r.snapshot(1), r.snapshot(2)}
	ctx := context.Background()

	plan, code := r.run(ctx, "install", "--plan")
	if code != 0 {
		t.Fatalf("install --plan: exit %d\n%s", code, plan)
	}
	out, code := r.run(ctx, "install")
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	// The state directory records the installed cluster, for the wizard's
	// start screen: its hosts, 0600.
	rec := filepath.Join(r.dir, "state", install.ClusterRecord)
	if c, err := install.InstalledCluster(filepath.Dir(rec)); err != nil || c == nil || len(c.All()) != 3 || c.Master0().IP != r.ip(0) {
		t.Errorf("installed cluster record: %+v, %v", c, err)
	}
	if fi, err := os.Stat(rec); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("installed cluster record: %v, %v; want mode 0600", fi, err)
	}
	// The plan is what ran: the same phases, in the same order.
	if planned, ran := planPhases(plan), finishedPhases(out); strings.Join(planned, ",") != strings.Join(ran, ",") || len(ran) < 5 {
		t.Errorf("install --plan says %v, the install ran %v\n%s", planned, ran, plan)
	}
	// The kubeconfig the image names is copied beside the state, and the
	// bundle's kubectl runs on the first master against it.
	local := filepath.Join(r.dir, "state", "kubeconfig")
	if want := "kubeconfig: " + local + " (copied from " + r.ip(0) + ":/etc/sealpack-test/kubeconfig)"; !strings.Contains(out, want) {
		t.Errorf("install output lacks %q:\n%s", want, out)
	}
	if b, err := os.ReadFile(local); err != nil || !strings.Contains(string(b), "e2e admin kubeconfig of h1") {
		t.Errorf("local kubeconfig: %q, %v", b, err)
	}
	if fi, err := os.Stat(local); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("local kubeconfig mode %v, want 0600", fi.Mode())
	}
	kout, code := r.run(ctx, "kubectl", "get", "nodes", "-o", "wide")
	if code != 0 || !strings.Contains(kout, "kubectl get nodes -o wide on h1 KUBECONFIG=/etc/sealpack-test/kubeconfig") {
		t.Errorf("installer.run kubectl: exit %d:\n%s", code, kout)
	}
	m0 := r.exec(0, "cat /etc/sealpack-test/log")
	for _, want := range []string{
		fmt.Sprintf("init-host role=master ip=%s master0=%s image=from-image host=host-one cluster=cluster-wide", r.ip(0), r.ip(0)),
		"init-master0 via bash", "app on h1",
	} {
		if !strings.Contains(m0, want) {
			t.Errorf("master log lacks %q:\n%s", want, m0)
		}
	}
	for i := 1; i <= 2; i++ {
		log := r.exec(i, "cat /etc/sealpack-test/log")
		want := fmt.Sprintf("init-host role=node ip=%s master0=%s image=from-image host= cluster=cluster-wide", r.ip(i), r.ip(0))
		if !strings.Contains(log, want) || !strings.Contains(log, "join-node token=token-h1") || strings.Contains(log, "app on") {
			t.Errorf("node %d log:\n%s\nwant %q and the join token, and no app", i, log, want)
		}
		if got := strings.TrimSpace(r.exec(i, "cat /etc/sealpack-test/nodes")); got != r.ip(1)+" "+r.ip(2) {
			t.Errorf("SEALPACK_NODES on node %d = %q", i, got)
		}
		// Nodes got the stub and the layers, not the whole bundle.
		if ls := r.exec(i, "ls /var/lib/sealpack"); strings.Contains(ls, "bundle") {
			t.Errorf("node %d holds the whole bundle: %s", i, ls)
		}
		checkImageLayout(t, r, i)
	}
	if !strings.Contains(m0, "images none") {
		t.Errorf("the first master (it serves the images from its bundle) was given an image layout:\n%s", m0)
	}
	// The first master's bundle copy holds every file of the cluster image:
	// only root reads it.
	if got := r.exec(0, "stat -c %a /var/lib/sealpack/bundle /var/lib/sealpack/bundle/installer.run"); got != "700\n600\n" {
		t.Errorf("bundle copy modes (folder, file) = %q, want 700 and 600", got)
	}
	var daemons []string
	for i := range 3 {
		if log := r.exec(i, "cat /etc/sealpack-test/log"); !strings.Contains(log, "pulled "+testImage+" layer sha256:") {
			t.Errorf("host %d did not pull %s from the cluster registry over TLS:\n%s", i, testImage, log)
		}
		if p := r.exec(i, "cat /etc/sealpack-test/payload.txt"); p != "payload shipped in the rootfs\n" {
			t.Errorf("host %d payload = %q", i, p)
		}
		pid := strings.TrimSpace(r.exec(i, "cat /etc/sealpack-test/daemon.pid"))
		if r.exec(i, "kill -0 "+pid+" && echo alive") != "alive\n" {
			t.Errorf("host %d: the long-running process %s is not running", i, pid)
		}
		daemons = append(daemons, pid)
	}
	// Nodes get the small agent, the first master the stub (it runs the
	// registry): never the whole installer.
	for i, limit := range []int64{40 << 20, 12 << 20, 12 << 20} {
		size, _ := strconv.ParseInt(strings.TrimSpace(r.exec(i, "stat -c %s /var/lib/sealpack/bin/sealpack")), 10, 64)
		if size == 0 || size > limit {
			t.Errorf("host %d's program is %d bytes, want at most %d", i, size, limit)
		}
	}

	// A second run finds everything done and sends nothing.
	out, code = r.run(ctx, "install")
	if code != 0 || !strings.Contains(out, "sent 0 B from this machine") || strings.Contains(out, ": done in") {
		t.Errorf("re-run: exit %d, want nothing redone and nothing sent:\n%s", code, out)
	}

	// The registry runs supervised on the first master: its process group.
	pgid := strings.TrimSpace(r.exec(0, "cut -d' ' -f1 /var/lib/sealpack/registry/supervisor.pid"))
	registry := strings.Fields(r.exec(0, "pgrep -g "+pgid))
	if len(registry) < 2 {
		t.Errorf("registry process group %s has %v, want the supervisor and the server", pgid, registry)
	}

	// reset puts every host back as it was.
	out, code = r.run(ctx, "reset")
	if code != 0 {
		t.Fatalf("reset: exit %d\n%s", code, out)
	}
	if c, err := install.InstalledCluster(filepath.Dir(rec)); c != nil || err != nil {
		t.Errorf("after reset, the cluster is still recorded as installed: %v, %v", c, err)
	}
	for i := range 3 {
		if after := r.snapshot(i); after != before[i] {
			t.Errorf("host %d differs after reset:\n%s", i, diffLines(before[i], after))
		}
	}
	for _, pid := range registry {
		if r.exec(0, "grep -qs '^State:.*[RSD]' /proc/"+pid+"/status && echo alive || true") != "" {
			t.Errorf("reset left the registry's process %s", pid)
		}
	}
	for i, pid := range daemons {
		// A zombie waiting for PID 1 to reap it counts as stopped.
		if r.exec(i, "grep -qs '^State:.*[RSD]' /proc/"+pid+"/status && echo alive || true") != "" {
			t.Errorf("reset left host %d's long-running process %s", i, pid)
		}
	}
}

// planPhases is the phase names `--plan` printed, in order.
func planPhases(out string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^ +\d+\. (.+?)  +\S`).FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	return names
}

// finishedPhases is the phases a run reported finished, in order.
func finishedPhases(out string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\[cluster\] (.+) finished in `).FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	return names
}

func diffLines(a, b string) string {
	in := map[string]bool{}
	for _, l := range strings.Split(a, "\n") {
		in[l] = true
	}
	var out []string
	for _, l := range strings.Split(b, "\n") {
		if !in[l] {
			out = append(out, "+ "+l)
		}
		delete(in, l)
	}
	for l := range in {
		out = append(out, "- "+l)
	}
	return strings.Join(out, "\n")
}

func TestInstallThreeMastersTwoNodesWithSudoUser(t *testing.T) {
	r := newRig(t, 5)
	r.env = []string{"E2E_SSH_PASSWORD=" + r.bed.Password}
	// Nodes listed first and two hosts at a time: the first master, which
	// feeds every other host, must still get its turn.
	r.writeAnswers(fmt.Sprintf(`  hosts:
    - ips: [%s, %s]
      roles: [node]
    - ips: [%s, %s, %s]
      roles: [master]
  ssh:
    user: %s
    passwdEnv: E2E_SSH_PASSWORD
`, r.ip(3), r.ip(4), r.ip(0), r.ip(1), r.ip(2), r.bed.User))
	// The first master and a node ask for the password, one with a ticket
	// shared by every session (so most commands find it cached): the
	// bundle upload, the layers, the token and the scripts all go through
	// the wait for sudo's prompt there; the other hosts need no password.
	asks := map[int]string{0: "%[1]s ALL=(ALL) ALL", 3: "Defaults:%[1]s timestamp_type=global\n%[1]s ALL=(ALL) ALL"}
	for i, rule := range asks {
		r.exec(i, "printf '"+fmt.Sprintf(rule, r.bed.User)+"\\n' > /etc/sudoers.d/sealpack-testbed")
	}
	out, code := r.run(context.Background(), "install", "--verbose", "--parallel", "2")
	if code != 0 {
		t.Fatalf("install as %s: exit %d\n%s", r.bed.User, code, out)
	}
	for i := range asks {
		if ts := r.exec(i, "ls /run/sudo/ts 2>/dev/null || true"); !strings.Contains(ts, r.bed.User) {
			t.Errorf("host %d: sudo never took the password (no ticket in /run/sudo/ts: %q)", i, ts)
		}
	}
	for i := 1; i <= 2; i++ {
		if log := r.exec(i, "cat /etc/sealpack-test/log"); !strings.Contains(log, "join-master token=token-h1 cert-key=key-h1") {
			t.Errorf("master %d did not join with the share's control-plane part:\n%s", i+1, log)
		}
		if owner := r.exec(i, "stat -c %U /var/lib/sealpack/rootfs"); owner != "root\n" {
			t.Errorf("rootfs owned by %q: phases did not run as root through sudo", owner)
		}
	}
	for i := 3; i <= 4; i++ {
		// a worker node gets the join token but never what joins a control plane
		if log := r.exec(i, "cat /etc/sealpack-test/log"); !strings.Contains(log, "join-node token=token-h1") || !strings.Contains(log, "control-plane=absent") {
			t.Errorf("node %d did not join, or received the share's control-plane part:\n%s", i+1, log)
		}
	}
	// Layers pass from host to host: at least one host got them from a peer.
	if !strings.Contains(out, "B from "+r.bed.Subnet.Addr().String()[:len(r.bed.Subnet.Addr().String())-1]) {
		t.Errorf("no host fetched its layers from another host:\n%s", out)
	}
	// The password never shows in the output or any log.
	if strings.Contains(out, r.bed.Password) {
		t.Error("the SSH password appears in the installer's output")
	}
	filepath.WalkDir(filepath.Join(r.dir, "state"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), r.bed.Password) {
				t.Errorf("the SSH password appears in %s", p)
			}
		}
		return nil
	})
	for i := range 5 {
		if hits := r.exec(i, "grep -rl "+r.bed.Password+" /var/lib/sealpack /etc/sealpack-test 2>/dev/null || true"); hits != "" {
			t.Errorf("the SSH password appears on host %d in %s", i, hits)
		}
	}
	// Reset: the image's reset-host.sh fails on a joined master whose first
	// master is already gone, so this passes only if the first master goes last.
	if out, code := r.run(context.Background(), "reset", "--parallel", "2"); code != 0 {
		t.Fatalf("reset: exit %d\n%s", code, out)
	}
	for i := range 5 {
		if left := r.exec(i, "ls -d /etc/sealpack-test /var/lib/sealpack 2>/dev/null || true"); left != "" {
			t.Errorf("host %d keeps %s after reset", i, left)
		}
	}
}

func TestResumeAfterLostLink(t *testing.T) {
	r := newRig(t, 3)
	r.writeAnswers(fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s, %s]\n      roles: [node]\n", r.ip(0), r.ip(1), r.ip(2)) + rootSSH(r.bed.KeyPath))
	// Hold the last node inside join-node, cut its SSH link there, then restore it.
	r.exec(2, "mkdir -p /etc/sealpack-test && touch /etc/sealpack-test/hold")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() {
		out, code := r.run(ctx, "install")
		done <- result{out, code}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for r.exec(2, "cat /etc/sealpack-test/join-node-started 2>/dev/null || true") == "" {
		if time.Now().After(deadline) {
			t.Fatal("join-node never started on the last node")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := r.bed.StopSSH(ctx, 2); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.code == 0 || !strings.Contains(res.out, r.ip(2)) || !strings.Contains(res.out, "run the same command again") {
		t.Fatalf("install with a dead link: exit %d, want a failure naming %s and how to resume:\n%s", res.code, r.ip(2), res.out)
	}
	r.exec(2, "rm -f /etc/sealpack-test/hold")
	if err := r.bed.StartSSH(ctx, 2); err != nil {
		t.Fatal(err)
	}
	out, code := r.run(ctx, "install")
	if code != 0 {
		t.Fatalf("resumed install: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "sent 0 B from this machine") {
		t.Errorf("the resumed install copied again:\n%s", out)
	}
	for _, want := range []string{r.ip(2) + "] join-node: done", r.ip(1) + "] join-node: already done", r.ip(0) + "] init-master0: already done"} {
		if !strings.Contains(out, want) {
			t.Errorf("resumed install lacks %q:\n%s", want, out)
		}
	}
	if log := r.exec(2, "cat /etc/sealpack-test/log"); strings.Count(log, "init-host") != 1 || !strings.Contains(log, "join-node token=") {
		t.Errorf("after resume, node log:\n%s\nwant init-host once and join-node done", log)
	}
}

func TestHostKeysAreVerified(t *testing.T) {
	r := newRig(t, 2)
	r.writeAnswers(fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n", r.ip(0), r.ip(1)) + rootSSH(r.bed.KeyPath))
	ctx := context.Background()
	h0, h1 := r.bed.Hosts[0], r.bed.Hosts[1]

	// A changed key: known_hosts says host 2 has host 1's key.
	forged := h0.KnownHostsLine + "\n" + strings.Replace(h0.KnownHostsLine, h0.IP.String(), h1.IP.String(), 1) + "\n"
	os.WriteFile(r.knownHosts, []byte(forged), 0o600)
	out, code := r.run(ctx, "install")
	if code == 0 || !strings.Contains(out, "host key of "+h1.IP.String()+" CHANGED") || !strings.Contains(out, h1.Fingerprint) {
		t.Errorf("changed host key: exit %d, want a refusal naming %s and %s:\n%s", code, h1.IP, h1.Fingerprint, out)
	}

	// An unknown key is refused unless accepted, then recorded.
	os.WriteFile(r.knownHosts, []byte(h0.KnownHostsLine+"\n"), 0o600)
	out, code = r.run(ctx, "install")
	if code == 0 || !strings.Contains(out, "host key of "+h1.IP.String()+" is not known ("+h1.Fingerprint+")") {
		t.Errorf("unknown host key: exit %d:\n%s", code, out)
	}
	out, code = r.run(ctx, "install", "--accept-new-host-keys")
	if code != 0 || !strings.Contains(out, h1.Fingerprint) {
		t.Fatalf("--accept-new-host-keys: exit %d, want the fingerprint printed:\n%s", code, out)
	}
	if kh, _ := os.ReadFile(r.knownHosts); !strings.Contains(string(kh), h1.IP.String()) {
		t.Errorf("accepted key not recorded in known_hosts:\n%s", kh)
	}

	// A key pinned in the answers file wins over known_hosts, and a wrong pin stops.
	r.writeAnswers(fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n      hostKey: %s\n    - ips: [%s]\n      roles: [node]\n", h0.IP, h1.Fingerprint, h1.IP) + rootSSH(r.bed.KeyPath))
	out, code = r.run(ctx, "install")
	if code == 0 || !strings.Contains(out, "not the one pinned") {
		t.Errorf("wrong pinned key: exit %d:\n%s", code, out)
	}
}

func TestPreflightNamesEveryProblem(t *testing.T) {
	r := newRig(t, 2, testbed.WithDiskLimit(1, "4M"))
	unreachable := r.bed.Subnet.Addr().Next().Next().Next().Next().Next().Next().Next().Next().Next() // .10: nothing there
	r.writeAnswers(fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s, %s]\n      roles: [node]\n", r.ip(0), r.ip(1), unreachable) + rootSSH(r.bed.KeyPath))
	before := r.snapshot(0)
	out, code := r.run(context.Background(), "install")
	if code == 0 {
		t.Fatalf("install with bad hosts succeeded:\n%s", out)
	}
	for _, want := range []string{
		"preflight failed",
		unreachable.String() + ": connect:",
		r.ip(1) + ": disk: needs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if after := r.snapshot(0); after != before {
		t.Errorf("preflight changed a host:\n%s", diffLines(before, after))
	}
}

func TestJoinAddsHostAndPluginsRun(t *testing.T) {
	r := newRig(t, 4)
	plugins := `---
apiVersion: sealer.io/v2
kind: Plugin
metadata:
  name: mark-nodes
spec:
  type: SHELL
  action: post-init-host
  scope: node
  data: |
    echo "plugin on $(hostname) role=$SEALPACK_ROLE" > /etc/plugin-ran
---
apiVersion: sealer.io/v2
kind: Plugin
metadata:
  name: after-all
spec:
  type: SHELL
  action: post-install
  scope: master
  data: |
    echo done > /etc/post-install-ran
`
	hosts := func(nodes ...int) string {
		list := make([]string, len(nodes))
		for i, n := range nodes {
			list[i] = r.ip(n)
		}
		return fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n", r.ip(0), strings.Join(list, ", ")) + rootSSH(r.bed.KeyPath) + plugins
	}
	ctx := context.Background()
	r.writeAnswers(hosts(1, 2))
	if out, code := r.run(ctx, "join"); code == 0 || !strings.Contains(out, "run install first") {
		t.Errorf("join before install: exit %d:\n%s", code, out)
	}
	if out, code := r.run(ctx, "install"); code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	for i, want := range map[int]string{1: "plugin on h2 role=node\n", 2: "plugin on h3 role=node\n"} {
		if got := r.exec(i, "cat /etc/plugin-ran"); got != want {
			t.Errorf("node plugin on host %d: %q, want %q", i, got, want)
		}
	}
	if got := r.exec(0, "cat /etc/plugin-ran 2>/dev/null || echo none; cat /etc/post-install-ran"); got != "none\ndone\n" {
		t.Errorf("master plugins: %q: want the node plugin skipped and post-install run", got)
	}

	r.writeAnswers(hosts(1, 2, 3))
	out, code := r.run(ctx, "join")
	if code != 0 {
		t.Fatalf("join: exit %d\n%s", code, out)
	}
	// The join data was renewed for the new host: a second renewal.
	if log := r.exec(3, "cat /etc/sealpack-test/log"); !strings.Contains(log, "join-node token=token-h1 refreshed=2") {
		t.Errorf("the new host did not join with renewed join data:\n%s", log)
	}
	for _, want := range []string{r.ip(3) + "] join-node: done", r.ip(1) + "] join-node: already done", r.ip(0) + "] init-master0: already done"} {
		if !strings.Contains(out, want) {
			t.Errorf("join output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(r.exec(1, "cat /etc/sealpack-test/log"), "join-node") != 1 {
		t.Error("join ran join-node again on a host already in the cluster")
	}
}

// The USB stick is often plugged into the first server: the installer then
// runs on a host of the cluster and connects to itself like to the others.
func TestInstallFromTheFirstMaster(t *testing.T) {
	r := newRig(t, 2)
	// /var/tmp is shared with the hosts (their /tmp, /root and /etc are not).
	dir, err := os.MkdirTemp("/var/tmp", "sealpack-usb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for src, dst := range map[string]string{r.inst: "installer.run", r.bed.KeyPath: "id_ed25519", r.knownHosts: "known_hosts"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, dst), b, 0o700)
	}
	answers := fmt.Sprintf("apiVersion: sealer.io/v2\nkind: Cluster\nmetadata:\n  name: usb\nspec:\n  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n  ssh:\n    user: root\n    pk: %s\n",
		r.ip(0), r.ip(1), filepath.Join(dir, "id_ed25519"))
	os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte(answers), 0o600)
	cmd := fmt.Sprintf("cd %[1]s && ./installer.run install --answers cluster.yaml --yes --known-hosts known_hosts --state-dir %[1]s/state 2>&1", dir)
	out, err := r.bed.Exec(context.Background(), 0, cmd)
	if err != nil {
		t.Fatalf("install run on the first master: %v\n%s", err, out)
	}
	for i := range 2 {
		if log := r.exec(i, "cat /etc/sealpack-test/log"); !strings.Contains(log, "init-host") {
			t.Errorf("host %d not installed from the first master:\n%s", i, log)
		}
	}
	if log := r.exec(1, "cat /etc/sealpack-test/log"); !strings.Contains(log, "join-node token=token-h1") {
		t.Errorf("the node did not join:\n%s", log)
	}
}

// A run that fails after the registry started, before any phase, is
// resumed: the registry's own port must not fail the re-run's preflight.
func TestRerunAfterEarlyFailure(t *testing.T) {
	r := newRig(t, 2)
	r.writeAnswers(fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n", r.ip(0), r.ip(1)) + rootSSH(r.bed.KeyPath) + `---
apiVersion: sealer.io/v2
kind: Plugin
metadata:
  name: gate
spec:
  type: SHELL
  action: pre-install
  scope: master
  data: |
    [ -f /etc/gate-open ] || { echo "gate closed" >&2; exit 1; }
`)
	ctx := context.Background()
	out, code := r.run(ctx, "install")
	if code == 0 || !strings.Contains(out, "gate closed") || !strings.Contains(out, "registry: done") {
		t.Fatalf("first run: exit %d, want a failure in the plugin after the registry started:\n%s", code, out)
	}
	r.exec(0, "touch /etc/gate-open")
	out, code = r.run(ctx, "install")
	if code != 0 {
		t.Fatalf("re-run: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "registry: already done") {
		t.Errorf("re-run restarted the registry:\n%s", out)
	}
}

// TestNodesThatFailDoNotStopTheOthers: worker nodes whose join fails (3 of
// 40) are left behind, the cluster is finished on every other host (apps
// included), the run fails naming each failed host with its last lines,
// and a re-run finishes only those.
func TestNodesThatFailDoNotStopTheOthers(t *testing.T) {
	const n = 41 // the first master and 40 nodes
	if testing.Short() {
		t.Skip("41 hosts: not in -short")
	}
	r := newRig(t, n)
	var nodes []string
	for i := 1; i < n; i++ {
		nodes = append(nodes, r.ip(i))
	}
	hosts := fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n", r.ip(0), strings.Join(nodes, ", "))
	r.writeAnswers(hosts + rootSSH(r.bed.KeyPath))
	failing := []int{2, 17, 40}
	for _, i := range failing {
		r.exec(i, "mkdir -p /etc/sealpack-test && touch /etc/sealpack-test/fail-join")
	}
	ctx := t.Context()
	out, code := r.run(ctx, "install")
	if code == 0 {
		t.Fatalf("install with three failing nodes exited 0:\n%s", out)
	}
	// Nodes took the agent from hosts that had it, and the first master
	// the bundle without the stub it already had: this machine sent the
	// installer once (plus a little framing), not once plus a program per host.
	sent, size := sentBytes(t, out), fileSize(t, r.inst)
	t.Logf("this machine sent %d bytes for a %d-byte installer to %d hosts (%.3fx)", sent, size, n, float64(sent)/float64(size))
	if sent > size+(1<<20) {
		t.Errorf("this machine sent %d bytes for a %d-byte installer to %d hosts:\n%s", sent, size, n, out)
	}
	if !strings.Contains(out, fmt.Sprintf("3 of %d hosts failed", n)) {
		t.Errorf("the error does not count the failed hosts:\n%s", out)
	}
	for _, i := range failing {
		if !strings.Contains(out, r.ip(i)+" in join-node:") || !strings.Contains(out, "join refused on "+r.bed.Hosts[i].Name) {
			t.Errorf("the error does not name %s with its last lines:\n%s", r.ip(i), out)
		}
	}
	// The others joined, and the apps ran after join-node although three nodes failed it.
	joined := func(i int) int {
		return strings.Count(r.exec(i, "cat /etc/sealpack-test/log 2>/dev/null || true"), "join-node token=")
	}
	for i := 1; i < n; i++ {
		want := 1
		if slices.Contains(failing, i) {
			want = 0
		}
		if got := joined(i); got != want {
			t.Errorf("host %s joined %d times, want %d", r.ip(i), got, want)
		}
	}
	if log := r.exec(0, "cat /etc/sealpack-test/log"); !strings.Contains(log, "app on") {
		t.Errorf("apps did not run on the first master: %q", log)
	}
	if !strings.Contains(out, "join-node finished in") || !strings.Contains(out, fmt.Sprintf("(%d/%d, 3 failed hosts)", n-4, n-1)) {
		t.Errorf("no phase summary with counts:\n%s", out)
	}

	for _, i := range failing {
		r.exec(i, "rm /etc/sealpack-test/fail-join")
	}
	out, code = r.run(ctx, "install")
	if code != 0 {
		t.Fatalf("re-run: exit %d\n%s", code, out)
	}
	// Every node joined once: the re-run finished the three, and joined
	// no other again.
	for i := 1; i < n; i++ {
		if got := joined(i); got != 1 {
			t.Errorf("after the re-run host %s joined %d times, want once", r.ip(i), got)
		}
	}
	if !strings.Contains(out, "sent 0 B from this machine") {
		t.Errorf("the re-run copied again:\n%s", out)
	}
}

// sentBytes reads what the install says this machine sent.
func sentBytes(t *testing.T, out string) int64 {
	t.Helper()
	m := regexp.MustCompile(`sent ([0-9.]+) (B|KiB|MiB|GiB) from this machine`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no \"sent ... from this machine\" in the output:\n%s", out)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return int64(v * float64(map[string]int64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[2]]))
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestKubectlWhenTheFirstMasterIsDown: installer.run kubectl uses the next
// master when the first does not answer, and says so; preflight warns that
// two masters are no more available than one.
// A cluster with two masters while the first one is down (its link cut, so
// SSH and its registry time out): installer.run kubectl, join and reset use
// the other master. Every master serves the images under one CA, so a host
// that joins then pulls from the second master's registry.
func TestKubectlJoinResetWhenTheFirstMasterIsDown(t *testing.T) {
	r := newRig(t, 4)
	hosts := func(nodes string) {
		r.writeAnswers(fmt.Sprintf("  hosts:\n    - ips: [%s, %s]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n  env: [TEST_IMAGE=%s]\n", r.ip(0), r.ip(1), nodes, testImage) + rootSSH(r.bed.KeyPath))
	}
	hosts(r.ip(2))
	ctx := t.Context()
	out, code := r.run(ctx, "install")
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "masters: warn 2 masters: etcd keeps quorum only while more than half of them live") {
		t.Errorf("no warning about two masters:\n%s", out)
	}
	// every host pulled the image from both masters' registries, trusting one CA
	for i := range 3 {
		log := r.exec(i, "cat /etc/sealpack-test/log")
		for _, m := range []int{0, 1} {
			if want := fmt.Sprintf("pulled %s layer sha256:", testImage); !strings.Contains(log, want) || !strings.Contains(log, " from "+r.ip(m)+":") {
				t.Errorf("host %d did not pull from the registry of master %d:\n%s", i, m, log)
			}
		}
	}
	if a, b := r.exec(0, "cat /var/lib/sealpack/registry/ca.crt"), r.exec(1, "cat /var/lib/sealpack/registry/ca.crt"); a != b || a == "" {
		t.Error("the masters' registries do not share one CA")
	}
	if mode := r.exec(1, "stat -c %a /var/lib/sealpack/registry/ca.key"); mode != "600\n" {
		t.Errorf("the registry CA key on the second master has mode %s, want 600", mode)
	}

	// the first master goes away: its link is cut
	r.exec(0, "ip -o link show | awk -F': ' '$2 != \"lo\" {print $2}' | cut -d@ -f1 | xargs -r -n1 -I{} ip link set {} down")
	out, code = r.run(ctx, "kubectl", "get", "nodes")
	if code != 0 || !strings.Contains(out, "kubectl get nodes on "+r.bed.Hosts[1].Name) {
		t.Fatalf("kubectl with the first master down: exit %d, want it run on %s:\n%s", code, r.bed.Hosts[1].Name, out)
	}
	if !strings.Contains(out, "using master "+r.ip(1)) {
		t.Errorf("kubectl did not say it used the second master:\n%s", out)
	}

	// a node joins: the second master serves it (bundle, CA, renewed join data)
	hosts(r.ip(2) + ", " + r.ip(3))
	out, code = r.run(ctx, "join")
	if code != 0 {
		t.Fatalf("join with the first master down: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, r.ip(0)+": does not answer") {
		t.Errorf("join did not name the first master as absent:\n%s", out)
	}
	log := r.exec(3, "cat /etc/sealpack-test/log")
	for _, want := range []string{"join-node token=token-h1 refreshed=2", "from " + r.ip(1) + ":", "registry " + r.ip(0) + ":"} {
		if !strings.Contains(log, want) {
			t.Errorf("the new node's log lacks %q:\n%s", want, log)
		}
	}
	if strings.Count(r.exec(1, "cat /etc/sealpack-test/log"), "app on") != 0 {
		t.Error("the join launched the apps again on the second master")
	}

	// reset: every host that answers is reset, the second master last; the
	// first master is named, and the exit status says the reset is not whole
	r.exec(1, "touch /etc/sealpack-test/alone")
	out, code = r.run(ctx, "reset")
	if code == 0 || !strings.Contains(out, r.ip(0)) {
		t.Errorf("reset with the first master down: exit %d, want non-zero naming %s:\n%s", code, r.ip(0), out)
	}
	for i := 1; i < 4; i++ {
		if left := r.exec(i, "ls -d /etc/sealpack-test /var/lib/sealpack 2>/dev/null || true"); left != "" {
			t.Errorf("host %d keeps %s after reset", i, left)
		}
	}
	// back: its reset finishes the job
	r.exec(0, "ip -o link show | awk -F': ' '$2 != \"lo\" {print $2}' | cut -d@ -f1 | xargs -r -n1 -I{} ip link set {} up")
	if out, code := r.run(ctx, "reset"); code != 0 {
		t.Fatalf("reset once the first master is back: exit %d\n%s", code, out)
	}
	if left := r.exec(0, "ls -d /etc/sealpack-test /var/lib/sealpack 2>/dev/null || true"); left != "" {
		t.Errorf("the first master keeps %s after reset", left)
	}
}

// checkImageLayout checks that host i holds the bundle's images as an OCI
// layout at SEALPACK_IMAGES, through the fan-out: read and verified (every
// blob's digest and size) by go-containerregistry, each image named.
func checkImageLayout(t *testing.T, r *rig, i int) {
	t.Helper()
	if log := r.exec(i, "cat /etc/sealpack-test/log"); !strings.Contains(log, "images /var/lib/sealpack/images") {
		t.Errorf("host %d: no SEALPACK_IMAGES for its scripts:\n%s", i, log)
		return
	}
	// /var/tmp is shared with the hosts
	dir, err := os.MkdirTemp("/var/tmp", "sealpack-layout-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	r.exec(i, "cp -rL /var/lib/sealpack/images/. "+dir)
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Errorf("host %d: image layout: %v", i, err)
		return
	}
	im, err := ii.IndexManifest()
	if err != nil || len(im.Manifests) == 0 {
		t.Errorf("host %d: image layout index: %v (%d images)", i, err, len(im.Manifests))
		return
	}
	var names []string
	for _, d := range im.Manifests {
		names = append(names, d.Annotations["io.containerd.image.name"])
		img, err := ii.Image(d.Digest)
		if err == nil {
			err = validate.Image(img)
		}
		if err != nil {
			t.Errorf("host %d: image %s in the layout: %v", i, d.Annotations["io.containerd.image.name"], err)
		}
	}
	if !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, testImage) }) {
		t.Errorf("host %d: the layout names %v, not %s", i, names, testImage)
	}
}
