package install_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
	"github.com/sealpack/sealpack/internal/testbed"
)

// TestManySessionsOnOneConnection: more commands at once on one host than
// sshd's default MaxSessions (10) all run; none is refused a session.
func TestManySessionsOnOneConnection(t *testing.T) {
	bed := testbed.New(t, 1)
	if out, err := bed.Exec(t.Context(), 0, "grep -i '^ *MaxSessions' /etc/ssh/sshd_config || true"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("the bed's sshd must keep OpenSSH's default MaxSessions (10): %q %v", out, err)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, bed.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	h := bed.Hosts[0]
	node := cluster.Node{IP: h.IP.String(), Roles: []string{cluster.RoleMaster}, SSH: cluster.SSH{User: "root", PrivateKey: bed.KeyPath, Port: h.Port}}
	c, err := install.Dial(t.Context(), node, &install.HostKeyPolicy{KnownHosts: kh}, &sync.Mutex{}, install.Timeouts{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 25
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.Output(t.Context(), "sleep 0.5; echo ok", 30*time.Second)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("command %d of %d at once: %v", i+1, n, err)
		}
	}
}

// TestDialsAreRetried: an sshd that drops connections beyond its
// MaxStartups (here 1: every handshake but one in flight is cut) and an
// sshd that comes up late both end in a connection: dials are retried with
// spread-out backoff until Timeouts.DialRetry passes.
func TestDialsAreRetried(t *testing.T) {
	bed := testbed.New(t, 1)
	ctx := t.Context()
	if _, err := bed.Exec(ctx, 0, "echo 'MaxStartups 1:100:1' >> /etc/ssh/sshd_config"); err != nil {
		t.Fatal(err)
	}
	if err := bed.StopSSH(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := bed.StartSSH(ctx, 0); err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, bed.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	h := bed.Hosts[0]
	node := cluster.Node{IP: h.IP.String(), Roles: []string{cluster.RoleMaster}, SSH: cluster.SSH{User: "root", PrivateKey: bed.KeyPath, Port: h.Port}}
	policy := &install.HostKeyPolicy{KnownHosts: kh}
	var mu sync.Mutex

	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			c, err := install.Dial(ctx, node, policy, &mu, install.Timeouts{})
			if err == nil {
				_, err = c.Output(ctx, "true", time.Minute)
				c.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("dial %d of %d at once to an sshd with MaxStartups 1: %v", i+1, n, err)
		}
	}

	// sshd down for 6 s: longer than the old retries waited in all.
	if err := bed.StopSSH(ctx, 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := install.Dial(ctx, node, policy, &mu, install.Timeouts{})
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	time.Sleep(6 * time.Second)
	if err := bed.StartSSH(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("dial to an sshd that came up after %v: %v", time.Since(start).Round(time.Second), err)
	}
}
