package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealpack/sealpack/internal/ctxio"
)

// Cache is a content-addressed store of registry blobs (manifests, configs,
// layers) on disk, plus the last digest each tag resolved to, for --offline.
// Entries are written to a temporary file, checked against their digest and
// renamed into place, so a reader never sees a partial blob and concurrent
// builds may share one cache.
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
// any). Content is verified when it is read into a bundle.
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
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxio.Reader(ctx, r))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("fetch blob %s: %w", digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, fmt.Errorf("blob %s: received content with digest %s", digest, got)
	}
	if size >= 0 && n != size {
		return n, fmt.Errorf("blob %s: received %d bytes, expected %d", digest, n, size)
	}
	return n, os.Rename(tmp.Name(), p)
}

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
