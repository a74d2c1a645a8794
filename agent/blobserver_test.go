package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startBlobServer runs serve-blobs in-process and returns its address.
func startBlobServer(t *testing.T, args ...string) string {
	t.Helper()
	t.Setenv(TokenEnv, "secret-token")
	addrFile := filepath.Join(t.TempDir(), "addr")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		env := &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard}
		done <- Main(ctx, env, append([]string{"serve-blobs", "--addr", "127.0.0.1:0", "--addr-file", addrFile}, args...))
	}()
	t.Cleanup(func() { cancel(); <-done })
	for i := 0; i < 100; i++ {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			return string(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("serve-blobs did not start")
	return ""
}

// fetch runs fetch-blob for one blob; with a bundle offset (offset >= 0)
// from the host's bundle file.
func fetch(t *testing.T, from, digest string, size int64, dir string, offset int64) (int, string) {
	var errOut bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &errOut}
	args := []string{"fetch-blob", "--from", from, "--blob", digest + "," + itoa(size) + "," + itoa(max(offset, 0)), "--dir", dir}
	if offset >= 0 {
		args = append(args, "--bundle")
	}
	return Main(t.Context(), env, args), errOut.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestBlobsForwardWhileArriving(t *testing.T) {
	upstream, downstream := t.TempDir(), t.TempDir()
	data := make([]byte, 3<<20)
	rand.Read(data)
	digest := digestOf(data)
	addr := startBlobServer(t, "--dir", upstream)

	// The upstream host receives the blob slowly; the downstream asks before
	// it has even started and must get every byte, verified.
	pr, pw := io.Pipe()
	go func() {
		time.Sleep(100 * time.Millisecond)
		for off := 0; off < len(data); off += 256 << 10 {
			pw.Write(data[off:min(off+256<<10, len(data))])
			time.Sleep(10 * time.Millisecond)
		}
		pw.Close()
	}()
	stored := make(chan error, 1)
	go func() { stored <- storeBlob(context.Background(), pr, upstream, digest) }()
	if code, errOut := fetch(t, addr, digest, int64(len(data)), downstream, -1); code != 0 {
		t.Fatalf("fetch while arriving: exit %d: %s", code, errOut)
	}
	if err := <-stored; err != nil {
		t.Fatal(err)
	}
	p, _ := blobPath(downstream, digest)
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Fatal("forwarded blob differs")
	}

	// A wrong token is refused; a missing blob is a failure, not an empty file.
	t.Setenv(TokenEnv, "wrong")
	if code, errOut := fetch(t, addr, digest, int64(len(data)), t.TempDir(), -1); code == 0 || !strings.Contains(errOut, "401") {
		t.Errorf("wrong token: exit %d, %q", code, errOut)
	}
}

func TestBlobFetchFailsWhenUpstreamAbandons(t *testing.T) {
	upstream, downstream := t.TempDir(), t.TempDir()
	data := bytes.Repeat([]byte("x"), 1<<20)
	digest := digestOf(data)
	addr := startBlobServer(t, "--dir", upstream)
	pr, pw := io.Pipe()
	go func() {
		pw.Write(data[:100000])
		time.Sleep(200 * time.Millisecond)
		pw.CloseWithError(io.ErrUnexpectedEOF) // the upstream's own link died
	}()
	go storeBlob(context.Background(), pr, upstream, digest)
	code, errOut := fetch(t, addr, digest, int64(len(data)), downstream, -1)
	if code == 0 {
		t.Fatal("fetch from an abandoned upstream succeeded")
	}
	if p, _ := blobPath(downstream, digest); fileExists(p) || fileExists(p+partialSuffix) {
		t.Errorf("a failed fetch left a blob behind (%s)", errOut)
	}
}

func TestBlobRangeOfBundle(t *testing.T) {
	addr := serveFile(t, []byte("stub...LAYERBYTES...index"))
	layer := []byte("LAYERBYTES")
	out := t.TempDir()
	if code, errOut := fetch(t, addr, digestOf(layer), int64(len(layer)), out, 7); code != 0 {
		t.Fatalf("range fetch: %s", errOut)
	}
	// A range that does not hash to the digest is never stored.
	if code, _ := fetch(t, addr, digestOf(layer), int64(len(layer)), t.TempDir(), 8); code == 0 {
		t.Error("a range with the wrong bytes was stored")
	}
}

// serveFile starts a blob server over a file holding content, as a
// master's serves its bundle copy.
func serveFile(t *testing.T, content []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "installer.run")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return startBlobServer(t, "--file", file)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// One fetch-blob takes a host's whole list, in order, and keeps the blobs
// already there (a re-run after a cut link fetches only what is missing).
func TestFetchManyBlobs(t *testing.T) {
	content := []byte("stub|first|second blob|third|index")
	addr := serveFile(t, content)
	ref := func(s string) string {
		return digestOf([]byte(s)) + "," + itoa(int64(len(s))) + "," + itoa(int64(bytes.Index(content, []byte(s))))
	}
	out := t.TempDir()
	have, _ := blobPath(out, digestOf([]byte("first")))
	os.MkdirAll(filepath.Dir(have), 0o755)
	os.WriteFile(have, []byte("first"), 0o644)
	before, _ := os.Stat(have)
	var errOut bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &errOut}
	args := []string{"fetch-blob", "--from", addr, "--bundle", "--dir", out}
	for _, s := range []string{"first", "second blob", "third"} {
		args = append(args, "--blob", ref(s))
	}
	if code := Main(t.Context(), env, args); code != 0 {
		t.Fatalf("fetch-blob: exit %d: %s", code, errOut.String())
	}
	for _, s := range []string{"first", "second blob", "third"} {
		p, _ := blobPath(out, digestOf([]byte(s)))
		if b, err := os.ReadFile(p); err != nil || string(b) != s {
			t.Errorf("blob %q: %q, %v", s, b, err)
		}
	}
	if after, err := os.Stat(have); err != nil || !os.SameFile(before, after) {
		t.Error("a blob already there was fetched again")
	}
}
