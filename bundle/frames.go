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

// maxFrameOverhead bounds what zstd adds to a frame it cannot compress: a
// header, 3 bytes per 128 KiB block stored raw, and the checksum.
const maxFrameOverhead = FrameSize>>8 + 1024

// frameSlot holds one frame on its way through compression or decompression.
// A fixed set of slots is reused, so a layer of any size allocates the same
// few buffers and leaves no garbage behind: the heap, and with it the RSS,
// stays flat.
type frameSlot struct {
	raw  []byte // uncompressed bytes
	zst  []byte // compressed bytes
	err  error
	done chan struct{}
}

// slotCount is how many frames are in flight: one per worker compressing or
// decompressing, one being filled and one being drained.
func slotCount(workers int) int { return workers + 2 }

// compressFrames reads r to EOF, compresses it as independent zstd frames on
// several goroutines and writes the frames to w in order. Memory stays bounded:
// at most workers+2 frames are in flight, in buffers reused from frame to
// frame. It returns the frame table and the SHA-256 and size of the
// uncompressed input.
func compressFrames(ctx context.Context, r io.Reader, w io.Writer, level zstd.EncoderLevel) (frames []Frame, diffID string, size int64, err error) {
	workers := runtime.GOMAXPROCS(0)
	encoders := make(chan *zstd.Encoder, workers)
	for range workers {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true),
			// A frame never looks further back than its own start: a window of one
			// frame is all it can use, and a smaller encoder keeps gen's RSS down.
			zstd.WithWindowSize(FrameSize), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, "", 0, fmt.Errorf("create zstd encoder: %w", err)
		}
		encoders <- enc
	}
	var encoding sync.WaitGroup
	defer func() {
		encoding.Wait()
		close(encoders)
		for enc := range encoders {
			enc.Close()
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nslots := slotCount(workers)
	free := make(chan *frameSlot, nslots)
	queue := make(chan *frameSlot, nslots)
	var readErr error
	sum := sha256.New()
	go func() {
		defer close(queue)
		readErr = readFrames(ctx, r, sum, &size, nslots, free, encoders, &encoding, queue)
	}()

	var werr error
	for s := range queue {
		<-s.done
		if werr == nil {
			if _, err := w.Write(s.zst); err != nil {
				werr = err
				cancel()
			} else {
				frames = append(frames, Frame{C: int64(len(s.zst)), U: int64(len(s.raw))})
			}
		}
		free <- s
	}
	if werr != nil {
		return nil, "", 0, werr
	}
	if readErr != nil {
		return nil, "", 0, readErr
	}
	return frames, digestOf(sum), size, nil
}

// readFrames fills frames from r and starts one compression per frame,
// queueing them in input order. It makes up to nslots slots, then reuses
// those the writer hands back on free.
func readFrames(ctx context.Context, r io.Reader, sum hash.Hash, size *int64, nslots int, free chan *frameSlot, encoders chan *zstd.Encoder, encoding *sync.WaitGroup, queue chan<- *frameSlot) error {
	made := 0
	for {
		var s *frameSlot
		select {
		case s = <-free:
		default:
			if made < nslots {
				made++
				s = &frameSlot{raw: make([]byte, FrameSize), zst: make([]byte, 0, FrameSize+maxFrameOverhead)}
				break
			}
			select {
			case s = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		n, err := io.ReadFull(r, s.raw[:FrameSize])
		if n > 0 {
			s.raw = s.raw[:n]
			sum.Write(s.raw)
			*size += int64(n)
			s.done = make(chan struct{})
			select {
			case queue <- s:
			case <-ctx.Done():
				return ctx.Err()
			}
			enc := <-encoders
			encoding.Add(1)
			go func() {
				defer encoding.Done()
				s.zst = enc.EncodeAll(s.raw, s.zst[:0])
				encoders <- enc
				close(s.done)
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
// At EOF it checks the compressed bytes against the layer's digest and the
// uncompressed stream against its diffID, so bad bytes never pass unnoticed.
//
// One goroutine reads the frames in file order and hashes them; each frame is
// then decoded on its own goroutine into a reused slot; Read hands out the
// slots' bytes in order, copying once, straight into the caller's buffer.
type frameReader struct {
	l      Layer
	cancel context.CancelFunc
	ctx    context.Context
	dec    *zstd.Decoder
	wg     sync.WaitGroup // the producer and every decoding goroutine
	queue  chan *frameSlot
	free   chan *frameSlot
	// Set by the producer before it closes queue.
	csum    string
	prodErr error

	cur    *frameSlot
	pos    int
	sum    hash.Hash
	err    error // sticky: returned by every Read once set
	closed bool
}

// openFrames returns the uncompressed content of a layer stored in blob.
func openFrames(ctx context.Context, blob io.ReaderAt, l Layer) io.ReadCloser {
	workers := runtime.GOMAXPROCS(0)
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(workers), zstd.WithDecoderMaxMemory(FrameSize*2))
	if err != nil {
		return &frameReader{err: fmt.Errorf("create zstd decoder: %w", err), closed: true}
	}
	ctx, cancel := context.WithCancel(ctx)
	nslots := slotCount(workers)
	f := &frameReader{
		l: l, ctx: ctx, cancel: cancel, dec: dec, sum: sha256.New(),
		queue: make(chan *frameSlot, nslots), free: make(chan *frameSlot, nslots),
	}
	for range min(nslots, max(len(l.Frames), 1)) {
		f.free <- &frameSlot{}
	}
	f.wg.Add(1)
	go f.produce(blob)
	return f
}

// produce reads the frames in order, hashes the compressed bytes and starts
// decoding each.
func (f *frameReader) produce(blob io.ReaderAt) {
	defer f.wg.Done()
	defer close(f.queue)
	csum := sha256.New()
	var off int64
	for i, fr := range f.l.Frames {
		var s *frameSlot
		select {
		case s = <-f.free:
		case <-f.ctx.Done():
			f.prodErr = f.ctx.Err()
			return
		}
		s.err, s.done = nil, make(chan struct{})
		s.zst = grow(s.zst, fr.C)
		if _, err := blob.ReadAt(s.zst, off); err != nil {
			s.err = fmt.Errorf("read frame %d: %w", i, err)
			close(s.done)
			f.queue <- s // queue has room for every slot
			return
		}
		csum.Write(s.zst)
		off += fr.C
		f.queue <- s
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer close(s.done)
			out, err := f.dec.DecodeAll(s.zst, grow(s.raw, fr.U)[:0])
			switch {
			case err != nil:
				s.err = fmt.Errorf("%w: frame %d: %v", ErrCorrupt, i, err)
			case int64(len(out)) != fr.U:
				s.err = fmt.Errorf("%w: frame %d inflates to %d bytes, want %d", ErrCorrupt, i, len(out), fr.U)
			}
			s.raw = out
		}()
	}
	f.csum = digestOf(csum)
}

// grow returns b resized to n bytes, reallocating only when it is too small.
func grow(b []byte, n int64) []byte {
	if int64(cap(b)) < n {
		return make([]byte, n)
	}
	return b[:n]
}

func (f *frameReader) Read(p []byte) (int, error) {
	for f.err == nil && (f.cur == nil || f.pos == len(f.cur.raw)) {
		if f.cur != nil {
			f.free <- f.cur
			f.cur = nil
		}
		s, ok := <-f.queue
		if !ok {
			f.err = f.finish()
			break
		}
		<-s.done
		if s.err != nil {
			f.err = s.err
			f.release()
			break
		}
		f.sum.Write(s.raw)
		f.cur, f.pos = s, 0
	}
	if f.err != nil {
		return 0, f.err
	}
	n := copy(p, f.cur.raw[f.pos:])
	f.pos += n
	return n, nil
}

// finish runs once every frame was read: it checks both digests.
func (f *frameReader) finish() error {
	ctxErr := f.ctx.Err()
	f.release()
	if f.prodErr != nil {
		return f.prodErr
	}
	if ctxErr != nil {
		return ctxErr
	}
	if f.csum != f.l.Digest {
		return &DigestError{What: "layer " + f.l.Digest, Want: f.l.Digest, Got: f.csum, Location: "compressed blob", Class: ErrCorrupt}
	}
	if got := digestOf(f.sum); got != f.l.DiffID {
		return &DigestError{What: "layer " + f.l.Digest + " content", Want: f.l.DiffID, Got: got, Location: "uncompressed stream", Class: ErrCorrupt}
	}
	return io.EOF
}

// release stops the producer, waits for every goroutine and frees the decoder.
func (f *frameReader) release() {
	if f.closed {
		return
	}
	f.closed = true
	f.cancel()
	f.wg.Wait()
	f.dec.Close()
}

// Close stops decompressing; later Reads fail.
func (f *frameReader) Close() error {
	f.release()
	if f.err == nil {
		f.err = errors.New("read of a closed layer")
	}
	return nil
}
