package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sealpack/sealpack/internal/verify"
)

// Bundle is an open bundle: its trailer and index are read and checked; blobs
// are read in place through io.ReaderAt, never copied out.
type Bundle struct {
	Path    string
	Trailer Trailer
	Index   *Index
	parts   []*os.File
	content io.ReaderAt // logical content: stub, blobs, index
	blobs   map[string]Blob
}

// OpenSelf opens the bundle the running program was started from. On Linux
// os.Executable resolves symlinks, so a renamed, moved or symlinked installer
// finds itself and its parts.
func OpenSelf() (*Bundle, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	return Open(exe)
}

// Open reads the trailer at the end of path, opens the parts of a split
// bundle, and reads and checks the index. It reads a few hundred bytes plus
// the index, whatever the size of the bundle.
func Open(path string) (*Bundle, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	b := &Bundle{Path: path, parts: []*os.File{f}}
	if err := b.open(); err != nil {
		b.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func (b *Bundle) open() error {
	f := b.parts[0]
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size < TrailerSize {
		return fmt.Errorf("%w: only %d bytes", ErrNotBundle, size)
	}
	raw := make([]byte, TrailerSize)
	if _, err := f.ReadAt(raw, size-TrailerSize); err != nil {
		return fmt.Errorf("read trailer: %w", err)
	}
	if err := b.Trailer.UnmarshalBinary(raw); err != nil {
		if errors.Is(err, ErrNotBundle) {
			return diagnoseMissingTrailer(f, size, err)
		}
		return err
	}
	t := &b.Trailer
	if err := b.openParts(size); err != nil {
		return err
	}
	idx := make([]byte, t.IndexLength)
	if _, err := b.content.ReadAt(idx, t.IndexOffset); err != nil {
		return fmt.Errorf("read index: %w", err)
	}
	if sha256.Sum256(idx) != t.IndexSHA256 {
		return fmt.Errorf("%w: index digest mismatch (bytes %d-%d)", ErrCorrupt, t.IndexOffset, t.IndexOffset+t.IndexLength-1)
	}
	if b.Index, err = decodeIndex(idx); err != nil {
		return err
	}
	b.blobs, err = b.Index.validate(t)
	return err
}

// openParts checks that every part is present with the size the trailer
// implies and makes the logical content readable as one.
func (b *Bundle) openParts(firstSize int64) error {
	t := &b.Trailer
	n := t.Parts()
	if n == 1 {
		switch want := t.LogicalSize + TrailerSize; {
		case firstSize < want:
			return fmt.Errorf("%w: truncated: %d bytes, the trailer says %d", ErrCorrupt, firstSize, want)
		case firstSize > want:
			return fmt.Errorf("%w: %d unexpected bytes before the trailer", ErrCorrupt, firstSize-want)
		}
		b.content = io.NewSectionReader(b.parts[0], 0, t.LogicalSize)
		return nil
	}
	readers := make([]io.ReaderAt, n)
	readers[0] = b.parts[0]
	if firstSize != t.PartSize+TrailerSize {
		return fmt.Errorf("%w: part 1 has %d bytes, want %d", ErrCorrupt, firstSize, t.PartSize+TrailerSize)
	}
	for k := 2; k <= n; k++ {
		want := t.PartSize
		if k == n {
			want = t.LogicalSize - int64(n-1)*t.PartSize
		}
		p := PartPath(b.Path, k)
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("%w: part %d of %d: %v", ErrCorrupt, k, n, err)
		}
		b.parts = append(b.parts, f)
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("part %d of %d: %w", k, n, err)
		}
		if st.Size() != want {
			return fmt.Errorf("%w: part %d of %d (%s) has %d bytes, want %d", ErrCorrupt, k, n, p, st.Size(), want)
		}
		readers[k-1] = f
	}
	b.content = &multiReaderAt{parts: readers, partSize: t.PartSize, size: t.LogicalSize}
	return nil
}

// diagnoseMissingTrailer says more than "not a bundle" when it can: a stub
// whose ELF image is followed by bytes is a bundle that was cut short or had
// bytes appended; a trailer found shortly before the end means the latter.
func diagnoseMissingTrailer(f *os.File, size int64, cause error) error {
	const tail = 1 << 20
	start := max(size-tail, 0)
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err == nil {
		if i := bytes.LastIndex(buf, magic[:]); i >= 0 {
			end := start + int64(i) + int64(len(magic))
			var t Trailer
			if end >= TrailerSize && t.UnmarshalBinary(buf[max(0, int(end-start)-TrailerSize):end-start]) == nil {
				return fmt.Errorf("%w: %d bytes were appended after the bundle's end", ErrCorrupt, size-end)
			}
		}
	}
	if imageEnd, ok := elfImageEnd(f); ok {
		if size > imageEnd {
			return fmt.Errorf("%w: the trailer is missing: the file was truncated, or bytes were appended", ErrCorrupt)
		}
		return fmt.Errorf("%w: an executable with no payload", ErrNotBundle)
	}
	return cause
}

// elfImageEnd returns where an ELF executable's own bytes end: the furthest
// of its segments, sections and section header table.
func elfImageEnd(f *os.File) (int64, bool) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return 0, false
	}
	defer ef.Close()
	var end int64
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOBITS {
			end = max(end, int64(s.Offset+s.FileSize))
		}
	}
	for _, p := range ef.Progs {
		end = max(end, int64(p.Off+p.Filesz))
	}
	if ef.Class == elf.ELFCLASS64 {
		hdr := make([]byte, 64)
		if _, err := f.ReadAt(hdr, 0); err == nil {
			bo := ef.ByteOrder
			shoff := int64(bo.Uint64(hdr[0x28:]))
			end = max(end, shoff+int64(bo.Uint16(hdr[0x3a:]))*int64(bo.Uint16(hdr[0x3c:])))
		}
	}
	return end, true
}

// Close releases the bundle's files.
func (b *Bundle) Close() error {
	var errs []error
	for _, f := range b.parts {
		errs = append(errs, f.Close())
	}
	b.parts = nil
	return errors.Join(errs...)
}

// ReaderAt gives random access to the bundle's logical content.
func (b *Bundle) ReaderAt() io.ReaderAt { return b.content }

// Blob returns a reader over the stored bytes of a blob, in place. The bytes
// are not checked; use OpenBlob for a reader that checks the digest at EOF.
func (b *Bundle) Blob(digest string) (*io.SectionReader, Blob, error) {
	bl, ok := b.blobs[digest]
	if !ok {
		return nil, Blob{}, fmt.Errorf("blob %s: %w", digest, os.ErrNotExist)
	}
	return io.NewSectionReader(b.content, bl.Offset, bl.Size), bl, nil
}

// OpenBlob returns the blob's bytes, checked as they stream: if they do not
// match the digest, the Read that would return the last of them returns a
// *DigestError instead.
func (b *Bundle) OpenBlob(digest string) (io.Reader, Blob, error) {
	sr, bl, err := b.Blob(digest)
	if err != nil {
		return nil, bl, err
	}
	return verify.NewReader(sr, verify.Expect{Digest: digest, Size: bl.Size, What: "blob " + digest, Location: b.location(bl.Offset, bl.Size), Class: ErrCorrupt}), bl, nil
}

// OpenLayer returns the uncompressed tar stream of a rootfs layer,
// decompressing its frames in parallel; both digests are checked. l's frame
// table is checked again: the caller may not have taken l from the index.
func (b *Bundle) OpenLayer(ctx context.Context, l Layer) (io.ReadCloser, error) {
	sr, bl, err := b.Blob(l.Digest)
	if err != nil {
		return nil, err
	}
	if err := checkFrames(l, bl.Size); err != nil {
		return nil, fmt.Errorf("%w: layer %s %v", ErrCorrupt, l.Digest, err)
	}
	return openFrames(ctx, sr, l), nil
}

// location names the file and byte range holding logical bytes [off, off+n).
func (b *Bundle) location(off, n int64) string {
	if b.Trailer.Parts() == 1 || n <= 0 {
		return fmt.Sprintf("%s bytes %d-%d", filepath.Base(b.Path), off, off+n-1)
	}
	ps := b.Trailer.PartSize
	first, last := int(off/ps)+1, int((off+n-1)/ps)+1
	s := fmt.Sprintf("%s bytes %d-", filepath.Base(PartPath(b.Path, first)), off%ps)
	if last != first {
		return s + fmt.Sprintf("%d and %s up to byte %d", ps-1, filepath.Base(PartPath(b.Path, last)), (off+n-1)%ps)
	}
	return s + fmt.Sprint((off+n-1)%ps)
}

// multiReaderAt reads logical content spread over equally sized parts.
type multiReaderAt struct {
	parts    []io.ReaderAt
	partSize int64
	size     int64
}

func (m *multiReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	total := 0
	for len(p) > 0 {
		if off >= m.size {
			return total, io.EOF
		}
		k := off / m.partSize
		within := off % m.partSize
		chunk := p[:min(int64(len(p)), m.partSize-within, m.size-off)]
		n, err := m.parts[k].ReadAt(chunk, within)
		total += n
		if err != nil && !(err == io.EOF && n == len(chunk)) {
			return total, fmt.Errorf("read part %d: %w", k+1, err)
		}
		p, off = p[n:], off+int64(n)
	}
	return total, nil
}
