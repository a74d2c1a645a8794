package bundle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// verifiedInput is a blob for AddVerifiedFile: its content, and whether its
// file is changed after its digest was taken (as a cache entry written to
// behind the cache's back).
type verifiedInput struct {
	data     []byte
	tampered bool
}

// buildVerified writes a bundle of blobs, each through AddVerifiedFile from a
// file (through AddBlob when viaReader), and returns the digests and the
// bundle's path.
func buildVerified(t *testing.T, dir string, split int64, in []verifiedInput, viaReader bool) (string, []string) {
	t.Helper()
	path := filepath.Join(dir, "installer.run")
	w, err := Create(path, bytes.NewReader(append([]byte("#!/bin/false\n"), randomBytes(1, 4096)...)), WriterOptions{
		Platform: Platform{OS: "linux", Architecture: "amd64"}, CreatedBy: "test", SplitSize: split,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	ctx := context.Background()
	var digests []string
	for i, b := range in {
		d := digestBytes(b.data)
		digests = append(digests, d)
		if viaReader {
			if _, err := w.AddBlob(ctx, bytes.NewReader(b.data), d, "application/octet-stream"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		name := filepath.Join(dir, "blob"+string(rune('a'+i)))
		data := b.data
		if b.tampered {
			data = bytes.Clone(data)
			data[len(data)/2] ^= 0xff
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Seek(int64(len(data))/3, io.SeekStart) // wherever the caller left it
		got, err := w.AddVerifiedFile(ctx, f, d, int64(len(b.data)), "application/octet-stream")
		f.Close()
		if err != nil {
			t.Fatalf("AddVerifiedFile %d: %v", i, err)
		}
		if got.Digest != d || got.Size != int64(len(b.data)) {
			t.Fatalf("AddVerifiedFile %d = %+v, want digest %s size %d", i, got, d, len(b.data))
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return path, digests
}

// readParts returns the bytes of every file of the bundle at path.
func readParts(t *testing.T, path string) [][]byte {
	t.Helper()
	var out [][]byte
	for k := 1; ; k++ {
		b, err := os.ReadFile(PartPath(path, k))
		if errors.Is(err, os.ErrNotExist) && k > 1 {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func TestAddVerifiedFile(t *testing.T) {
	split := int64(minPartSize + TrailerSize + 1)
	big := randomBytes(11, 3<<20+17) // spans parts when split
	small := randomBytes(12, 1000)
	other := randomBytes(13, minPartSize-5) // ends near a part boundary
	tests := []struct {
		name  string
		split int64
		in    []verifiedInput
		// wantParts is the number of files, wantBad the blobs Verify must name.
		wantParts int
		wantBad   []int
	}{
		{name: "one file", in: []verifiedInput{{data: small}, {data: big}, {data: other}, {data: small}}, wantParts: 1},
		{name: "split, blobs across parts", split: split, in: []verifiedInput{{data: small}, {data: big}, {data: other}}, wantParts: 5},
		{name: "empty blob", in: []verifiedInput{{data: []byte{}}, {data: small}}, wantParts: 1},
		{name: "tampered after caching", in: []verifiedInput{{data: small}, {data: big, tampered: true}, {data: other}}, wantParts: 1, wantBad: []int{1}},
		{name: "split, tampered after caching", split: split, in: []verifiedInput{{data: big}, {data: other, tampered: true}, {data: small}}, wantParts: 5, wantBad: []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, digests := buildVerified(t, t.TempDir(), tt.split, tt.in, false)
			b := mustOpen(t, path)
			if n := b.Trailer.Parts(); n != tt.wantParts {
				t.Errorf("parts = %d, want %d", n, tt.wantParts)
			}
			// Offsets: every blob where the index says, without gaps.
			next := b.Index.Stub.Size
			for _, bl := range b.Index.Blobs {
				if bl.Offset != next {
					t.Errorf("blob %s at %d, want %d", bl.Digest, bl.Offset, next)
				}
				next += bl.Size
			}
			if next != b.Trailer.IndexOffset {
				t.Errorf("blobs end at %d, index at %d", next, b.Trailer.IndexOffset)
			}
			err := b.Verify(context.Background(), nil)
			if len(tt.wantBad) == 0 {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				// The same bytes as a bundle written through AddBlob,
				// part digests included.
				ref, _ := buildVerified(t, t.TempDir(), tt.split, tt.in, true)
				got, want := readParts(t, path), readParts(t, ref)
				if len(got) != len(want) {
					t.Fatalf("%d files, AddBlob wrote %d", len(got), len(want))
				}
				for k := range got {
					if !bytes.Equal(got[k], want[k]) {
						t.Errorf("file %d differs from the one AddBlob wrote", k+1)
					}
				}
				for i, d := range digests {
					r, _, err := b.Blob(d)
					if err != nil {
						t.Fatal(err)
					}
					if data, _ := io.ReadAll(r); !bytes.Equal(data, tt.in[i].data) {
						t.Errorf("blob %d reads back wrong", i)
					}
				}
				return
			}
			var de *DigestError
			if !errors.As(err, &de) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify = %v, want a digest error", err)
			}
			for _, i := range tt.wantBad {
				if !strings.Contains(err.Error(), "blob "+digests[i]+": digest mismatch") {
					t.Errorf("Verify = %v, want it to name blob %s", err, digests[i])
				}
			}
			// The part digests are of the bytes as written: the parts are
			// whole, the blob in them is what is wrong, and where it is.
			if tt.split > 0 && (strings.Contains(err.Error(), "wrong part") || !strings.Contains(err.Error(), "at installer.run.part")) {
				t.Errorf("Verify = %v, want the blob's parts named as its location, none as wrong", err)
			}
			if n := strings.Count(err.Error(), "digest mismatch"); n != len(tt.wantBad) {
				t.Errorf("Verify names %d blobs, want %d: %v", n, len(tt.wantBad), err)
			}
		})
	}
}

// TestAddVerifiedFileRefuses: what the writer can check without hashing,
// it checks, and a refused blob leaves no bytes behind.
func TestAddVerifiedFileRefuses(t *testing.T) {
	data := randomBytes(21, 70000)
	d := digestBytes(data)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		split  int64
		ctx    context.Context
		digest string
		size   int64
		want   string
	}{
		{name: "file shorter than said", size: int64(len(data)) + 1, want: "is 70000 bytes, want 70001"},
		{name: "file longer than said", size: int64(len(data)) - 1, want: "is 70000 bytes, want 69999"},
		{name: "bad digest", digest: "sha256:abc", want: "invalid digest"},
		{name: "no algorithm", digest: strings.TrimPrefix(d, "sha256:"), want: "invalid digest"},
		{name: "cancelled", ctx: cancelled, want: context.Canceled.Error()},
		{name: "split, cancelled", split: minPartSize + TrailerSize + 1, ctx: cancelled, want: context.Canceled.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ctx == nil {
				tt.ctx = context.Background()
			}
			if tt.digest == "" {
				tt.digest = d
			}
			if tt.size == 0 {
				tt.size = int64(len(data))
			}
			dir := t.TempDir()
			name := filepath.Join(dir, "blob")
			os.WriteFile(name, data, 0o644)
			f, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			path := filepath.Join(dir, "installer.run")
			w, err := Create(path, strings.NewReader("stub"), WriterOptions{SplitSize: tt.split})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			_, err = w.AddVerifiedFile(tt.ctx, f, tt.digest, tt.size, "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AddVerifiedFile = %v, want an error containing %q", err, tt.want)
			}
			if w.HasBlob(tt.digest) || w.out.off != 4 {
				t.Fatalf("refused blob left behind: recorded %v, %d bytes written", w.HasBlob(tt.digest), w.out.off)
			}
			// The next blob lands right after the stub.
			other := []byte("next")
			bl, err := w.AddBlob(context.Background(), bytes.NewReader(other), "", "")
			if err != nil || bl.Offset != 4 {
				t.Fatalf("next blob = %+v, %v; want offset 4", bl, err)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := mustOpen(t, path).Verify(context.Background(), nil); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}
