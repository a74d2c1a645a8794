package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

var errClass = errors.New("corrupt")

// TestReader: every way the bytes can be wrong is reported, and before the
// last byte is handed out: what a reader receives of a wrong blob is always
// short of the recorded size.
func TestReader(t *testing.T) {
	blob := make([]byte, 10_000)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 1
		return b
	}
	cases := []struct {
		name   string
		source []byte
		size   int64
		detail string // "" for a good read
	}{
		{"exact", blob, int64(len(blob)), ""},
		{"empty", nil, 0, ""},
		{"short", blob[:len(blob)-1], int64(len(blob)), "only 9999 of 10000 bytes"},
		{"long", append(bytes.Clone(blob), 0), int64(len(blob)), "more than 10000 bytes"},
		{"flipped first byte", flip(0), int64(len(blob)), "mismatch"},
		{"flipped middle byte", flip(len(blob) / 2), int64(len(blob)), "mismatch"},
		{"flipped last byte", flip(len(blob) - 1), int64(len(blob)), "mismatch"},
	}
	want := blob
	for _, tc := range cases {
		for _, chunk := range []int{1, 333, 4096, 1 << 20} {
			t.Run(tc.name, func(t *testing.T) {
				expect := Expect{Digest: digestOf(want[:tc.size]), Size: tc.size, What: "blob x", Location: "file bytes 0-9999", Class: errClass}
				v := NewReader(iotest.HalfReader(bytes.NewReader(tc.source)), expect)
				var got []byte
				buf := make([]byte, chunk)
				var err error
				for {
					var n int
					n, err = v.Read(buf)
					got = append(got, buf[:n]...)
					if err != nil {
						break
					}
				}
				if tc.detail == "" {
					if err != io.EOF || !bytes.Equal(got, want[:tc.size]) || !v.Verified() {
						t.Fatalf("chunk %d: read %d bytes, %v, verified %v; want all, io.EOF", chunk, len(got), err, v.Verified())
					}
					return
				}
				var de *DigestError
				if !errors.As(err, &de) || !errors.Is(err, errClass) || !strings.Contains(err.Error(), tc.detail) ||
					!strings.Contains(err.Error(), "blob x: digest mismatch at file bytes 0-9999: want "+expect.Digest) {
					t.Fatalf("chunk %d: error %v; want a DigestError naming %q", chunk, err, tc.detail)
				}
				if int64(len(got)) >= tc.size {
					t.Fatalf("chunk %d: %d of %d bytes handed out before the error", chunk, len(got), tc.size)
				}
				if v.Err() != err || v.Verified() {
					t.Errorf("Err() = %v, Verified() = %v after a mismatch", v.Err(), v.Verified())
				}
				if n, again := v.Read(buf); n != 0 || again != err {
					t.Errorf("Read after the mismatch = %d, %v; want 0 and the same error", n, again)
				}
			})
		}
	}
}
