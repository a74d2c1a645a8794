package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type ent struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarStream(t *testing.T, entries ...ent) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(1000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return bytes.NewReader(buf.Bytes())
}

func applyAll(t *testing.T, dir string, layers ...*bytes.Reader) error {
	t.Helper()
	return ExtractAtomic(dir, func(root *os.Root) error {
		for i, l := range layers {
			if err := Apply(context.Background(), root, "layer "+string(rune('1'+i)), l); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestApplyLayersWithWhiteouts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rootfs")
	l1 := tarStream(t,
		ent{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "bin/tool", body: "v1", mode: 0o4755},
		ent{name: "etc/keep", body: "keep"},
		ent{name: "etc/gone", body: "gone"},
		ent{name: "opt/app/old", body: "old"},
		ent{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		ent{name: "usr/lib/x.so", body: "so"},
		ent{name: "bin/tool-hard", typ: tar.TypeLink, link: "bin/tool"},
	)
	l2 := tarStream(t,
		ent{name: "bin/tool", body: "v2", mode: 0o700},
		ent{name: "etc/.wh.gone", body: ""},
		ent{name: "opt/app/.wh..wh..opq", body: ""},
		ent{name: "opt/app/new", body: "new"},
	)
	if err := applyAll(t, dir, l1, l2); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(dir, p)); return string(b) }
	if read("bin/tool") != "v2" || read("etc/keep") != "keep" || read("opt/app/new") != "new" || read("lib/x.so") != "so" {
		t.Errorf("contents wrong: tool=%q keep=%q new=%q lib=%q", read("bin/tool"), read("etc/keep"), read("opt/app/new"), read("lib/x.so"))
	}
	for _, p := range []string{"etc/gone", "opt/app/old"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived its whiteout: %v", p, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "bin/tool")); fi.Mode().Perm() != 0o700 {
		t.Errorf("bin/tool mode = %v, want 0700", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "bin/tool-hard")); fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("setuid bit lost on hard link: %v", fi.Mode())
	}
	if target, _ := os.Readlink(filepath.Join(dir, "lib")); target != "usr/lib" {
		t.Errorf("symlink lib -> %q, want usr/lib", target)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "etc/keep")); !fi.ModTime().Equal(time.Unix(1000, 0)) {
		t.Errorf("mtime not kept: %v", fi.ModTime())
	}
}

func TestApplyRefusesEscapes(t *testing.T) {
	cases := []struct {
		name    string
		entries []ent
		want    string
	}{
		{"absolute path", []ent{{name: "/etc/passwd", body: "x"}}, "absolute path"},
		{"dot-dot", []ent{{name: "a/../../evil", body: "x"}}, `".." path component`},
		{"absolute symlink", []ent{{name: "etc", typ: tar.TypeSymlink, link: "/etc"}}, "absolute path"},
		{"climbing symlink", []ent{{name: "a/b", typ: tar.TypeSymlink, link: "../../outside"}}, "escapes"},
		{"hard link outside", []ent{{name: "h", typ: tar.TypeLink, link: "../outside"}}, "hard link target"},
		{"device", []ent{{name: "dev/null", typ: tar.TypeChar}}, "unsupported tar entry type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "rootfs")
			err := applyAll(t, dir, tarStream(t, tc.entries...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Errorf("a failed extraction left %v behind", entries)
			}
		})
	}
}

func TestApplyCannotWriteThroughSymlink(t *testing.T) {
	// Even if a symlink inside the tree points somewhere harmless-looking,
	// os.Root keeps writes through it inside; an escaping one is refused earlier.
	// Here a link to a directory in the tree is followed, staying inside.
	dir := filepath.Join(t.TempDir(), "rootfs")
	err := applyAll(t, dir, tarStream(t,
		ent{name: "real/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "alias", typ: tar.TypeSymlink, link: "real"},
		ent{name: "alias/file", body: "in"},
	))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "real/file")); string(b) != "in" {
		t.Errorf("write through an inside link did not land inside: %q", b)
	}
}

func TestExtractAtomicRefusesNonEmpty(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	if err := applyAll(t, dir, tarStream(t, ent{name: "a", body: "b"})); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("error = %v, want 'not empty'", err)
	}
	empty := t.TempDir()
	if err := applyAll(t, empty, tarStream(t, ent{name: "a", body: "b"})); err != nil {
		t.Fatalf("empty target refused: %v", err)
	}
}

func TestLayerWriteTarIsReproducible(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d/e"), 0o755)
	os.WriteFile(filepath.Join(src, "d/e/f"), []byte("f"), 0o640)
	os.WriteFile(filepath.Join(src, "top"), []byte("top"), 0o755)
	os.Symlink("d/e/f", filepath.Join(src, "link"))
	build := func() []byte {
		l := NewLayer(time.Unix(0, 0))
		if err := l.AddTree(context.Background(), src, "opt/app"); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := l.WriteTar(context.Background(), &buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a := build()
	os.Chtimes(filepath.Join(src, "top"), time.Now(), time.Now())
	if b := build(); !bytes.Equal(a, b) {
		t.Fatal("layer tar changed with file times")
	}
	tr := tar.NewReader(bytes.NewReader(a))
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: owner %d:%d mtime %v, want 0:0 at the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
	}
	want := "opt/ opt/app/ opt/app/d/ opt/app/d/e/ opt/app/d/e/f opt/app/link opt/app/top"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("entries = %s\nwant      %s", got, want)
	}
	l := NewLayer(time.Unix(0, 0))
	os.Symlink("/etc/passwd", filepath.Join(src, "abs"))
	if err := l.AddTree(context.Background(), src, "x"); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("absolute symlink accepted into a layer: %v", err)
	}
}

// TestApplyReplacesOpenDirectories replaces, within one layer, directories
// Apply has already entered: later entries must follow the new tree, not a
// directory handle kept from before.
func TestApplyReplacesOpenDirectories(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rootfs")
	err := applyAll(t, dir, tarStream(t,
		ent{name: "a/x", body: "ax"},
		ent{name: "b/x", body: "bx"},
		ent{name: "c/d/x", body: "cdx"},
		ent{name: "a", typ: tar.TypeSymlink, link: "b"}, // dir a becomes a link to b
		ent{name: "a/y", body: "ay"},                    // lands in b
		ent{name: "c", body: "file"},                    // dir c becomes a file
		ent{name: "b/.wh.x", body: ""},
		ent{name: "b/x/z", body: "bxz"},               // b/x was whited out: now a directory
		ent{name: "a", typ: tar.TypeDir, mode: 0o755}, // the link becomes a directory again
		ent{name: "a/w", body: "aw"},
	))
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(dir, p)); return string(b) }
	for p, want := range map[string]string{"b/y": "ay", "c": "file", "b/x/z": "bxz", "a/w": "aw"} {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "a/y")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a/y exists in the new directory a: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "b/w")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a/w went through the old link into b: %v", err)
	}
}

// TestApplyManyDirectories crosses the open-directory limit.
func TestApplyManyDirectories(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rootfs")
	var ents []ent
	for i := range 3 * maxOpenDirs {
		ents = append(ents, ent{name: fmt.Sprintf("d%03d/e/f", i), body: fmt.Sprint(i)})
	}
	for i := range 3 * maxOpenDirs { // again, in a different order
		j := 3*maxOpenDirs - 1 - i
		ents = append(ents, ent{name: fmt.Sprintf("d%03d/g", j), body: fmt.Sprint(j)})
	}
	if err := applyAll(t, dir, tarStream(t, ents...)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 * maxOpenDirs {
		for _, p := range []string{fmt.Sprintf("d%03d/e/f", i), fmt.Sprintf("d%03d/g", i)} {
			if b, _ := os.ReadFile(filepath.Join(dir, p)); string(b) != fmt.Sprint(i) {
				t.Errorf("%s = %q, want %d", p, b, i)
			}
		}
	}
}
