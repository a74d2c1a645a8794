package gencmd

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/internal/testutil"
)

func gen(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var o, e bytes.Buffer
	code := Main(context.Background(), &IO{Stdout: &o, Stderr: &e, Getenv: func(string) string { return "" }}, args)
	return o.String(), e.String(), code
}

func TestParseSize(t *testing.T) {
	cases := map[string]int64{"4G": 4 << 30, "700M": 700 << 20, "512k": 512 << 10, "1048576": 1 << 20, "2GiB": 2 << 30}
	for in, want := range cases {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "1X", "1.5G"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

// A context with one big incompressible file, so a small --split makes parts.
func bigContext(t *testing.T, size int64) string {
	dir := t.TempDir()
	data := make([]byte, size)
	rand.Read(data)
	os.WriteFile(filepath.Join(dir, "blob.bin"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "Kubefile"), []byte("FROM scratch\nCOPY blob.bin /data/\n"), 0o644)
	return dir
}

func TestSplitInstallerRunsFromParts(t *testing.T) {
	stub := testutil.BuildStub(t, "amd64")
	// The first part must hold the stub, whose size changes as it grows.
	fi, err := os.Stat(stub)
	if err != nil {
		t.Fatal(err)
	}
	part := max(int64(8<<20), (fi.Size()>>20+2)<<20)
	ctx := bigContext(t, 3*part+part/2)
	out := filepath.Join(t.TempDir(), "installer.run")
	if _, e, code := gen(t, "-f", filepath.Join(ctx, "Kubefile"), "-o", out, "--split", strconv.FormatInt(part, 10), "--stub", stub); code != 0 {
		t.Fatalf("gen --split: exit %d: %s", code, e)
	}
	for k := 1; k <= 4; k++ {
		fi, err := os.Stat(bundle.PartPath(out, k))
		if err != nil || fi.Size() >= part {
			t.Fatalf("part %d: %v (want < %d bytes)", k, err, part)
		}
	}
	if _, e, code := gen(t, "-f", filepath.Join(ctx, "Kubefile"), "-o", out+"2", "--split", "3M", "--stub", stub); code == 0 || !strings.Contains(e, "must hold the") {
		t.Errorf("--split smaller than the stub: exit %d, %q", code, e)
	}
	if o, e, code := testutil.Run(t, "", out, "verify"); code != 0 {
		t.Fatalf("verify split installer: exit %d: %s %s", code, o, e)
	}
	root := filepath.Join(t.TempDir(), "r")
	if _, e, code := testutil.Run(t, "", out, "extract", "--to", root); code != 0 {
		t.Fatalf("extract split installer: %s", e)
	}
	if a, _ := os.ReadFile(filepath.Join(ctx, "blob.bin")); !bytes.Equal(a, must(os.ReadFile(filepath.Join(root, "data/blob.bin")))) {
		t.Error("file spread over parts came back different")
	}
	p3 := bundle.PartPath(out, 3)
	os.Rename(p3, p3+".x")
	if _, e, code := testutil.Run(t, "", out, "verify"); code == 0 || !strings.Contains(e, "part 3 of") {
		t.Errorf("verify with part 3 missing: exit %d, %q", code, e)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestSignAndVerify(t *testing.T) {
	stub := testutil.BuildStub(t, "amd64")
	dir := t.TempDir()
	if _, e, code := gen(t, "keygen", "--out", filepath.Join(dir, "rel")); code != 0 {
		t.Fatalf("keygen: %s", e)
	}
	if _, _, code := gen(t, "keygen", "--out", filepath.Join(dir, "rel")); code == 0 {
		t.Error("keygen overwrote an existing key")
	}
	gen(t, "keygen", "--out", filepath.Join(dir, "other"))
	if fi, _ := os.Stat(filepath.Join(dir, "rel.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", fi.Mode())
	}
	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "f"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(ctx, "Kubefile"), []byte("FROM scratch\nCOPY f /f\n"), 0o644)
	signed := filepath.Join(dir, "signed.run")
	if _, e, code := gen(t, "-f", filepath.Join(ctx, "Kubefile"), "-o", signed, "--sign-key", filepath.Join(dir, "rel.key"), "--stub", stub); code != 0 {
		t.Fatalf("gen --sign-key: %s", e)
	}
	unsigned := filepath.Join(dir, "unsigned.run")
	gen(t, "-f", filepath.Join(ctx, "Kubefile"), "-o", unsigned, "--stub", stub)

	cases := []struct {
		inst, key string
		ok        bool
		want      string
	}{
		{signed, "rel.pub", true, "signature good"},
		{signed, "other.pub", false, "not by the given key"},
		{unsigned, "rel.pub", false, "not signed"},
		{signed, "", true, "signature not checked"},
	}
	for _, c := range cases {
		args := []string{"verify"}
		if c.key != "" {
			args = append(args, "--public-key", filepath.Join(dir, c.key))
		}
		o, e, code := testutil.Run(t, dir, c.inst, args...)
		if (code == 0) != c.ok || !strings.Contains(o+e, c.want) {
			t.Errorf("%s %v: exit %d, %q %q; want ok=%v and %q", filepath.Base(c.inst), args, code, o, e, c.ok, c.want)
		}
	}
}

func TestExtractRefusesTraversal(t *testing.T) {
	// A hostile bundle written with the real writer: the installer must refuse
	// it and leave no directory behind.
	stub, err := os.ReadFile(testutil.BuildStub(t, "amd64"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]tar.Header{
		"dotdot":   {Name: "a/../../escape", Typeflag: tar.TypeReg, Mode: 0o644},
		"absolute": {Name: "/etc/escape", Typeflag: tar.TypeReg, Mode: 0o644},
		"link-out": {Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../../../../etc"},
		"link-abs": {Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
		"hard-out": {Name: "h", Typeflag: tar.TypeLink, Linkname: "../x"},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&h)
			tw.Close()
			dir := t.TempDir()
			inst := filepath.Join(dir, "evil.run")
			w, err := bundle.Create(inst, bytes.NewReader(stub), bundle.WriterOptions{Platform: bundle.Platform{OS: "linux", Architecture: "amd64"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.AddLayer(context.Background(), &buf, "evil"); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, "out", "rootfs")
			_, e, code := testutil.Run(t, dir, inst, "extract", "--to", target)
			if code == 0 || !strings.Contains(e, "unsafe entry") {
				t.Errorf("extract: exit %d, %q; want an unsafe entry error", code, e)
			}
			if entries, _ := os.ReadDir(filepath.Dir(target)); len(entries) != 0 {
				t.Errorf("refused extraction left %v", entries)
			}
		})
	}
}

func TestImageFlagErrors(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "Kubefile")
	os.WriteFile(kf, []byte("FROM scratch\n"), 0o644)
	stub := filepath.Join(dir, "stub")
	os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755)
	for _, tc := range []struct{ image, want string }{
		{"oci:/nope", "gen: --image oci:/nope: open /nope/index.json: no such file or directory"},
		{"docker-archive:/nope.tar:x:1", "gen: --image docker-archive:/nope.tar:x:1: open /nope.tar: no such file or directory"},
		{"oci:/nope=", "gen: --image oci:/nope=: expected SRC=DEST"},
		{"UP=x:1", `gen: --image UP=x:1: invalid image reference "UP"`},
	} {
		for _, cmd := range [][]string{{"-o", filepath.Join(dir, "out.run"), "--stub", stub}, {"images", "--discover"}} {
			args := append(append(cmd, "-f", kf, "--image", tc.image), dir)
			_, e, code := gen(t, args...)
			if code != 1 || !strings.HasPrefix(e, tc.want) {
				t.Errorf("gen %q: exit %d, stderr %q; want %q", args, code, e, tc.want)
			}
		}
	}
}
