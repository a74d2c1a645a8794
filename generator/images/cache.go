package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sealpack/sealpack/internal/ctxio"
)

// Cache is a content-addressed store of registry blobs (manifests, configs,
// layers) on disk, plus the last digest each tag resolved to, for --offline.
// Entries are written to a temporary file, checked against their digest and
// renamed into place, so a reader never sees a partial blob and concurrent
// builds may share one cache.
//
// A checked entry's modification time carries a stamp in its nanoseconds
// (checkedNanos of its digest). Any write to the file sets the time to the
// clock, which drops the stamp, so OpenChecked can tell an entry that is as
// it was checked from one written since, with one fstat and no hashing.
type Cache struct {
	Dir string
}

// DefaultCacheDir is $XDG_CACHE_HOME/sealpack, or ~/.cache/sealpack.
func DefaultCacheDir(getenv func(string) string) string {
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "sealpack")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".cache", "sealpack")
	}
	return filepath.Join(os.TempDir(), "sealpack-cache")
}

func (c *Cache) blobPath(digest string) (string, error) {
	alg, hx, ok := strings.Cut(digest, ":")
	if !ok || alg != "sha256" || len(hx) != 64 {
		return "", fmt.Errorf("unsupported digest %q: expected sha256:<64 hex digits>", digest)
	}
	if _, err := hex.DecodeString(hx); err != nil {
		return "", fmt.Errorf("invalid digest %q", digest)
	}
	return filepath.Join(c.Dir, "blobs", "sha256", hx), nil
}

// Has reports whether the blob is cached with the expected size (size < 0:
// any). Content was checked when it was stored; see OpenChecked.
func (c *Cache) Has(digest string, size int64) bool {
	p, err := c.blobPath(digest)
	if err != nil {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && (size < 0 || fi.Size() == size)
}

// Open opens a cached blob.
func (c *Cache) Open(digest string) (*os.File, error) {
	p, err := c.blobPath(digest)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// checkedNanos is the nanoseconds part of the modification time that marks
// a checked entry: from the digest, so one entry's stamp is not another's,
// and never 0, the nanoseconds a filesystem that keeps whole seconds gives
// every write.
func checkedNanos(digest string) int {
	_, hx, _ := strings.Cut(digest, ":")
	var v uint64
	if b, err := hex.DecodeString(hx[:min(len(hx), 16)]); err == nil {
		for _, c := range b {
			v = v<<8 | uint64(c)
		}
	}
	return 1 + int(v%999_999_999)
}

// stamp marks the file at path as holding digest's checked content.
func stamp(path, digest string, fi fs.FileInfo) error {
	return os.Chtimes(path, time.Time{}, time.Unix(fi.ModTime().Unix(), int64(checkedNanos(digest))))
}

// stamped reports whether fi is of a file that still carries the stamp of
// digest's checked content, with size bytes.
func stamped(fi fs.FileInfo, digest string, size int64) bool {
	return fi.Mode().IsRegular() && fi.Size() == size && fi.ModTime().Nanosecond() == checkedNanos(digest)
}

// OpenChecked opens a cached blob of size bytes; checked reports whether
// the file is as it was when its digest was checked on the way in (its
// stamp is intact), so its bytes need no hashing to be trusted. An entry
// written since, or stored by an older version, is opened unchecked.
func (c *Cache) OpenChecked(digest string, size int64) (f *os.File, checked bool, err error) {
	f, err = c.Open(digest)
	if err != nil {
		return nil, false, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, err
	}
	return f, stamped(fi, digest, size), nil
}

// MarkChecked stamps the entry f, opened by OpenChecked, after its bytes
// were read through a hash that matched digest; before is f's Stat from
// before that read. Nothing is stamped when the file changed meanwhile.
func (c *Cache) MarkChecked(f *os.File, digest string, before fs.FileInfo) error {
	after, err := f.Stat()
	if err != nil {
		return err
	}
	if !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		return fmt.Errorf("cached blob %s changed while it was read", digest)
	}
	return stamp(f.Name(), digest, after)
}

// ReadSmall reads a cached manifest or config, checking its digest.
func (c *Cache) ReadSmall(digest string) ([]byte, error) {
	p, err := c.blobPath(digest)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if got := sha256Digest(b); got != digest {
		_ = os.Remove(p) // corrupt: let the next fetch replace it
		return nil, fmt.Errorf("cache entry %s is corrupt (content is %s); removed", digest, got)
	}
	return b, nil
}

// Remove drops a blob, e.g. one that failed verification.
func (c *Cache) Remove(digest string) error {
	p, err := c.blobPath(digest)
	if err != nil {
		return err
	}
	return os.Remove(p)
}

// Put stores r's bytes as digest, verifying digest (and size when ≥ 0)
// before the entry appears. It returns the number of bytes written.
func (c *Cache) Put(ctx context.Context, digest string, size int64, r io.Reader) (int64, error) {
	return c.put(ctx, digest, size, r, false)
}

// putVerified is Put for a reader that checks digest itself: it fails the
// read that would return io.EOF unless the bytes hash to digest, as
// go-containerregistry's blob readers do (TestFetchCorruptBlob holds it to
// that). Put then need not hash the bytes a second time; it still checks the
// size, and that the read ended with io.EOF.
func (c *Cache) putVerified(ctx context.Context, digest string, size int64, r io.Reader) (int64, error) {
	return c.put(ctx, digest, size, r, true)
}

func (c *Cache) put(ctx context.Context, digest string, size int64, r io.Reader, verifiedByReader bool) (int64, error) {
	p, err := c.blobPath(digest)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	var h hash.Hash
	// Only a Writer: *os.File's ReadFrom would copy 32 KiB at a time.
	var dst io.Writer = struct{ io.Writer }{tmp}
	if !verifiedByReader {
		h = sha256.New()
		dst = io.MultiWriter(tmp, h)
	}
	// 1 MiB at a time: io.Copy's 32 KiB would mean a write per 32 KiB.
	// (io.CopyBuffer ends at the reader's io.EOF, which a verifying reader
	// only returns once the digest matched.)
	n, err := io.CopyBuffer(dst, ctxio.Reader(ctx, r), make([]byte, putBufferSize))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("fetch blob %s: %w", digest, err)
	}
	if h != nil {
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
			return n, fmt.Errorf("blob %s: received content with digest %s", digest, got)
		}
	}
	if size >= 0 && n != size {
		return n, fmt.Errorf("blob %s: received %d bytes, expected %d", digest, n, size)
	}
	// Unstamped (a filesystem that keeps no nanoseconds, or refuses
	// the time), the entry is only hashed again when it is used.
	if fi, err := os.Stat(tmp.Name()); err == nil {
		_ = stamp(tmp.Name(), digest, fi)
	}
	return n, os.Rename(tmp.Name(), p)
}

// putBufferSize is the buffer Put copies through.
const putBufferSize = 1 << 20

// PutBytes stores a small blob such as a manifest.
func (c *Cache) PutBytes(ctx context.Context, digest string, b []byte) error {
	if c.Has(digest, int64(len(b))) {
		return nil
	}
	_, err := c.Put(ctx, digest, int64(len(b)), strings.NewReader(string(b)))
	return err
}

// tagRecord remembers what a tag pointed to when last resolved online.
type tagRecord struct {
	Name      string `json:"name"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
}

func (c *Cache) tagPath(name string) string {
	return filepath.Join(c.Dir, "tags", sha256Digest([]byte(name))[len("sha256:"):]+".json")
}

// SaveTag records that the reference name resolved to digest.
func (c *Cache) SaveTag(name, digest, mediaType string) error {
	b, err := json.Marshal(tagRecord{Name: name, Digest: digest, MediaType: mediaType})
	if err != nil {
		return err
	}
	p := c.tagPath(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// LoadTag returns the digest name last resolved to, or fs.ErrNotExist.
func (c *Cache) LoadTag(name string) (tagRecord, error) {
	var rec tagRecord
	b, err := os.ReadFile(c.tagPath(name))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Name != name {
		return rec, fmt.Errorf("tag record for %s is corrupt: %w", name, fs.ErrNotExist)
	}
	return rec, nil
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}
