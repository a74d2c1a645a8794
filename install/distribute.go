package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/progress"
)

// uploadTimeout bounds one transfer; generous, since a slow link to a big
// bundle is normal, but a stuck transfer still ends.
const uploadTimeout = 2 * time.Hour

// progressReader reports bytes read as Progress events, at most ten a second.
type progressReader struct {
	r        io.Reader
	n, total int64
	last     time.Time
	emit     func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) > 100*time.Millisecond || err != nil {
		p.last = now
		p.emit(p.n, p.total)
	}
	return n, err
}

// upload streams r to a file on the host, checks its SHA-256 there, and
// moves it into place only if it matches.
func (e *Engine) upload(ctx context.Context, c *Conn, phase, step string, r io.Reader, size int64, digest, dst string, mode string) error {
	hex := strings.TrimPrefix(digest, "sha256:")
	tmp := dst + ".partial"
	cmd := fmt.Sprintf("mkdir -p \"$(dirname %[1]s)\" && cat > %[2]s && echo %[3]s' '%[2]s | sha256sum -c --status && chmod %[4]s %[2]s && mv -f %[2]s %[1]s || { rm -f %[2]s; echo 'checksum mismatch after transfer' >&2; exit 1; }",
		shellQuote(dst), shellQuote(tmp), hex, mode)
	pr := &progressReader{r: r, total: size, emit: func(done, total int64) {
		e.emit(Event{Kind: Progress, Host: c.Node.IP, Phase: phase, Step: step, Bytes: done, Total: total})
	}}
	var errOut strings.Builder
	err := c.Exec(ctx, cmd, pr, io.Discard, &errOut, uploadTimeout)
	if ce, ok := err.(*CommandError); ok {
		ce.Stderr = strings.TrimSpace(errOut.String())
		ce.Cmd = "upload " + dst
	}
	return err
}

// distribute puts the installer program and the merged rootfs on every
// host. The first master receives the whole bundle (its registry serves the
// images from it) and unpacks from that copy; the other hosts receive only
// the stub and the rootfs layers, which they verify and unpack themselves.
func (e *Engine) distribute(ctx context.Context, nodes []cluster.Node) error {
	m0 := e.c.Master0().IP
	var sent atomic.Int64
	start := time.Now()
	err := forEach(ctx, nodes, e.opts.Parallel, func(ctx context.Context, n cluster.Node) error {
		if err := e.stepID(ctx, n, "distribute", "stub", e.opts.Bundle.Index.Stub.Digest, func(ctx context.Context, c *Conn) (string, error) {
			b := e.opts.Bundle
			sent.Add(b.Trailer.StubSize)
			return progress.Bytes(b.Trailer.StubSize), e.upload(ctx, c, "distribute", "stub", b.StubReader(), b.Trailer.StubSize, b.Index.Stub.Digest, e.stubPath(), "755")
		}); err != nil {
			return err
		}
		if n.IP == m0 {
			return e.distributeBundle(ctx, n, &sent)
		}
		return e.distributeLayers(ctx, n, &sent)
	})
	e.emit(Event{Kind: Info, Phase: "distribute", Message: fmt.Sprintf("sent %s from this machine in %v", progress.Bytes(sent.Load()), time.Since(start).Round(time.Millisecond))})
	return err
}

func (e *Engine) bundleCopyPath() string { return e.remote("bundle", "installer.run") }

// distributeBundle copies the whole bundle as one file to the first master,
// verifies every byte there with the copied program, and unpacks from it.
func (e *Engine) distributeBundle(ctx context.Context, n cluster.Node, sent *atomic.Int64) error {
	b := e.opts.Bundle
	if err := e.stepID(ctx, n, "distribute", "bundle", e.bundleID(), func(ctx context.Context, c *Conn) (string, error) {
		pr, pw := io.Pipe()
		go func() {
			_, err := b.WriteSingle(pw)
			pw.CloseWithError(err)
		}()
		dst := e.bundleCopyPath()
		cmd := fmt.Sprintf("mkdir -p \"$(dirname %[1]s)\" && cat > %[2]s && %[3]s verify --quiet --bundle %[2]s && mv -f %[2]s %[1]s || { rm -f %[2]s; exit 1; }",
			shellQuote(dst), shellQuote(dst+".partial"), shellQuote(e.stubPath()))
		size := b.SingleSize()
		rd := &progressReader{r: pr, total: size, emit: func(done, total int64) {
			e.emit(Event{Kind: Progress, Host: n.IP, Phase: "distribute", Step: "bundle", Bytes: done, Total: total})
		}}
		var errOut strings.Builder
		err := c.Exec(ctx, cmd, rd, io.Discard, &errOut, uploadTimeout)
		pr.CloseWithError(io.ErrClosedPipe)
		if ce, ok := err.(*CommandError); ok {
			ce.Stderr, ce.Cmd = strings.TrimSpace(errOut.String()), "copy and verify the bundle"
		}
		sent.Add(size)
		return progress.Bytes(size) + " verified", err
	}); err != nil {
		return err
	}
	return e.stepID(ctx, n, "distribute", "rootfs", e.rootfsID(), func(ctx context.Context, c *Conn) (string, error) {
		out, err := c.Output(ctx, fmt.Sprintf("%s agent unpack --bundle %s --to %s", shellQuote(e.stubPath()), shellQuote(e.bundleCopyPath()), shellQuote(e.rootfsPath())), time.Hour)
		return strings.TrimSpace(out), err
	})
}

// distributeLayers sends the layer blobs the host lacks, each verified on
// arrival, then unpacks them.
func (e *Engine) distributeLayers(ctx context.Context, n cluster.Node, sent *atomic.Int64) error {
	b := e.opts.Bundle
	if err := e.stepID(ctx, n, "distribute", "layers", e.rootfsID(), func(ctx context.Context, c *Conn) (string, error) {
		have, err := c.Output(ctx, "ls "+shellQuote(e.blobDir()+"/sha256")+" 2>/dev/null || true", time.Minute)
		if err != nil {
			return "", err
		}
		present := map[string]bool{}
		for _, h := range strings.Fields(have) {
			present["sha256:"+h] = true
		}
		var bytes, count int64
		for i, l := range b.Index.Layers {
			if present[l.Digest] {
				continue
			}
			present[l.Digest] = true
			sr, bl, err := b.Blob(l.Digest)
			if err != nil {
				return "", err
			}
			step := fmt.Sprintf("layer %d", i+1)
			cmd := fmt.Sprintf("%s agent receive-blob --digest %s --dir %s", shellQuote(e.stubPath()), l.Digest, shellQuote(e.blobDir()))
			pr := &progressReader{r: sr, total: bl.Size, emit: func(done, total int64) {
				e.emit(Event{Kind: Progress, Host: n.IP, Phase: "distribute", Step: step, Bytes: done, Total: total})
			}}
			var errOut strings.Builder
			if err := c.Exec(ctx, cmd, pr, io.Discard, &errOut, uploadTimeout); err != nil {
				if ce, ok := err.(*CommandError); ok {
					ce.Stderr, ce.Cmd = strings.TrimSpace(errOut.String()), "receive "+step
				}
				return "", err
			}
			sent.Add(bl.Size)
			bytes += bl.Size
			count++
		}
		return fmt.Sprintf("%d layers, %s sent", count, progress.Bytes(bytes)), nil
	}); err != nil {
		return err
	}
	return e.stepID(ctx, n, "distribute", "rootfs", e.rootfsID(), func(ctx context.Context, c *Conn) (string, error) {
		cmd := fmt.Sprintf("%s agent unpack --blobs %s --to %s", shellQuote(e.stubPath()), shellQuote(e.blobDir()), shellQuote(e.rootfsPath()))
		for _, l := range b.Index.Layers {
			cmd += " --layer " + l.Digest
		}
		_, err := c.Output(ctx, cmd, time.Hour)
		return "", err
	})
}

// bundleID names the bundle's content: its index digest covers every byte.
func (e *Engine) bundleID() string {
	return "sha256:" + hex.EncodeToString(e.opts.Bundle.Trailer.IndexSHA256[:])
}

// rootfsID names the merged rootfs: the digest of its ordered layer list.
func (e *Engine) rootfsID() string {
	h := sha256.New()
	for _, l := range e.opts.Bundle.Index.Layers {
		fmt.Fprintln(h, l.Digest)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
