package images_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator/images"
	"github.com/sealpack/sealpack/generator/internal/testreg"
)

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestCheckedEntries: a cache entry as it was checked is copied into the
// bundle without hashing; one written since is hashed (and a corrupt one
// caught and removed); one changed with its stamp forged back is caught by
// the bundle's Verify, which names it.
func TestCheckedEntries(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	layer := make([]byte, 300_000)
	for i := range layer {
		layer[i] = byte(rnd.Uint32())
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	manifest := []byte(`{"schemaVersion":2}`) // not parsed on the way into a bundle
	ld := sumOf(layer)
	tests := []struct {
		name string
		// change does something to the cached layer file at path.
		change func(t *testing.T, path string)
		// checked is what OpenChecked says afterwards; wantErr the build's
		// error, wantVerify Verify's.
		checked    bool
		wantErr    string
		wantVerify string
		// after is OpenChecked's verdict once the bundle is written.
		after bool
	}{
		{name: "as checked", change: func(*testing.T, string) {}, checked: true, after: true},
		{
			name: "stored by an older version", checked: false, after: true,
			change: func(t *testing.T, p string) {
				if err := os.Chtimes(p, time.Time{}, time.Unix(1700000000, 0)); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "rewritten, same size", checked: false, wantErr: "is corrupt and was removed",
			change: func(t *testing.T, p string) {
				b, _ := os.ReadFile(p)
				b[10] ^= 1
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "appended to", checked: false, wantErr: "is corrupt and was removed",
			change: func(t *testing.T, p string) {
				f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				f.Write([]byte("x"))
				f.Close()
			},
		},
		{
			name: "rewritten with the stamp forged back", checked: true, after: true,
			wantVerify: "blob " + ld + ": digest mismatch",
			change: func(t *testing.T, p string) {
				fi, _ := os.Stat(p)
				b, _ := os.ReadFile(p)
				b[len(b)-1] ^= 1
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, time.Time{}, fi.ModTime()); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c := &images.Cache{Dir: t.TempDir()}
			for _, b := range [][]byte{layer, config, manifest} {
				if _, err := c.Put(ctx, sumOf(b), int64(len(b)), strings.NewReader(string(b))); err != nil {
					t.Fatal(err)
				}
			}
			f, _ := c.Open(ld)
			tt.change(t, f.Name())
			f.Close()
			f, checked, err := c.OpenChecked(ld, int64(len(layer)))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if checked != tt.checked {
				t.Errorf("OpenChecked: checked = %v, want %v", checked, tt.checked)
			}

			ref, _ := images.ParseRef("example.com/app:1", nil)
			p := images.Pulled{Ref: ref, Digest: sumOf(manifest), MediaType: "application/vnd.oci.image.manifest.v1+json",
				Blobs: []v1.Descriptor{
					{Digest: v1.Hash{Algorithm: "sha256", Hex: sumOf(config)[7:]}, Size: int64(len(config))},
					{Digest: v1.Hash{Algorithm: "sha256", Hex: ld[7:]}, Size: int64(len(layer))},
				}}
			out := filepath.Join(t.TempDir(), "b.run")
			w, err := bundle.Create(out, strings.NewReader("stub"), bundle.WriterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			err = images.AddToBundle(ctx, w, c, []images.Pulled{p})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("AddToBundle = %v, want %q", err, tt.wantErr)
				}
				if c.Has(ld, -1) {
					t.Errorf("corrupt entry still cached")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			b, err := bundle.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			err = b.Verify(ctx, nil)
			if tt.wantVerify == "" && err != nil || tt.wantVerify != "" && (err == nil || !strings.Contains(err.Error(), tt.wantVerify)) {
				t.Errorf("Verify = %v, want %q", err, tt.wantVerify)
			}
			f, checked, err = c.OpenChecked(ld, int64(len(layer)))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if checked != tt.after {
				t.Errorf("after the build: checked = %v, want %v", checked, tt.after)
			}
		})
	}
}

// TestFetchCorruptBlob: the cache trusts the registry client's reader to
// check each blob's digest as it streams (it does not hash the bytes
// again), so a blob that arrives wrong must fail the fetch and leave no
// entry behind.
func TestFetchCorruptBlob(t *testing.T) {
	reg := testreg.Start(t)
	img := testreg.Image(t, "amd64", 2, 4096)
	reg.Push(t, "app:1", img)
	tests := []struct {
		name   string
		change func([]byte) []byte
	}{
		{name: "one byte flipped", change: func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{name: "one byte short", change: func(b []byte) []byte { return b[:len(b)-1] }},
		{name: "one byte more", change: func(b []byte) []byte { return append(b, 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, _ := url.Parse("http://" + reg.Host)
			proxy := httputil.NewSingleHostReverseProxy(target)
			proxy.ErrorLog = log.New(io.Discard, "", 0) // the client hangs up on a bad blob
			proxy.ModifyResponse = func(r *http.Response) error {
				if r.Request.Method != http.MethodGet || !strings.Contains(r.Request.URL.Path, "/blobs/") {
					return nil
				}
				b, err := io.ReadAll(r.Body)
				r.Body.Close()
				if err != nil {
					return err
				}
				b = tt.change(b)
				r.Body = io.NopCloser(bytes.NewReader(b))
				r.ContentLength = int64(len(b))
				r.Header.Set("Content-Length", strconv.Itoa(len(b)))
				return nil
			}
			srv := httptest.NewServer(proxy)
			defer srv.Close()
			c := &images.Cache{Dir: t.TempDir()}
			ref := parse(t, strings.TrimPrefix(srv.URL, "http://")+"/app:1")
			_, err := images.Fetch(context.Background(), ref, images.FetchOptions{Cache: c})
			if err == nil {
				t.Fatal("Fetch of corrupt blobs succeeded")
			}
			layers, _ := img.Layers()
			cfg, _ := img.ConfigName()
			for _, l := range layers {
				d, _ := l.Digest()
				if c.Has(d.String(), -1) {
					t.Errorf("corrupt layer %s cached (fetch error %v)", d, err)
				}
			}
			if c.Has(cfg.String(), -1) {
				t.Errorf("corrupt config %s cached (fetch error %v)", cfg, err)
			}
		})
	}
}
