package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// FrameSize is how many uncompressed bytes go into one independent zstd frame.
// Independent frames let compression and extraction use every core and let a
// reader start anywhere a frame starts; 4 MiB is twice zstd level 3's window,
// so the ratio lost to the frame boundaries is small.
const FrameSize = 4 << 20

// compressResult is one compressed frame on its way to the ordered writer.
type compressResult struct {
	src, dst []byte
	err      error
	done     chan struct{}
}

// compressFrames reads r to EOF, compresses it as independent zstd frames on
// several goroutines and writes the frames to w in order. Memory stays bounded:
// at most 2×workers frames are in flight. It returns the frame table and the
// SHA-256 and size of the uncompressed input.
func compressFrames(ctx context.Context, r io.Reader, w io.Writer, level zstd.EncoderLevel) (frames []Frame, diffID string, size int64, err error) {
	workers := runtime.GOMAXPROCS(0)
	encoders := make(chan *zstd.Encoder, workers)
	for range workers {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, "", 0, fmt.Errorf("create zstd encoder: %w", err)
		}
		encoders <- enc
	}
	defer func() {
		close(encoders)
		for enc := range encoders {
			enc.Close()
		}
	}()
	bufs := sync.Pool{New: func() any { b := make([]byte, FrameSize); return &b }}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan *compressResult, 2*workers)
	var readErr error
	sum := sha256.New()
	go func() {
		defer close(queue)
		readErr = readChunks(ctx, r, sum, &size, &bufs, encoders, queue)
	}()

	var werr error
	for res := range queue {
		<-res.done
		if werr == nil && res.err != nil {
			werr = res.err
		}
		if werr == nil {
			if _, err := w.Write(res.dst); err != nil {
				werr = err
			} else {
				frames = append(frames, Frame{C: int64(len(res.dst)), U: int64(len(res.src))})
			}
		}
		src := res.src[:FrameSize]
		bufs.Put(&src)
		if werr != nil {
			cancel()
		}
	}
	if werr != nil {
		return nil, "", 0, werr
	}
	if readErr != nil {
		return nil, "", 0, readErr
	}
	return frames, digestOf(sum), size, nil
}

// readChunks fills FrameSize chunks from r and starts one compression per chunk,
// queueing results in input order.
func readChunks(ctx context.Context, r io.Reader, sum hash.Hash, size *int64, bufs *sync.Pool, encoders chan *zstd.Encoder, queue chan<- *compressResult) error {
	for {
		bp := bufs.Get().(*[]byte)
		n, err := io.ReadFull(r, *bp)
		if n > 0 {
			chunk := (*bp)[:n]
			sum.Write(chunk)
			*size += int64(n)
			res := &compressResult{src: chunk, done: make(chan struct{})}
			select {
			case queue <- res:
			case <-ctx.Done():
				return ctx.Err()
			}
			enc := <-encoders
			go func() {
				res.dst = enc.EncodeAll(res.src, make([]byte, 0, len(res.src)/2))
				encoders <- enc
				close(res.done)
			}()
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return fmt.Errorf("read layer content: %w", err)
		}
	}
}

func digestOf(h hash.Hash) string {
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// frameReader decompresses a layer's frames in parallel, reading each frame
// straight from its place in the bundle, and yields the tar stream in order.
// At EOF it checks the uncompressed stream against the layer's diffID, and the
// caller's blob reader checks the compressed digest, so bad bytes never pass.
type frameReader struct {
	pr *io.PipeReader
}

func (f *frameReader) Read(p []byte) (int, error) { return f.pr.Read(p) }
func (f *frameReader) Close() error               { return f.pr.Close() }

// openFrames returns the uncompressed content of a layer stored in blob.
func openFrames(ctx context.Context, blob io.ReaderAt, l Layer) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(decompressFrames(ctx, blob, l, pw)) }()
	return &frameReader{pr: pr}
}

type decompressResult struct {
	src  []byte
	out  []byte
	err  error
	done chan struct{}
}

func decompressFrames(ctx context.Context, blob io.ReaderAt, l Layer, w io.Writer) error {
	workers := runtime.GOMAXPROCS(0)
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(workers), zstd.WithDecoderMaxMemory(FrameSize*2))
	if err != nil {
		return fmt.Errorf("create zstd decoder: %w", err)
	}
	defer dec.Close()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Stop the producer and wait for every decoding goroutine before the
	// decoder is closed by the defer above.
	defer wg.Wait()
	defer cancel()

	queue := make(chan *decompressResult, 2*workers)
	sem := make(chan struct{}, workers)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(queue)
		var off int64
		for i, f := range l.Frames {
			res := &decompressResult{done: make(chan struct{})}
			select {
			case queue <- res:
			case <-ctx.Done():
				return
			}
			sem <- struct{}{}
			wg.Add(1)
			go func(i int, off int64, f Frame) {
				defer wg.Done()
				defer func() { <-sem; close(res.done) }()
				src := make([]byte, f.C)
				if _, err := blob.ReadAt(src, off); err != nil {
					res.err = fmt.Errorf("read frame %d: %w", i, err)
					return
				}
				out, err := dec.DecodeAll(src, make([]byte, 0, f.U))
				switch {
				case err != nil:
					res.err = fmt.Errorf("%w: frame %d: %v", ErrCorrupt, i, err)
				case int64(len(out)) != f.U:
					res.err = fmt.Errorf("%w: frame %d inflates to %d bytes, want %d", ErrCorrupt, i, len(out), f.U)
				}
				res.src, res.out = src, out
			}(i, off, f)
			off += f.C
		}
	}()

	sum, csum := sha256.New(), sha256.New()
	for res := range queue {
		<-res.done
		if res.err != nil {
			return res.err
		}
		csum.Write(res.src)
		sum.Write(res.out)
		if _, err := w.Write(res.out); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if got := digestOf(csum); got != l.Digest {
		return &DigestError{What: "layer " + l.Digest, Want: l.Digest, Got: got, Location: "compressed blob"}
	}
	if got := digestOf(sum); got != l.DiffID {
		return &DigestError{What: "layer " + l.Digest + " content", Want: l.DiffID, Got: got, Location: "uncompressed stream"}
	}
	return nil
}
