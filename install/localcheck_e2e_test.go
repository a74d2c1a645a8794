package install_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/internal/sshsig"
	"github.com/sealpack/sealpack/internal/testutil"
)

// copyInstaller copies the shared test installer into dir, so a test may
// damage or sign its copy.
func copyInstaller(t *testing.T, src, dir string) string {
	t.Helper()
	dst := filepath.Join(dir, "installer.run")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// flipLayerByte flips a byte in the middle of the installer's first rootfs
// layer and returns the layer's logical byte range.
func flipLayerByte(t *testing.T, path string) (int64, int64) {
	t.Helper()
	b, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, bl, err := b.Blob(b.Index.Layers[0].Digest)
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	testutil.FlipByte(t, path, bl.Offset+bl.Size/2)
	return bl.Offset, bl.Offset + bl.Size - 1
}

// TestDamagedInstallerChangesNoHost: a byte flipped in the installer file
// is found before any host is changed, and the message says that the file
// itself is damaged, where, and how to get a good copy.
func TestDamagedInstallerChangesNoHost(t *testing.T) {
	r := newRig(t, 2)
	r.inst = copyInstaller(t, r.inst, t.TempDir())
	from, to := flipLayerByte(t, r.inst)
	r.writeAnswers(fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n    - ips: [%s]\n      roles: [node]\n", r.ip(0), r.ip(1)) + rootSSH(r.bed.KeyPath))
	before := []string{r.snapshot(0), r.snapshot(1)}
	out, code := r.run(context.Background(), "install")
	if code == 0 {
		t.Fatalf("install of a damaged installer succeeded:\n%s", out)
	}
	for _, want := range []string{
		"the installer file itself is damaged (installer.run on this machine; no host was changed)",
		"layer 1",
		fmt.Sprintf("digest mismatch at installer.run bytes %d-%d", from, to),
		"copy installer.run again from where it was built",
		"ssh-keygen -Y verify -f NAME.allowed_signers -I IDENTITY -n sealpack -s installer.run.sig < installer.run",
		"sha256sum installer.run",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"transfer", "run the same command again"} {
		if strings.Contains(out, bad) {
			t.Errorf("output says %q, which sends the user the wrong way:\n%s", bad, out)
		}
	}
	for i, b := range before {
		if after := r.snapshot(i); after != b {
			t.Errorf("host %d changed although the installer was damaged:\n%s", i+1, diffLines(b, after))
		}
	}
}

// TestRequireSignature: --require-signature and spec.requireSignature
// refuse an unsigned, untrusted or altered installer with no host changed,
// and let a well signed one install.
func TestRequireSignature(t *testing.T) {
	keys := t.TempDir()
	for _, name := range []string{"release", "other"} {
		f := sshsig.Files(filepath.Join(keys, name))
		if _, err := sshsig.GenerateKey(f, name+"@example.com", bundle.SignatureNamespace); err != nil {
			t.Fatal(err)
		}
	}
	sign := func(t *testing.T, path, key string) {
		s, err := sshsig.LoadSigner(filepath.Join(keys, key+".key"), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := bundle.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.Sign(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	allowed := filepath.Join(keys, "release.allowed_signers")
	r := newRig(t, 1)
	shared := r.inst
	for _, c := range []struct {
		name    string
		prepare func(t *testing.T, path string)
		field   bool // require through the answers file instead of the flag
		want    []string
		ok      bool
	}{
		// The first three are refused from the .sig files alone, before
		// any host is reached.
		{"unsigned", func(*testing.T, string) {}, false,
			[]string{"refusing to run installer.run: signature check failed: installer.run is not signed: no installer.run.sig beside it", "--require-signature " + allowed + " requires a signature"}, false},
		{"unsigned, answers file", func(*testing.T, string) {}, true,
			[]string{"installer.run is not signed", "spec.requireSignature of the answers file"}, false},
		{"another key", func(t *testing.T, p string) { sign(t, p, "other") }, false,
			[]string{"signed by a key that is not trusted"}, false},
		{"altered after signing", func(t *testing.T, p string) { sign(t, p, "release"); flipLayerByte(t, p) }, false,
			[]string{"the installer file itself is damaged", "installer.run: invalid signature", "layer 1"}, false},
		{"good", func(t *testing.T, p string) { sign(t, p, "release") }, true,
			[]string{"signed by release@example.com", "installer.run is intact", "install finished on 1 hosts"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r.inst = copyInstaller(t, shared, t.TempDir())
			c.prepare(t, r.inst)
			body := fmt.Sprintf("  hosts:\n    - ips: [%s]\n      roles: [master]\n", r.ip(0)) + rootSSH(r.bed.KeyPath)
			var extra []string
			if c.field {
				body = "  requireSignature: " + allowed + "\n" + body
			} else {
				extra = []string{"--require-signature", allowed}
			}
			r.writeAnswers(body)
			before := r.snapshot(0)
			out, code := r.run(context.Background(), "install", extra...)
			if (code == 0) != c.ok {
				t.Fatalf("exit %d, want ok=%v:\n%s", code, c.ok, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if c.ok {
				return
			}
			if early := !strings.Contains(c.name, "altered"); early && strings.Contains(out, "checking 1 hosts") {
				t.Errorf("hosts were reached although the signature files alone refuse the installer:\n%s", out)
			}
			if after := r.snapshot(0); after != before {
				t.Errorf("the host changed although the installer was refused:\n%s", diffLines(before, after))
			}
		})
	}
}
