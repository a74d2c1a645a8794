package stub

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/sshsig"
)

// TestRequireSignature: the flag wins over the answers file, either refuses
// an unsigned or untrusted installer naming where the requirement came
// from, and neither set requires nothing.
func TestRequireSignature(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"release", "other"} {
		if _, err := sshsig.GenerateKey(sshsig.Files(filepath.Join(dir, name)), name+"@example.com", bundle.SignatureNamespace); err != nil {
			t.Fatal(err)
		}
	}
	build := func(name string, signed bool) *bundle.Bundle {
		path := filepath.Join(dir, name)
		w, err := bundle.Create(path, bytes.NewReader([]byte("stub")), bundle.WriterOptions{Platform: bundle.Platform{OS: "linux", Architecture: "amd64"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		b, err := bundle.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if signed {
			s, err := sshsig.LoadSigner(filepath.Join(dir, "release.key"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Sign(t.Context(), s); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	signed, unsigned := build("signed.run", true), build("unsigned.run", false)
	release, other := filepath.Join(dir, "release.allowed_signers"), filepath.Join(dir, "other.pub")
	answers := func(p string) *cluster.Cluster { return &cluster.Cluster{RequireSignature: p} }
	for _, c := range []struct {
		name string
		b    *bundle.Bundle
		flag string
		c    *cluster.Cluster
		want string // error, or the signer's identity when it starts with "="
	}{
		{"nothing required", unsigned, "", answers(""), "="},
		{"flag, unsigned", unsigned, release, nil, "refusing to run unsigned.run: signature check failed: unsigned.run is not signed: no unsigned.run.sig beside it\n(--require-signature " + release + " requires"},
		{"answers, unsigned", unsigned, "", answers(release), "(spec.requireSignature of the answers file (" + release + ") requires"},
		{"flag wins over answers", signed, other, answers(release), "not trusted"},
		{"answers, signed", signed, "", answers(release), "=release@example.com"},
		{"flag, signed", signed, release, nil, "=release@example.com"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := requireSignature(c.b, c.flag, c.c)
			if id, ok := strings.CutPrefix(c.want, "="); ok {
				if err != nil {
					t.Fatal(err)
				}
				if got := ""; p.Trust != nil {
					got = p.Signer.Identity()
					if got != id || !strings.HasPrefix(p.welcome(), id+", trusted by release.allowed_signers:1\nkey SHA256:") {
						t.Errorf("signer %q, welcome %q; want %q", got, p.welcome(), id)
					}
				} else if id != "" {
					t.Errorf("no signature required, want one by %q", id)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
