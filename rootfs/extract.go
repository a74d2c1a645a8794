// Package rootfs writes rootfs layers as reproducible tar streams and applies
// them to a directory safely: no entry may land, or point, outside it.
package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// OCI whiteouts: a ".wh.NAME" entry deletes NAME from lower layers, and
// ".wh..wh..opq" in a directory hides everything lower layers put there.
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// UnsafeEntryError names a tar entry that would escape the target directory.
type UnsafeEntryError struct {
	Layer, Entry, Reason string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("%s: unsafe entry %q: %s", e.Layer, e.Entry, e.Reason)
}

// Apply unpacks one layer's tar stream into root, honouring whiteouts. layer
// names the stream in errors. Every path goes through os.Root, so even a
// symlink planted by an earlier entry cannot redirect a write outside.
func Apply(ctx context.Context, root *os.Root, layer string, r io.Reader) error {
	a := &applier{root: root, layer: layer, dirs: map[string]*os.Root{}}
	defer a.close()
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: read tar: %w", layer, err)
		}
		name, err := cleanName(h.Name)
		if err != nil {
			return &UnsafeEntryError{Layer: layer, Entry: h.Name, Reason: err.Error()}
		}
		if name == "." {
			continue
		}
		err = a.entry(name, h, tr)
		a.closeStale()
		if err != nil {
			return err
		}
	}
}

// cleanName turns a tar entry name into a clean relative slash path, refusing
// absolute paths and any ".." component rather than silently rewriting them.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", errors.New(`".." path component`)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", errors.New("NUL in name")
	}
	return path.Clean(name), nil
}

// maxOpenDirs bounds the directory handles an applier keeps open.
const maxOpenDirs = 64

// copyBufferSize is the write size for file contents: large writes keep the
// syscall count per byte low (io.Copy would write 32 KiB at a time).
const copyBufferSize = 1 << 20

// applier unpacks one layer. It keeps the directories it has made or entered
// open as roots of their own, so an entry costs a few syscalls on its parent
// instead of a walk from the top for every operation. Those handles were
// opened through root and act only inside themselves, so they cannot reach
// outside it either; any removal that could change what a directory path
// names drops them all.
type applier struct {
	root  *os.Root
	layer string
	dirs  map[string]*os.Root // clean slash path → open directory
	stale []*os.Root          // forgotten, closed once the current entry is done
	buf   []byte
}

// forget drops every cached directory handle. The handles stay usable until
// the current entry is done: its parent may be one of them.
func (a *applier) forget() {
	for _, d := range a.dirs {
		a.stale = append(a.stale, d)
	}
	clear(a.dirs)
}

func (a *applier) closeStale() {
	for _, d := range a.stale {
		d.Close()
	}
	a.stale = a.stale[:0]
}

func (a *applier) close() {
	a.forget()
	a.closeStale()
}

// dir returns the directory dir (a clean relative path), creating it and its
// parents as needed.
func (a *applier) dir(dir string) (*os.Root, error) {
	if dir == "." {
		return a.root, nil
	}
	if d, ok := a.dirs[dir]; ok {
		return d, nil
	}
	if err := a.root.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d, err := a.root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if len(a.dirs) >= maxOpenDirs {
		a.forget()
	}
	a.dirs[dir] = d
	return d, nil
}

func (a *applier) entry(name string, h *tar.Header, r io.Reader) error {
	dir, base := path.Split(name)
	dir = path.Clean("./" + dir)
	layer := a.layer
	fail := func(op string, err error) error { return fmt.Errorf("%s: %s %s: %w", layer, op, name, err) }

	if base == opaqueWhiteout {
		a.forget()
		return clearDir(a.root, dir)
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		a.forget()
		target := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
		if err := a.root.RemoveAll(target); err != nil {
			return fail("apply whiteout", err)
		}
		return nil
	}
	parent, err := a.dir(dir)
	if err != nil {
		return fail("create parent of", err)
	}
	mode := fs.FileMode(h.Mode).Perm()
	if h.Mode&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}

	switch h.Typeflag {
	case tar.TypeDir:
		err := parent.Mkdir(base, 0o700)
		if errors.Is(err, fs.ErrExist) {
			if fi, lerr := parent.Lstat(base); lerr == nil && !fi.IsDir() {
				a.forget() // base may be a symlink to a directory we hold open
				if err := parent.Remove(base); err != nil {
					return fail("replace", err)
				}
				err = parent.Mkdir(base, 0o700)
			} else {
				err = nil
			}
		}
		if err != nil {
			return fail("create directory", err)
		}
		if err := parent.Chmod(base, mode); err != nil {
			return fail("chmod", err)
		}
	case tar.TypeReg:
		if err := a.writeFile(parent, base, mode, r); err != nil {
			return fail("write", err)
		}
	case tar.TypeSymlink:
		if err := checkLinkTarget(name, h.Linkname); err != nil {
			return &UnsafeEntryError{Layer: layer, Entry: name, Reason: err.Error()}
		}
		if err := a.removeExisting(parent, base); err != nil {
			return fail("replace", err)
		}
		if err := parent.Symlink(h.Linkname, base); err != nil {
			return fail("create symlink", err)
		}
		return nil // a symlink's times and mode are not worth following it for
	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
		if err != nil {
			return &UnsafeEntryError{Layer: layer, Entry: name, Reason: "hard link target: " + err.Error()}
		}
		if err := a.removeExisting(parent, base); err != nil {
			return fail("replace", err)
		}
		if err := a.root.Link(target, name); err != nil {
			return fail("create hard link", err)
		}
		return nil
	default:
		return fmt.Errorf("%s: %s: unsupported tar entry type %q", layer, name, h.Typeflag)
	}
	if err := parent.Chtimes(base, h.ModTime, h.ModTime); err != nil {
		return fail("set times of", err)
	}
	return nil
}

// writeFile creates base in parent with r's content. It tries an exclusive
// create first and clears the way only when something is there already.
func (a *applier) writeFile(parent *os.Root, base string, mode fs.FileMode, r io.Reader) error {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err := parent.OpenFile(base, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		if err := a.removeExisting(parent, base); err != nil {
			return err
		}
		f, err = parent.OpenFile(base, flags, 0o600)
	}
	if err != nil {
		return err
	}
	if a.buf == nil {
		a.buf = make([]byte, copyBufferSize)
	}
	// Hide the file's ReadFrom, which would copy 32 KiB at a time.
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, r, a.buf)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeExisting clears the way for a new entry; a directory stays only when
// the entry replacing it is a directory too (handled by the caller).
func (a *applier) removeExisting(parent *os.Root, base string) error {
	fi, err := parent.Lstat(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		a.forget() // a directory, or a symlink to one, we may hold open
	}
	if fi.IsDir() {
		return parent.RemoveAll(base)
	}
	return parent.Remove(base)
}

// checkLinkTarget refuses symlinks that would point outside the tree they are
// unpacked into: absolute targets (they name the host's files once unpacked
// anywhere but /) and relative ones that climb above the root.
func checkLinkTarget(name, target string) error {
	if target == "" {
		return errors.New("empty symlink target")
	}
	if strings.HasPrefix(target, "/") {
		return fmt.Errorf("symlink to absolute path %q leaves the directory", target)
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("symlink target %q escapes the directory", target)
	}
	return nil
}

func clearDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opaque whiteout in %s: %w", dir, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("opaque whiteout in %s: %w", dir, err)
	}
	for _, n := range names {
		if err := root.RemoveAll(path.Join(dir, n)); err != nil {
			return fmt.Errorf("opaque whiteout in %s: %w", dir, err)
		}
	}
	return nil
}

// ExtractAtomic fills a new temporary directory beside dir by calling fill,
// then renames it to dir, so dir is either absent or complete. dir may exist
// only as an empty directory.
func ExtractAtomic(dir string, fill func(root *os.Root) error) error {
	dir = filepath.Clean(dir)
	if entries, err := os.ReadDir(dir); err == nil {
		if len(entries) > 0 {
			return fmt.Errorf("extract to %s: directory exists and is not empty", dir)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("extract to %s: %w", dir, err)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("extract to %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".extract-*")
	if err != nil {
		return fmt.Errorf("extract to %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("extract to %s: %w", dir, err)
	}
	err = fill(root)
	root.Close()
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("extract to %s: %w", dir, err)
	}
	os.Remove(dir) // an empty directory in the way; rename reports anything else
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("extract to %s: %w", dir, err)
	}
	ok = true
	return nil
}
