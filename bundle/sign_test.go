package bundle

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/internal/sshsig"
	"github.com/sealpack/sealpack/internal/testutil"
)

func newSigner(t *testing.T, dir, name string) (ssh.Signer, sshsig.Trust) {
	t.Helper()
	f := sshsig.Files(filepath.Join(dir, name))
	if _, err := sshsig.GenerateKey(f, name+"@example.com", SignatureNamespace); err != nil {
		t.Fatal(err)
	}
	s, err := sshsig.LoadSigner(f.Private, nil)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := sshsig.LoadTrust(f.AllowedSigners)
	if err != nil {
		t.Fatal(err)
	}
	return s, trust
}

// TestDetachedSignatures: Sign writes one .sig per file of a split bundle,
// and CheckSignatures accepts them only from a trusted key over the very
// bytes of every part.
func TestDetachedSignatures(t *testing.T) {
	dir := t.TempDir()
	signer, trust := newSigner(t, dir, "release")
	other, otherTrust := newSigner(t, dir, "other")
	build := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "installer.run")
		fixture{layers: [][]byte{tarOf(t, "big", string(randomBytes(9, 3<<20)))}, split: minPartSize + TrailerSize + 1}.build(t, path)
		return path
	}
	sign := func(t *testing.T, path string, s ssh.Signer) {
		b := mustOpen(t, path)
		defer b.Close()
		if err := b.Sign(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		change func(t *testing.T, path string)
		trust  sshsig.Trust
		want   string // "" for good
	}{
		{"good", func(*testing.T, string) {}, trust, ""},
		{"unsigned", func(t *testing.T, path string) {
			if err := RemoveSignatures(path, 1); err != nil {
				t.Fatal(err)
			}
		}, trust, "installer.run is not signed: no installer.run.sig"},
		{"part 2 unsigned", func(t *testing.T, path string) { os.Remove(PartPath(path, 2) + ".sig") }, trust, "installer.run.part2 is not signed"},
		{"another key", func(*testing.T, string) {}, otherTrust, "not trusted"},
		{"re-signed by another key", func(t *testing.T, path string) { sign(t, path, other) }, trust, "not trusted"},
		{"a byte of part 2 flipped", func(t *testing.T, path string) { testutil.FlipByte(t, PartPath(path, 2), 100) }, trust, "installer.run.part2: invalid signature"},
		{"signatures swapped", func(t *testing.T, path string) {
			os.Rename(PartPath(path, 2)+".sig", filepath.Join(filepath.Dir(path), "x"))
			os.Rename(PartPath(path, 3)+".sig", PartPath(path, 2)+".sig")
			os.Rename(filepath.Join(filepath.Dir(path), "x"), PartPath(path, 3)+".sig")
		}, trust, "installer.run.part2: invalid signature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := build(t)
			sign(t, path, signer)
			if _, err := os.Stat(PartPath(path, 3) + ".sig"); err != nil {
				t.Fatalf("no signature for part 3: %v", err)
			}
			c.change(t, path)
			b := mustOpen(t, path)
			defer b.Close()
			s, err := b.CheckSignatures(t.Context(), c.trust)
			if c.want == "" {
				if err != nil || s.Identity() != "release@example.com" {
					t.Fatalf("CheckSignatures: %q, %v", s.Identity(), err)
				}
				// Each part checks with the real ssh-keygen, on its own.
				for _, f := range b.Files() {
					sshKeygenVerify(t, filepath.Join(dir, "release.allowed_signers"), "release@example.com", f)
				}
				return
			}
			if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CheckSignatures: %v, want ErrSignature saying %q", err, c.want)
			}
		})
	}
}

// TestSignReplacesStaleSignatures: signing a bundle that shrank removes the
// signatures of parts it no longer has.
func TestSignReplacesStaleSignatures(t *testing.T) {
	dir := t.TempDir()
	signer, _ := newSigner(t, dir, "release")
	path := filepath.Join(dir, "installer.run")
	fixture{blobs: [][]byte{[]byte("x")}}.build(t, path)
	for _, k := range []int{2, 3} {
		os.WriteFile(PartPath(path, k)+".sig", []byte("stale"), 0o644)
	}
	b := mustOpen(t, path)
	defer b.Close()
	if err := b.Sign(t.Context(), signer); err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{2, 3} {
		if _, err := os.Stat(PartPath(path, k) + ".sig"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale signature of part %d left: %v", k, err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func sshKeygenVerify(t *testing.T, allowed, identity, file string) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed (Debian: openssh-client)")
	}
	in, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.CommandContext(t.Context(), "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", identity, "-n", SignatureNamespace, "-s", SignaturePath(file))
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ssh-keygen -Y verify %s: %v\n%s", filepath.Base(file), err, out)
	}
}
