package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// indexSeed is a bundle's index with the trailer fields validate checks it
// against, for the fuzz targets' seeds.
type indexSeed struct {
	index                []byte
	stubSize, indexStart int64
}

// indexSeeds returns a good index and the malicious ones TestOpenRefuses*
// build: a frame of 1 TiB, blob sizes and frame sizes that wrap int64.
func indexSeeds(tb testing.TB) []indexSeed {
	tb.Helper()
	seed := func(data []byte) indexSeed {
		var t Trailer
		if err := t.UnmarshalBinary(data[len(data)-TrailerSize:]); err != nil {
			tb.Fatal(err)
		}
		return indexSeed{data[t.IndexOffset : t.IndexOffset+t.IndexLength], t.StubSize, t.IndexOffset}
	}
	dir := tb.TempDir()
	build := func(fx fixture) []byte {
		p := filepath.Join(dir, "b")
		fx.build(tb, p)
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		return data
	}
	layer := build(fixture{stub: []byte("STUB"), layers: [][]byte{tarOf(tb, "a", "1", "b", "2")}})
	blobs := build(fixture{stub: []byte("STUB"), blobs: [][]byte{[]byte("one"), []byte("two"), []byte("three")}})
	huge, err := os.ReadFile(hugeFrameBundle)
	if err != nil {
		tb.Fatal(err)
	}
	return []indexSeed{
		seed(layer), seed(blobs), seed(huge),
		seed(reindex(tb, blobs, func(idx *Index) {
			b := idx.Blobs
			b[0].Size = math.MaxInt64 - b[0].Offset
			b[1].Offset, b[1].Size = math.MaxInt64, math.MaxInt64
			end := b[2].Offset + b[2].Size
			b[2].Offset, b[2].Size = -2, end+2
		})),
		seed(reindex(tb, layer, func(idx *Index) {
			big := Frame{C: 1 << 62, U: 1 << 62}
			idx.Layers[0].Frames = append([]Frame{big, big, big, big}, idx.Layers[0].Frames...)
		})),
		seed(reindex(tb, layer, func(idx *Index) { idx.Blobs[0].Offset = -1 })),
	}
}

// FuzzIndex feeds arbitrary index JSON and trailer fields to the index
// checks: they must never panic, and an index they accept must describe the
// file exactly (blobs back to back from the stub to the index, every layer's
// frames within bounds and adding up to its blob).
func FuzzIndex(f *testing.F) {
	for _, s := range indexSeeds(f) {
		f.Add(s.index, s.stubSize, s.indexStart)
	}
	f.Fuzz(func(t *testing.T, data []byte, stubSize, indexStart int64) {
		idx, err := decodeIndex(data)
		if err != nil {
			return
		}
		if stubSize > 1<<62 || indexStart > 1<<62 {
			return // the trailer refuses such fields before the index is read
		}
		tr := &Trailer{Version: FormatVersion, StubSize: stubSize, IndexOffset: indexStart, IndexLength: 1, LogicalSize: indexStart + 1}
		if tr.check() != nil {
			return
		}
		blobs, err := idx.validate(tr)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("validate error %v is not ErrCorrupt", err)
			}
			return
		}
		next := stubSize
		for _, b := range idx.Blobs {
			if b.Offset != next || b.Size < 0 || b.Size > indexStart-next || blobs[b.Digest] != b {
				t.Fatalf("accepted blob %+v (next %d, index at %d)", b, next, indexStart)
			}
			next += b.Size
		}
		if next != indexStart || len(blobs) != len(idx.Blobs) {
			t.Fatalf("accepted blobs ending at %d, index at %d", next, indexStart)
		}
		for i, l := range idx.Layers {
			var c, u int64
			for _, fr := range l.Frames {
				if fr.C <= 0 || fr.C > maxFrameBytes || fr.U < 0 || fr.U > maxFrameBytes {
					t.Fatalf("layer %d: accepted frame %+v", i+1, fr)
				}
				c, u = c+fr.C, u+fr.U
			}
			if c != blobs[l.Digest].Size || u != l.Size {
				t.Fatalf("layer %d: accepted frames adding up to %d/%d, want %d/%d", i+1, c, u, blobs[l.Digest].Size, l.Size)
			}
		}
	})
}

// FuzzFrames feeds an arbitrary frame table (as the index holds it), layer
// size and blob to the frame table check and, when it passes, to the
// parallel frame reader, as OpenLayer does: no panic, no allocation beyond
// the frame bound, never more bytes than the layer's size, and every
// failure an ErrCorrupt.
func FuzzFrames(f *testing.F) {
	p := filepath.Join(f.TempDir(), "b")
	fixture{stub: []byte("STUB"), layers: [][]byte{tarOf(f, "a", "1", "b", "2")}}.build(f, p)
	data, _ := os.ReadFile(p)
	b, err := Open(p)
	if err != nil {
		f.Fatal(err)
	}
	idx := b.Index
	b.Close()
	l, bl := idx.Layers[0], idx.Blobs[0]
	blob := data[bl.Offset : bl.Offset+bl.Size]
	table := func(frames ...Frame) []byte {
		b, _ := json.Marshal(frames)
		return b
	}
	f.Add(table(l.Frames...), l.Size, blob)
	f.Add(table(Frame{C: bl.Size, U: 1 << 40}), int64(1<<40), blob)
	big := Frame{C: 1 << 62, U: 1 << 62}
	f.Add(table(big, big, big, big, l.Frames[0]), l.Size, blob)
	f.Add(table(Frame{C: bl.Size, U: -FrameSize}), int64(-FrameSize), blob)
	f.Add(table(Frame{C: bl.Size, U: l.Size + 1}), l.Size+1, blob)
	f.Add(table(Frame{C: bl.Size / 2, U: l.Size / 2}, Frame{C: bl.Size - bl.Size/2, U: l.Size - l.Size/2}), l.Size, blob)
	f.Fuzz(func(t *testing.T, tableJSON []byte, size int64, blob []byte) {
		var frames []Frame
		if json.Unmarshal(tableJSON, &frames) != nil {
			return
		}
		l := Layer{Digest: digestBytes(blob), DiffID: l.DiffID, Size: size, Frames: frames}
		if err := checkFrames(l, int64(len(blob))); err != nil {
			return
		}
		r := openFrames(context.Background(), bytes.NewReader(blob), l)
		defer r.Close()
		n, err := io.Copy(io.Discard, r)
		if n > size {
			t.Fatalf("read %d bytes of a layer of %d", n, size)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("read error %v is not ErrCorrupt", err)
		}
		if err == nil && n != size {
			t.Fatalf("read %d bytes of %d without an error", n, size)
		}
	})
}
