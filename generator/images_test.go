package generator_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator"
	"github.com/sealpack/sealpack/generator/internal/testreg"
)

func TestBuildFetchesImagesAndRebuildHitsCache(t *testing.T) {
	reg := testreg.Start(t)
	reg.Push(t, "web/server:1.0", testreg.Image(t, "amd64", 2, 4096))
	reg.Push(t, "web/sidecar:1.0", testreg.Image(t, "amd64", 1, 4096))
	reg.PushIndex(t, "multi/tool:2", map[string]v1.Image{"amd64": testreg.Image(t, "amd64", 1, 1024), "arm64": testreg.Image(t, "arm64", 1, 1024)})
	extra := reg.Push(t, "extra/cli:3", testreg.Image(t, "amd64", 1, 512))
	reg.Requests()

	dir := testreg.CopyContext(t, "../testdata/build/images", reg.Host)
	stub := []byte("#!/bin/sh\nexit 0\n")
	cache := t.TempDir()
	var progress bytes.Buffer
	opts := generator.Options{
		Kubefile: filepath.Join(dir, "Kubefile"), Output: filepath.Join(t.TempDir(), "a.run"), Arch: "amd64",
		Stub: stub, CacheDir: cache, Images: []string{extra}, ExcludeImages: []string{reg.Host + "/web/sidecar"},
		Progress: &progress,
	}
	res, err := generator.Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, im := range res.Index.Images {
		names = append(names, im.Repository+":"+im.Tag)
	}
	if got := strings.Join(names, " "); got != "extra/cli:3 multi/tool:2 web/server:1.0" {
		t.Errorf("images = %s", got)
	}
	if got := testreg.BlobGets(reg.Requests()); got != 3+2+2 {
		t.Errorf("cold build: %d blob downloads, want 7 (server 3, extra 2, tool 2; sidecar excluded)", got)
	}
	if !strings.Contains(progress.String(), "multi/tool:2") {
		t.Errorf("progress = %q", progress.String())
	}

	// Rebuild: tags are resolved, nothing is downloaded, same bundle.
	first, _ := os.ReadFile(opts.Output)
	opts.Output = filepath.Join(t.TempDir(), "b.run")
	if _, err := generator.Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if got := testreg.BlobGets(reg.Requests()); got != 0 {
		t.Errorf("warm rebuild: %d blob downloads, want 0", got)
	}
	if second, _ := os.ReadFile(opts.Output); !bytes.Equal(first, second) {
		t.Errorf("warm rebuild made a different bundle")
	}
	opts.Offline = true
	opts.Output = filepath.Join(t.TempDir(), "c.run")
	if _, err := generator.Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if q := reg.Requests(); len(q) != 0 {
		t.Errorf("offline rebuild made requests: %v", q)
	}
	opts.CacheDir = t.TempDir()
	opts.Output = filepath.Join(t.TempDir(), "d.run")
	if _, err := generator.Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "--offline") {
		t.Errorf("offline with an empty cache: err = %v", err)
	}
	if _, err := os.Stat(opts.Output); err == nil {
		t.Errorf("failed build left %s", opts.Output)
	}

	found, err := generator.Discover(context.Background(), generator.Options{Kubefile: filepath.Join(dir, "Kubefile")})
	if err != nil {
		t.Fatal(err)
	}
	var where []string
	for _, f := range found {
		where = append(where, f.Sources[0].String())
	}
	want := "manifests/imageList:2:1 (imageList) manifests/app.yaml:10:18 (Deployment/web container web) manifests/app.yaml:12:18 (Deployment/web container sidecar)"
	if got := strings.Join(where, " "); got != want {
		t.Errorf("discover: %s\nwant %s", got, want)
	}
}

// loopbackOnly refuses requests to any host but the test registry's, so a
// build that tries Docker Hub fails at once instead of reaching out.
type loopbackOnly struct {
	host string
	mu   sync.Mutex
	hits []string // refused hosts
}

func (l *loopbackOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != l.host {
		l.mu.Lock()
		l.hits = append(l.hits, r.URL.Host)
		l.mu.Unlock()
		return nil, fmt.Errorf("test: no requests to %s", r.URL.Host)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestBuildLocalAndRenamedImages(t *testing.T) {
	reg := testreg.Start(t)
	httpd := testreg.Image(t, "amd64", 2, 1024)
	reg.Push(t, "e2e/httpd:v1", httpd)
	tool := testreg.Image(t, "amd64", 1, 512)
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(tool, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1.0"})); err != nil {
		t.Fatal(err)
	}
	cli := testreg.Image(t, "amd64", 1, 256)
	archive := filepath.Join(dir, "cli.tar")
	if err := tarball.WriteToFile(archive, name.MustParseReference("acme/cli:3"), cli); err != nil {
		t.Fatal(err)
	}
	reg.Requests()

	for _, tc := range []struct {
		name      string
		manifest  []string // the images the manifest names (REGISTRY is the test registry)
		images    []string // --image
		want      map[string]v1.Image
		requested string // every registry request is about this repository; "" for none
	}{
		{name: "registry rename", manifest: []string{"docker.io/e2e/httpd:v1"},
			images:    []string{"REGISTRY/e2e/httpd:v1=docker.io/e2e/httpd:v1"},
			want:      map[string]v1.Image{"docker.io/e2e/httpd:v1": httpd},
			requested: "e2e/httpd"},
		{name: "layout renamed onto a manifest's name", manifest: []string{"REGISTRY/e2e/tool:1.0"},
			images: []string{"oci:" + filepath.Join(dir, "layout") + "=REGISTRY/e2e/tool:1.0"},
			want:   map[string]v1.Image{"REGISTRY/e2e/tool:1.0": tool}},
		{name: "archive under its own name", manifest: []string{"acme/cli:3"},
			images: []string{"docker-archive:" + archive},
			want:   map[string]v1.Image{"docker.io/acme/cli:3": cli}},
		{name: "a pinned reference from a local image with that digest", manifest: []string{"acme/cli:3@" + testreg.Digest(t, cli)},
			images: []string{"docker-archive:" + archive},
			want:   map[string]v1.Image{"docker.io/acme/cli:3": cli, "docker.io/acme/cli:3@" + testreg.Digest(t, cli): cli}},
		{name: "all at once", manifest: []string{"docker.io/e2e/httpd:v1", "REGISTRY/e2e/tool:1.0", "docker.io/acme/cli:3"},
			images: []string{"REGISTRY/e2e/httpd:v1=docker.io/e2e/httpd:v1", "oci:" + filepath.Join(dir, "layout") + ":1.0=REGISTRY/e2e/tool:1.0",
				"docker-archive:" + archive + ":acme/cli:3"},
			want:      map[string]v1.Image{"docker.io/e2e/httpd:v1": httpd, "REGISTRY/e2e/tool:1.0": tool, "docker.io/acme/cli:3": cli},
			requested: "e2e/httpd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctxDir := t.TempDir()
			var yaml strings.Builder
			yaml.WriteString("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n")
			for i, im := range tc.manifest {
				fmt.Fprintf(&yaml, "  - {name: c%d, image: %q}\n", i, strings.ReplaceAll(im, "REGISTRY", reg.Host))
			}
			os.MkdirAll(filepath.Join(ctxDir, "manifests"), 0o755)
			os.WriteFile(filepath.Join(ctxDir, "manifests", "pod.yaml"), []byte(yaml.String()), 0o644)
			os.WriteFile(filepath.Join(ctxDir, "Kubefile"), []byte("FROM scratch\nCOPY manifests /manifests\n"), 0o644)
			var args []string
			for _, a := range tc.images {
				args = append(args, strings.ReplaceAll(a, "REGISTRY", reg.Host))
			}
			tr := &loopbackOnly{host: reg.Host}
			opts := generator.Options{
				Kubefile: filepath.Join(ctxDir, "Kubefile"), Output: filepath.Join(t.TempDir(), "a.run"), Arch: "amd64",
				Stub: []byte("#!/bin/sh\n"), CacheDir: t.TempDir(), StoreDir: t.TempDir(), Images: args, Transport: tr,
			}
			res, err := generator.Build(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.hits) > 0 {
				t.Errorf("requests to %v", tr.hits)
			}
			for _, q := range reg.Requests() {
				if q != "GET /v2/" && (tc.requested == "" || !strings.HasPrefix(q[strings.Index(q, " ")+1:], "/v2/"+tc.requested+"/")) {
					t.Errorf("registry request %q, want only %q ones", q, tc.requested)
				}
			}
			b, err := bundle.Open(opts.Output)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			got, want := map[string]string{}, map[string]string{}
			for _, im := range res.Index.Images {
				got[im.Name] = im.Digest
				raw, _, err := b.OpenBlob(im.Digest)
				if err != nil {
					t.Fatalf("%s: %v", im.Name, err)
				}
				if _, err := io.Copy(io.Discard, raw); err != nil {
					t.Fatalf("%s: %v", im.Name, err)
				}
			}
			for n, img := range tc.want {
				want[strings.ReplaceAll(n, "REGISTRY", reg.Host)] = testreg.Digest(t, img)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("bundled %v\nwant %v", got, want)
			}
		})
	}
}
