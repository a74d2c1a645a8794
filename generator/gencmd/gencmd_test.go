package gencmd

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
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

// TestSignAndVerify: gen keygen, gen --sign-key and gen sign write
// detached signatures that the real ssh-keygen accepts; gen verify, a
// program the build machine trusts, refuses a flipped byte, an untrusted
// key and a bundle signed by the right key around another stub; the
// installer's own verify agrees but says its word is worth nothing.
func TestSignAndVerify(t *testing.T) {
	stub := testutil.BuildStub(t, "amd64")
	dir := t.TempDir()
	for _, k := range []string{"rel", "other"} {
		if o, e, code := gen(t, "keygen", "--out", filepath.Join(dir, k), "--identity", k+"@example.com"); code != 0 || !strings.Contains(o, "ssh-keygen -Y verify") {
			t.Fatalf("keygen: %s %s", o, e)
		}
	}
	if _, e, code := gen(t, "keygen", "--out", filepath.Join(dir, "rel")); code == 0 || !strings.Contains(e, "refusing to overwrite") {
		t.Errorf("keygen over an existing key: exit %d, %s", code, e)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "rel.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", fi.Mode())
	}
	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "f"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(ctx, "Kubefile"), []byte("FROM scratch\nCOPY f /f\n"), 0o644)
	build := func(name, stub string, args ...string) string {
		out := filepath.Join(dir, name)
		if _, e, code := gen(t, append([]string{"-f", filepath.Join(ctx, "Kubefile"), "-o", out, "--stub", stub}, args...)...); code != 0 {
			t.Fatalf("gen %s: %s", name, e)
		}
		return out
	}
	signed := build("signed.run", stub, "--sign-key", filepath.Join(dir, "rel.key"))
	unsigned := build("unsigned.run", stub)
	flipped := build("flipped.run", stub, "--sign-key", filepath.Join(dir, "rel.key"))
	testutil.FlipByte(t, flipped, 1000)
	// The right key, around a stub that is not gen's: every digest and the
	// signature match, since the signer built it so.
	otherStub := filepath.Join(dir, "other-stub")
	data, _ := os.ReadFile(stub)
	os.WriteFile(otherStub, append(data, "evil"...), 0o755)
	swapped := build("swapped.run", otherStub)
	if o, e, code := gen(t, "sign", "--key", filepath.Join(dir, "rel.key"), swapped); code != 0 || !strings.Contains(o, "swapped.run.sig") {
		t.Fatalf("gen sign: %s %s", o, e)
	}

	allowed := filepath.Join(dir, "rel.allowed_signers")
	for _, c := range []struct {
		inst string
		ok   bool
	}{{signed, true}, {swapped, true}, {flipped, false}, {unsigned, false}} {
		f, err := os.Open(c.inst)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "rel@example.com", "-n", "sealpack", "-s", c.inst+".sig")
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		f.Close()
		if (err == nil) != c.ok {
			t.Errorf("ssh-keygen -Y verify %s: %v, want ok=%v\n%s", filepath.Base(c.inst), err, c.ok, out)
		}
	}

	for _, c := range []struct {
		inst string
		args []string
		ok   bool
		want []string
	}{
		{signed, []string{"--allowed-signers", allowed}, true, []string{"OK: signed by rel@example.com", "the stub is this gen's for linux/amd64"}},
		{signed, []string{"--public-key", filepath.Join(dir, "rel.pub")}, true, []string{"OK: signed by rel@example.com"}},
		{signed, nil, true, []string{"signature NOT checked"}},
		{signed, []string{"--allowed-signers", filepath.Join(dir, "other.allowed_signers")}, false, []string{"not trusted"}},
		{unsigned, []string{"--allowed-signers", allowed}, false, []string{"unsigned.run is not signed: no unsigned.run.sig"}},
		{flipped, []string{"--allowed-signers", allowed}, false, []string{"flipped.run: invalid signature", "stub: digest mismatch at flipped.run bytes 0-"}},
		{swapped, []string{"--allowed-signers", allowed}, false, []string{"the installer program (stub) differs from " + stub + ": the installer carries sha256:", "Do not run it"}},
	} {
		// Built with --stub, so with no host agent to compare.
		args := append(append([]string{"verify", "--stub", stub}, c.args...), c.inst)
		o, e, code := gen(t, args...)
		for _, w := range c.want {
			if (code == 0) != c.ok || !strings.Contains(o+e, w) {
				t.Errorf("gen %q: exit %d, %s%s; want ok=%v and %q", args, code, o, e, c.ok, w)
			}
		}
	}

	// The installer's own verify gives the same verdicts, and says what
	// they are worth.
	for _, c := range []struct {
		inst, key string
		ok        bool
		want      string
	}{
		{signed, "rel.allowed_signers", true, "signature good, by rel@example.com"},
		{signed, "other.pub", false, "not trusted"},
		{unsigned, "rel.allowed_signers", false, "not signed"},
		{signed, "", true, "A file's check of itself proves nothing"},
	} {
		args := []string{"verify"}
		if c.key != "" {
			args = append(args, "--allowed-signers", filepath.Join(dir, c.key))
		}
		o, e, code := testutil.Run(t, dir, c.inst, args...)
		if (code == 0) != c.ok || !strings.Contains(o+e, c.want) {
			t.Errorf("%s %v: exit %d, %q %q; want ok=%v and %q", filepath.Base(c.inst), args, code, o, e, c.ok, c.want)
		}
	}

	// A rebuild without --sign-key removes the signature, which cannot match.
	build("signed.run", stub)
	if _, err := os.Stat(signed + ".sig"); !os.IsNotExist(err) {
		t.Errorf("stale signature kept after an unsigned rebuild: %v", err)
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
