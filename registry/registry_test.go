package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/sealpack/sealpack/bundle"
)

// pullImage fetches an image with ggcr and reads every layer, which checks
// every blob against its digest.
func pullImage(t testing.TB, ts *testServer, ref string, opts ...remote.Option) v1.Image {
	t.Helper()
	img, err := remote.Image(ts.ref(t, ref), ts.remoteOpts(opts...)...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := readAllLayers(img); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return img
}

func readAllLayers(img v1.Image) error {
	if _, err := img.RawConfigFile(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func TestPullEveryImage(t *testing.T) {
	fixtures := defaultFixtures(t, 64<<10)
	ts := startServer(t, tempBundle(t, fixtures), serverConfig{})
	for _, f := range fixtures {
		t.Run(f.repo, func(t *testing.T) {
			if f.img != nil {
				for _, ref := range []string{f.repo + ":" + f.tag, f.repo + "@" + f.digest} {
					img := pullImage(t, ts, ref)
					if got := must(img.Digest()).String(); got != f.digest {
						t.Errorf("%s: digest %s, want %s", ref, got, f.digest)
					}
				}
				return
			}
			for _, ref := range []string{f.repo + ":" + f.tag, f.repo + "@" + f.digest} {
				idx, err := remote.Index(ts.ref(t, ref), ts.remoteOpts()...)
				if err != nil {
					t.Fatalf("pull index %s: %v", ref, err)
				}
				if got := must(idx.Digest()).String(); got != f.digest {
					t.Errorf("%s: digest %s, want %s", ref, got, f.digest)
				}
				for _, d := range must(idx.IndexManifest()).Manifests {
					img := pullImage(t, ts, f.repo+"@"+d.Digest.String())
					if got := must(img.Digest()); got != d.Digest {
						t.Errorf("child %s: digest %s", d.Digest, got)
					}
				}
			}
			// A client asking for one platform gets its image from the index.
			img := pullImage(t, ts, f.repo+":"+f.tag, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
			cf := must(img.ConfigFile())
			if cf.Architecture != "arm64" {
				t.Errorf("platform pull gave %s", cf.Architecture)
			}
		})
	}
	if strings.Contains(ts.logs.String(), "level=ERROR") {
		t.Errorf("pulls logged errors:\n%s", ts.logs)
	}
}

// TestServedBlobsAreLogged: each blob GET logs its digest and the bytes
// that went out, which is how the bytes a master's registry serves are
// measured (scripts/k8s/e2e.sh); a HEAD, which sends no blob, logs nothing.
func TestServedBlobsAreLogged(t *testing.T) {
	fixtures := defaultFixtures(t, 32<<10)
	ts := startServer(t, tempBundle(t, fixtures), serverConfig{})
	img := pullImage(t, ts, "library/nginx:1.27")
	layers := must(img.Layers())
	if len(layers) != 3 {
		t.Fatalf("%d layers, want 3", len(layers))
	}
	logs := ts.logs.String()
	for _, l := range layers {
		line := fmt.Sprintf("repo=library/nginx digest=%s bytes=%d ", must(l.Digest()), must(l.Size()))
		if !strings.Contains(logs, `msg="blob served" `+line) {
			t.Errorf("no log line %q in:\n%s", line, logs)
		}
	}
	d := must(layers[0].Digest()).String()
	req := must(http.NewRequestWithContext(t.Context(), http.MethodHead, ts.url("/v2/library/nginx/blobs/"+d), nil))
	resp := must(ts.client.Do(req))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s: %s", d, resp.Status)
	}
	if n := strings.Count(ts.logs.String(), "digest="+d+" "); n != 1 {
		t.Errorf("%d log lines for %s after a HEAD, want the GET's only", n, d)
	}
}

// TestHTTP checks the responses clients rely on: headers, HEAD, ranges,
// catalog, tags, errors and refused writes.
func TestHTTP(t *testing.T) {
	fixtures := defaultFixtures(t, 32<<10)
	path := tempBundle(t, fixtures)
	ts := startServer(t, path, serverConfig{})
	nginx := fixtures[0]
	layer := must(must(nginx.img.Layers())[1].Digest()).String()
	layerBytes := must(io.ReadAll(must(must(nginx.img.Layers())[1].Compressed())))
	manifest := must(nginx.img.RawManifest())

	tests := []struct {
		name, method, path string
		header             map[string]string
		wantStatus         int
		wantHeader         map[string]string
		wantBody           []byte
		wantErrCode        string
		wantJSON           any
	}{
		{name: "base", method: "GET", path: "/v2/", wantStatus: 200,
			wantHeader: map[string]string{"Docker-Distribution-API-Version": "registry/2.0"}},
		{name: "manifest by tag", method: "GET", path: "/v2/library/nginx/manifests/1.27",
			header:     map[string]string{"Accept": string(must(nginx.img.MediaType()))},
			wantStatus: 200, wantBody: manifest,
			wantHeader: map[string]string{"Docker-Content-Digest": nginx.digest, "Content-Type": string(must(nginx.img.MediaType()))}},
		{name: "manifest HEAD by digest", method: "HEAD", path: "/v2/library/nginx/manifests/" + nginx.digest,
			header:     map[string]string{"Accept": string(must(nginx.img.MediaType()))},
			wantStatus: 200, wantHeader: map[string]string{"Docker-Content-Digest": nginx.digest, "Content-Length": fmt.Sprint(len(manifest))}},
		{name: "blob", method: "GET", path: "/v2/library/nginx/blobs/" + layer, wantStatus: 200, wantBody: layerBytes,
			wantHeader: map[string]string{"Docker-Content-Digest": layer, "Content-Length": fmt.Sprint(len(layerBytes))}},
		{name: "blob HEAD", method: "HEAD", path: "/v2/library/nginx/blobs/" + layer, wantStatus: 200,
			wantHeader: map[string]string{"Docker-Content-Digest": layer, "Content-Length": fmt.Sprint(len(layerBytes)), "Accept-Ranges": "bytes"}},
		{name: "blob range", method: "GET", path: "/v2/library/nginx/blobs/" + layer,
			header: map[string]string{"Range": "bytes=100-1099"}, wantStatus: 206, wantBody: layerBytes[100:1100],
			wantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes 100-1099/%d", len(layerBytes))}},
		{name: "blob range from start", method: "GET", path: "/v2/library/nginx/blobs/" + layer,
			header: map[string]string{"Range": "bytes=0-9"}, wantStatus: 206, wantBody: layerBytes[:10]},
		{name: "blob suffix range", method: "GET", path: "/v2/library/nginx/blobs/" + layer,
			header: map[string]string{"Range": "bytes=-10"}, wantStatus: 206, wantBody: layerBytes[len(layerBytes)-10:]},
		{name: "blob range past end", method: "GET", path: "/v2/library/nginx/blobs/" + layer,
			header: map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(layerBytes)+10)}, wantStatus: 416},
		{name: "blob of another repository", method: "GET", path: "/v2/library/busybox/blobs/" + layer, wantStatus: 404, wantErrCode: "BLOB_UNKNOWN"},
		{name: "unknown blob", method: "GET", path: "/v2/library/nginx/blobs/sha256:" + strings.Repeat("0", 64), wantStatus: 404, wantErrCode: "BLOB_UNKNOWN"},
		{name: "unknown tag", method: "GET", path: "/v2/library/nginx/manifests/nope", wantStatus: 404, wantErrCode: "MANIFEST_UNKNOWN"},
		{name: "unknown repository", method: "GET", path: "/v2/library/nope/manifests/latest", wantStatus: 404, wantErrCode: "MANIFEST_UNKNOWN"},
		{name: "unknown repository tags", method: "GET", path: "/v2/library/nope/tags/list", wantStatus: 404, wantErrCode: "NAME_UNKNOWN"},
		{name: "catalog", method: "GET", path: "/v2/_catalog", wantStatus: 200,
			wantJSON: map[string]any{"repositories": []any{"coreos/etcd", "library/busybox", "library/nginx", "pause"}}},
		{name: "catalog paged", method: "GET", path: "/v2/_catalog?n=2", wantStatus: 200,
			wantJSON: map[string]any{"repositories": []any{"coreos/etcd", "library/busybox"}}},
		{name: "tags", method: "GET", path: "/v2/library/nginx/tags/list", wantStatus: 200,
			wantJSON: map[string]any{"name": "library/nginx", "tags": []any{"1.27"}}},
		{name: "push refused", method: "POST", path: "/v2/library/nginx/blobs/uploads/", wantStatus: 405, wantErrCode: "UNSUPPORTED"},
		{name: "manifest put refused", method: "PUT", path: "/v2/library/nginx/manifests/new",
			header: map[string]string{"Content-Type": string(must(nginx.img.MediaType()))}, wantStatus: 405, wantErrCode: "UNSUPPORTED"},
		{name: "delete refused", method: "DELETE", path: "/v2/library/nginx/manifests/" + nginx.digest, wantStatus: 405, wantErrCode: "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.method == "PUT" {
				body = bytes.NewReader(manifest)
			}
			req := must(http.NewRequest(tt.method, ts.url(tt.path), body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := ts.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got := must(io.ReadAll(resp.Body))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, got)
			}
			for k, v := range tt.wantHeader {
				if resp.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}
			if tt.wantBody != nil && !bytes.Equal(got, tt.wantBody) {
				t.Errorf("body differs: %d bytes, want %d", len(got), len(tt.wantBody))
			}
			if tt.wantErrCode != "" {
				var e struct{ Errors []struct{ Code string } }
				if err := json.Unmarshal(got, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != tt.wantErrCode {
					t.Errorf("error body %s, want code %s", got, tt.wantErrCode)
				}
			}
			if tt.wantJSON != nil {
				var v any
				if err := json.Unmarshal(got, &v); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(v) != fmt.Sprint(tt.wantJSON) {
					t.Errorf("got %v, want %v", v, tt.wantJSON)
				}
			}
		})
	}
	if logs := ts.logs.String(); strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "level=WARN") {
		t.Errorf("normal answers were logged as problems:\n%s", logs)
	}
}

// TestCorruptBlob flips one byte of a layer inside the bundle file: a full
// GET must not complete, a range GET must fail, and ggcr must fail the pull;
// the other images still pull.
func TestCorruptBlob(t *testing.T) {
	fixtures := defaultFixtures(t, 256<<10)
	path := tempBundle(t, fixtures)
	nginx := fixtures[0]
	layer := must(must(nginx.img.Layers())[0].Digest()).String()
	flipByte(t, path, layer, 1000)

	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("u:"+string(must(bcrypt.GenerateFromPassword([]byte("p"), bcrypt.MinCost)))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		verifyAtStart bool
		opts          Options // writable mode: blobs go through distribution's blob server
	}{
		{name: "fast path"},
		{name: "distribution blob server", opts: Options{WritableDir: filepath.Join(dir, "store"), HtpasswdFile: htpasswd}},
		{name: "verify at start", verifyAtStart: true},
	}
	for _, tt := range tests {
		verifyAtStart := tt.verifyAtStart
		t.Run(tt.name, func(t *testing.T) {
			if verifyAtStart {
				b := must(bundle.Open(path))
				defer b.Close()
				_, err := New(context.Background(), b, Options{Addr: "127.0.0.1:0", InsecureHTTP: true, VerifyAtStart: true})
				var de *bundle.DigestError
				if !errors.As(err, &de) || de.Want != layer {
					t.Fatalf("New with VerifyAtStart: %v, want a DigestError for %s", err, layer)
				}
				return
			}
			ts := startServer(t, path, serverConfig{opts: tt.opts})
			get := func(req *http.Request) (*http.Response, error) {
				if tt.opts.HtpasswdFile != "" {
					req.SetBasicAuth("u", "p")
				}
				return ts.client.Do(req)
			}
			auth := remote.WithAuth(&authn.Basic{Username: "u", Password: "p"})
			// Twice: the second request must not be served from a cache.
			for range 2 {
				resp, err := get(must(http.NewRequest("GET", ts.url("/v2/library/nginx/blobs/"+layer), nil)))
				if err == nil {
					got, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr == nil {
						sum := sha256.Sum256(got)
						t.Fatalf("corrupt blob served whole (status %d, %d bytes, sha256:%s)", resp.StatusCode, len(got), hex.EncodeToString(sum[:]))
					}
				}
			}
			req := must(http.NewRequest("GET", ts.url("/v2/library/nginx/blobs/"+layer), nil))
			req.Header.Set("Range", "bytes=2000-2100")
			resp, err := get(req)
			if err != nil {
				t.Fatal(err)
			}
			// The fast path refuses with 500; distribution's blob server has
			// sent 206 before it reads, and then breaks the body off.
			_, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusPartialContent && rerr == nil {
				t.Errorf("range of a corrupt blob served whole")
			}
			if tt.opts.HtpasswdFile == "" && resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("range of a corrupt blob: status %d, want 500", resp.StatusCode)
			}
			img, err := remote.Image(ts.ref(t, "library/nginx:1.27"), ts.remoteOpts(auth)...)
			if err == nil {
				err = readAllLayers(img)
			}
			if err == nil {
				t.Error("pull of the image with a corrupt layer succeeded")
			}
			pullImage(t, ts, "library/busybox:1.36", auth)
		})
	}
}

// flipByte changes the byte at off within the blob stored in the bundle.
func flipByte(t testing.TB, path, digest string, off int64) {
	t.Helper()
	b := must(bundle.Open(path))
	_, bl, err := b.Blob(digest)
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	f := must(os.OpenFile(path, os.O_RDWR, 0))
	defer f.Close()
	buf := make([]byte, 1)
	must(f.ReadAt(buf, bl.Offset+off))
	buf[0] ^= 0xff
	must(f.WriteAt(buf, bl.Offset+off))
}

func TestWritable(t *testing.T) {
	fixtures := defaultFixtures(t, 16<<10)
	path := tempBundle(t, fixtures)
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	hash := must(bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost))
	if err := os.WriteFile(htpasswd, []byte("pusher:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	ts := startServer(t, path, serverConfig{opts: Options{WritableDir: store, HtpasswdFile: htpasswd}})
	auth := remote.WithAuth(&authn.Basic{Username: "pusher", Password: "s3cret"})

	// Anonymous and wrong-password requests are challenged.
	for _, a := range []remote.Option{remote.WithAuth(authn.Anonymous), remote.WithAuth(&authn.Basic{Username: "pusher", Password: "nope"})} {
		if _, err := remote.Image(ts.ref(t, "library/nginx:1.27"), ts.remoteOpts(a)...); err == nil {
			t.Error("pull without valid credentials succeeded")
		}
	}
	// Push a new image, and a new tag of a bundle image (its blobs come from the bundle).
	pushed := randomImage(t, 16<<10, 2)
	if err := remote.Write(ts.ref(t, "team/app:v1"), pushed, ts.remoteOpts(auth)...); err != nil {
		t.Fatalf("push: %v", err)
	}
	if err := remote.Write(ts.ref(t, "library/nginx:pushed"), fixtures[0].img, ts.remoteOpts(auth)...); err != nil {
		t.Fatalf("push of bundle content under a new tag: %v", err)
	}
	for ref, want := range map[string]v1.Image{"team/app:v1": pushed, "library/nginx:pushed": fixtures[0].img, "library/nginx:1.27": fixtures[0].img, "pause:3.10": fixtures[2].img} {
		got := pullImage(t, ts, ref, auth)
		if must(got.Digest()) != must(want.Digest()) {
			t.Errorf("%s: digest %s, want %s", ref, must(got.Digest()), must(want.Digest()))
		}
	}
	tags, err := remote.List(ts.ref(t, "library/nginx:x").Context(), ts.remoteOpts(auth)...)
	if err != nil || fmt.Sprint(tags) != "[1.27 pushed]" {
		t.Errorf("tags %v (%v), want [1.27 pushed]", tags, err)
	}
	repos, err := remote.Catalog(context.Background(), ts.ref(t, "x").Context().Registry, ts.remoteOpts(auth)...)
	if err != nil || fmt.Sprint(repos) != "[coreos/etcd library/busybox library/nginx pause team/app]" {
		t.Errorf("catalog %v (%v)", repos, err)
	}
	// Pushed bytes are in the directory, the bundle is untouched.
	if _, err := os.Stat(filepath.Join(store, "docker/registry/v2/repositories/team/app/_manifests/tags/v1/current/link")); err != nil {
		t.Errorf("pushed tag not in the writable dir: %v", err)
	}
}

// TestConcurrentPulls runs 100 pulls at once and checks the heap stays flat:
// blobs stream from the file, they are not buffered per request.
func TestConcurrentPulls(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	fixtures := defaultFixtures(t, 2<<20)
	ts := startServer(t, tempBundle(t, fixtures), serverConfig{})
	var paths []string
	for _, f := range fixtures[:3] {
		for _, l := range must(f.img.Layers()) {
			paths = append(paths, fmt.Sprintf("/v2/%s/blobs/%s", f.repo, must(l.Digest())))
		}
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore := rssKiB()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	var wg sync.WaitGroup
	var bytesRead atomic.Int64
	errs := make(chan error, 100)
	start := time.Now()
	for i := range 100 {
		wg.Go(func() {
			// Each client pulls every image: manifests, then all blobs.
			for _, f := range fixtures[:3] {
				if _, err := remote.Get(ts.ref(t, f.repo+":"+f.tag), ts.remoteOpts()...); err != nil {
					errs <- err
					return
				}
			}
			for j := range paths {
				p := paths[(i+j)%len(paths)]
				resp, err := ts.client.Get(ts.url(p))
				if err != nil {
					errs <- err
					return
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				bytesRead.Add(n)
				if err != nil || resp.StatusCode != 200 {
					errs <- fmt.Errorf("%s: %d %v", p, resp.StatusCode, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	growth := int64(peak.Load()) - int64(before.HeapInuse)
	runtime.GC()
	t.Logf("RSS %d MiB before, %d MiB after (client and server in this process)", rssBefore>>10, rssKiB()>>10)
	t.Logf("100 concurrent pulls: %d MiB in %v (%.0f MiB/s); heap in use %d MiB before, peak %d MiB (+%d MiB)",
		bytesRead.Load()>>20, elapsed.Round(time.Millisecond), float64(bytesRead.Load())/(1<<20)/elapsed.Seconds(),
		before.HeapInuse>>20, peak.Load()>>20, growth>>20)
	// distribution's own blob path would hold a 4 MiB buffer per request
	// (400 MiB here); streaming in place needs TLS and HTTP buffers only.
	if limit := int64(128 << 20); growth > limit {
		t.Errorf("heap grew by %d MiB during 100 concurrent pulls, want < %d MiB", growth>>20, limit>>20)
	}
}

func TestBadBundleContent(t *testing.T) {
	tests := []struct {
		name   string
		images []imageSource
		want   string
	}{
		{"repository escaping the layout", []imageSource{{Repository: "../x", Tag: "t", Digest: "sha256:" + strings.Repeat("a", 64)}}, "invalid repository"},
		{"bad tag", []imageSource{{Repository: "x", Tag: "a/b", Digest: "sha256:" + strings.Repeat("a", 64)}}, "invalid tag"},
		{"missing manifest", []imageSource{{Repository: "x", Tag: "t", Digest: "sha256:" + strings.Repeat("a", 64)}}, "not exist"},
	}
	path := tempBundle(t, nil)
	b := must(bundle.Open(path))
	defer b.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newServer(context.Background(), b, tt.images, time.Now(), Options{InsecureHTTP: true, Addr: "127.0.0.1:0"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDriverLayout(t *testing.T) {
	fixtures := defaultFixtures(t, 1<<10)
	b := must(bundle.Open(tempBundle(t, fixtures)))
	defer b.Close()
	var images []imageSource
	for _, im := range b.Index.Images {
		images = append(images, imageSource{im.Repository, im.Tag, im.Digest})
	}
	d := must(newBundleDriver(context.Background(), b, images, time.Now(), nil))
	ctx := context.Background()
	nginx := fixtures[0]
	hexd := strings.TrimPrefix(nginx.digest, "sha256:")
	if got := string(must(d.GetContent(ctx, reposPath+"/library/nginx/_manifests/tags/1.27/current/link"))); got != nginx.digest {
		t.Errorf("tag link %q", got)
	}
	if got := must(d.List(ctx, reposPath+"/library")); fmt.Sprint(got) != "["+reposPath+"/library/busybox "+reposPath+"/library/nginx]" {
		t.Errorf("list %v", got)
	}
	fi := must(d.Stat(ctx, blobsPath+"/sha256/"+hexd[:2]+"/"+hexd+"/data"))
	if fi.IsDir() || fi.Size() != int64(len(must(nginx.img.RawManifest()))) {
		t.Errorf("stat %+v", fi)
	}
	// Errors distribution type-switches on are bare values.
	if _, err := d.Stat(ctx, reposPath+"/nope"); fmt.Sprintf("%T", err) != "driver.PathNotFoundError" {
		t.Errorf("Stat of a missing path: %T", err)
	}
	if _, err := d.Reader(ctx, blobsPath+"/sha256/"+hexd[:2]+"/"+hexd+"/data", 1<<20); fmt.Sprintf("%T", err) != "driver.InvalidOffsetError" {
		t.Errorf("Reader past the end: %T", err)
	}
	if err := d.PutContent(ctx, "/x", nil); fmt.Sprintf("%T", err) != "driver.ErrUnsupportedMethod" {
		t.Errorf("PutContent: %T", err)
	}
	// Every index child is linked as a revision.
	etcd := fixtures[3]
	var revs []string
	for _, m := range must(etcd.idx.IndexManifest()).Manifests {
		revs = append(revs, reposPath+"/coreos/etcd/_manifests/revisions/sha256/"+m.Digest.Hex)
	}
	revs = append(revs, reposPath+"/coreos/etcd/_manifests/revisions/sha256/"+strings.TrimPrefix(etcd.digest, "sha256:"))
	sort.Strings(revs)
	if got := must(d.List(ctx, reposPath+"/coreos/etcd/_manifests/revisions/sha256")); fmt.Sprint(got) != fmt.Sprint(revs) {
		t.Errorf("revisions %v, want %v", got, revs)
	}
}

// rssKiB reads this process's resident set size from /proc (0 elsewhere).
func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kib)
			return kib
		}
	}
	return 0
}
