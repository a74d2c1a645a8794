package images_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator/images"
	"github.com/sealpack/sealpack/generator/internal/testreg"
)

func parse(t *testing.T, refs ...string) []images.Ref {
	var out []images.Ref
	for _, s := range refs {
		r, err := images.ParseRef(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func writeBundle(t *testing.T, c *images.Cache, pulled []images.Pulled) *bundle.Index {
	t.Helper()
	out := filepath.Join(t.TempDir(), "b.run")
	w, err := bundle.Create(out, strings.NewReader("stub"), bundle.WriterOptions{Platform: bundle.Platform{OS: "linux", Architecture: "amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := images.AddToBundle(context.Background(), w, c, pulled); err != nil {
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
	return b.Index
}

func TestFetchDedupCacheOffline(t *testing.T) {
	reg := testreg.Start(t)
	amd := testreg.Image(t, "amd64", 2, 2048)
	arm := testreg.Image(t, "arm64", 2, 2048)
	solo := testreg.Image(t, "amd64", 3, 1024)
	refs := parse(t,
		reg.PushIndex(t, "multi/app:1", map[string]v1.Image{"amd64": amd, "arm64": arm}),
		reg.Push(t, "solo:1", solo),
		reg.Push(t, "copy/of-solo:2", solo), // same blobs under another name
	)
	reg.Requests()
	var log bytes.Buffer
	c := &images.Cache{Dir: t.TempDir()}
	ctx := context.Background()
	pulled, err := images.Fetch(ctx, refs, images.FetchOptions{Cache: c, Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	if got := testreg.BlobGets(reg.Requests()); got != 3+4 {
		t.Errorf("cold fetch: %d blob downloads, want 7 (each distinct blob once)", got)
	}
	if pulled[0].Digest != testreg.Digest(t, amd) || pulled[0].Index == "" {
		t.Errorf("multi-platform image: digest %s (index %q), want the amd64 manifest %s", pulled[0].Digest, pulled[0].Index, testreg.Digest(t, amd))
	}
	if n := strings.Count(log.String(), "\n"); n != 3 {
		t.Errorf("progress: %d lines, want one per image:\n%s", n, log.String())
	}
	idx := writeBundle(t, c, pulled)
	if len(idx.Images) != 3 || len(idx.Blobs) != 3+4+2 {
		t.Fatalf("bundle: %d images, %d blobs; want 3 images and 9 blobs (7 + 2 manifests)", len(idx.Images), len(idx.Blobs))
	}
	for _, im := range idx.Images {
		if strings.Contains(im.Repository, reg.Host) || im.Tag == "" {
			t.Errorf("image %+v: repository must drop the registry host, tag must be kept", im)
		}
	}

	// Warm: only tags are resolved.
	if _, err := images.Fetch(ctx, refs, images.FetchOptions{Cache: c}); err != nil {
		t.Fatal(err)
	}
	for _, q := range reg.Requests() {
		if !strings.HasPrefix(q, "HEAD ") && q != "GET /v2/" {
			t.Errorf("warm fetch made request %s; want only tag resolution", q)
		}
	}
	// Offline: nothing at all.
	if _, err := images.Fetch(ctx, refs, images.FetchOptions{Cache: c, Offline: true}); err != nil {
		t.Fatal(err)
	}
	if q := reg.Requests(); len(q) != 0 {
		t.Errorf("offline fetch made requests %v", q)
	}
	_, err = images.Fetch(ctx, parse(t, reg.Host+"/never/fetched:1"), images.FetchOptions{Cache: c, Offline: true})
	if err == nil || !strings.Contains(err.Error(), "--offline") || !strings.Contains(err.Error(), "never/fetched:1") {
		t.Errorf("offline miss: err = %v", err)
	}

	// A corrupt cache entry is caught when copied into a bundle and removed.
	layers, _ := solo.Layers()
	d, _ := layers[0].Digest()
	if err := os.WriteFile(filepath.Join(c.Dir, "blobs", "sha256", d.Hex), bytes.Repeat([]byte("x"), int(pulled[1].Blobs[1].Size)), 0o644); err != nil {
		t.Fatal(err)
	}
	w, _ := bundle.Create(filepath.Join(t.TempDir(), "c.run"), strings.NewReader("stub"), bundle.WriterOptions{})
	defer w.Abort()
	if err := images.AddToBundle(ctx, w, c, pulled); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt cache: err = %v", err)
	}
	if c.Has(d.String(), -1) {
		t.Errorf("corrupt entry still cached")
	}
}

func TestFetchWrongPlatform(t *testing.T) {
	reg := testreg.Start(t)
	refs := parse(t,
		reg.Push(t, "arm/only:1", testreg.Image(t, "arm64", 1, 100)),
	)
	_, err := images.Fetch(context.Background(), refs, images.FetchOptions{Cache: &images.Cache{Dir: t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), "linux/arm64, the target is linux/amd64") {
		t.Errorf("err = %v", err)
	}
	refs = parse(t, reg.PushIndex(t, "arm/index:1", map[string]v1.Image{"arm64": testreg.Image(t, "arm64", 1, 100)}))
	_, err = images.Fetch(context.Background(), refs, images.FetchOptions{Cache: &images.Cache{Dir: t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), "no manifest for linux/amd64") {
		t.Errorf("err = %v", err)
	}
}

func TestFetchRenamed(t *testing.T) {
	reg := testreg.Start(t)
	img := testreg.Image(t, "amd64", 1, 512)
	src := parse(t, reg.Push(t, "mirror/web:1", img))[0]
	d := testreg.Digest(t, img)
	wrong := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct{ dest, err string }{
		{dest: "docker.io/acme/web:1"},
		{dest: "docker.io/acme/web:1@" + d},
		{dest: "docker.io/acme/web:1@" + wrong, err: "docker.io/acme/web:1@" + wrong + " (from " + src.Name + "): the rename pins " + wrong + ", " + src.Name + " is " + d},
	} {
		t.Run(tc.dest, func(t *testing.T) {
			dest := parse(t, tc.dest)[0]
			reg.Requests()
			pulled, err := images.Fetch(context.Background(), []images.Ref{images.Renamed(src, dest)}, images.FetchOptions{Cache: &images.Cache{Dir: t.TempDir()}})
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p := pulled[0]; p.Ref.Name != dest.Name || p.Digest != d {
				t.Errorf("pulled %s %s, want %s %s", p.Ref.Name, p.Digest, dest.Name, d)
			}
			for _, q := range reg.Requests() {
				if !strings.HasSuffix(q, " /v2/") && !strings.Contains(q, " /v2/mirror/web/") {
					t.Errorf("request %q is not for the rename's source", q)
				}
			}
		})
	}
}
