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

// Option changes how Apply unpacks.
type Option func(*applier)

// StripSetID clears setuid and setgid bits from what is unpacked. By default
// they are kept: a rootfs unpacked on a host is the cluster image as its
// author built it.
func StripSetID() Option { return func(a *applier) { a.stripSetID = true } }

// Apply unpacks one layer's tar stream into root, honouring whiteouts. layer
// names the stream in errors. Every path goes through os.Root, so even a
// symlink planted by an earlier entry cannot redirect a write outside; and
// no symlink is made that would lead outside root once unpacked (os.Root
// creates links without looking at their targets). root must hold only what
// Apply put there: the check of a new link trusts the links already in it.
func Apply(ctx context.Context, root *os.Root, layer string, r io.Reader, opts ...Option) error {
	a := &applier{root: root, layer: layer, dirs: map[string]*os.Root{}}
	for _, o := range opts {
		o(a)
	}
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

	stripSetID bool
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
	if h.Mode&0o4000 != 0 && !a.stripSetID {
		mode |= fs.ModeSetuid
	}
	if h.Mode&0o2000 != 0 && !a.stripSetID {
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
		if err := a.checkLink(dir, h.Linkname); err != nil {
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
		// os.Root links to a symlink itself, not to what it names: the new
		// name is then a symlink of its own, to be checked from where it is.
		if fi, err := a.root.Lstat(target); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			to, err := a.root.Readlink(target)
			if err != nil {
				return fail("read hard link target", err)
			}
			if err := a.checkLink(dir, to); err != nil {
				return &UnsafeEntryError{Layer: layer, Entry: name, Reason: "hard link to symlink " + target + ": " + err.Error()}
			}
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

// maxLinkFollows bounds the symlinks followed to find a directory's real
// place, as the kernel's ELOOP limit does.
const maxLinkFollows = 40

// checkLink refuses a symlink in dir (a clean relative path, which exists)
// whose target would lead outside root. A lexical check of dir/target is not
// enough: dir may run through links (with "d -> .", d/d/d is the root, and
// "../../../x" from there leaves it), and ".." after a link climbs from the
// link's target, not from where the link is. So targets must be some ".."
// then names, never ".." after a name (what that name becomes, a later entry
// decides), and the ".." are counted against dir's real depth. The names
// after them can only be directories, files or links checked the same way,
// and a link's real place never changes (nothing is renamed), so every link
// in root stays inside it.
func (a *applier) checkLink(dir, target string) error {
	up, err := linkTargetUps(target)
	if err != nil || up == 0 {
		return err
	}
	real, err := a.realPath(dir)
	if err != nil {
		return fmt.Errorf("resolve the link's directory %s: %w", dir, err)
	}
	if up > len(real) {
		where := "the top"
		if len(real) > 0 {
			where = strings.Join(real, "/")
		}
		return fmt.Errorf("symlink target %q escapes the directory (the link is really in %s)", target, where)
	}
	return nil
}

// checkLinkTarget is checkLink for a tree with no links on the way to name
// (a layer being written).
func checkLinkTarget(name, target string) error {
	up, err := linkTargetUps(target)
	if err != nil {
		return err
	}
	depth := 0
	if dir := path.Dir(name); dir != "." {
		depth = strings.Count(dir, "/") + 1
	}
	if up > depth {
		return fmt.Errorf("symlink target %q escapes the directory", target)
	}
	return nil
}

// linkTargetUps checks a symlink target's shape (relative, some ".." then
// names) and returns how many levels it climbs.
func linkTargetUps(target string) (int, error) {
	if target == "" {
		return 0, errors.New("empty symlink target")
	}
	if strings.HasPrefix(target, "/") {
		return 0, fmt.Errorf("symlink to absolute path %q leaves the directory", target)
	}
	if strings.ContainsRune(target, 0) {
		return 0, errors.New("NUL in symlink target")
	}
	up, named := 0, false
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			if named {
				return 0, fmt.Errorf("symlink target %q has \"..\" after a name: where it leads depends on what that name becomes", target)
			}
			up++
		default:
			named = true
		}
	}
	return up, nil
}

// realPath returns the components of where the existing path p (clean,
// relative) really is inside root, following its symlinks.
func (a *applier) realPath(p string) ([]string, error) {
	var real []string
	todo := strings.Split(p, "/")
	follows := 0
	for len(todo) > 0 {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if len(real) == 0 {
				return nil, errors.New("a symlink on the way leads above the top")
			}
			real = real[:len(real)-1]
			continue
		}
		next := path.Join(append(real, part)...)
		fi, err := a.root.Lstat(next)
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			real = append(real, part)
			continue
		}
		if follows++; follows > maxLinkFollows {
			return nil, fmt.Errorf("more than %d symlinks on the way", maxLinkFollows)
		}
		to, err := a.root.Readlink(next)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(to, "/") {
			return nil, fmt.Errorf("symlink %s is absolute", next)
		}
		todo = append(strings.Split(to, "/"), todo...)
	}
	return real, nil
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
