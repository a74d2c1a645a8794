// Package verify checks bytes against the SHA-256 digest and size recorded
// for them while they stream: the one reader the bundle, the registry and the
// generator's image sources use.
package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// DigestError reports bytes that do not hash to the digest recorded for them,
// or that end before or after the recorded size.
type DigestError struct {
	What     string // what the bytes are, e.g. "layer 2 (COPY app /opt/app)" or "blob sha256:…"
	Want     string
	Got      string // the digest of the bytes read
	Location string // where they are, e.g. "installer.run.part2 bytes 1024-2047"; may be empty
	Detail   string // how the size was wrong, if it was
	// Class is what the error is an instance of for errors.Is, e.g.
	// bundle.ErrCorrupt for a bundle's own bytes; may be nil.
	Class error
}

func (e *DigestError) Error() string {
	s := e.What + ": digest mismatch"
	if e.Location != "" {
		s += " at " + e.Location
	}
	s += ": want " + e.Want + ", got " + e.Got
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *DigestError) Unwrap() error { return e.Class }

// Expect is what a run of bytes must be, and how errors name it.
type Expect struct {
	Digest   string // sha256:HEX
	Size     int64
	What     string
	Location string
	Class    error
}

// Reader passes the Size bytes of a source through, hashing them. Before it
// hands out the last of them it checks the digest, and that the source has
// no more: the Read that would return the final bytes of a wrong blob returns
// a *DigestError and no bytes instead, so whoever reads it never holds a
// complete wrong blob. (Checking at io.EOF would be too late for an HTTP
// server: http.ServeContent stops after Content-Length bytes and never asks
// for EOF.) A source that ends early fails at once.
type Reader struct {
	r    io.Reader
	e    Expect
	h    hash.Hash
	left int64
	err  error // the mismatch, once found; every later Read returns it
	done bool  // every byte read and matched
}

// NewReader returns a Reader of r checked against e.
func NewReader(r io.Reader, e Expect) *Reader {
	return &Reader{r: r, e: e, h: sha256.New(), left: max(e.Size, 0)}
}

func (v *Reader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.left == 0 {
		if !v.done {
			v.check()
		}
		if v.err != nil {
			return 0, v.err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	if v.left == 0 {
		if v.check(); v.err != nil {
			return 0, v.err
		}
		return n, nil
	}
	if err == io.EOF {
		v.fail(fmt.Sprintf("only %d of %d bytes", v.e.Size-v.left, v.e.Size))
		return n, v.err
	}
	return n, err
}

// check runs once all Size bytes are read: nothing may follow them, and
// they must hash to the digest.
func (v *Reader) check() {
	var extra [1]byte
	if n, _ := io.ReadFull(v.r, extra[:]); n > 0 {
		v.fail(fmt.Sprintf("more than %d bytes", v.e.Size))
		return
	}
	if got := v.sum(); got != v.e.Digest {
		v.fail("")
		return
	}
	v.done = true
}

func (v *Reader) sum() string { return "sha256:" + hex.EncodeToString(v.h.Sum(nil)) }

func (v *Reader) fail(detail string) {
	e := v.e
	v.err = &DigestError{What: e.What, Want: e.Digest, Got: v.sum(), Location: e.Location, Detail: detail, Class: e.Class}
}

// Err returns the mismatch found so far, if any (not the source's errors).
func (v *Reader) Err() error { return v.err }

// Verified says whether every byte has been read and matched.
func (v *Reader) Verified() bool { return v.done }
