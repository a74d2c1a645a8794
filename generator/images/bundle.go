package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sealpack/sealpack/bundle"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// AddToBundle copies the pulled images from the cache into the bundle, in
// name order so that the same inputs give the same bundle. Blobs are stored
// once. A cache entry that is as it was when its digest was checked on the
// way in is copied file to file without hashing it again; any other blob
// goes through the bundle writer's digest check, which is where a corrupt
// cache entry is caught (and removed, so a rerun refetches).
func AddToBundle(ctx context.Context, w *bundle.Writer, c *Cache, pulled []Pulled) error {
	ps := append([]Pulled(nil), pulled...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Ref.Name < ps[j].Ref.Name })
	for _, p := range ps {
		if err := AddImage(ctx, w, c, p); err != nil {
			return err
		}
	}
	return nil
}

// BlobSource holds an image's manifest and blobs: the fetch cache, a
// stored cluster image's blobs, or a local file (gen --image oci:DIR).
type BlobSource interface {
	// OpenBlob opens a blob; the bundle writer checks its digest.
	OpenBlob(ctx context.Context, digest string) (io.ReadCloser, error)
	// Corrupt is the error to report when the blob's content did not
	// match digest (err says how); a cache drops the entry.
	Corrupt(digest string, err error) error
}

var _ BlobSource = (*Cache)(nil)

// checkedSource is a BlobSource that can tell a blob whose file is as it
// was when its digest was checked (see Cache.OpenChecked), which the bundle
// writer may copy without hashing (bundle.Writer.AddVerifiedFile).
type checkedSource interface {
	BlobSource
	OpenChecked(digest string, size int64) (f *os.File, checked bool, err error)
	MarkChecked(f *os.File, digest string, before fs.FileInfo) error
}

var _ checkedSource = (*Cache)(nil)

// OpenBlob opens a cached blob.
func (c *Cache) OpenBlob(_ context.Context, digest string) (io.ReadCloser, error) {
	return c.Open(digest)
}

// Corrupt removes the corrupt entry, so that a rerun fetches it again.
func (c *Cache) Corrupt(digest string, err error) error {
	_ = c.Remove(digest)
	return fmt.Errorf("cached blob %s is corrupt and was removed; build again to fetch it: %w", digest, err)
}

// AddImage copies one pulled image's blobs, then its manifest, from the
// cache (or p.Source) into the bundle, and records it.
func AddImage(ctx context.Context, w *bundle.Writer, c *Cache, p Pulled) error {
	var src BlobSource = c
	if p.Source != nil {
		src = p.Source
	}
	for _, d := range p.Blobs {
		if err := addCached(ctx, w, src, d.Digest.String(), d.Size, string(d.MediaType)); err != nil {
			return fmt.Errorf("%s: %w", p.Ref.Name, err)
		}
	}
	if err := addCached(ctx, w, src, p.Digest, -1, p.MediaType); err != nil {
		return fmt.Errorf("%s: manifest: %w", p.Ref.Name, err)
	}
	return w.AddImage(bundle.Image{
		Name: p.Ref.Name, Repository: p.Ref.Repository, Tag: p.Ref.Tag,
		Digest: p.Digest, MediaType: p.MediaType, Size: p.Size,
	})
}

// addCached stores one blob of size bytes (size < 0: a manifest, whose size
// the caller does not know; it is small, and hashed as it is copied).
func addCached(ctx context.Context, w *bundle.Writer, src BlobSource, digest string, size int64, mediaType string) error {
	if w.HasBlob(digest) {
		return nil
	}
	if cs, ok := src.(checkedSource); ok && size >= 0 {
		return addChecked(ctx, w, cs, digest, size, mediaType)
	}
	f, err := src.OpenBlob(ctx, digest)
	if err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	defer f.Close()
	return addBlob(ctx, w, src, f, digest, mediaType)
}

// addChecked copies a checked cache entry without hashing it, and hashes
// any other entry on the way, stamping it when it matches so the next
// build need not.
func addChecked(ctx context.Context, w *bundle.Writer, src checkedSource, digest string, size int64, mediaType string) error {
	f, checked, err := src.OpenChecked(digest, size)
	if err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	defer f.Close()
	if checked {
		_, err := w.AddVerifiedFile(ctx, f, digest, size, mediaType)
		return err
	}
	before, err := f.Stat()
	if err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	if err := addBlob(ctx, w, src, f, digest, mediaType); err != nil {
		return err
	}
	_ = src.MarkChecked(f, digest, before) // only saves the next build a hash
	return nil
}

func addBlob(ctx context.Context, w *bundle.Writer, src BlobSource, r io.Reader, digest, mediaType string) error {
	if _, err := w.AddBlob(ctx, r, digest, mediaType); err != nil {
		var de *bundle.DigestError
		if errors.As(err, &de) {
			return src.Corrupt(digest, err)
		}
		return err
	}
	return nil
}

// FromCache makes a pulled image of a bundle image record whose manifest
// and blobs are in c (a stored cluster image's carried image): nothing is
// fetched, and AddToBundle reads its blobs from c.
func FromCache(c *Cache, im bundle.Image) (Pulled, error) {
	r, err := ParseRef(im.Name, nil)
	if err != nil {
		return Pulled{}, err
	}
	b, err := c.ReadSmall(im.Digest)
	if err != nil {
		return Pulled{}, fmt.Errorf("manifest: %w", err)
	}
	m, err := v1.ParseManifest(bytesReader(b))
	if err != nil {
		return Pulled{}, fmt.Errorf("manifest %s: %w", im.Digest, err)
	}
	p := Pulled{Ref: r, Digest: im.Digest, MediaType: im.MediaType, Size: im.Size, Source: c,
		Blobs: append([]v1.Descriptor{m.Config}, m.Layers...)}
	for _, d := range p.Blobs {
		if !c.Has(d.Digest.String(), d.Size) {
			return Pulled{}, fmt.Errorf("blob %s is missing", d.Digest)
		}
	}
	return p, nil
}
