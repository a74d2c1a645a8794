package stub

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sealpack/sealpack/bundle"
)

// registryBundle writes a bundle holding one random image as library/app:1.0.
func registryBundle(t *testing.T) (path, digest string) {
	t.Helper()
	return registryBundleTag(t, "1.0")
}

// registryBundleTag writes a bundle holding one random image as library/app:TAG.
func registryBundleTag(t *testing.T, tag string) (path, digest string) {
	t.Helper()
	ctx := context.Background()
	img, err := random.Image(8<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "installer.run")
	w, err := bundle.Create(path, strings.NewReader("stub"), bundle.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	add := func(r io.Reader, dg, mt string) {
		if _, err := w.AddBlob(ctx, r, dg, mt); err != nil {
			t.Fatal(err)
		}
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, _ := l.Compressed()
		d, _ := l.Digest()
		add(rc, d.String(), "")
		rc.Close()
	}
	cfg, _ := img.RawConfigFile()
	add(bytes.NewReader(cfg), "", "")
	raw, _ := img.RawManifest()
	d, _ := img.Digest()
	mt, _ := img.MediaType()
	add(bytes.NewReader(raw), d.String(), string(mt))
	if err := w.AddImage(bundle.Image{Name: "docker.io/library/app:" + tag, Repository: "library/app", Tag: tag, Digest: d.String(), MediaType: string(mt)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return path, d.String()
}

var servingRE = regexp.MustCompile(`serving \d+ image\(s\) from \d+ bundle\(s\) at (https?://\S+)`)

// startRegistryCommand runs `registry serve` until the test ends and returns
// the URL it printed.
func startRegistryCommand(t *testing.T, env *Env, args ...string) string {
	t.Helper()
	pr, pw := io.Pipe()
	env.Stderr = pw
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, env, append([]string{"registry", "serve", "--addr", "127.0.0.1:0"}, args...))
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("registry serve exited with %d", code)
		}
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		close(urls)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			t.Fatal("registry serve stopped before serving")
		}
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("registry serve did not start")
	}
	return ""
}

func TestRegistryServeCommand(t *testing.T) {
	path, digest := registryBundle(t)
	tlsDir := filepath.Join(t.TempDir(), "tls")
	env := &Env{Stdout: io.Discard, Open: func() (*bundle.Bundle, error) { return nil, os.ErrNotExist }}
	var firstCA []byte
	for run := range 2 {
		u := startRegistryCommand(t, env, "--bundle", path, "--tls-generate", tlsDir, "--tls-san", "registry.example")
		ca, err := os.ReadFile(filepath.Join(tlsDir, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			firstCA = ca
		} else if !bytes.Equal(ca, firstCA) {
			t.Error("a restart replaced the CA: hosts given the old ca.crt would stop trusting the registry")
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		ref, err := name.ParseReference(strings.TrimPrefix(u, "https://") + "/library/app:1.0")
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref, remote.WithTransport(tr))
		if err != nil {
			t.Fatalf("pull over TLS with the generated CA: %v", err)
		}
		if d, _ := img.Digest(); d.String() != digest {
			t.Errorf("digest %s, want %s", d, digest)
		}
		tr.CloseIdleConnections()
	}
}

func TestRegistryServeFlags(t *testing.T) {
	path, _ := registryBundle(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"registry"}, 2, "usage: registry serve"},
		{"cert without key", []string{"registry", "serve", "--bundle", path, "--tls-cert", "x.crt"}, 2, "go together"},
		{"insecure with TLS", []string{"registry", "serve", "--bundle", path, "--insecure-http", "--tls-generate", "d"}, 2, "excludes"},
		{"writable without auth", []string{"registry", "serve", "--bundle", path, "--insecure-http", "--writable", t.TempDir()}, 1, "htpasswd"},
		{"missing bundle", []string{"registry", "serve", "--bundle", filepath.Join(t.TempDir(), "nope"), "--insecure-http"}, 1, "no such file"},
		{"bad log level", []string{"registry", "serve", "--log-level", "loud"}, 2, "--log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			env := &Env{Stdout: io.Discard, Stderr: &stderr, Open: func() (*bundle.Bundle, error) { return nil, os.ErrNotExist }}
			if code := Main(context.Background(), env, tt.args); code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tt.code, stderr.String(), tt.want)
			}
		})
	}
}

// TestRegistryServeTwoBundles: during an upgrade the registry serves the new
// bundle's images and the old one's, which running pods still use: both
// bundles' manifests resolve, by tag and by digest, with every blob; a tag both
// carry is the first (newer) bundle's.
func TestRegistryServeTwoBundles(t *testing.T) {
	newer, newDigest := registryBundleTag(t, "2.0")
	older, oldDigest := registryBundleTag(t, "1.0")
	same, sameNewDigest := registryBundleTag(t, "1.0") // the newer bundle's library/app:1.0 differs
	tests := []struct {
		name    string
		bundles []string
		ref     string
		want    string
	}{
		{"the new bundle's tag", []string{newer, older}, "library/app:2.0", newDigest},
		{"the old bundle's tag", []string{newer, older}, "library/app:1.0", oldDigest},
		{"the old bundle's digest", []string{newer, older}, "library/app@" + oldDigest, oldDigest},
		{"a tag both carry is the first bundle's", []string{same, older}, "library/app:1.0", sameNewDigest},
		{"the shadowed image still resolves by digest", []string{same, older}, "library/app@" + oldDigest, oldDigest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &Env{Stdout: io.Discard, Open: func() (*bundle.Bundle, error) { return nil, os.ErrNotExist }}
			args := []string{"--insecure-http"}
			for _, b := range tt.bundles {
				args = append(args, "--bundle", b)
			}
			u := startRegistryCommand(t, env, args...)
			ref, err := name.ParseReference(strings.TrimPrefix(u, "http://")+"/"+tt.ref, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(ref)
			if err != nil {
				t.Fatalf("pull %s: %v", tt.ref, err)
			}
			if d, _ := img.Digest(); d.String() != tt.want {
				t.Errorf("%s is %s, want %s", tt.ref, d, tt.want)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers {
				rc, err := l.Compressed()
				if err != nil {
					t.Fatalf("layer of %s: %v", tt.ref, err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					t.Errorf("layer of %s: %v", tt.ref, err)
				}
				rc.Close()
			}
		})
	}
}
