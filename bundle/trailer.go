package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// FormatVersion is the newest bundle format this code reads and the one it writes.
const FormatVersion = 1

// TrailerSize is the fixed size of the trailer that ends every bundle.
const TrailerSize = 256

// magic ends the file, so a reader finds the trailer by reading the last
// TrailerSize bytes and never has to scan.
var magic = [8]byte{'S', 'E', 'A', 'L', 'P', 'A', 'C', 'K'}

// Trailer is the fixed-size record at the very end of a bundle. Offsets are
// logical: they count bytes of the bundle's content (stub, blobs, index) as if
// all parts of a split bundle were one file, trailer excluded.
//
// Layout (little endian):
//
//	0   version u32 | 4 flags u32
//	8   stub size | 16 index offset | 24 index length | 32 logical size | 40 part size
//	48  index SHA-256 [32]
//	80  reserved, zero [136] (80..152 held an in-file signature in earlier
//	    builds; readers ignore it: signatures are detached, see sign.go)
//	216 SHA-256 of bytes 0..216 [32]
//	248 magic "SEALPACK" [8]
type Trailer struct {
	Version uint32
	// Flags has no defined bit; bit 0 meant "signed inside the file" in
	// earlier builds and is ignored.
	Flags       uint32
	StubSize    int64
	IndexOffset int64
	IndexLength int64
	LogicalSize int64
	// PartSize is zero for a single file. Otherwise part k (1-based) holds the
	// logical bytes [(k-1)*PartSize, k*PartSize), and part 1 also ends with the trailer.
	PartSize    int64
	IndexSHA256 [32]byte
}

const checksumOffset = 216

// Parts returns how many files the bundle is split into (1 when not split).
func (t *Trailer) Parts() int {
	if t.PartSize <= 0 {
		return 1
	}
	return int((t.LogicalSize + t.PartSize - 1) / t.PartSize)
}

// MarshalBinary encodes the trailer with its checksum and magic.
func (t *Trailer) MarshalBinary() ([]byte, error) {
	b := make([]byte, TrailerSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], t.Version)
	le.PutUint32(b[4:], t.Flags)
	for i, v := range []int64{t.StubSize, t.IndexOffset, t.IndexLength, t.LogicalSize, t.PartSize} {
		if v < 0 {
			return nil, fmt.Errorf("trailer field %d is negative: %d", i, v)
		}
		le.PutUint64(b[8+8*i:], uint64(v))
	}
	copy(b[48:80], t.IndexSHA256[:])
	sum := sha256.Sum256(b[:checksumOffset])
	copy(b[checksumOffset:checksumOffset+32], sum[:])
	copy(b[TrailerSize-8:], magic[:])
	return b, nil
}

// UnmarshalBinary decodes and checks a trailer. It checks the magic first, then
// the version (so a newer format is reported as such, not as corruption), then
// the checksum and the consistency of the offsets.
func (t *Trailer) UnmarshalBinary(b []byte) error {
	if len(b) != TrailerSize {
		return fmt.Errorf("%w: trailer is %d bytes, want %d", ErrNotBundle, len(b), TrailerSize)
	}
	if !bytes.Equal(b[TrailerSize-8:], magic[:]) {
		return fmt.Errorf("%w: no sealpack trailer at the end of the file", ErrNotBundle)
	}
	le := binary.LittleEndian
	version := le.Uint32(b[0:])
	if version > FormatVersion {
		return &VersionError{Version: version}
	}
	sum := sha256.Sum256(b[:checksumOffset])
	if !bytes.Equal(sum[:], b[checksumOffset:checksumOffset+32]) {
		return fmt.Errorf("%w: trailer checksum mismatch", ErrCorrupt)
	}
	if version == 0 {
		return fmt.Errorf("%w: trailer has format version 0", ErrCorrupt)
	}
	var fields [5]int64
	for i := range fields {
		v := le.Uint64(b[8+8*i:])
		if v > 1<<62 {
			return fmt.Errorf("%w: trailer field %d out of range", ErrCorrupt, i)
		}
		fields[i] = int64(v)
	}
	*t = Trailer{
		Version: version, Flags: le.Uint32(b[4:]),
		StubSize: fields[0], IndexOffset: fields[1], IndexLength: fields[2],
		LogicalSize: fields[3], PartSize: fields[4],
	}
	copy(t.IndexSHA256[:], b[48:80])
	return t.check()
}

func (t *Trailer) check() error {
	switch {
	case t.StubSize <= 0:
		return fmt.Errorf("%w: trailer says the stub is empty", ErrCorrupt)
	case t.IndexLength <= 0:
		return fmt.Errorf("%w: trailer says the index is empty", ErrCorrupt)
	case t.IndexOffset < t.StubSize:
		return fmt.Errorf("%w: index offset %d lies inside the stub (%d bytes)", ErrCorrupt, t.IndexOffset, t.StubSize)
	case t.IndexOffset+t.IndexLength != t.LogicalSize:
		return fmt.Errorf("%w: index [%d,+%d) does not end the content (%d bytes)", ErrCorrupt, t.IndexOffset, t.IndexLength, t.LogicalSize)
	case t.IndexLength > maxIndexSize:
		return fmt.Errorf("%w: index of %d bytes exceeds the limit of %d", ErrCorrupt, t.IndexLength, maxIndexSize)
	case t.PartSize != 0 && t.PartSize < minPartSize:
		return fmt.Errorf("%w: part size %d below the minimum %d", ErrCorrupt, t.PartSize, minPartSize)
	}
	return nil
}

// maxIndexSize bounds what a reader allocates for the index, so a corrupt
// trailer cannot make it allocate gigabytes.
const maxIndexSize = 256 << 20

// minPartSize keeps split parts sensible; small enough for tests to split a few MiB.
const minPartSize = 1 << 20
