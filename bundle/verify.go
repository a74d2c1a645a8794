package bundle

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// region is a run of logical bytes with the digest they must hash to.
type region struct {
	what   string
	digest string
	off, n int64
}

// Progress is told how many of the total bytes have been checked.
type Progress func(done, total int64)

// verifyChunk is the read size; two chunks are in flight so reading the next
// overlaps hashing the last.
const verifyChunk = 4 << 20

// Verify checks every byte of the bundle against its SHA-256 in one sequential
// read: the trailer and index were checked by Open, this checks the stub and
// every blob. Every mismatch is reported, not only the first.
func (b *Bundle) Verify(ctx context.Context, progress Progress) error {
	regions := []region{{what: "stub", digest: b.Index.Stub.Digest, off: 0, n: b.Index.Stub.Size}}
	names := b.blobNames()
	for _, bl := range b.Index.Blobs {
		what, ok := names[bl.Digest]
		if !ok {
			what = "blob " + bl.Digest
		}
		regions = append(regions, region{what: what, digest: bl.Digest, off: bl.Offset, n: bl.Size})
	}
	total := b.Trailer.IndexOffset

	type chunk struct {
		buf []byte
		err error
	}
	free := make(chan []byte, 2)
	for range 2 {
		free <- make([]byte, min(verifyChunk, max(total, 1)))
	}
	full := make(chan chunk, 2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(full)
		for off := int64(0); off < total; {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			n := min(int64(len(buf)), total-off)
			m, err := b.content.ReadAt(buf[:n], off)
			if err == io.EOF && int64(m) == n {
				err = nil
			}
			full <- chunk{buf: buf[:m], err: err}
			if err != nil {
				return
			}
			off += int64(m)
		}
	}()

	var errs []error
	ri, h, inRegion, done := 0, sha256.New(), int64(0), int64(0)
	for c := range full {
		if c.err != nil {
			return fmt.Errorf("read %s: %w", b.location(done, 1), c.err)
		}
		p := c.buf
		for len(p) > 0 {
			r := regions[ri]
			take := min(int64(len(p)), r.n-inRegion)
			h.Write(p[:take])
			p, inRegion = p[take:], inRegion+take
			for ri < len(regions) && inRegion == regions[ri].n {
				r := regions[ri]
				if got := digestOf(h); got != r.digest {
					errs = append(errs, &DigestError{What: r.what, Want: r.digest, Got: got, Location: b.location(r.off, r.n) + b.wrongParts(ctx, r.off, r.n), Class: ErrCorrupt})
				}
				h.Reset()
				ri, inRegion = ri+1, 0
			}
		}
		done += int64(len(c.buf))
		free <- c.buf[:cap(c.buf)]
		if progress != nil {
			progress(done, total)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if done != total {
		return fmt.Errorf("%w: read %d of %d bytes", ErrCorrupt, done, total)
	}
	return errors.Join(errs...)
}

// blobNames names blobs for people: the first layer or image that uses each.
func (b *Bundle) blobNames() map[string]string {
	names := make(map[string]string, len(b.Index.Layers)+len(b.Index.Images))
	for i, l := range b.Index.Layers {
		if _, ok := names[l.Digest]; ok {
			continue
		}
		s := fmt.Sprintf("layer %d", i+1)
		if l.CreatedBy != "" {
			s += fmt.Sprintf(" (%s)", l.CreatedBy)
		}
		names[l.Digest] = s
	}
	for _, im := range b.Index.Images {
		if _, ok := names[im.Digest]; !ok {
			names[im.Digest] = "manifest of " + im.Name
		}
	}
	return names
}

// wrongParts, for a bad region of a split bundle, hashes the parts the region
// spans against the part digests in the index and names those that differ.
// It reads again, but only on failure: a good bundle is still read once.
func (b *Bundle) wrongParts(ctx context.Context, off, n int64) string {
	ps := b.Trailer.PartSize
	if ps == 0 || n == 0 {
		return ""
	}
	var bad []string
	for k := off / ps; k <= (off+n-1)/ps && k < int64(len(b.Index.Parts)); k++ {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(b.content, k*ps, ps)); err != nil || ctx.Err() != nil {
			continue
		}
		if digestOf(h) != b.Index.Parts[k] {
			bad = append(bad, filepath.Base(PartPath(b.Path, int(k)+1)))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return fmt.Sprintf(" (wrong part: %s)", strings.Join(bad, ", "))
}
