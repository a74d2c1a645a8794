package gencmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator/internal/testreg"
	"github.com/sealpack/sealpack/generator/store"
)

// genEnv runs gen with its own XDG folders.
type genEnv struct {
	t   *testing.T
	env map[string]string
}

func newGenEnv(t *testing.T) *genEnv {
	return &genEnv{t: t, env: map[string]string{"XDG_DATA_HOME": t.TempDir(), "XDG_CACHE_HOME": t.TempDir(), "HOME": t.TempDir()}}
}

func (g *genEnv) run(args ...string) (string, string, int) {
	g.t.Helper()
	var o, e bytes.Buffer
	code := Main(context.Background(), &IO{Stdout: &o, Stderr: &e, Getenv: func(k string) string { return g.env[k] }}, args)
	return o.String(), e.String(), code
}

func (g *genEnv) ok(args ...string) string {
	g.t.Helper()
	o, e, code := g.run(args...)
	if code != 0 {
		g.t.Fatalf("gen %s: exit %d: %s", strings.Join(args, " "), code, e)
	}
	return o
}

func (g *genEnv) blobFiles() int {
	ents, _ := os.ReadDir(filepath.Join(g.env["XDG_DATA_HOME"], "sealpack", "images", "blobs", "sha256"))
	return len(ents)
}

func bundleIndex(t *testing.T, path string) *bundle.Index {
	t.Helper()
	b, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return b.Index
}

func imageNames(idx *bundle.Index) []string {
	var out []string
	for _, im := range idx.Images {
		out = append(out, im.Repository+":"+im.Tag)
	}
	return out
}

func TestStoredClusterImage(t *testing.T) {
	reg := testreg.Start(t)
	reg.Push(t, "web/server:1.0", testreg.Image(t, "amd64", 2, 4096))
	reg.Push(t, "tools/cli:1", testreg.Image(t, "amd64", 1, 2048))
	extra := reg.Push(t, "extra/new:1", testreg.Image(t, "amd64", 1, 1024))
	reg.Requests()
	g := newGenEnv(t)
	base := testreg.CopyContext(t, "../../testdata/build/store/base", reg.Host)
	app := testreg.CopyContext(t, "../../testdata/build/store/app", reg.Host)
	stub := filepath.Join(t.TempDir(), "stub")
	os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755)

	// gen build -t stores the cluster image with its container images.
	g.ok("build", "-f", filepath.Join(base, "Kubefile"), "-t", "local.test/base:1")
	if got := testreg.BlobGets(reg.Requests()); got != 3+2 {
		t.Errorf("build -t: %d blob downloads, want 5", got)
	}
	if o := g.ok("list"); !strings.Contains(o, "docker.io/local.test/base:1") && !strings.Contains(o, "local.test/base:1") {
		t.Errorf("list = %q", o)
	}
	o := g.ok("images", "local.test/base:1")
	for _, want := range []string{reg.Host + "/web/server:1.0", reg.Host + "/tools/cli:1"} {
		if !strings.Contains(o, want) {
			t.Errorf("images: %q lacks %s", o, want)
		}
	}
	var in Inspection
	if err := json.Unmarshal([]byte(g.ok("inspect", "local.test/base:1")), &in); err != nil {
		t.Fatal(err)
	}
	if len(in.Layers) != 2 || len(in.Images) != 2 || in.Platform != "linux/amd64" || in.Labels["tier"] != "base" ||
		!slices.Contains(in.Env, "BASE=1") || !slices.Equal(in.Config.Launch, []string{"web"}) || len(in.Config.Apps) != 1 || in.Config.Apps[0].Type != "kube" {
		t.Errorf("inspect = %+v", in)
	}

	// FROM the stored image, with an empty fetch cache: only the new image
	// is downloaded; the installer holds all three.
	fromStore := func(what string, args ...string) *bundle.Index {
		t.Helper()
		g.env["XDG_CACHE_HOME"] = t.TempDir()
		out := filepath.Join(t.TempDir(), "i.run")
		g.ok(append([]string{"-f", filepath.Join(app, "Kubefile"), "-o", out, "--stub", stub}, args...)...)
		idx := bundleIndex(t, out)
		if len(idx.Layers) != 3 || !slices.Contains(idx.Config.Env, "BASE=1") || !slices.Contains(idx.Config.Env, "APP=1") || len(idx.Config.Apps) != 1 {
			t.Errorf("%s: %d layers, config %+v; want the base's 2 layers and metadata, and the Kubefile's", what, len(idx.Layers), idx.Config)
		}
		return idx
	}
	idx := fromStore("FROM stored", "--image", extra)
	if got := testreg.BlobGets(reg.Requests()); got != 2 {
		t.Errorf("FROM stored: %d blob downloads, want 2 (only extra/new)", got)
	}
	if got, want := imageNames(idx), []string{"extra/new:1", "tools/cli:1", "web/server:1.0"}; !slices.Equal(got, want) {
		t.Errorf("FROM stored: images %v, want %v", got, want)
	}

	// push, rmi (nothing left), pull, and FROM again: offline, no request.
	pushed := reg.Host + "/clusters/base:1"
	g.ok("push", "local.test/base:1", pushed)
	ref, _ := name.ParseReference(pushed)
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := remote.Referrers(ref.Context().Digest(desc.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := refs.IndexManifest(); len(m.Manifests) != 1 || m.Manifests[0].ArtifactType != store.ImagesArtifactType {
		t.Errorf("referrers of the pushed cluster image = %+v; want the index of its images", m)
	}
	g.ok("rmi", "local.test/base:1")
	if o := g.ok("list"); strings.Contains(o, "base") {
		t.Errorf("list after rmi = %q", o)
	}
	if n := g.blobFiles(); n != 0 {
		t.Errorf("rmi left %d blobs", n)
	}
	reg.Requests()
	g.ok("pull", pushed, "-t", "local.test/base:1")
	if got := testreg.BlobGets(reg.Requests()); got != 3+5 {
		t.Errorf("pull: %d blob downloads, want 8 (the cluster image's 2 layers and config, its images' 5 blobs)", got)
	}
	if strings.Count(g.ok("images", "local.test/base:1"), "\n") != 3 {
		t.Errorf("pulled image lost its container images")
	}
	idx = fromStore("FROM pulled", "--offline")
	if q := reg.Requests(); len(q) != 0 {
		t.Errorf("offline build FROM a pulled image made requests %v", q)
	}
	if got, want := imageNames(idx), []string{"tools/cli:1", "web/server:1.0"}; !slices.Equal(got, want) {
		t.Errorf("FROM pulled: images %v, want %v", got, want)
	}
	// pulled under its own name
	g.ok("pull", pushed)
	if o := g.ok("list"); !strings.Contains(o, pushed) {
		t.Errorf("list = %q, want %s", o, pushed)
	}
}

func TestStoreErrorsNameTheImage(t *testing.T) {
	reg := testreg.Start(t)
	g := newGenEnv(t)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"images", "nope:1"}, 1, "nope:1 is not in the local store"},
		{[]string{"inspect", "nope:2"}, 1, "nope:2 is not in the local store"},
		{[]string{"rmi", "nope:3"}, 1, "nope:3 is not in the local store"},
		{[]string{"push", "nope:4", reg.Host + "/x:1"}, 1, "nope:4 is not in the local store"},
		{[]string{"pull", reg.Host + "/missing/image:5"}, 1, "missing/image:5"},
		{[]string{"build", "-f", "Kubefile"}, 2, "expected -t NAME:TAG"},
		{[]string{"build", "-f", "Kubefile", "-t", "Bad Name"}, 1, "Bad Name"},
		{[]string{"inspect"}, 2, "expected one cluster image NAME"},
		{[]string{"push", "a:1"}, 2, "expected NAME and REF"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, e, code := g.run(c.args...)
			if code != c.code || !strings.Contains(e, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, e, c.code, c.want)
			}
		})
	}
}
