package bundle

import (
	"fmt"
	"io"
)

// SingleSize is the size of the bundle as one unsplit file.
func (b *Bundle) SingleSize() int64 { return b.Trailer.LogicalSize + TrailerSize }

// WriteSingle streams the bundle as one unsplit file, whatever its parts:
// the same content with a trailer that says "one file". Of a split bundle it
// is not any of the signed files (see Sign): it is the engine's copy on
// hosts, checked there against the index's digests.
func (b *Bundle) WriteSingle(w io.Writer) (int64, error) {
	return b.WriteSingleFrom(w, 0)
}

// WriteSingleFrom is WriteSingle without the first off bytes: with the
// stub's size, the bundle for a host that already has the stub.
func (b *Bundle) WriteSingleFrom(w io.Writer, off int64) (int64, error) {
	t := b.Trailer
	t.PartSize = 0
	if off < 0 || off > t.LogicalSize {
		return 0, fmt.Errorf("write bundle from %d: outside its %d bytes", off, t.LogicalSize)
	}
	tb, err := t.MarshalBinary()
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(w, io.NewSectionReader(b.content, off, t.LogicalSize-off))
	if err != nil {
		return n, fmt.Errorf("copy bundle content: %w", err)
	}
	m, err := w.Write(tb)
	return n + int64(m), err
}

// StubReader returns the installer program alone: the first bytes of the file.
func (b *Bundle) StubReader() *io.SectionReader {
	return io.NewSectionReader(b.content, 0, b.Trailer.StubSize)
}
