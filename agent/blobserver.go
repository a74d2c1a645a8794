package agent

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sealpack/sealpack/internal/ctxio"
)

// Hosts pass rootfs layers to each other during an install, so the
// installing machine's link carries each layer once or twice, not once per
// host. A host that has the layers serves them with serve-blobs; a host that
// needs them fetches with fetch-blob. Integrity comes from the digests (the
// fetcher verifies every blob against the index the engine trusts); the
// token (TokenEnv) keeps other machines on the network from reading the
// layers.

func (c ServeBlobs) run(ctx context.Context, _ *Env) error {
	token := os.Getenv(TokenEnv)
	if token == "" {
		return errors.New("serve-blobs: " + TokenEnv + " is not set")
	}
	idle := c.IdleTimeout
	if idle == 0 {
		idle = defaultIdleTimeout
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	if c.AddrFile != "" {
		if err := os.WriteFile(c.AddrFile+".tmp", []byte(ln.Addr().String()), 0o600); err != nil {
			return err
		}
		if err := os.Rename(c.AddrFile+".tmp", c.AddrFile); err != nil {
			return err
		}
	}
	seen := make(chan struct{}, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- struct{}{}:
		default:
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		final, off, n, err := blobRequest(r, c.Dir, c.File)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		src, err := openFollow(r.Context(), final, off, n)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		defer src.Close()
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		// A failure mid-stream drops the connection: the fetcher sees a
		// short body and its digest check fails; it never stores bad bytes.
		io.Copy(w, src)
	})}
	go func() {
		t := time.NewTimer(idle)
		for {
			select {
			case <-seen:
				t.Reset(idle)
			case <-t.C:
				srv.Close()
				return
			case <-ctx.Done():
				srv.Close()
				return
			}
		}
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// blobRequest reads which file and byte range a request asks for.
func blobRequest(r *http.Request, dir, file string) (final string, off, n int64, err error) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case dir != "" && len(parts) == 2 && parts[0] == "blobs":
		final, err = blobPath(dir, parts[1])
		if err == nil {
			n, err = strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		}
		return final, 0, n, err
	case file != "" && len(parts) == 3 && parts[0] == "range":
		off, err = strconv.ParseInt(parts[1], 10, 64)
		if err == nil {
			n, err = strconv.ParseInt(parts[2], 10, 64)
		}
		return file, off, n, err
	}
	return "", 0, 0, errors.New("bad request")
}

// partialSuffix marks a file still arriving; it is renamed to its final
// name once its digest matched.
const partialSuffix = ".partial"

// followReader yields bytes [off, off+n) of a file that may still be
// arriving (FINAL.partial), waiting for it to grow: a host forwards a layer
// to the next while it receives it, so a chain of hosts takes about as long
// as one transfer. It stops when the arrival stalls or is abandoned.
type followReader struct {
	ctx        context.Context
	f          *os.File
	final      string
	off, left  int64
	lastGrowth time.Time
}

// openFollow opens FINAL, or FINAL.partial while it arrives.
func openFollow(ctx context.Context, final string, off, n int64) (*followReader, error) {
	// The next host may ask before this one has started on the blob: wait.
	start := time.Now()
	for {
		f, err := os.Open(final)
		if errors.Is(err, os.ErrNotExist) {
			f, err = os.Open(final + partialSuffix)
		}
		if err == nil {
			return &followReader{ctx: ctx, f: f, final: final, off: off, left: n, lastGrowth: time.Now()}, nil
		}
		if !errors.Is(err, os.ErrNotExist) || time.Since(start) > stallTimeout {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stallTimeout is how long a file may stop growing before its reader gives up.
const stallTimeout = time.Minute

func (r *followReader) Read(p []byte) (int, error) {
	for {
		if r.left <= 0 {
			return 0, io.EOF
		}
		n, err := r.f.ReadAt(p[:min(int64(len(p)), r.left)], r.off)
		if n > 0 {
			r.off += int64(n)
			r.left -= int64(n)
			r.lastGrowth = time.Now()
			return n, nil
		}
		if err != nil && err != io.EOF {
			return 0, err
		}
		// At the current end: wait for more, unless the arrival was abandoned
		// (neither the partial nor the final file is there) or stalled.
		if _, err := os.Stat(r.final); err != nil {
			if _, err := os.Stat(r.final + partialSuffix); err != nil {
				return 0, errors.New("the upstream transfer was abandoned")
			}
		}
		if time.Since(r.lastGrowth) > stallTimeout {
			return 0, errors.New("the upstream transfer stalled")
		}
		select {
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *followReader) Close() error { return r.f.Close() }

func (c FetchBlob) run(ctx context.Context, _ *Env) error {
	for _, b := range c.Blobs {
		if err := c.fetch(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// fetch stores one blob, unless it is there already (a blob is stored
// only once it matched its digest, so its size is check enough).
func (c FetchBlob) fetch(ctx context.Context, b BlobRef) error {
	dst, err := blobPath(c.Dir, b.Digest)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dst); err == nil && fi.Size() == b.Size {
		return nil
	}
	url := fmt.Sprintf("http://%s/blobs/%s?size=%d", c.From, b.Digest, b.Size)
	if c.Bundle {
		url = fmt.Sprintf("http://%s/range/%d/%d", c.From, b.Offset, b.Size)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+os.Getenv(TokenEnv))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s from %s: %w", b.Digest, c.From, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s from %s: %s", b.Digest, c.From, resp.Status)
	}
	return storeBlob(ctx, resp.Body, c.Dir, b.Digest)
}

// storeBlob writes r as blob digest under dir, only if it hashes to digest:
// a blob file that exists is a verified blob. While it arrives it is
// DIGEST.partial, which serve-blobs forwards to other hosts as it grows.
func storeBlob(ctx context.Context, r io.Reader, dir, digest string) error {
	dst, err := blobPath(dir, digest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + partialSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxio.Reader(ctx, r))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("receive %s: %w", digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("receive %s: got %d bytes hashing to %s: transfer corrupted", digest, n, got)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	ok = true
	return nil
}
