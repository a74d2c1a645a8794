package bundle

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sealpack/sealpack/internal/ctxio"
)

// partWriter writes the logical content of a bundle into one temporary file,
// or into several when the bundle is split, and renames them into place only
// on commit, so a failed build leaves nothing half-written under the final names.
type partWriter struct {
	final    string // path of part 1, the installer itself
	partSize int64  // logical bytes per part; 0 means one file
	files    []*os.File
	hashes   []hash.Hash // SHA-256 of each part's logical bytes, for naming a wrong part; nil entries when not split
	off      int64       // logical bytes written
	// Early writeback: bytes [wbFrom, within) of file wbFile are written but
	// not yet handed to the disk.
	wbFile int
	wbFrom int64
}

// writebackChunk is how many written bytes make partWriter start their
// writeback (see startWriteback).
const writebackChunk = 32 << 20

// PartPath is the file name of part k (1-based) of the bundle at path.
func PartPath(path string, k int) string {
	if k == 1 {
		return path
	}
	return path + ".part" + strconv.Itoa(k)
}

func (p *partWriter) current() (*os.File, int64, error) {
	k := 0
	if p.partSize > 0 {
		k = int(p.off / p.partSize)
	}
	for len(p.files) <= k {
		f, err := os.CreateTemp(filepath.Dir(p.final), "."+filepath.Base(PartPath(p.final, len(p.files)+1))+".*.tmp")
		if err != nil {
			return nil, 0, fmt.Errorf("create part %d of %s: %w", len(p.files)+1, p.final, err)
		}
		p.files = append(p.files, f)
		var h hash.Hash
		if p.partSize > 0 { // one file needs no part digest: skip a SHA-256 pass
			h = sha256.New()
		}
		p.hashes = append(p.hashes, h)
	}
	room := int64(-1)
	if p.partSize > 0 {
		room = int64(k+1)*p.partSize - p.off
	}
	return p.files[k], room, nil
}

func (p *partWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		f, room, err := p.current()
		if err != nil {
			return written, err
		}
		chunk := b
		if room >= 0 && int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		n, err := f.Write(chunk)
		if h := p.hashes[len(p.files)-1]; h != nil {
			h.Write(chunk[:n])
		}
		written += n
		p.off += int64(n)
		p.writeback(f)
		if err != nil {
			return written, fmt.Errorf("write %s: %w", p.final, err)
		}
		b = b[n:]
	}
	return written, nil
}

// fileCopyChunk bounds one copy_file_range call of copyFile, so that a
// cancelled build stops within a chunk rather than at the end of a blob.
const fileCopyChunk = 64 << 20

// copyFile appends the next n bytes of f (from its current offset). Unsplit,
// the bytes go from file to file in the kernel: os.File.ReadFrom with an
// *io.LimitedReader over an *os.File is copy_file_range(2), a copy of page
// cache pages that never passes through user space. (It does not share
// extents even where the filesystem has reflinks: blobs are packed at
// offsets that are not block-aligned.) A split bundle hashes each part, so
// its bytes are read and written through a buffer as for any reader. Fewer
// than n bytes in f is io.ErrUnexpectedEOF; the caller takes the bytes back.
func (p *partWriter) copyFile(ctx context.Context, f *os.File, n int64) (int64, error) {
	if p.partSize > 0 {
		m, err := io.CopyBuffer(p, io.LimitReader(ctxio.Reader(ctx, f), n), make([]byte, blobCopySize))
		if err == nil && m < n {
			err = io.ErrUnexpectedEOF
		}
		return m, err
	}
	var done int64
	for done < n {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		dst, _, err := p.current()
		if err != nil {
			return done, err
		}
		chunk := min(n-done, fileCopyChunk)
		m, err := dst.ReadFrom(&io.LimitedReader{R: f, N: chunk})
		done += m
		p.off += m
		p.writeback(dst)
		if err != nil {
			return done, fmt.Errorf("write %s: %w", p.final, err)
		}
		if m < chunk {
			return done, io.ErrUnexpectedEOF
		}
	}
	return done, nil
}

// writeback starts the disk writing f's bytes once enough have piled up.
func (p *partWriter) writeback(f *os.File) {
	k, within := 0, p.off
	if p.partSize > 0 {
		k, within = int((p.off-1)/p.partSize), p.off-int64((p.off-1)/p.partSize)*p.partSize
	}
	if k != p.wbFile || within < p.wbFrom {
		p.wbFile, p.wbFrom = k, 0
	}
	if within-p.wbFrom >= writebackChunk {
		startWriteback(f, p.wbFrom, within-p.wbFrom)
		p.wbFrom = within
	}
}

// truncate drops everything written after logical offset off; the writer uses
// it to take back a blob that turned out to be stored already.
func (p *partWriter) truncate(off int64) error {
	if off > p.off {
		return fmt.Errorf("truncate %s to %d beyond its end %d", p.final, off, p.off)
	}
	keep, within := 1, off
	if p.partSize > 0 {
		keep, within = int(off/p.partSize)+1, off%p.partSize
	}
	for len(p.files) > keep {
		last := p.files[len(p.files)-1]
		last.Close()
		os.Remove(last.Name())
		p.files = p.files[:len(p.files)-1]
		p.hashes = p.hashes[:len(p.hashes)-1]
	}
	if len(p.files) == keep {
		f := p.files[keep-1]
		if err := f.Truncate(within); err != nil {
			return fmt.Errorf("truncate %s: %w", f.Name(), err)
		}
		// A hash cannot be rewound: hash the part's kept bytes again.
		if p.hashes[keep-1] != nil {
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(f, 0, within)); err != nil {
				return fmt.Errorf("rehash %s: %w", f.Name(), err)
			}
			p.hashes[keep-1] = h
		}
		if _, err := f.Seek(within, 0); err != nil {
			return fmt.Errorf("seek %s: %w", f.Name(), err)
		}
	}
	p.off = off
	return nil
}

// fullParts returns the digests of the parts that end at or before logical
// offset end: those are complete once the index is about to be written there.
func (p *partWriter) fullParts(end int64) []string {
	if p.partSize <= 0 {
		return nil
	}
	var out []string
	for k := 0; int64(k+1)*p.partSize <= end && k < len(p.hashes); k++ {
		out = append(out, digestOf(p.hashes[k]))
	}
	return out
}

// commit appends the trailer to part 1, syncs every part and renames them
// into place, part 1 last: whoever sees the installer sees its parts too.
// Parts left over from an earlier, larger build of the same name are removed.
func (p *partWriter) commit(trailer []byte) error {
	if len(p.files) == 0 {
		if _, _, err := p.current(); err != nil {
			return err
		}
	}
	first := p.files[0]
	if _, err := first.Seek(0, 2); err != nil {
		return fmt.Errorf("seek end of %s: %w", first.Name(), err)
	}
	if _, err := first.Write(trailer); err != nil {
		return fmt.Errorf("write trailer of %s: %w", p.final, err)
	}
	if err := first.Chmod(0o755); err != nil {
		return fmt.Errorf("make %s executable: %w", p.final, err)
	}
	for _, f := range p.files {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", f.Name(), err)
		}
	}
	for k := len(p.files); k >= 1; k-- {
		if err := os.Rename(p.files[k-1].Name(), PartPath(p.final, k)); err != nil {
			return fmt.Errorf("rename part %d into place: %w", k, err)
		}
	}
	p.files = nil
	for k := p.count() + 1; ; k++ {
		err := os.Remove(PartPath(p.final, k))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("remove stale part %d: %w", k, err)
		}
	}
	if d, err := os.Open(filepath.Dir(p.final)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (p *partWriter) count() int {
	if p.partSize <= 0 {
		return 1
	}
	return int((p.off + p.partSize - 1) / p.partSize)
}

// abort removes every temporary part.
func (p *partWriter) abort() {
	for _, f := range p.files {
		f.Close()
		os.Remove(f.Name())
	}
	p.files = nil
}
