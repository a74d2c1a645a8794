package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture describes a bundle for tests to build.
type fixture struct {
	stub   []byte
	layers [][]byte // tar streams
	blobs  [][]byte
	split  int64
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// tarOf builds a tar stream of files name → content.
func tarOf(t testing.TB, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < len(files); i += 2 {
		if err := tw.WriteHeader(&tar.Header{Name: files[i], Mode: 0o644, Size: int64(len(files[i+1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[i+1]))
	}
	tw.Close()
	return buf.Bytes()
}

func (f fixture) build(t testing.TB, path string) *Index {
	t.Helper()
	if f.stub == nil {
		f.stub = append([]byte("#!/bin/false\n"), randomBytes(1, 4096)...)
	}
	w, err := Create(path, bytes.NewReader(f.stub), WriterOptions{
		Platform: Platform{OS: "linux", Architecture: "amd64"}, CreatedBy: "test", SplitSize: f.split,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, l := range f.layers {
		if _, err := w.AddLayer(ctx, bytes.NewReader(l), "layer "+string(rune('A'+i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range f.blobs {
		if _, err := w.AddBlob(ctx, bytes.NewReader(b), "", "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	w.SetConfig(Config{Env: []string{"A=1"}, Labels: map[string]string{"k": "v"}})
	idx := w.index
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return &idx
}

func mustOpen(t testing.TB, path string) *Bundle {
	t.Helper()
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	big := randomBytes(2, 9<<20+123) // several frames, last one partial
	layers := [][]byte{
		tarOf(t, "etc/a", "alpha", "bin/b", string(big)),
		tarOf(t, "etc/a", "changed"),
		tarOf(t, "etc/a", "alpha", "bin/b", string(big)), // same as the first: stored once
	}
	path := filepath.Join(dir, "installer.run")
	fixture{layers: layers, blobs: [][]byte{[]byte("image blob"), {}}}.build(t, path)

	b := mustOpen(t, path)
	if got, want := len(b.Index.Layers), 3; got != want {
		t.Fatalf("layers = %d, want %d", got, want)
	}
	if got, want := len(b.Index.Blobs), 4; got != want {
		t.Fatalf("blobs = %d, want %d (identical layers must be stored once)", got, want)
	}
	if len(b.Index.Layers[0].Frames) < 3 {
		t.Errorf("a %d-byte layer was written as %d frames, want one per %d bytes", len(layers[0]), len(b.Index.Layers[0].Frames), FrameSize)
	}
	for i, l := range b.Index.Layers {
		r, err := b.OpenLayer(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		if !bytes.Equal(got, layers[i]) {
			t.Errorf("layer %d: content differs after the round trip", i)
		}
		if sum := sha256.Sum256(layers[i]); l.DiffID != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Errorf("layer %d: diffID %s is not the SHA-256 of the tar", i, l.DiffID)
		}
	}
	r, _, err := b.OpenBlob(digestBytes([]byte("image blob")))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); string(got) != "image blob" {
		t.Errorf("blob = %q", got)
	}
	if err := b.Verify(context.Background(), nil); err != nil {
		t.Errorf("Verify of a good bundle: %v", err)
	}
	if b.Index.Config.Labels["k"] != "v" || b.Index.Config.Env[0] != "A=1" {
		t.Errorf("config lost: %+v", b.Index.Config)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("bundle is not executable: %v", fi.Mode())
	}
	// The layer stream is plain multi-frame zstd: any zstd decoder reads it whole.
	sr, _, _ := b.Blob(b.Index.Layers[0].Digest)
	if got := decodeWhole(t, sr); !bytes.Equal(got, layers[0]) {
		t.Error("layer blob is not a valid zstd stream on its own")
	}
}

func digestBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	f := fixture{layers: [][]byte{tarOf(t, "a", strings.Repeat("x", 5<<20)), tarOf(t, "b", "y")}, blobs: [][]byte{[]byte("z")}}
	f.build(t, filepath.Join(dir, "one"))
	f.build(t, filepath.Join(dir, "two"))
	one, _ := os.ReadFile(filepath.Join(dir, "one"))
	two, _ := os.ReadFile(filepath.Join(dir, "two"))
	if !bytes.Equal(one, two) {
		t.Fatal("two builds of the same inputs differ")
	}
}

func TestCorruptionIsDetected(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	fixture{layers: [][]byte{tarOf(t, "a", string(randomBytes(3, 1<<20)))}, blobs: [][]byte{[]byte("blob one"), []byte("blob two")}}.build(t, good)
	data, _ := os.ReadFile(good)
	b := mustOpen(t, good)
	idx, tr := b.Index, b.Trailer

	type check func(t *testing.T, openErr, verifyErr error)
	wantOpen := func(target error, text string) check {
		return func(t *testing.T, openErr, _ error) {
			if !errors.Is(openErr, target) || !strings.Contains(openErr.Error(), text) {
				t.Fatalf("Open error = %v, want %v containing %q", openErr, target, text)
			}
		}
	}
	wantVerify := func(text string) check {
		return func(t *testing.T, openErr, verifyErr error) {
			if openErr != nil {
				t.Fatalf("Open: %v", openErr)
			}
			var de *DigestError
			if !errors.As(verifyErr, &de) || !strings.Contains(verifyErr.Error(), text) {
				t.Fatalf("Verify error = %v, want a digest error naming %q", verifyErr, text)
			}
		}
	}
	flip := func(off int64) []byte {
		c := bytes.Clone(data)
		c[off] ^= 0x40
		return c
	}
	newer := bytes.Clone(data[len(data)-TrailerSize:])
	newer[0] = FormatVersion + 1
	withNewer := append(bytes.Clone(data[:len(data)-TrailerSize]), newer...)

	cases := []struct {
		name  string
		data  []byte
		check check
	}{
		{"flipped byte in stub", flip(10), wantVerify("stub")},
		{"flipped byte in layer", flip(idx.Blobs[0].Offset + idx.Blobs[0].Size/2), wantVerify("layer 1")},
		{"flipped byte in last blob", flip(idx.Blobs[2].Offset), wantVerify(idx.Blobs[2].Digest)},
		{"flipped byte in index", flip(tr.IndexOffset + 5), wantOpen(ErrCorrupt, "index digest mismatch")},
		{"flipped byte in trailer", flip(int64(len(data)) - TrailerSize + 20), wantOpen(ErrCorrupt, "trailer checksum")},
		{"flipped magic", flip(int64(len(data)) - 1), wantOpen(ErrNotBundle, "no sealpack trailer")},
		{"truncated by one byte", data[:len(data)-1], wantOpen(ErrNotBundle, "")},
		{"truncated in the middle", append(bytes.Clone(data[:len(data)/2]), data[len(data)-TrailerSize:]...), wantOpen(ErrCorrupt, "truncated")},
		{"bytes appended", append(bytes.Clone(data), "tail"...), wantOpen(ErrCorrupt, "4 bytes were appended")},
		{"not a bundle", []byte(strings.Repeat("hello\n", 100)), wantOpen(ErrNotBundle, "")},
		{"empty file", nil, wantOpen(ErrNotBundle, "")},
		{"newer format version", withNewer, func(t *testing.T, openErr, _ error) {
			var ve *VersionError
			if !errors.As(openErr, &ve) || !strings.Contains(openErr.Error(), "newer") {
				t.Fatalf("Open error = %v, want a VersionError", openErr)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad")
			if err := os.WriteFile(p, tc.data, 0o755); err != nil {
				t.Fatal(err)
			}
			var verifyErr error
			b, openErr := Open(p)
			if openErr == nil {
				verifyErr = b.Verify(context.Background(), nil)
				b.Close()
			}
			tc.check(t, openErr, verifyErr)
		})
	}
}

func TestTruncatedExecutableIsNamed(t *testing.T) {
	// A real ELF with a cut-off payload is reported as truncated, not as "not a bundle".
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stub, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	fixture{stub: stub, blobs: [][]byte{randomBytes(4, 100000)}}.build(t, good)
	data, _ := os.ReadFile(good)

	cut := filepath.Join(dir, "cut")
	os.WriteFile(cut, data[:len(stub)+5000], 0o755)
	if _, err := Open(cut); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Open of a truncated bundle = %v, want a truncation error", err)
	}
	bare := filepath.Join(dir, "bare")
	os.WriteFile(bare, stub, 0o755)
	if _, err := Open(bare); !errors.Is(err, ErrNotBundle) || !strings.Contains(err.Error(), "no payload") {
		t.Errorf("Open of a bare executable = %v, want 'no payload'", err)
	}
}

func TestSplit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "installer.run")
	content := randomBytes(5, 5<<20)
	split := int64(minPartSize + TrailerSize + 1)
	fixture{layers: [][]byte{tarOf(t, "big", string(content))}, blobs: [][]byte{randomBytes(6, 1<<20)}, split: split}.build(t, path)

	// A stale part from an earlier, larger build must be gone.
	b := mustOpen(t, path)
	n := b.Trailer.Parts()
	if n < 5 {
		t.Fatalf("parts = %d, want at least 5", n)
	}
	for k := 1; k <= n; k++ {
		fi, err := os.Stat(PartPath(path, k))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= split {
			t.Errorf("part %d is %d bytes, want < %d", k, fi.Size(), split)
		}
	}
	if err := b.Verify(context.Background(), nil); err != nil {
		t.Fatalf("Verify of a split bundle: %v", err)
	}
	r, _ := b.OpenLayer(context.Background(), b.Index.Layers[0])
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Contains(got, content) {
		t.Fatalf("layer across parts: err %v, content intact %v", err, bytes.Contains(got, content))
	}
	b.Close()

	// Moved elsewhere together, the parts are still found beside part 1.
	moved := filepath.Join(dir, "moved")
	os.Mkdir(moved, 0o755)
	for k := 1; k <= n; k++ {
		os.Rename(PartPath(path, k), PartPath(filepath.Join(moved, "x.run"), k))
	}
	path = filepath.Join(moved, "x.run")
	mustOpen(t, path).Close()

	// A wrong part: same size, other bytes.
	p3 := PartPath(path, 3)
	orig, _ := os.ReadFile(p3)
	bad := bytes.Clone(orig)
	bad[100] ^= 1
	os.WriteFile(p3, bad, 0o644)
	b2 := mustOpen(t, path)
	if err := b2.Verify(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "wrong part: x.run.part3)") {
		t.Errorf("Verify with a wrong part 3 = %v, want an error naming x.run.part3", err)
	}
	os.WriteFile(p3, orig, 0o644)

	// A missing part.
	os.Rename(p3, p3+".away")
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "part 3 of") {
		t.Errorf("Open with part 3 missing = %v, want an error naming part 3", err)
	}
	os.Rename(p3+".away", p3)

	// Rebuilding unsplit removes the old parts.
	fixture{blobs: [][]byte{[]byte("small")}}.build(t, path)
	if _, err := os.Stat(PartPath(path, 2)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale part 2 left behind: %v", err)
	}
	mustOpen(t, path)
}

func TestWriterAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "installer.run")
	w, err := Create(path, strings.NewReader("stub"), WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddBlob(context.Background(), strings.NewReader("abc"), digestBytes([]byte("abd")), ""); err == nil {
		t.Error("AddBlob accepted bytes that do not match the digest")
	}
	w.Abort()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("abort left files: %v", entries)
	}
}

func decodeWhole(t testing.TB, r io.Reader) []byte {
	t.Helper()
	var buf bytes.Buffer
	dr := newStreamDecoder(t, r)
	if _, err := io.Copy(&buf, dr); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriteSingleJoinsParts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "split.run")
	fixture{layers: [][]byte{tarOf(t, "big", string(randomBytes(7, 3<<20)))}, split: minPartSize + TrailerSize + 1}.build(t, path)
	b := mustOpen(t, path)
	if b.Trailer.Parts() < 2 {
		t.Fatalf("fixture is not split")
	}
	single := filepath.Join(dir, "single.run")
	f, _ := os.Create(single)
	n, err := b.WriteSingle(f)
	f.Close()
	if err != nil || n != b.SingleSize() {
		t.Fatalf("WriteSingle: %d bytes, %v; want %d", n, err, b.SingleSize())
	}
	s := mustOpen(t, single)
	if s.Trailer.Parts() != 1 || s.Trailer.IndexSHA256 != b.Trailer.IndexSHA256 {
		t.Errorf("single copy: %d parts, index %x", s.Trailer.Parts(), s.Trailer.IndexSHA256)
	}
	if err := s.Verify(context.Background(), nil); err != nil {
		t.Errorf("single copy does not verify: %v", err)
	}
	stub, _ := io.ReadAll(b.StubReader())
	if digestBytes(stub) != b.Index.Stub.Digest {
		t.Error("StubReader does not return the stub")
	}
}
