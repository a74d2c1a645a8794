package install

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/testbed"
)

// A host whose sshd gained an RSA key, listed before its recorded ed25519
// key, is still reached through the recorded key, as OpenSSH reaches it;
// a key of a recorded type that differs is still refused.
func TestHostKeyTypesFollowWhatIsRecorded(t *testing.T) {
	bed := testbed.New(t, 1)
	h := bed.Hosts[0]
	ip := h.IP.String()
	if _, err := bed.Exec(t.Context(), 0, `ssh-keygen -q -t rsa -b 2048 -N '' -f /etc/ssh/ssh_host_rsa_key &&
sed -i 's|^HostKey /etc/ssh/ssh_host_ed25519_key|HostKey /etc/ssh/ssh_host_rsa_key\n&|' /etc/ssh/sshd_config &&
grep -c '^HostKey' /etc/ssh/sshd_config | grep -qx 2`); err != nil {
		t.Fatal(err)
	}
	if err := bed.StopSSH(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if err := bed.StartSSH(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	rsaPub, err := bed.Exec(t.Context(), 0, "cut -d' ' -f1,2 /etc/ssh/ssh_host_rsa_key.pub")
	if err != nil {
		t.Fatal(err)
	}
	rsaPub = strings.TrimSpace(rsaPub)
	// Another RSA key, as a man in the middle would present.
	dir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", filepath.Join(dir, "other")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	otherPub, err := os.ReadFile(filepath.Join(dir, "other.pub"))
	if err != nil {
		t.Fatal(err)
	}
	otherRSA := strings.Join(strings.Fields(string(otherPub))[:2], " ")
	ed25519Pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h.HostKey)))
	other, _, _, _, err := ssh.ParseAuthorizedKey([]byte(otherRSA))
	if err != nil {
		t.Fatal(err)
	}
	otherFingerprint := ssh.FingerprintSHA256(other)

	for _, tc := range []struct {
		name, knownHosts, pinned string
		want                     string // "" connects; "changed" or "pinned" is the refusal
	}{
		{name: "ed25519 recorded", knownHosts: h.KnownHostsLine},
		{name: "rsa recorded", knownHosts: ip + " " + rsaPub},
		{name: "both recorded", knownHosts: ip + " " + rsaPub + "\n" + h.KnownHostsLine},
		{name: "another rsa key recorded", knownHosts: ip + " " + otherRSA, want: "changed"},
		{name: "ed25519 pinned", pinned: ed25519Pub},
		{name: "rsa pinned", pinned: rsaPub},
		{name: "another rsa key pinned", pinned: otherRSA, want: "pinned"},
		{name: "ed25519 fingerprint pinned", pinned: h.Fingerprint},
		{name: "another key's fingerprint pinned", pinned: otherFingerprint, want: "pinned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(tc.knownHosts+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			node := cluster.Node{IP: ip, Roles: []string{cluster.RoleMaster}, HostKey: tc.pinned,
				SSH: cluster.SSH{User: testbed.Root, PrivateKey: bed.KeyPath, Port: h.Port}}
			var mu sync.Mutex
			c, err := Dial(t.Context(), node, &HostKeyPolicy{KnownHosts: kh}, &mu, Timeouts{})
			var hk *HostKeyError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
				defer c.Close()
				if out, err := c.Output(t.Context(), "hostname", 0); err != nil || out != "h1\n" {
					t.Errorf("hostname: %q, %v", out, err)
				}
			case !errors.As(err, &hk) || hk.Changed != (tc.want == "changed") || hk.Pinned != (tc.want == "pinned"):
				t.Fatalf("got %v, want the key refused as %s", err, tc.want)
			}
		})
	}
}
