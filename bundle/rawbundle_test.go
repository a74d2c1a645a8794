package bundle

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"testing"
)

// writeRaw writes a bundle by hand: stub, blobs (in order, their index
// entries made here), then idx as given. Tests use it for indexes the writer
// would never make.
func writeRaw(tb testing.TB, path string, stub []byte, blobs [][]byte, idx *Index) {
	tb.Helper()
	content := append([]byte(nil), stub...)
	idx.FormatVersion = FormatVersion
	idx.Stub = Stub{Size: int64(len(stub)), Digest: digestBytes(stub)}
	if idx.Blobs == nil {
		for _, b := range blobs {
			idx.Blobs = append(idx.Blobs, Blob{Digest: digestBytes(b), Offset: int64(len(content)), Size: int64(len(b))})
			content = append(content, b...)
		}
	} else {
		for _, b := range blobs {
			content = append(content, b...)
		}
	}
	if err := os.WriteFile(path, withIndex(tb, content, idx), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// withIndex appends idx and a trailer to content (stub and blobs).
func withIndex(tb testing.TB, content []byte, idx *Index) []byte {
	tb.Helper()
	raw, err := json.Marshal(idx)
	if err != nil {
		tb.Fatal(err)
	}
	t := Trailer{Version: FormatVersion, StubSize: idx.Stub.Size, IndexOffset: int64(len(content)), IndexLength: int64(len(raw))}
	t.LogicalSize = t.IndexOffset + t.IndexLength
	t.IndexSHA256 = sha256.Sum256(raw)
	tr, err := t.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	out := append(append(append([]byte(nil), content...), raw...), tr...)
	return out
}

// reindex rewrites the index of a single-part, unsigned bundle's bytes.
func reindex(tb testing.TB, data []byte, edit func(*Index)) []byte {
	tb.Helper()
	var t Trailer
	if err := t.UnmarshalBinary(data[len(data)-TrailerSize:]); err != nil {
		tb.Fatal(err)
	}
	idx, err := decodeIndex(data[t.IndexOffset : t.IndexOffset+t.IndexLength])
	if err != nil {
		tb.Fatal(err)
	}
	edit(idx)
	return withIndex(tb, data[:t.IndexOffset], idx)
}
