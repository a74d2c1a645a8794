package install_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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

// dialSudo logs in to the bed's first host as its password user, after
// sudoers on the host is set to rule; password is the one given for sudo.
func dialSudo(t *testing.T, bed *testbed.Bed, rule, password string) (*install.Conn, error) {
	t.Helper()
	// The user logs in with the bed's key, so that a wrong sudo password
	// is tried by sudo and not refused by sshd.
	setup := "printf '%s\\n' '" + rule + "' > /etc/sudoers.d/sealpack-testbed && rm -rf /run/sudo/ts" +
		" && mkdir -p ~sp/.ssh && cp /root/.ssh/authorized_keys ~sp/.ssh/ && chown -R sp ~sp/.ssh"
	if _, err := bed.Exec(t.Context(), 0, setup); err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, bed.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	h := bed.Hosts[0]
	node := cluster.Node{IP: h.IP.String(), Roles: []string{cluster.RoleMaster},
		SSH: cluster.SSH{User: bed.User, PrivateKey: bed.KeyPath, Password: cluster.Secret(password), Port: h.Port}}
	c, err := install.Dial(t.Context(), node, &install.HostKeyPolicy{KnownHosts: kh}, &sync.Mutex{}, install.Timeouts{})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// The sudo password goes to sudo only: a command run through sudo never
// finds it on its standard input, also when sudo has cached the user's
// credentials (or needs none) and would not read it, and piped data still
// reaches the command byte for byte.
func TestSudoPasswordNeverReachesTheCommand(t *testing.T) {
	bed := testbed.New(t, 1)
	cases := []struct{ name, rule string }{
		{"password required", "sp ALL=(ALL) ALL"},
		// One ticket for every session of the user: a cached timestamp is
		// certain after the first command.
		{"password required, global ticket", "Defaults:sp timestamp_type=global\nsp ALL=(ALL) ALL"},
		{"no password", "sp ALL=(ALL) NOPASSWD:ALL"},
	}
	data := "line one\n\x00binary\xff 'quoted' $HOME\nno newline at the end"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialSudo(t, bed, tc.rule, bed.Password)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			for i := range 3 {
				if who, err := c.Output(ctx, "id -u", time.Minute); err != nil || who != "0\n" {
					t.Fatalf("run %d: id -u = %q, %v: not root", i, who, err)
				}
				var out strings.Builder
				if err := c.Exec(ctx, "cat", strings.NewReader(data), &out, nil, time.Minute); err != nil {
					t.Fatalf("run %d: %v", i, err)
				}
				if out.String() != data {
					t.Fatalf("run %d: the command read %q, want %q", i, out.String(), data)
				}
				got, err := c.Output(ctx, "cat", time.Minute)
				if err != nil {
					t.Fatalf("run %d: %v", i, err)
				}
				if strings.Contains(got, bed.Password) || got != "" {
					t.Fatalf("run %d: a command without input read %q (the sudo password)", i, got)
				}
				// A large stream (as a layer upload is) arrives whole.
				big := make([]byte, 8<<20)
				rand.Read(big)
				sum := sha256.Sum256(big)
				var digest strings.Builder
				if err := c.Exec(ctx, "sha256sum | cut -d' ' -f1", bytes.NewReader(big), &digest, nil, time.Minute); err != nil {
					t.Fatalf("run %d: %v", i, err)
				}
				if got := strings.TrimSpace(digest.String()); got != hex.EncodeToString(sum[:]) {
					t.Fatalf("run %d: 8 MiB piped through sudo hash to %s", i, got)
				}
				// Standard error and the exit status come through as they are.
				var ce *install.CommandError
				_, err = c.Output(ctx, "echo boom >&2; exit 3", time.Minute)
				if !errors.As(err, &ce) || ce.Status != 3 || ce.Stderr != "boom" {
					t.Fatalf("run %d: failing command gave %#v", i, err)
				}
			}
		})
	}
	// A wrong password is refused once, clearly, and not tried again.
	start := time.Now()
	_, err := dialSudo(t, bed, "sp ALL=(ALL) ALL", "not-"+bed.Password)
	if err == nil || !strings.Contains(err.Error(), "sudo rejected the password of sp") {
		t.Errorf("wrong sudo password: err = %v", err)
	}
	if strings.Contains(fmt.Sprint(err), bed.Password) {
		t.Errorf("the error shows the password: %v", err)
	}
	t.Logf("wrong password refused in %v", time.Since(start))
}
