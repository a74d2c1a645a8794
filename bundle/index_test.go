package bundle

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hugeFrameBundle is a 984-byte bundle that Opens and Verifies (every blob
// hashes right) but whose frame table says its one frame inflates to 1 TiB:
// a reader that trusted it allocated that before reading a byte, and
// `installer.run extract` died out of memory.
const hugeFrameBundle = "testdata/huge-frame.bundle"

// TestWriteHugeFrameBundle regenerates testdata/huge-frame.bundle.
func TestWriteHugeFrameBundle(t *testing.T) {
	if os.Getenv("SEALPACK_WRITE_TESTDATA") == "" {
		t.Skip("set SEALPACK_WRITE_TESTDATA=1 to regenerate " + hugeFrameBundle)
	}
	p := filepath.Join(t.TempDir(), "good")
	fixture{stub: []byte("S"), layers: [][]byte{tarOf(t, "a", "1")}}.build(t, p)
	data, _ := os.ReadFile(p)
	data = reindex(t, data, func(idx *Index) {
		idx.Layers[0].Frames[0].U = 1 << 40
		idx.Layers[0].Size = 1 << 40
	})
	if err := os.WriteFile(hugeFrameBundle, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesHugeFrame(t *testing.T) {
	b, err := Open(hugeFrameBundle)
	if err == nil {
		b.Close()
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "layer 1 frame 1") {
		t.Fatalf("Open = %v; want the frame of 1 TiB refused", err)
	}
}

// TestOpenRefusesBadSizes: offsets and sizes that are negative, overflow
// int64 when added, or exceed what a reader should allocate for one frame
// are refused when the bundle is opened, with an error naming what is wrong.
func TestOpenRefusesBadSizes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	fixture{stub: []byte("STUB"), layers: [][]byte{tarOf(t, "a", string(randomBytes(4, 3*FrameSize)))}}.build(t, good)
	layerBundle, _ := os.ReadFile(good)
	blobsOnly := filepath.Join(dir, "blobs")
	fixture{stub: []byte("STUB"), blobs: [][]byte{[]byte("one"), []byte("two"), []byte("three")}}.build(t, blobsOnly)
	blobBundle, _ := os.ReadFile(blobsOnly)

	cases := []struct {
		name string
		data []byte
		edit func(*Index)
		want string
	}{
		{"negative blob offset", blobBundle, func(idx *Index) { idx.Blobs[0].Offset = -1 }, "negative offset"},
		{"negative blob size", blobBundle, func(idx *Index) { idx.Blobs[2].Size = -1 }, "negative size"},
		// Sizes that add up, modulo 2^64, to the index offset.
		{"blob sizes overflowing", blobBundle, func(idx *Index) {
			b := idx.Blobs
			b[0].Size = math.MaxInt64 - b[0].Offset
			b[1].Offset, b[1].Size = math.MaxInt64, math.MaxInt64
			end := b[2].Offset + b[2].Size
			b[2].Offset = -2
			b[2].Size = end + 2
		}, "runs past the index"},
		{"negative layer size", layerBundle, func(idx *Index) { idx.Layers[0].Size = -1 }, "negative size"},
		{"negative frame size", layerBundle, func(idx *Index) {
			f := idx.Layers[0].Frames
			f[0].U, f[1].U = -FrameSize, f[1].U+FrameSize
		}, "layer 1 frame 1"},
		// Four frames of 2^62 add up to nothing.
		{"frame sizes overflowing", layerBundle, func(idx *Index) {
			big := Frame{C: 1 << 62, U: 1 << 62}
			idx.Layers[0].Frames = append([]Frame{big, big, big, big}, idx.Layers[0].Frames...)
		}, "layer 1 frame 1"},
		{"frame above the bound", layerBundle, func(idx *Index) {
			f := idx.Layers[0].Frames
			f[0].U, f[1].U, f[2].U = f[0].U+f[1].U+f[2].U, 0, 0
		}, "layer 1 frame 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad")
			data := reindex(t, tc.data, tc.edit)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			b, err := Open(p)
			if err == nil {
				b.Close()
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v; want ErrCorrupt naming %q", err, tc.want)
			}
		})
	}
}

// TestOpenBlobWithholdsTheLastByte: a blob whose last byte is wrong is never
// handed out whole; the read that would end it fails, naming where it is.
func TestOpenBlobWithholdsTheLastByte(t *testing.T) {
	blob := []byte("an image blob of some length")
	p := filepath.Join(t.TempDir(), "b")
	fixture{stub: []byte("STUB"), blobs: [][]byte{blob}}.build(t, p)
	data, _ := os.ReadFile(p)
	data[4+len(blob)-1] ^= 1
	os.WriteFile(p, data, 0o644)
	b := mustOpen(t, p)
	r, bl, err := b.OpenBlob(digestBytes(blob))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	var de *DigestError
	if !errors.As(err, &de) || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "bytes 4-") {
		t.Errorf("read error %v; want a DigestError naming the byte range", err)
	}
	if int64(len(got)) >= bl.Size {
		t.Errorf("%d of %d bytes of a wrong blob handed out", len(got), bl.Size)
	}
}
