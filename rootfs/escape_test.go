package rootfs

import (
	"archive/tar"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// escapeCase is a layer that tries to make the unpacked tree reach outside
// itself through symlinks that pass a lexical check. Unpacked into
// BASE/x/y/rootfs, each escape would land on BASE/etc/shadow or
// BASE/x/y/etc/shadow, which plantSentinels fills with sentinel.
type escapeCase struct {
	name    string
	entries []ent
}

const sentinel = "SECRET outside the rootfs"

func escapeCases() []escapeCase {
	return []escapeCase{
		// d/d/d is the root itself, so three ".." climb three levels above it.
		{"link through a parent link to .", []ent{
			{name: "d", typ: tar.TypeSymlink, link: "."},
			{name: "d/d/d/shadow", typ: tar.TypeSymlink, link: "../../../etc/shadow"},
		}},
		// x/.. is the root's parent, not the root: ".." after a link is physical.
		{"dot-dot after a link to .", []ent{
			{name: "x", typ: tar.TypeSymlink, link: "."},
			{name: "shadow", typ: tar.TypeSymlink, link: "x/../etc/shadow"},
		}},
		// y does not exist when the link is made; a later entry decides what y/.. is.
		{"dot-dot after a name made a link later", []ent{
			{name: "shadow", typ: tar.TypeSymlink, link: "y/../etc/shadow"},
			{name: "y", typ: tar.TypeSymlink, link: "."},
		}},
		// A hard link to a symlink is a second symlink with the same target,
		// somewhere its target means something else.
		{"hard link to a deep symlink", []ent{
			{name: "a/b/c/", typ: tar.TypeDir, mode: 0o755},
			{name: "a/b/c/l", typ: tar.TypeSymlink, link: "../../../etc/shadow"},
			{name: "shadow", typ: tar.TypeLink, link: "a/b/c/l"},
		}},
		// The escaping link is then written through.
		{"write through an escaping link", []ent{
			{name: "d", typ: tar.TypeSymlink, link: "."},
			{name: "d/d/d/out", typ: tar.TypeSymlink, link: "../../../made"},
			{name: "out/file", body: "planted"},
		}},
	}
}

// plantSentinels makes base/etc/shadow and base/x/y/etc/shadow and returns
// the directory to unpack into (base/x/y/rootfs).
func plantSentinels(t *testing.T, base string) string {
	t.Helper()
	for _, d := range []string{filepath.Join(base, "etc"), filepath.Join(base, "x", "y", "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "shadow"), []byte(sentinel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(base, "x", "y", "rootfs")
}

// assertContained fails if anything under base but outside dir was created,
// or if any path in dir leads outside it.
func assertContained(t *testing.T, base, dir string) {
	t.Helper()
	filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if p == dir {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		switch rel {
		case ".", "etc", "etc/shadow", "x", "x/y", "x/y/etc", "x/y/etc/shadow":
			return nil
		}
		t.Errorf("created outside the rootfs: %s", rel)
		return nil
	})
	realDir, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return // refused: nothing was unpacked
	}
	if err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && string(b) == sentinel {
			t.Errorf("%s reads a file outside the rootfs", p)
		}
		if r, err := filepath.EvalSymlinks(p); err == nil && r != realDir && !strings.HasPrefix(r, realDir+"/") {
			t.Errorf("%s resolves to %s, outside the rootfs", p, r)
		}
		return nil
	})
}

func TestApplyRefusesEscapesThroughLinks(t *testing.T) {
	for _, tc := range escapeCases() {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir := plantSentinels(t, base)
			err := applyAll(t, dir, tarStream(t, tc.entries...))
			var unsafe *UnsafeEntryError
			if !errors.As(err, &unsafe) {
				t.Errorf("error = %v, want an unsafe entry refused", err)
			}
			assertContained(t, base, dir)
		})
	}
}

func TestApplyKeepsLinksThatStayInside(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rootfs")
	err := applyAll(t, dir, tarStream(t,
		ent{name: "usr/lib/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "usr/bin/tool", body: "tool"},
		ent{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		// Written through lib, really in usr/lib: two levels deep, not one.
		ent{name: "lib/tool", typ: tar.TypeSymlink, link: "../../usr/bin/tool"},
		ent{name: "lib/same", typ: tar.TypeSymlink, link: "./../bin/./tool"},
		ent{name: "usr/share/hard", typ: tar.TypeLink, link: "usr/lib/same"},
	))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"usr/lib/tool", "lib/same", "usr/share/hard"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != "tool" {
			t.Errorf("%s = %q, %v; want the tool", p, b, err)
		}
	}
}

func TestApplyStripSetID(t *testing.T) {
	for _, strip := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "rootfs")
		var opts []Option
		if strip {
			opts = append(opts, StripSetID())
		}
		err := ExtractAtomic(dir, func(root *os.Root) error {
			return Apply(t.Context(), root, "layer", tarStream(t,
				ent{name: "bin/su", body: "x", mode: 0o4755},
				ent{name: "bin/wall", body: "x", mode: 0o2755},
				ent{name: "shared/", typ: tar.TypeDir, mode: 0o3775},
			), opts...)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]fs.FileMode{
			"bin/su":   0o755 | fs.ModeSetuid,
			"bin/wall": 0o755 | fs.ModeSetgid,
			"shared":   fs.ModeDir | 0o775 | fs.ModeSetgid | fs.ModeSticky,
		}
		if strip {
			want = map[string]fs.FileMode{"bin/su": 0o755, "bin/wall": 0o755, "shared": fs.ModeDir | 0o775 | fs.ModeSticky}
		}
		for p, m := range want {
			fi, err := os.Lstat(filepath.Join(dir, p))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != m {
				t.Errorf("strip=%v: %s mode = %v, want %v", strip, p, fi.Mode(), m)
			}
		}
	}
}
