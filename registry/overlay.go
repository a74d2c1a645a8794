package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

const dirDriverName = "sealpack-dir"

// dirDriver stores distribution's layout in a local directory, for pushes in
// writable mode. distribution's own filesystem driver would do, but it is
// built on driver/base, which links OpenTelemetry exporters and gRPC into the
// stub (about +5 MB); this is the small part of it a registry needs.
type dirDriver struct {
	root string
}

var _ storagedriver.StorageDriver = (*dirDriver)(nil)

func (d *dirDriver) Name() string { return dirDriverName }

// full maps a driver path to the local file, refusing paths distribution
// would never produce (and so anything that could leave root).
func (d *dirDriver) full(p string) (string, error) {
	if p != "/" && !storagedriver.PathRegexp.MatchString(p) {
		return "", storagedriver.InvalidPathError{Path: p, DriverName: dirDriverName}
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", storagedriver.InvalidPathError{Path: p, DriverName: dirDriverName}
		}
	}
	return filepath.Join(d.root, filepath.FromSlash(p)), nil
}

// fsErr turns "does not exist" into the bare PathNotFoundError distribution
// type-switches on; other errors keep their cause.
func (d *dirDriver) fsErr(p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return storagedriver.PathNotFoundError{Path: p, DriverName: dirDriverName}
	}
	return storagedriver.Error{DriverName: dirDriverName, Detail: err}
}

func (d *dirDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	fp, err := d.full(p)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(fp)
	if err != nil {
		return nil, d.fsErr(p, err)
	}
	return b, nil
}

func (d *dirDriver) PutContent(ctx context.Context, p string, content []byte) error {
	fp, err := d.full(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
		return d.fsErr(p, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(fp), ".tmp-*")
	if err != nil {
		return d.fsErr(p, err)
	}
	_, werr := tmp.Write(content)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return d.fsErr(p, err)
	}
	if err := os.Rename(tmp.Name(), fp); err != nil {
		os.Remove(tmp.Name())
		return d.fsErr(p, err)
	}
	return nil
}

func (d *dirDriver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	fp, err := d.full(p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(fp)
	if err != nil {
		return nil, d.fsErr(p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, d.fsErr(p, err)
	}
	if offset < 0 || offset > st.Size() {
		f.Close()
		return nil, storagedriver.InvalidOffsetError{Path: p, Offset: offset, DriverName: dirDriverName}
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, d.fsErr(p, err)
	}
	return f, nil
}

func (d *dirDriver) Writer(ctx context.Context, p string, appendTo bool) (storagedriver.FileWriter, error) {
	fp, err := d.full(p)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
		return nil, d.fsErr(p, err)
	}
	flags := os.O_WRONLY | os.O_CREATE
	if !appendTo {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(fp, flags, 0o644)
	if err != nil {
		return nil, d.fsErr(p, err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, d.fsErr(p, err)
	}
	return &dirWriter{f: f, bw: bufio.NewWriterSize(f, 1<<20), size: size}, nil
}

func (d *dirDriver) Stat(ctx context.Context, p string) (storagedriver.FileInfo, error) {
	fp, err := d.full(p)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(fp)
	if err != nil {
		return nil, d.fsErr(p, err)
	}
	size := st.Size()
	if st.IsDir() {
		size = 0
	}
	return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: p, Size: size, ModTime: st.ModTime(), IsDir: st.IsDir()}}, nil
}

func (d *dirDriver) List(ctx context.Context, p string) ([]string, error) {
	fp, err := d.full(p)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(fp)
	if err != nil {
		return nil, d.fsErr(p, err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		out = append(out, strings.TrimSuffix(p, "/")+"/"+e.Name())
	}
	return out, nil
}

func (d *dirDriver) Move(ctx context.Context, from, to string) error {
	src, err := d.full(from)
	if err != nil {
		return err
	}
	dst, err := d.full(to)
	if err != nil {
		return err
	}
	if _, err := os.Stat(src); err != nil {
		return d.fsErr(from, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return d.fsErr(to, err)
	}
	if err := os.Rename(src, dst); err != nil {
		return d.fsErr(from, err)
	}
	return nil
}

func (d *dirDriver) Delete(ctx context.Context, p string) error {
	fp, err := d.full(p)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(fp); err != nil {
		return d.fsErr(p, err)
	}
	if err := os.RemoveAll(fp); err != nil {
		return d.fsErr(p, err)
	}
	return nil
}

func (d *dirDriver) RedirectURL(*http.Request, string) (string, error) { return "", nil }

func (d *dirDriver) Walk(ctx context.Context, p string, fn storagedriver.WalkFn, options ...func(*storagedriver.WalkOptions)) error {
	return storagedriver.WalkFallback(ctx, d, p, fn, options...)
}

// dirWriter buffers writes to an upload file; Commit flushes and syncs.
type dirWriter struct {
	f                 *os.File
	bw                *bufio.Writer
	size              int64
	closed, committed bool
}

func (w *dirWriter) Write(p []byte) (int, error) {
	if w.closed || w.committed {
		return 0, fmt.Errorf("write to a closed or committed upload")
	}
	n, err := w.bw.Write(p)
	w.size += int64(n)
	return n, err
}

func (w *dirWriter) Size() int64 { return w.size }

func (w *dirWriter) Close() error {
	if w.closed {
		return nil // distribution closes a writer it has cancelled
	}
	w.closed = true
	ferr := w.bw.Flush()
	return errors.Join(ferr, w.f.Close())
}

func (w *dirWriter) Cancel(ctx context.Context) error {
	if !w.closed {
		w.closed = true
		w.f.Close()
	}
	return os.Remove(w.f.Name())
}

func (w *dirWriter) Commit(ctx context.Context) error {
	if w.closed || w.committed {
		return fmt.Errorf("commit of a closed or committed upload")
	}
	w.committed = true
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.f.Sync()
}

// overlayDriver puts a writable driver over the read-only bundle: writes go
// to upper, reads try upper first and fall through to the bundle, listings
// are the union of both.
type overlayDriver struct {
	upper storagedriver.StorageDriver
	lower storagedriver.StorageDriver
}

var _ storagedriver.StorageDriver = (*overlayDriver)(nil)

func isNotFound(err error) bool {
	_, ok := err.(storagedriver.PathNotFoundError)
	return ok
}

func (o *overlayDriver) Name() string { return "sealpack-overlay" }

func (o *overlayDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	b, err := o.upper.GetContent(ctx, p)
	if isNotFound(err) {
		return o.lower.GetContent(ctx, p)
	}
	return b, err
}

func (o *overlayDriver) PutContent(ctx context.Context, p string, content []byte) error {
	return o.upper.PutContent(ctx, p, content)
}

func (o *overlayDriver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	r, err := o.upper.Reader(ctx, p, offset)
	if isNotFound(err) {
		return o.lower.Reader(ctx, p, offset)
	}
	return r, err
}

func (o *overlayDriver) Writer(ctx context.Context, p string, appendTo bool) (storagedriver.FileWriter, error) {
	return o.upper.Writer(ctx, p, appendTo)
}

func (o *overlayDriver) Stat(ctx context.Context, p string) (storagedriver.FileInfo, error) {
	fi, err := o.upper.Stat(ctx, p)
	if isNotFound(err) {
		return o.lower.Stat(ctx, p)
	}
	return fi, err
}

func (o *overlayDriver) List(ctx context.Context, p string) ([]string, error) {
	up, uerr := o.upper.List(ctx, p)
	low, lerr := o.lower.List(ctx, p)
	switch {
	case uerr != nil && !isNotFound(uerr):
		return nil, uerr
	case lerr != nil && !isNotFound(lerr):
		return nil, lerr
	case uerr != nil && lerr != nil:
		return nil, uerr
	}
	seen := make(map[string]bool, len(up)+len(low))
	out := make([]string, 0, len(up)+len(low))
	for _, c := range append(up, low...) {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (o *overlayDriver) Move(ctx context.Context, from, to string) error {
	return o.upper.Move(ctx, from, to)
}

// Delete removes what was pushed; content from the bundle cannot be deleted.
func (o *overlayDriver) Delete(ctx context.Context, p string) error {
	err := o.upper.Delete(ctx, p)
	if isNotFound(err) {
		if _, lerr := o.lower.Stat(ctx, p); lerr == nil {
			return storagedriver.ErrUnsupportedMethod{DriverName: o.Name()}
		}
	}
	return err
}

func (o *overlayDriver) RedirectURL(*http.Request, string) (string, error) { return "", nil }

func (o *overlayDriver) Walk(ctx context.Context, p string, fn storagedriver.WalkFn, options ...func(*storagedriver.WalkOptions)) error {
	return storagedriver.WalkFallback(ctx, o, p, fn, options...)
}
