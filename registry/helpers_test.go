package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/registry/tlsgen"
)

// fixture is one image stored in a test bundle under the name gen gives it.
type fixture struct {
	ref    string // as referenced, e.g. docker.io/library/nginx:1.27
	repo   string // as served
	tag    string
	img    v1.Image      // set for a single image
	idx    v1.ImageIndex // set for an index
	digest string
}

// randomImage makes an image with n random layers of size bytes each.
func randomImage(t testing.TB, size int64, n int) v1.Image {
	t.Helper()
	img, err := random.Image(size, int64(n))
	if err != nil {
		t.Fatal(err)
	}
	// A platform in the config: containerd matches single-manifest images by it.
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// twoPlatformIndex makes an index of a linux/amd64 and a linux/arm64 image.
func twoPlatformIndex(t testing.TB, size int64) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img := randomImage(t, size, 2)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf.OS, cf.Architecture = "linux", arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

// defaultFixtures: two images under Docker Hub names, one under another
// registry's, and a two-platform index.
func defaultFixtures(t testing.TB, size int64) []*fixture {
	return []*fixture{
		{ref: "docker.io/library/nginx:1.27", repo: "library/nginx", tag: "1.27", img: randomImage(t, size, 3)},
		{ref: "docker.io/library/busybox:1.36", repo: "library/busybox", tag: "1.36", img: randomImage(t, size, 1)},
		{ref: "registry.k8s.io/pause:3.10", repo: "pause", tag: "3.10", img: randomImage(t, size, 1)},
		{ref: "quay.io/coreos/etcd:v3.5", repo: "coreos/etcd", tag: "v3.5", idx: twoPlatformIndex(t, size)},
	}
}

// writeBundle stores the fixtures' blobs and images in a bundle at path, the
// way gen does: blobs exactly as the registry gave them.
func writeBundle(t testing.TB, path string, fixtures []*fixture) {
	t.Helper()
	ctx := context.Background()
	w, err := bundle.Create(path, strings.NewReader("#!/bin/false test stub\n"), bundle.WriterOptions{Platform: bundle.Platform{OS: "linux", Architecture: "amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	addRaw := func(raw []byte, mt string) string {
		bl, err := w.AddBlob(ctx, bytes.NewReader(raw), "", mt)
		if err != nil {
			t.Fatal(err)
		}
		return bl.Digest
	}
	addImage := func(img v1.Image) string {
		for _, l := range must(img.Layers()) {
			rc := must(l.Compressed())
			mt := must(l.MediaType())
			if _, err := w.AddBlob(ctx, rc, must(l.Digest()).String(), string(mt)); err != nil {
				t.Fatal(err)
			}
			rc.Close()
		}
		cfg := must(img.RawConfigFile())
		addRaw(cfg, "application/vnd.docker.container.image.v1+json")
		return addRaw(must(img.RawManifest()), string(must(img.MediaType())))
	}
	for _, f := range fixtures {
		var size int64
		var mt string
		if f.img != nil {
			f.digest = addImage(f.img)
			mt = string(must(f.img.MediaType()))
		} else {
			im := must(f.idx.IndexManifest())
			for _, d := range im.Manifests {
				addImage(must(f.idx.Image(d.Digest)))
				size += d.Size
			}
			f.digest = addRaw(must(f.idx.RawManifest()), string(must(f.idx.MediaType())))
			mt = string(must(f.idx.MediaType()))
		}
		if err := w.AddImage(bundle.Image{Name: f.ref, Repository: f.repo, Tag: f.tag, Digest: f.digest, MediaType: mt, Size: size}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// testServer is a registry on a loopback port over a bundle, with TLS from
// a generated CA.
type testServer struct {
	*Server
	host   string // HOST:PORT
	caFile string
	pool   *x509.CertPool
	client *http.Client
	bundle *bundle.Bundle
	logs   *lockedWriter
}

type serverConfig struct {
	opts  Options
	noTLS bool
}

func startServer(t testing.TB, bundlePath string, cfg serverConfig) *testServer {
	t.Helper()
	b, err := bundle.Open(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	opts := cfg.opts
	opts.Addr = "127.0.0.1:0"
	logs := &lockedWriter{w: &bytes.Buffer{}}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ts := &testServer{bundle: b, logs: logs}
	if cfg.noTLS {
		opts.InsecureHTTP = true
	} else {
		dir := filepath.Join(t.TempDir(), "tls")
		ca, err := tlsgen.GenerateCA(dir)
		if err != nil {
			t.Fatal(err)
		}
		files, err := ca.IssueServerCert(dir, []string{"localhost", "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		opts.TLSCertFile, opts.TLSKeyFile = files.CertFile, files.KeyFile
		ts.caFile = ca.CertFile
		ts.pool = x509.NewCertPool()
		ts.pool.AddCert(ca.Cert)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, b, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ts.Server = s
	ts.host = s.Addr()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("registry did not stop")
		}
	})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: ts.pool}
	tr.MaxIdleConnsPerHost = 200
	ts.client = &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	return ts
}

func (ts *testServer) url(p string) string { return ts.URL() + p }

// ref names a repository on this server, for ggcr.
func (ts *testServer) ref(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ts.host + "/" + s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (ts *testServer) remoteOpts(extra ...remote.Option) []remote.Option {
	return append([]remote.Option{remote.WithTransport(ts.client.Transport)}, extra...)
}

// lockedWriter lets the server's goroutines log into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func tempBundle(t testing.TB, fixtures []*fixture) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "installer.run")
	writeBundle(t, p, fixtures)
	return p
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
