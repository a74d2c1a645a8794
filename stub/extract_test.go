package stub

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/bundle"
)

// layerBundle writes a bundle whose one layer holds entries.
func layerBundle(t *testing.T, entries ...*tar.Header) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
	}
	tw.Close()
	path := filepath.Join(t.TempDir(), "installer.run")
	w, err := bundle.Create(path, strings.NewReader("stub"), bundle.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddLayer(t.Context(), &buf, "test layer"); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return path
}

func runStub(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &out, Stdin: strings.NewReader(""), Open: func() (*bundle.Bundle, error) { return nil, os.ErrNotExist }}
	return Main(t.Context(), env, args), out.String()
}

// extract is for looking at a bundle, often as root: a setuid program it
// unpacked would be one anybody could run, so the bits go unless asked for.
func TestExtractStripsSetID(t *testing.T) {
	path := layerBundle(t,
		&tar.Header{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 1},
		&tar.Header{Name: "bin/wall", Typeflag: tar.TypeReg, Mode: 0o2755, Size: 1},
	)
	for _, tc := range []struct {
		flags    []string
		su, wall fs.FileMode
	}{
		{nil, 0o755, 0o755},
		{[]string{"--keep-setid"}, 0o755 | fs.ModeSetuid, 0o755 | fs.ModeSetgid},
	} {
		to := filepath.Join(t.TempDir(), "rootfs")
		if code, out := runStub(t, append([]string{"extract", "--bundle", path, "--to", to}, tc.flags...)...); code != 0 {
			t.Fatalf("extract %v: exit %d: %s", tc.flags, code, out)
		}
		for p, want := range map[string]fs.FileMode{"bin/su": tc.su, "bin/wall": tc.wall} {
			fi, err := os.Stat(filepath.Join(to, p))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != want {
				t.Errorf("extract %v: %s mode %v, want %v", tc.flags, p, fi.Mode(), want)
			}
		}
	}
}

func TestExtractRefusesLinkThroughParentLink(t *testing.T) {
	base := t.TempDir()
	os.MkdirAll(filepath.Join(base, "etc"), 0o755)
	os.WriteFile(filepath.Join(base, "etc", "shadow"), []byte("SECRET"), 0o644)
	path := layerBundle(t,
		&tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "."},
		&tar.Header{Name: "d/d/d/shadow", Typeflag: tar.TypeSymlink, Linkname: "../../../etc/shadow"},
	)
	to := filepath.Join(base, "x", "y", "rootfs")
	code, out := runStub(t, "extract", "--bundle", path, "--to", to)
	if code == 0 || !strings.Contains(out, "unsafe entry") {
		t.Errorf("extract: exit %d, %q; want it refused as unsafe", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(to, "shadow")); err == nil {
		t.Errorf("%s/shadow reads %q from outside the rootfs", to, b)
	}
	if entries, _ := os.ReadDir(filepath.Join(base, "x", "y")); len(entries) != 0 {
		t.Errorf("a refused extract left %v", entries)
	}
}
