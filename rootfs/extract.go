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
		if err := applyEntry(root, layer, name, h, tr); err != nil {
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

func applyEntry(root *os.Root, layer, name string, h *tar.Header, r io.Reader) error {
	dir, base := path.Split(name)
	dir = path.Clean("./" + dir)
	fail := func(op string, err error) error { return fmt.Errorf("%s: %s %s: %w", layer, op, name, err) }

	if base == opaqueWhiteout {
		return clearDir(root, dir)
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		target := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
		if err := root.RemoveAll(target); err != nil {
			return fail("apply whiteout", err)
		}
		return nil
	}
	if dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fail("create parent of", err)
		}
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
		if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
			if err := root.Remove(name); err != nil {
				return fail("replace", err)
			}
		}
		if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fail("create directory", err)
		}
		if err := root.Chmod(name, mode); err != nil {
			return fail("chmod", err)
		}
	case tar.TypeReg:
		if err := removeExisting(root, name); err != nil {
			return fail("replace", err)
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fail("create", err)
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail("write", err)
		}
		if err := root.Chmod(name, mode); err != nil {
			return fail("chmod", err)
		}
	case tar.TypeSymlink:
		if err := checkLinkTarget(name, h.Linkname); err != nil {
			return &UnsafeEntryError{Layer: layer, Entry: name, Reason: err.Error()}
		}
		if err := removeExisting(root, name); err != nil {
			return fail("replace", err)
		}
		if err := root.Symlink(h.Linkname, name); err != nil {
			return fail("create symlink", err)
		}
		return nil // a symlink's times and mode are not worth following it for
	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
		if err != nil {
			return &UnsafeEntryError{Layer: layer, Entry: name, Reason: "hard link target: " + err.Error()}
		}
		if err := removeExisting(root, name); err != nil {
			return fail("replace", err)
		}
		if err := root.Link(target, name); err != nil {
			return fail("create hard link", err)
		}
		return nil
	default:
		return fmt.Errorf("%s: %s: unsupported tar entry type %q", layer, name, h.Typeflag)
	}
	if err := root.Chtimes(name, h.ModTime, h.ModTime); err != nil {
		return fail("set times of", err)
	}
	return nil
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

// removeExisting clears the way for a new entry; a directory stays only when
// the entry replacing it is a directory too (handled by the caller).
func removeExisting(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return root.RemoveAll(name)
	}
	return root.Remove(name)
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
