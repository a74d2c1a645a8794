package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// benchSize is the uncompressed size of the benchmark layer: 16 frames.
const benchSize = 16 * FrameSize

var benchData = sync.OnceValue(func() []byte { return mixedData(benchSize) })

// mixedData makes n deterministic bytes that compress the way a rootfs does:
// a third random (compressed data, keys), a third text-like (words from a
// small vocabulary, as in sources and configuration), a third binary-like
// (random bytes sparsely repeated, as in executables).
func mixedData(n int) []byte {
	r := rand.New(rand.NewPCG(2, 3))
	words := []string{"func", "return", "if", "err", "!=", "nil", "{", "}", "for", "range", "package", "import", "type", "struct", "const", "var", "byte", "int64", "string", "\n\t", "\n", "// ", "the", "a", "of"}
	var b bytes.Buffer
	b.Grow(n)
	for b.Len() < n {
		switch b.Len() / (64 << 10) % 3 {
		case 0:
			for range 1 << 10 {
				b.WriteByte(byte(r.Uint32()))
			}
		case 1:
			for range 256 {
				b.WriteString(words[r.IntN(len(words))])
				b.WriteByte(' ')
			}
		default:
			chunk := make([]byte, 64)
			for i := range chunk {
				chunk[i] = byte(r.Uint32() >> 28) // low entropy
			}
			for range 16 {
				b.Write(chunk)
				chunk[r.IntN(len(chunk))] = byte(r.Uint32())
			}
		}
	}
	return b.Bytes()[:n]
}

func BenchmarkCompressFrames(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var csize int
	for b.Loop() {
		var out countWriter
		frames, _, _, err := compressFrames(context.Background(), bytes.NewReader(data), &out, zstd.SpeedDefault)
		if err != nil {
			b.Fatal(err)
		}
		if len(frames) != benchSize/FrameSize {
			b.Fatalf("%d frames", len(frames))
		}
		csize = int(out)
	}
	b.ReportMetric(float64(csize)/float64(len(data)), "ratio")
}

func BenchmarkDecompressFrames(b *testing.B) {
	data := benchData()
	var compressed bytes.Buffer
	ch := &countingHash{w: &compressed, h: sha256.New()}
	frames, diffID, size, err := compressFrames(context.Background(), bytes.NewReader(data), ch, zstd.SpeedDefault)
	if err != nil {
		b.Fatal(err)
	}
	l := Layer{Digest: digestOf(ch.h), DiffID: diffID, Size: size, Frames: frames}
	blob := bytes.NewReader(compressed.Bytes())
	buf := make([]byte, 32<<10) // the size tar.Reader and io.Copy read with
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := openFrames(context.Background(), blob, l)
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
		r.Close()
		if err != nil || n != int64(len(data)) {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	data := benchData()
	path := filepath.Join(b.TempDir(), "bench.run")
	// Some blobs, as a bundle with images has: verify hashes each region.
	f := fixture{layers: [][]byte{tarOf(b, "data", string(data))}}
	for i := range 8 {
		f.blobs = append(f.blobs, randomBytes(uint64(i+10), 1<<20))
	}
	f.build(b, path)
	bd, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer bd.Close()
	b.SetBytes(bd.Trailer.IndexOffset)
	b.ReportAllocs()
	for b.Loop() {
		if err := bd.Verify(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// BenchmarkOpenLargeIndex opens a bundle whose index is about 30 MB (80,000
// one-frame layers, each in its own blob): what inspect does. Looking each
// layer's blob up by a scan of every blob made this quadratic (68 s).
func BenchmarkOpenLargeIndex(b *testing.B) {
	const layers = 80_000
	blobs := make([][]byte, layers)
	idx := &Index{Layers: make([]Layer, layers)}
	for i := range blobs {
		blobs[i] = fmt.Appendf(nil, "layer blob %08d", i)
		idx.Layers[i] = Layer{
			Digest: digestBytes(blobs[i]), DiffID: digestBytes(fmt.Appendf(nil, "tar %d", i)),
			Size: 512, CreatedBy: fmt.Sprintf("RUN step %d of a long build", i),
			Frames: []Frame{{C: int64(len(blobs[i])), U: 512}},
		}
	}
	p := filepath.Join(b.TempDir(), "large-index")
	writeRaw(b, p, []byte("STUB"), blobs, idx)
	var t Trailer
	if f, err := os.ReadFile(p); err == nil {
		t.UnmarshalBinary(f[len(f)-TrailerSize:])
	}
	b.ResetTimer()
	for b.Loop() {
		bu, err := Open(p)
		if err != nil {
			b.Fatal(err)
		}
		bu.Close()
	}
	b.ReportMetric(float64(t.IndexLength)/1e6, "index-MB")
}
