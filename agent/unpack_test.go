package agent

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// writeLayerBlob stores a zstd tar of entries in dir/sha256/ and returns its digest.
func writeLayerBlob(t *testing.T, dir string, entries ...*tar.Header) string {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		body := []byte(strings.Repeat("x", int(h.Size)))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	zw.Close()
	sum := sha256.Sum256(buf.Bytes())
	hexSum := hex.EncodeToString(sum[:])
	os.MkdirAll(filepath.Join(dir, "sha256"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "sha256", hexSum), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hexSum
}

func unpack(t *testing.T, to, blobs, digest string) (int, string) {
	var stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &stderr, Stderr: &stderr}
	code := Main(t.Context(), env, []string{"unpack", "--to", to, "--blobs", blobs, "--layer", digest})
	return code, stderr.String()
}

// The hosts' unpack is rootfs.Apply too: a link made through a parent link
// ("d -> .", then d/d/d/shadow -> ../../../etc/shadow) is refused, and
// nothing outside the target can be read through what it unpacked.
func TestUnpackRefusesLinkThroughParentLink(t *testing.T) {
	base := t.TempDir()
	os.MkdirAll(filepath.Join(base, "etc"), 0o755)
	os.WriteFile(filepath.Join(base, "etc", "shadow"), []byte("SECRET"), 0o644)
	blobs := filepath.Join(base, "blobs")
	digest := writeLayerBlob(t, blobs,
		&tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "."},
		&tar.Header{Name: "d/d/d/shadow", Typeflag: tar.TypeSymlink, Linkname: "../../../etc/shadow"},
	)
	to := filepath.Join(base, "x", "y", "rootfs")
	code, out := unpack(t, to, blobs, digest)
	if code == 0 || !strings.Contains(out, "unsafe entry") {
		t.Errorf("unpack exit %d, output %q; want it refused as unsafe", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(to, "shadow")); err == nil {
		t.Errorf("%s/shadow reads %q from outside the rootfs", to, b)
	}
}

// Hosts keep setuid bits: the rootfs is the cluster image as its author made
// it, verified against the bundle's digests, and its programs may need them.
func TestUnpackKeepsSetID(t *testing.T) {
	base := t.TempDir()
	blobs := filepath.Join(base, "blobs")
	digest := writeLayerBlob(t, blobs, &tar.Header{Name: "bin/helper", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 1})
	to := filepath.Join(base, "rootfs")
	if code, out := unpack(t, to, blobs, digest); code != 0 {
		t.Fatalf("unpack exit %d: %s", code, out)
	}
	fi, err := os.Stat(filepath.Join(to, "bin", "helper"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("bin/helper mode %v lost its setuid bit", fi.Mode())
	}
}
