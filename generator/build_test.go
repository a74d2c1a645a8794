package generator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator"
	"github.com/sealpack/sealpack/generator/kubefile"
	"github.com/sealpack/sealpack/internal/testutil"
)

const basic = "../testdata/build/basic"

func buildBasic(t *testing.T, stub []byte, out string) *generator.Result {
	t.Helper()
	res, err := generator.Build(context.Background(), generator.Options{
		Kubefile: filepath.Join(basic, "Kubefile"), Output: out, Arch: "amd64", Stub: stub,
		BuildArgs: map[string]string{"GREETING": "hello"}, CreatedBy: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func readStub(t *testing.T, arch string) []byte {
	b, err := os.ReadFile(testutil.BuildStub(t, arch))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildAndRunInstaller(t *testing.T) {
	stub := readStub(t, "amd64")
	dir := t.TempDir()
	inst := filepath.Join(dir, "installer.run")
	res := buildBasic(t, stub, inst)
	if got := len(res.Index.Layers); got != 3 {
		t.Fatalf("layers = %d, want 3 (one per COPY)", got)
	}

	// inspect --json reports what the Kubefile said.
	out, errOut, code := testutil.Run(t, dir, inst, "inspect", "--json")
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, errOut)
	}
	var got struct {
		FormatVersion int
		Index         bundle.Index
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	cfg := got.Index.Config
	if got.FormatVersion != bundle.FormatVersion || got.Index.Platform.Architecture != "amd64" ||
		strings.Join(cfg.Env, ",") != "A=1,B=two words" || cfg.Labels["greeting"] != "hello" || cfg.Labels["purpose"] != "test" {
		t.Errorf("inspect --json = %+v", got)
	}
	if !strings.Contains(got.Index.Layers[1].CreatedBy, "COPY --chmod=0700") {
		t.Errorf("layer 2 created by %q", got.Index.Layers[1].CreatedBy)
	}
	out, _, code = testutil.Run(t, dir, inst, "inspect")
	for _, want := range []string{"Format version:  1", "linux/amd64", "COPY files /opt/files", "A=1", "greeting=hello", "Images (0)"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}

	// verify, and extract keeps contents, modes and symlinks.
	if out, errOut, code := testutil.Run(t, dir, inst, "verify"); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("verify: exit %d: %s %s", code, out, errOut)
	}
	root := filepath.Join(dir, "rootfs")
	if _, errOut, code := testutil.Run(t, dir, inst, "extract", "--to", root); code != 0 {
		t.Fatalf("extract: exit %d: %s", code, errOut)
	}
	checks := map[string]string{"opt/files/top.txt": "top\n", "opt/files/sub/nested.txt": "nested\n", "etc/top-renamed.txt": "top\n", "scripts/init-host.sh": "#!/bin/sh\necho init\n"}
	for p, want := range checks {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "scripts/reset-host.sh")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("COPY --chmod=0700: mode %v, %v", fi.Mode(), err)
	}
	// Without --chmod, what COPY brings is not world-readable: the source's
	// owner and group bits stay, the other bits go.
	for _, p := range []string{"opt/files", "opt/files/top.txt", "opt/files/sub", "opt/files/sub/nested.txt", "etc/top-renamed.txt"} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil || fi.Mode().Perm()&0o007 != 0 || fi.Mode().Perm()&0o600 != 0o600 {
			t.Errorf("COPY without --chmod: %s mode %v, %v; want no bits for others", p, fi.Mode(), err)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "opt/files/sub/link")); err != nil || target != "../top.txt" {
		t.Errorf("symlink = %q, %v", target, err)
	}
	if _, errOut, code := testutil.Run(t, dir, inst, "extract", "--to", root); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Errorf("extract over a full directory: exit %d, %s", code, errOut)
	}

	// Renamed, moved and reached through a symlink, it still finds its payload.
	moved := filepath.Join(t.TempDir(), "renamed-installer")
	if err := os.Rename(inst, moved); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "via-link")
	os.Symlink(moved, link)
	for _, p := range []string{moved, link} {
		if out, errOut, code := testutil.Run(t, dir, p, "verify"); code != 0 {
			t.Errorf("%s verify: exit %d: %s %s", p, code, out, errOut)
		}
	}

	// version, --help on every command, and the not-yet-there install.
	if out, _, code := testutil.Run(t, dir, moved, "version"); code != 0 || !strings.Contains(out, "bundle format 1") {
		t.Errorf("version: %d %q", code, out)
	}
	for _, c := range []string{"inspect", "verify", "extract", "images", "version", "install"} {
		_, errOut, code := testutil.Run(t, dir, moved, c, "--help")
		if code != 0 || !strings.Contains(errOut, "Usage:") {
			t.Errorf("%s --help: exit %d, %q", c, code, errOut)
		}
	}
	if out, _, code := testutil.Run(t, dir, moved, "--help"); code != 0 || !strings.Contains(out, "verify") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
	if _, errOut, code := testutil.Run(t, dir, moved, "bogus"); code != 2 || !strings.Contains(errOut, `unknown command "bogus"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
}

func TestBuildIsReproducible(t *testing.T) {
	stub := readStub(t, "amd64")
	dir := t.TempDir()
	sum := func(p string) [32]byte {
		b, _ := os.ReadFile(p)
		return sha256.Sum256(b)
	}
	buildBasic(t, stub, filepath.Join(dir, "a"))
	// Touch every source: times must not leak into the output.
	filepath.WalkDir(basic, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Type()&os.ModeSymlink == 0 {
			now := testTime()
			os.Chtimes(p, now, now)
		}
		return nil
	})
	buildBasic(t, stub, filepath.Join(dir, "b"))
	if sum(filepath.Join(dir, "a")) != sum(filepath.Join(dir, "b")) {
		t.Fatal("two builds of the same Kubefile differ")
	}
}

func TestBuildArm64(t *testing.T) {
	stub := readStub(t, "arm64")
	out := filepath.Join(t.TempDir(), "installer.run")
	res, err := generator.Build(context.Background(), generator.Options{
		Kubefile: filepath.Join(basic, "Kubefile"), Output: out, Arch: "arm64", Stub: stub,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Index.Platform.Architecture != "arm64" {
		t.Errorf("platform = %v", res.Index.Platform)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("installer machine = %v, want aarch64", f.Machine)
	}
}

func TestBuildErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, kubefile string
		files          map[string]string
		want           string
	}{
		{"bad instruction", "FROM scratch\nCOPYY a b\n", nil, "Kubefile:2:1"},
		{"missing source", "FROM scratch\nCOPY nope /x\n", nil, `Kubefile:2:1: COPY: source "nope": no such file`},
		{"source outside context", "FROM scratch\nCOPY ../../etc/passwd /x\n", nil, "outside the build context"},
		{"missing OCI layout", "FROM oci:nope:v1\n", nil, "Kubefile:1:1: FROM oci:nope:v1: open "},
		{"missing docker archive", "FROM docker-archive:nope.tar\n", nil, "Kubefile:1:1: FROM docker-archive:nope.tar: open "},
		{"base platform", "FROM --platform=linux/arm64 oci:nope\n", nil, "Kubefile:1:1: FROM oci:nope: --platform linux/arm64 differs from the target linux/amd64"},
		{"absolute symlink", "FROM scratch\nCOPY d /d\n", map[string]string{"d/link": "->/etc/passwd"}, "absolute path"},
		{"RUN fails", "FROM scratch\nRUN echo boom >&2; exit 3\n", nil, "Kubefile:2:1: RUN: command failed with exit code 3:\nboom"},
		{"RUN makes a fifo", "FROM scratch\nRUN mkfifo p\n", nil, "RUN made p, a p---------: only files"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctxDir := filepath.Join(dir, "ctx")
			os.MkdirAll(ctxDir, 0o755)
			kf := filepath.Join(ctxDir, "Kubefile")
			os.WriteFile(kf, []byte(tc.kubefile), 0o644)
			for name, body := range tc.files {
				p := filepath.Join(ctxDir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if target, ok := strings.CutPrefix(body, "->"); ok {
					os.Symlink(target, p)
				} else {
					os.WriteFile(p, []byte(body), 0o644)
				}
			}
			out := filepath.Join(dir, "out", "installer.run")
			_, err := generator.Build(ctx, generator.Options{Kubefile: kf, Output: out, Arch: "amd64", Stub: []byte("stub")})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
				t.Errorf("a failed build left %v", entries)
			}
		})
	}
	// Parse errors are typed, with positions.
	dir := t.TempDir()
	kf := filepath.Join(dir, "Kubefile")
	os.WriteFile(kf, []byte("FROM scratch\nCOPY onlyone\n"), 0o644)
	_, err := generator.Build(ctx, generator.Options{Kubefile: kf, Output: filepath.Join(dir, "o"), Arch: "amd64", Stub: []byte("s")})
	var ke *kubefile.Error
	if !errors.As(err, &ke) || ke.Line != 2 {
		t.Errorf("error %v is not a *kubefile.Error at line 2", err)
	}
}

func TestCorruptInstallerFailsVerify(t *testing.T) {
	stub := readStub(t, "amd64")
	dir := t.TempDir()
	inst := filepath.Join(dir, "installer.run")
	res := buildBasic(t, stub, inst)
	data, _ := os.ReadFile(inst)
	layer := res.Index.Blobs[1]
	data[layer.Offset+layer.Size/2] ^= 0xff
	bad := filepath.Join(dir, "bad.run")
	os.WriteFile(bad, data, 0o755)
	_, errOut, code := testutil.Run(t, dir, bad, "verify")
	if code == 0 || !strings.Contains(errOut, "layer 2") || !strings.Contains(errOut, "digest mismatch") {
		t.Errorf("verify of a flipped layer byte: exit %d, %q", code, errOut)
	}
	os.WriteFile(bad, append(bytes.Clone(data[:len(data)-bundle.TrailerSize-1]), data[len(data)-bundle.TrailerSize:]...), 0o755)
	if _, errOut, code := testutil.Run(t, dir, bad, "inspect"); code == 0 || !strings.Contains(errOut, "truncated") {
		t.Errorf("inspect of a truncated installer: exit %d, %q", code, errOut)
	}
}
