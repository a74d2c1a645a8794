package rootfs

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"time"
)

// Entry is one path of a layer being built, taken from a file on the build machine.
type Entry struct {
	Path     string      // in the rootfs: clean, relative, slash-separated
	Source   string      // file on the build machine (regular files)
	Mode     fs.FileMode // type bits and permissions
	Size     int64
	Linkname string // symlink target
}

// Layer collects the entries of one layer. Writing it is reproducible:
// entries sorted by path, owner 0:0, one fixed modification time.
type Layer struct {
	entries map[string]Entry
	// ModTime is written on every entry (SOURCE_DATE_EPOCH or the Unix epoch).
	ModTime time.Time
}

// NewLayer starts an empty layer.
func NewLayer(modTime time.Time) *Layer {
	return &Layer{entries: map[string]Entry{}, ModTime: modTime}
}

// Len is the number of entries.
func (l *Layer) Len() int { return len(l.entries) }

// Add puts an entry in the layer, replacing an earlier one at the same path,
// and adds the parent directories it needs.
func (l *Layer) Add(e Entry) error {
	p, err := cleanName(e.Path)
	if err != nil || p == "." {
		return fmt.Errorf("layer path %q: invalid", e.Path)
	}
	e.Path = p
	if e.Mode&fs.ModeSymlink != 0 {
		if err := checkLinkTarget(p, e.Linkname); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		if _, ok := l.entries[dir]; ok {
			break
		}
		l.entries[dir] = Entry{Path: dir, Mode: fs.ModeDir | 0o755}
	}
	l.entries[p] = e
	return nil
}

// AddTree adds the file or directory at src (on the build machine) at dest
// in the layer: a directory's contents go under dest. Symlinks are kept as
// symlinks; devices, sockets and pipes are refused.
func (l *Layer) AddTree(ctx context.Context, src, dest string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return l.addFile(src, dest, fi)
	}
	if dest != "." && dest != "" {
		if err := l.Add(Entry{Path: dest, Source: src, Mode: fs.ModeDir | fi.Mode().Perm()}); err != nil {
			return err
		}
	}
	return walk(ctx, src, func(rel string, fi fs.FileInfo) error {
		return l.addFile(path.Join(src, rel), path.Join(dest, rel), fi)
	})
}

func walk(ctx context.Context, dir string, fn func(rel string, fi fs.FileInfo) error) error {
	return fs.WalkDir(os.DirFS(dir), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", dir, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("stat %s/%s: %w", dir, rel, err)
		}
		return fn(rel, fi)
	})
}

func (l *Layer) addFile(src, dest string, fi fs.FileInfo) error {
	e := Entry{Path: dest, Source: src, Mode: fi.Mode(), Size: fi.Size()}
	switch {
	case fi.Mode().IsRegular(), fi.IsDir():
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		e.Linkname = target
	default:
		return fmt.Errorf("%s: unsupported file type %s", src, fi.Mode().Type())
	}
	if err := l.Add(e); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

// WriteTar writes the layer as a tar stream. Files are read as they are
// written; a file whose size changed since it was added is an error, so the
// layer never records one size and holds another.
func (l *Layer) WriteTar(ctx context.Context, w io.Writer) error {
	paths := make([]string, 0, len(l.entries))
	for p := range l.entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	var buf []byte
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := l.entries[p]
		h := &tar.Header{Name: p, Mode: int64(e.Mode.Perm()) | modeBits(e.Mode), ModTime: l.ModTime}
		switch {
		case e.Mode.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, p+"/"
		case e.Mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Linkname
		default:
			h.Typeflag, h.Size = tar.TypeReg, e.Size
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("write tar header %s: %w", p, err)
		}
		if h.Typeflag == tar.TypeReg && e.Size > 0 {
			if buf == nil {
				buf = make([]byte, copyBufferSize)
			}
			if err := copyFile(tw, e, buf); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finish tar: %w", err)
	}
	return nil
}

// copyFile copies e's file into w through buf: large reads and writes keep
// the syscall and pipe hand-off count per byte low.
func copyFile(w io.Writer, e Entry, buf []byte) error {
	f, err := os.Open(e.Source)
	if err != nil {
		return fmt.Errorf("read %s: %w", e.Source, err)
	}
	defer f.Close()
	n, err := io.CopyBuffer(w, io.LimitReader(f, e.Size), buf)
	if err != nil {
		return fmt.Errorf("read %s: %w", e.Source, err)
	}
	if n != e.Size {
		return fmt.Errorf("read %s: file shrank from %d to %d bytes during the build", e.Source, e.Size, n)
	}
	return nil
}

func modeBits(m fs.FileMode) int64 {
	var b int64
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// Chmod sets the mode of every copied entry (not the parent directories
// made for them, nor links) to mode, given in octal as COPY --chmod takes it.
func (l *Layer) Chmod(mode string) error {
	var m uint32
	if _, err := fmt.Sscanf(mode, "%o", &m); err != nil || m > 0o7777 {
		return fmt.Errorf("invalid mode %q: want octal like 0755", mode)
	}
	l.eachCopied(func(old fs.FileMode) fs.FileMode {
		mode := old.Type() | fs.FileMode(m).Perm()
		if m&0o4000 != 0 {
			mode |= fs.ModeSetuid
		}
		if m&0o2000 != 0 {
			mode |= fs.ModeSetgid
		}
		if m&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
		return mode
	})
	return nil
}

// Restrict clears the permission bits in mask from every copied entry (not
// the parent directories made for them, nor links).
func (l *Layer) Restrict(mask fs.FileMode) {
	l.eachCopied(func(old fs.FileMode) fs.FileMode { return old &^ mask.Perm() })
}

func (l *Layer) eachCopied(change func(fs.FileMode) fs.FileMode) {
	for p, e := range l.entries {
		if e.Source == "" || e.Mode&fs.ModeSymlink != 0 {
			continue
		}
		e.Mode = change(e.Mode)
		l.entries[p] = e
	}
}
