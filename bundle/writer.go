package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/sealpack/sealpack/internal/ctxio"
)

// WriterOptions say what kind of bundle to write.
type WriterOptions struct {
	Platform  Platform
	CreatedBy string
	Created   string // RFC 3339; leave empty for reproducible output unless SOURCE_DATE_EPOCH is set
	// SplitSize, when non-zero, caps every file of the bundle below this many
	// bytes (so "4G" fits FAT32's 4 GiB − 1 limit); parts are named PATH.part2, ...
	SplitSize int64
	// Level is the zstd level for rootfs layers; zero means zstd.SpeedDefault (≈ zstd -3).
	Level zstd.EncoderLevel
}

// Writer streams a bundle to disk: the stub, then each blob as it comes, then
// the index and the trailer. It never holds a blob in memory.
type Writer struct {
	opts  WriterOptions
	out   *partWriter
	index Index
	blobs map[string]int // digest → position in index.Blobs
	done  bool
}

// Create starts a bundle at path whose executable part is read from stub.
// Nothing appears at path until Commit succeeds.
func Create(path string, stub io.Reader, opts WriterOptions) (*Writer, error) {
	if opts.Level == 0 {
		opts.Level = zstd.SpeedDefault
	}
	var partSize int64
	if opts.SplitSize > 0 {
		// One byte below the limit, and room for the trailer in part 1.
		partSize = opts.SplitSize - TrailerSize - 1
		if partSize < minPartSize {
			return nil, fmt.Errorf("split size %d is below the minimum of %d bytes", opts.SplitSize, minPartSize+TrailerSize+1)
		}
	}
	w := &Writer{
		opts:  opts,
		out:   &partWriter{final: path, partSize: partSize},
		blobs: map[string]int{},
		index: Index{
			FormatVersion: FormatVersion,
			CreatedBy:     opts.CreatedBy,
			Created:       opts.Created,
			Platform:      opts.Platform,
			Blobs:         []Blob{},
			Layers:        []Layer{},
			Images:        []Image{},
		},
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w.out, h), stub)
	if err != nil {
		w.Abort()
		return nil, fmt.Errorf("write stub into %s: %w", path, err)
	}
	if n == 0 {
		w.Abort()
		return nil, fmt.Errorf("write stub into %s: the stub is empty", path)
	}
	if partSize > 0 && n >= partSize {
		w.Abort()
		return nil, fmt.Errorf("split size %d is too small: the first file must hold the %d-byte installer program", opts.SplitSize, n)
	}
	w.index.Stub = Stub{Size: n, Digest: digestOf(h)}
	return w, nil
}

// blobCopySize is the buffer AddBlob copies through.
const blobCopySize = 1 << 20

// countingHash hashes and counts what passes through it on the way to the file.
type countingHash struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// AddLayer compresses the tar stream r as a rootfs layer and appends it.
// A layer identical to one already stored is stored once.
func (w *Writer) AddLayer(ctx context.Context, r io.Reader, createdBy string) (Layer, error) {
	start := w.out.off
	ch := &countingHash{w: w.out, h: sha256.New()}
	frames, diffID, size, err := compressFrames(ctx, r, ch, w.opts.Level)
	if err != nil {
		return Layer{}, fmt.Errorf("compress layer %q: %w", createdBy, err)
	}
	l := Layer{Digest: digestOf(ch.h), DiffID: diffID, Size: size, CreatedBy: createdBy, Frames: frames}
	if l.Frames == nil {
		l.Frames = []Frame{}
	}
	if err := w.record(start, Blob{Digest: l.Digest, Size: ch.n, MediaType: MediaTypeRootfsLayer}); err != nil {
		return Layer{}, err
	}
	w.index.Layers = append(w.index.Layers, l)
	return l, nil
}

// HasBlob reports whether a blob with this digest is already stored.
func (w *Writer) HasBlob(digest string) bool {
	_, ok := w.blobs[digest]
	return ok
}

// AddBlob stores r's bytes exactly as they are (container image blobs keep
// their digests). When digest is given, the bytes must match it, and a blob
// already stored is not read again.
func (w *Writer) AddBlob(ctx context.Context, r io.Reader, digest, mediaType string) (Blob, error) {
	if i, ok := w.blobs[digest]; ok && digest != "" {
		return w.index.Blobs[i], nil
	}
	start := w.out.off
	ch := &countingHash{w: w.out, h: sha256.New()}
	// 1 MiB at a time: io.Copy's 32 KiB would mean a write per 32 KiB.
	if _, err := io.CopyBuffer(ch, ctxio.Reader(ctx, r), make([]byte, blobCopySize)); err != nil {
		w.out.truncate(start)
		return Blob{}, fmt.Errorf("store blob %s: %w", digest, err)
	}
	got := digestOf(ch.h)
	if digest != "" && got != digest {
		w.out.truncate(start)
		return Blob{}, &DigestError{What: "blob " + digest, Want: digest, Got: got, Location: "input", Class: ErrCorrupt}
	}
	b := Blob{Digest: got, Size: ch.n, MediaType: mediaType}
	if err := w.record(start, b); err != nil {
		return Blob{}, err
	}
	return w.index.Blobs[w.blobs[got]], nil
}

// AddVerifiedFile stores the content of f, a regular file the caller has
// already checked: its size bytes hash to digest. The bytes are not hashed
// again, and an unsplit bundle copies them file to file in the kernel
// (copy_file_range), so a rebuild from a blob cache costs a copy and no
// SHA-256 pass. A split bundle still reads them once, for its part digests
// (SHA-256 of each part as a whole, which no per-blob digest can give).
//
// Why it is safe: a caller only passes files whose digest it checked when it
// wrote them, such as a content-addressed cache that renames an entry into
// place after checking it (generator/images.Cache), and that it has not seen
// written since. The writer checks what costs nothing: the digest's form and
// f's size. A file changed behind the caller's back would give a bundle whose
// index records the right digest over the wrong bytes: Open accepts it, but
// Verify (installer.run verify) hashes every blob against the index and
// names the blob, and the bundle's registry and layer readers check each
// blob's digest as they stream it. So a bad file does not go unnoticed; it is
// found when the bundle is read, not while it is written. Inputs that were
// not checked go through AddBlob.
func (w *Writer) AddVerifiedFile(ctx context.Context, f *os.File, digest string, size int64, mediaType string) (Blob, error) {
	if !digestRE.MatchString(digest) {
		return Blob{}, fmt.Errorf("store blob from %s: invalid digest %q", f.Name(), digest)
	}
	if i, ok := w.blobs[digest]; ok {
		return w.index.Blobs[i], nil
	}
	fi, err := f.Stat()
	if err != nil {
		return Blob{}, fmt.Errorf("store blob %s: %w", digest, err)
	}
	if !fi.Mode().IsRegular() {
		return Blob{}, fmt.Errorf("store blob %s: %s is not a regular file", digest, f.Name())
	}
	if fi.Size() != size {
		return Blob{}, fmt.Errorf("store blob %s: %s is %d bytes, want %d", digest, f.Name(), fi.Size(), size)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Blob{}, fmt.Errorf("store blob %s: %w", digest, err)
	}
	start := w.out.off
	if _, err := w.out.copyFile(ctx, f, size); err != nil {
		w.out.truncate(start)
		return Blob{}, fmt.Errorf("store blob %s from %s: %w", digest, f.Name(), err)
	}
	if err := w.record(start, Blob{Digest: digest, Size: size, MediaType: mediaType}); err != nil {
		return Blob{}, err
	}
	return w.index.Blobs[w.blobs[digest]], nil
}

// record adds a blob just written at start, or takes the bytes back when the
// same content is stored already.
func (w *Writer) record(start int64, b Blob) error {
	if _, ok := w.blobs[b.Digest]; ok {
		return w.out.truncate(start)
	}
	b.Offset = start
	w.blobs[b.Digest] = len(w.index.Blobs)
	w.index.Blobs = append(w.index.Blobs, b)
	return nil
}

// AddAgent stores the host agent program for the bundle's platform.
func (w *Writer) AddAgent(ctx context.Context, r io.Reader) error {
	b, err := w.AddBlob(ctx, r, "", MediaTypeAgent)
	if err != nil {
		return fmt.Errorf("store the host agent: %w", err)
	}
	w.index.Agent = b.Digest
	return nil
}

// SetConfig sets the cluster image metadata recorded in the index.
func (w *Writer) SetConfig(c Config) { w.index.Config = c }

// AddImage records a container image whose blobs were added with AddBlob.
func (w *Writer) AddImage(im Image) error {
	if !w.HasBlob(im.Digest) {
		return fmt.Errorf("add image %s: manifest blob %s was not added", im.Name, im.Digest)
	}
	w.index.Images = append(w.index.Images, im)
	return nil
}

// Commit writes the index and trailer and moves the bundle into place.
func (w *Writer) Commit() error {
	if w.done {
		return fmt.Errorf("bundle %s already committed or aborted", w.out.final)
	}
	w.done = true
	w.index.Parts = w.out.fullParts(w.out.off)
	idx, err := json.Marshal(&w.index)
	if err != nil {
		w.out.abort()
		return fmt.Errorf("encode index: %w", err)
	}
	t := Trailer{Version: FormatVersion, StubSize: w.index.Stub.Size, IndexOffset: w.out.off, IndexLength: int64(len(idx))}
	if _, err := w.out.Write(idx); err != nil {
		w.out.abort()
		return err
	}
	t.LogicalSize = w.out.off
	if w.out.count() > 1 {
		t.PartSize = w.out.partSize
	}
	t.IndexSHA256 = sha256.Sum256(idx)
	tb, err := t.MarshalBinary()
	if err != nil {
		w.out.abort()
		return err
	}
	if err := w.out.commit(tb); err != nil {
		w.out.abort()
		return err
	}
	return nil
}

// Abort discards everything written so far.
func (w *Writer) Abort() {
	w.done = true
	w.out.abort()
}
