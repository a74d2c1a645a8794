package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/sealpack/sealpack/internal/verify"
)

// blobFastPath serves GET and HEAD of bundle blobs itself and hands every
// other request to distribution. distribution's blob server reads through a
// 4 MiB bufio.Reader per request (100 concurrent pulls: 400 MiB of heap, and
// a second copy of every byte); here the bytes go from the installer file
// to the connection through http.ServeContent's 32 KiB buffer, digest checked
// on the way the first time (see isVerified). It is only used where distribution would add nothing: no auth,
// no pushes (writable mode goes through distribution for everything).
func blobFastPath(d *bundleDriver, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		repo, digest, ok := parseBlobPath(r.URL.Path)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		hexd, err := hexOf(digest)
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		if _, err := d.lookup(path.Join(reposPath, repo, "_layers/sha256", hexd, "link")); err != nil {
			next.ServeHTTP(w, r) // distribution answers BLOB_UNKNOWN / NAME_UNKNOWN
			return
		}
		data, err := d.lookup(path.Join(blobsPath, "sha256", hexd[:2], hexd, "data"))
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		sr, _, err := d.store.Blob(digest)
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Docker-Distribution-API-Version", "registry/2.0")
		h.Set("Docker-Content-Digest", digest)
		h.Set("Content-Type", "application/octet-stream")
		h.Set("ETag", `"`+digest+`"`)
		h.Set("Cache-Control", "max-age=31536000")
		if r.Method == http.MethodHead {
			h.Set("Accept-Ranges", "bytes")
			h.Set("Content-Length", strconv.FormatInt(data.size, 10))
			w.WriteHeader(http.StatusOK)
			return
		}
		// every GET of a blob says what went to whom: the bytes each
		// master's registry serves are how an operator (and the tier) sees
		// whether nodes pull from it or were preloaded through the fan-out
		cw := &countingWriter{ResponseWriter: w}
		w = cw
		defer func() {
			d.log.Info("blob served", "repo", repo, "digest", digest, "bytes", cw.n, "client", r.RemoteAddr)
		}()
		if d.isVerified(digest) {
			http.ServeContent(w, r, "", time.Time{}, sr)
			return
		}
		if r.Header.Get("Range") != "" {
			// Bytes from the middle cannot be checked as they stream: hash
			// the blob whole once (remembered), then serve ranges in place.
			if err := d.verify(r.Context(), digest); err != nil {
				d.log.Error("refusing to serve a corrupt blob", "digest", digest, "err", err)
				h.Del("Docker-Content-Digest")
				h.Del("ETag")
				http.Error(w, fmt.Sprintf("blob %s failed verification", digest), http.StatusInternalServerError)
				return
			}
			http.ServeContent(w, r, "", time.Time{}, sr)
			return
		}
		v := &wholeBlob{Reader: blobReader(r.Context(), sr, data.size, digest), size: data.size}
		http.ServeContent(w, r, "", time.Time{}, v)
		switch {
		case v.Err() != nil:
			// Content-Length was promised and not delivered: net/http
			// closes the connection, and the client sees a short body.
			d.log.Error("stopped serving a corrupt blob", "digest", digest, "err", v.Err())
		case v.Verified():
			d.markVerified(digest)
		}
	})
}

// countingWriter counts the body bytes written through it.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// parseBlobPath splits /v2/<name>/blobs/<digest>.
func parseBlobPath(p string) (repo, digest string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/blobs/")
	if i <= 0 {
		return "", "", false
	}
	repo, digest = rest[:i], rest[i+len("/blobs/"):]
	if strings.Contains(digest, "/") || validateRepository(repo) != nil {
		return "", "", false
	}
	return repo, digest, true
}

// wholeBlob lets http.ServeContent find the size (it seeks to the end and
// back) while the bytes stream through the verifying reader from byte 0.
type wholeBlob struct {
	*verify.Reader
	size int64
	read bool
}

func (b *wholeBlob) Read(p []byte) (int, error) {
	b.read = true
	return b.Reader.Read(p)
}

func (b *wholeBlob) Seek(off int64, whence int) (int64, error) {
	switch {
	case whence == io.SeekEnd && off == 0 && !b.read:
		return b.size, nil
	case whence == io.SeekStart && off == 0 && !b.read:
		return 0, nil
	}
	return 0, errors.New("whole-blob reader cannot seek")
}

// refuseWrites answers every write with 405 and an UNSUPPORTED error body,
// as the distribution spec asks of a registry that does not accept pushes
// (distribution's read-only mode answers a bare "Method not allowed").
func refuseWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.Header().Set("Allow", "GET, HEAD")
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnsupported.WithMessage("this registry serves an installer bundle and is read-only"))
	})
}
