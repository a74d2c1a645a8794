package install_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// imageVariant copies the test image to a folder of its own, lets change
// edit it there, and builds it at version with the given images.
func imageVariant(t *testing.T, version string, change func(dir string), images ...string) string {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "image")
	if out, err := exec.Command("cp", "-a", "../testdata/e2e/image", img).CombinedOutput(); err != nil {
		t.Fatalf("copy the test image: %v: %s", err, out)
	}
	if change != nil {
		change(img)
	}
	p, err := buildInstaller(dir, img, map[string]string{"VERSION": version}, images...)
	if err != nil {
		t.Fatalf("build the installer at %s: %v", version, err)
	}
	return p
}

// count is how many lines of log contain s.
func count(log, s string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// TestUpgrade installs the test image at v1.36.3 on a master and two nodes,
// then upgrades it with installers of the same image at other versions:
// the plan, the refusals (a skipped minor version, an image without
// upgrade scripts, a downgrade), a failed control plane, a node failing in
// the middle, the resumes, and a re-run that changes nothing.
func TestUpgrade(t *testing.T) {
	r := newRig(t, 3)
	r.writeAnswers(fmt.Sprintf(`  hosts:
    - ips: [%s]
      roles: [master]
    - ips: [%s, %s]
      roles: [node]
  env: [TEST_IMAGE=%s, "TEST_PULL=%s test/hello:v2"]
`, r.ip(0), r.ip(1), r.ip(2), testImage, testImage) + rootSSH(r.bed.KeyPath))
	ctx := context.Background()
	v1 := r.inst
	if out, code := r.run(ctx, "install"); code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	// v2 differs from v1 in one layer of three (etc/payload.txt) and carries
	// another image; v1.38.0 skips a minor version; v2 without its upgrade
	// scripts cannot be upgraded to.
	v2 := imageVariant(t, "v1.37.2", func(dir string) {
		os.WriteFile(filepath.Join(dir, "etc", "payload.txt"), []byte("payload of v2\n"), 0o644)
	}, "test/hello:v2")
	skip := imageVariant(t, "v1.38.0", nil, testImage)
	noScripts := imageVariant(t, "v1.37.2", func(dir string) {
		for _, s := range []string{"upgrade-master0", "upgrade-master", "upgrade-node"} {
			os.Remove(filepath.Join(dir, "scripts", s+".sh"))
		}
	}, testImage)
	logs := func() [3]string {
		var l [3]string
		for i := range 3 {
			l[i] = r.exec(i, "cat /etc/sealpack-test/log")
		}
		return l
	}
	installed := logs()
	unchanged := func(what string) {
		t.Helper()
		if now := logs(); now != installed {
			t.Errorf("%s changed a host:\nbefore %q\nafter  %q", what, installed, now)
		}
		if m := r.exec(0, "ls /var/lib/sealpack/state/ | grep upgrade || true"); m != "" {
			t.Errorf("%s recorded upgrade steps: %s", what, m)
		}
	}

	// --plan: the versions the cluster runs, every phase with its hosts; no change.
	r.inst = v2
	out, code := r.run(ctx, "upgrade", "--plan")
	if code != 0 {
		t.Fatalf("upgrade --plan: exit %d\n%s", code, out)
	}
	t.Logf("upgrade --plan:\n%s", out)
	for _, want := range []string{
		"upgrade Kubernetes v1.36.3 -> v1.37.2",
		fmt.Sprintf("n-%s %s kubelet v1.36.3", r.ip(1), r.ip(1)),
		"1. distribute", "2. upgrade-prepare", "3. upgrade-snapshot", "4. registry", "5. control-plane", "6. nodes", "7. apps",
		"on " + r.ip(0) + " " + r.ip(1) + " " + r.ip(2),
	} {
		if !strings.Contains(regexp.MustCompile(` +`).ReplaceAllString(out, " "), want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	unchanged("upgrade --plan")

	// Refusals, before any change.
	for _, tt := range []struct {
		name, inst string
		want       []string
	}{
		{"a skipped minor version", skip, []string{"would skip v1.37", "run the installer of Kubernetes v1.37 first"}},
		{"an image without upgrade scripts", noScripts, []string{"this image cannot be upgraded to", "scripts/upgrade-master0.sh, scripts/upgrade-node.sh"}},
	} {
		r.inst = tt.inst
		out, code := r.run(ctx, "upgrade")
		for _, want := range tt.want {
			if code == 0 || !strings.Contains(out, want) {
				t.Errorf("upgrade with %s: exit %d, want a refusal saying %q:\n%s", tt.name, code, want, out)
			}
		}
		unchanged("upgrade with " + tt.name)
	}

	// The control plane's upgrade fails: the message says what happened and
	// how to go on; no node is touched.
	r.inst = v2
	r.exec(0, "touch /etc/sealpack-test/fail-upgrade")
	out, code = r.run(ctx, "upgrade")
	for _, want := range []string{"the control plane's upgrade to v1.37.2 failed on " + r.ip(0), "still runs v1.36.3", "run the same command again"} {
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("failed control plane: exit %d, want %q:\n%s", code, want, out)
		}
	}
	for i := 1; i <= 2; i++ {
		l := r.exec(i, "cat /etc/sealpack-test/log")
		if strings.Contains(l, "upgrade-node") {
			t.Errorf("node %d upgraded although the control plane failed:\n%s", i, l)
		}
		// Every host prepared before the control plane changed, with the new
		// bundle's images at hand (the first master's registry serves them).
		if !regexp.MustCompile(`upgrade-prepare from=v1\.36\.3 to=v1\.37\.2 images=\S*test/hello:v2`).MatchString(l) {
			t.Errorf("node %d did not prepare with the new bundle's images before the control plane's upgrade:\n%s", i, l)
		}
	}
	if l := r.exec(0, "cat /etc/sealpack-test/log"); !strings.Contains(l, "upgrade-prepare from=v1.36.3 to=v1.37.2 images=none") {
		t.Errorf("the first master did not prepare:\n%s", l)
	}
	// Blobs a node already has are not sent again: one layer of three is new.
	for i := 1; i <= 2; i++ {
		if !regexp.MustCompile(regexp.QuoteMeta("["+r.ip(i)+"] distribute/layers: done in ") + `\S+ \(1 layers and`).MatchString(out) {
			t.Errorf("node %d was sent other than the one new layer:\n%s", i, out)
		}
	}

	// Resumed with a node that fails in the middle: the control plane
	// finishes (the snapshot is not taken again), the other node is done, the
	// failing one is named and stays cordoned.
	r.exec(0, "rm /etc/sealpack-test/fail-upgrade")
	r.exec(2, "touch /etc/sealpack-test/fail-upgrade")
	// and the API drops the first node's drain once: it is run again
	r.exec(0, "echo n-"+r.ip(1)+" > /etc/sealpack-test/drain-eof")
	out, code = r.run(ctx, "upgrade")
	if code == 0 || !strings.Contains(out, "1 of 3 hosts failed") || !strings.Contains(out, r.ip(2)+" in nodes") {
		t.Errorf("upgrade with a failing node: exit %d, want it named:\n%s", code, out)
	}
	m0 := r.exec(0, "cat /etc/sealpack-test/log")
	for _, want := range []string{"upgrade-snapshot from=v1.36.3 to=v1.37.2", "upgrade-master0 from=v1.36.3 to=v1.37.2", "kubectl drain n-" + r.ip(0), "kubectl uncordon n-" + r.ip(0)} {
		if count(m0, want) != 1 {
			t.Errorf("first master's log: want %q once:\n%s", want, m0)
		}
	}
	if l := r.exec(1, "cat /etc/sealpack-test/log"); count(l, "upgrade-node from=v1.36.3 to=v1.37.2") != 1 {
		t.Errorf("node 1 not upgraded:\n%s", l)
	}
	if count(m0, "kubectl drain n-"+r.ip(1)) != 2 || !strings.Contains(out, "kubectl drain: the API dropped the request (unexpected EOF): again in 2s") {
		t.Errorf("the drain the API dropped was not run again:\n%s\n%s", m0, out)
	}
	if count(m0, "kubectl uncordon n-"+r.ip(2)) != 0 || count(m0, "kubectl drain n-"+r.ip(2)) != 1 {
		t.Errorf("the failing node should be drained once and left cordoned:\n%s", m0)
	}

	// Resumed again: only the failed node's upgrade runs.
	r.exec(2, "rm /etc/sealpack-test/fail-upgrade")
	out, code = r.run(ctx, "upgrade")
	if code != 0 {
		t.Fatalf("resumed upgrade: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "begun by an earlier run") {
		t.Errorf("the resumed run does not say it resumes:\n%s", out)
	}
	after := logs()
	for i, want := range map[int][]string{
		0: {"upgrade-master0 from=v1.36.3", "kubectl drain n-" + r.ip(2), "kubectl uncordon n-" + r.ip(2), "upgrade-snapshot", "upgrade-prepare"},
		1: {"upgrade-node from=v1.36.3", "upgrade-prepare"},
		2: {"upgrade-node from=v1.36.3 to=v1.37.2", "upgrade-prepare"},
	} {
		for _, w := range want {
			if count(after[i], w) != 1 {
				t.Errorf("host %d: want %q once:\n%s", i, w, after[i])
			}
		}
	}
	// The new rootfs is on every host, and the registry serves the old
	// bundle's image and the new one's.
	for i := range 3 {
		if p := r.exec(i, "cat /etc/sealpack-test/payload.txt"); i > 0 && p != "payload of v2\n" {
			t.Errorf("host %d payload %q: the new rootfs did not arrive", i, p)
		}
		if i > 0 && (count(after[i], "upgrade pulled "+testImage) != 1 || count(after[i], "upgrade pulled test/hello:v2") != 1) {
			t.Errorf("host %d did not pull both bundles' images after the registry's restart:\n%s", i, after[i])
		}
	}
	if snap := r.exec(0, "cat /var/lib/sealpack/snapshots/etcd-v1.36.3.db"); snap != "snapshot of v1.36.3\n" {
		t.Errorf("snapshot %q, want the one taken before the control plane changed", snap)
	}

	// A re-run changes nothing and sends nothing.
	out, code = r.run(ctx, "upgrade")
	if code != 0 || !strings.Contains(out, "sent 0 B from this machine") || strings.Contains(out, ": done in") {
		t.Errorf("re-run: exit %d, want nothing redone and nothing sent:\n%s", code, out)
	}
	if now := logs(); now != after {
		t.Errorf("re-run changed a host:\nbefore %q\nafter  %q", after, now)
	}

	t.Logf("re-run:\n%s", out)

	// The older installer refuses to downgrade, naming the one to use.
	r.inst = v1
	out, code = r.run(ctx, "upgrade")
	if code == 0 || !strings.Contains(out, "newer than this installer's v1.36.3: a downgrade is not supported. Use the installer of v1.37.2") {
		t.Errorf("downgrade: exit %d, want a refusal:\n%s", code, out)
	}
	t.Logf("downgrade:\n%s", out)
	if now := logs(); now != after {
		t.Errorf("the refused downgrade changed a host")
	}
}
