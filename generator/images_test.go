package generator_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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
