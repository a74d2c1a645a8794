package install_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInstallOnAHundredHosts: one master and 99 nodes, each with an sshd
// keeping OpenSSH's default MaxSessions and MaxStartups, all installed in
// one run; this machine's link carries the installer about once, counted
// on the bed's bridge (every byte this machine sent to any host), not
// taken from the installer's own report.
func TestInstallOnAHundredHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("a hundred hosts: not in -short")
	}
	const n = 100
	r := newRig(t, n)
	nodes := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		nodes = append(nodes, r.ip(i))
	}
	r.writeAnswers(fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n", r.ip(0), strings.Join(nodes, ", ")) + rootSSH(r.bed.KeyPath))
	before := bridgeSent(t, r)
	start := time.Now()
	out, code := r.run(t.Context(), "install")
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("install on %d hosts: exit %d\n%s", n, code, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " finished in ") || strings.Contains(l, " from this machine") {
			t.Log(l)
		}
	}
	sent, size := bridgeSent(t, r)-before, fileSize(t, r.inst)
	t.Logf("%d hosts installed in %v; this machine sent %d bytes for a %d-byte installer (%.3fx)", n, took.Round(time.Second), sent, size, float64(sent)/float64(size))
	if limit := size + size/5 + 4<<20; sent > limit {
		t.Errorf("this machine sent %d bytes to %d hosts, want at most %d (1.2x the %d-byte installer + 4 MiB):\n%s", sent, n, limit, size, out)
	}
	if !strings.Contains(out, "join-node finished in") || !strings.Contains(out, fmt.Sprintf("(%d/%d hosts)", n-1, n-1)) {
		t.Errorf("join-node did not finish on all %d nodes:\n%s", n-1, out)
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		if log := r.exec(i, "cat /etc/sealpack-test/log"); !strings.Contains(log, "init-host") || (i > 0 && !strings.Contains(log, "join-node token=token-h1")) {
			t.Errorf("host %s not installed:\n%s", r.ip(i), log)
		}
	}
	// Every host is done: its join marker is there (checked in the hosts,
	// not over SSH).
	var missing []string
	for i := 1; i < n; i++ {
		if _, err := os.Stat(filepath.Join(r.bed.Dir, fmt.Sprintf("h%d", i+1), "upper/var/lib/sealpack/state/join-node.done")); err != nil {
			missing = append(missing, r.ip(i))
		}
	}
	if len(missing) > 0 {
		t.Errorf("no join-node marker on %d hosts: %v", len(missing), missing)
	}
}

// bridgeSent is what this machine has sent into the bed: the bridge
// device's transmit counter (traffic between hosts crosses the bridge but
// never this device).
func bridgeSent(t *testing.T, r *rig) int64 {
	t.Helper()
	b, err := os.ReadFile("/sys/class/net/" + r.bed.Bridge + "/statistics/tx_bytes")
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
