// Command registry benchmarks the embedded registry (scripts/bench/registry.sh):
// pulling every image of a bundle against the same blobs served by
// distribution's filesystem driver from an extracted directory, and the time
// from opening a bundle to the first byte of a blob. Prints Markdown.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/registry"
	"github.com/sealpack/sealpack/registry/tlsgen"
)

func main() {
	dir := flag.String("dir", "", "work directory (required)")
	sizeMiB := flag.Int("size", 1024, "throughput bundle size in MiB")
	ttfbGiB := flag.String("ttfb", "1,4", "bundle sizes in GiB for time to first byte")
	runs := flag.Int("runs", 3, "timed pull runs per server")
	workers := flag.Int("workers", 3, "concurrent blob downloads per pull (containerd's default is 3)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "registry bench: -dir is required")
		os.Exit(2)
	}
	if err := run(*dir, *sizeMiB, *ttfbGiB, *runs, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "registry bench:", err)
		os.Exit(1)
	}
}

type image struct {
	repo, tag, digest string
	blobs             []string // config and layers
}

const layerSize = 32 << 20

// makeBundle writes a bundle of random images, 4 layers of 32 MiB each, until
// it holds about totalMiB. Layer bytes are random (incompressible, like real
// compressed layers); the registry never looks inside them.
func makeBundle(ctx context.Context, path string, totalMiB int) ([]image, error) {
	if _, err := os.Stat(path); err == nil {
		os.Remove(path)
	}
	w, err := bundle.Create(path, strings.NewReader("bench stub\n"), bundle.WriterOptions{Platform: bundle.Platform{OS: "linux", Architecture: runtime.GOARCH}})
	if err != nil {
		return nil, err
	}
	rng := rand.NewChaCha8([32]byte{1})
	var images []image
	buf := make([]byte, layerSize)
	for n := 0; n*4*layerSize < totalMiB<<20; n++ {
		type desc struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
			Size      int64  `json:"size"`
		}
		var layers []desc
		for range 4 {
			rng.Read(buf)
			sum := sha256.Sum256(buf)
			d := "sha256:" + hex.EncodeToString(sum[:])
			if _, err := w.AddBlob(ctx, bytes.NewReader(buf), d, "application/vnd.oci.image.layer.v1.tar+gzip"); err != nil {
				return nil, err
			}
			layers = append(layers, desc{"application/vnd.oci.image.layer.v1.tar+gzip", d, layerSize})
		}
		cfg := fmt.Appendf(nil, `{"architecture":%q,"os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Env":["N=%d"]}}`, runtime.GOARCH, n)
		cb, err := w.AddBlob(ctx, bytes.NewReader(cfg), "", "application/vnd.oci.image.config.v1+json")
		if err != nil {
			return nil, err
		}
		m, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": desc{"application/vnd.oci.image.config.v1+json", cb.Digest, cb.Size}, "layers": layers,
		})
		mb, err := w.AddBlob(ctx, bytes.NewReader(m), "", "application/vnd.oci.image.manifest.v1+json")
		if err != nil {
			return nil, err
		}
		im := image{repo: fmt.Sprintf("bench/img%02d", n), tag: "v1", digest: mb.Digest, blobs: []string{cb.Digest}}
		for _, l := range layers {
			im.blobs = append(im.blobs, l.Digest)
		}
		if err := w.AddImage(bundle.Image{Name: "docker.io/" + im.repo + ":v1", Repository: im.repo, Tag: "v1", Digest: mb.Digest, MediaType: "application/vnd.oci.image.manifest.v1+json"}); err != nil {
			return nil, err
		}
		images = append(images, im)
	}
	return images, w.Commit()
}

func run(dir string, sizeMiB int, ttfbGiB string, runs, workers int) error {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tlsDir := filepath.Join(dir, "tls")
	ca, err := tlsgen.GenerateCA(tlsDir)
	if err != nil {
		return err
	}
	files, err := ca.IssueServerCert(tlsDir, []string{"127.0.0.1"})
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		return err
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	fmt.Printf("Machine: %d CPUs, %s/%s, %s. TLS (ECDSA P-256) on loopback; client: go-containerregistry, %d concurrent blob downloads per pull, digest checked.\n\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), workers)

	// Throughput: bundle vs extracted directory.
	path := filepath.Join(dir, "tp.run")
	images, err := makeBundle(ctx, path, sizeMiB)
	if err != nil {
		return fmt.Errorf("make bundle: %w", err)
	}
	st, _ := os.Stat(path)
	b, err := bundle.Open(path)
	if err != nil {
		return err
	}
	defer b.Close()
	ours, err := registry.New(ctx, b, registry.Options{Addr: "127.0.0.1:0", TLSConfig: tlsConf, Logger: quiet})
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go ours.Serve(sctx)

	fsRoot := filepath.Join(dir, "extracted")
	os.RemoveAll(fsRoot)
	fsAddr, closeFS, err := startFilesystemRegistry(fsRoot, tlsConf)
	if err != nil {
		return err
	}
	defer closeFS()
	client := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 16}
	// Fill the extracted directory by copying every image through the API.
	for _, im := range images {
		src, _ := name.ParseReference(ours.Addr() + "/" + im.repo + ":" + im.tag)
		dst, _ := name.ParseReference(fsAddr + "/" + im.repo + ":" + im.tag)
		img, err := remote.Image(src, remote.WithTransport(client))
		if err != nil {
			return err
		}
		if err := remote.Write(dst, img, remote.WithTransport(client)); err != nil {
			return fmt.Errorf("fill extracted directory: %w", err)
		}
	}
	extracted := duBytes(fsRoot)

	var total int64
	for _, im := range images {
		for _, d := range im.blobs {
			_, bl, _ := b.Blob(d)
			total += bl.Size
		}
	}
	// The first pull from our server hashes every blob as it streams; the
	// filesystem side gets a warm-up pull too. Then the timed runs alternate
	// between the two so neither gets a quieter machine.
	timePull := func(addr string) (time.Duration, error) {
		start := time.Now()
		err := pullAll(addr, images, client, workers)
		return time.Since(start), err
	}
	firstT, err := timePull(ours.Addr())
	if err != nil {
		return err
	}
	if _, err := timePull(fsAddr); err != nil {
		return err
	}
	// Wall time on a shared machine is noisy; CPU time of this process
	// (client and server together; the client's share is the same for both)
	// is the steadier measure of what serving costs.
	var oursT, fsT, oursCPU, fsCPU time.Duration
	for range runs {
		for _, side := range []struct {
			addr      string
			best, cpu *time.Duration
		}{{ours.Addr(), &oursT, &oursCPU}, {fsAddr, &fsT, &fsCPU}} {
			c0 := cpuTime()
			el, err := timePull(side.addr)
			if err != nil {
				return err
			}
			*side.cpu += cpuTime() - c0
			if *side.best == 0 || el < *side.best {
				*side.best = el
			}
		}
	}
	mibs := func(d time.Duration) float64 { return float64(total) / (1 << 20) / d.Seconds() }
	fmt.Printf("### Pull every image (%d images, %.2f GiB of blobs, bundle file %.2f GiB)\n\n", len(images), float64(total)/(1<<30), float64(st.Size())/(1<<30))
	gib := float64(total) / (1 << 30)
	perGiB := func(cpu time.Duration) float64 { return cpu.Seconds() / float64(runs) / gib }
	fmt.Printf("| server | best of %d | throughput | CPU s per GiB (client+server) | extra disk |\n|---|---|---|---|---|\n", runs)
	fmt.Printf("| sealpack registry, in place from the bundle | %v | %.0f MiB/s | %.2f | 0 |\n", oursT.Round(time.Millisecond), mibs(oursT), perGiB(oursCPU))
	fmt.Printf("| sealpack registry, first pull (every blob hashed as it streams) | %v (1 run) | %.0f MiB/s | | 0 |\n", firstT.Round(time.Millisecond), mibs(firstT))
	fmt.Printf("| distribution filesystem driver, extracted directory | %v | %.0f MiB/s | %.2f | %.2f GiB |\n", fsT.Round(time.Millisecond), mibs(fsT), perGiB(fsCPU), float64(extracted)/(1<<30))
	fmt.Printf("\nThroughput ratio (sealpack / filesystem driver, best runs): **%.2f×**; first pull, hashing: %.2f×. CPU per GiB: %.2f× of the filesystem driver's.\n\n", mibs(oursT)/mibs(fsT), mibs(firstT)/mibs(fsT), oursCPU.Seconds()/fsCPU.Seconds())
	stop()
	closeFS()
	b.Close()
	os.RemoveAll(fsRoot)
	os.Remove(path)

	// Time to first byte: from opening the bundle to the first byte of the
	// last image's last layer, including building the layout and TLS.
	fmt.Printf("### Time to first byte\n\nFrom `bundle.Open` to the first body byte of the last layer of the last image (open, index, manifests parsed and checked, listen, TLS handshake, request), median of 5; and the first byte of a request on a running server.\n\n")
	fmt.Printf("| bundle | images | start to first byte | request to first byte (running server) |\n|---|---|---|---|\n")
	for _, g := range strings.Split(ttfbGiB, ",") {
		var gib int
		if _, err := fmt.Sscan(g, &gib); err != nil {
			return fmt.Errorf("-ttfb: %w", err)
		}
		p := filepath.Join(dir, fmt.Sprintf("ttfb-%d.run", gib))
		imgs, err := makeBundle(ctx, p, gib<<10)
		if err != nil {
			return err
		}
		last := imgs[len(imgs)-1]
		blobPath := "/v2/" + last.repo + "/blobs/" + last.blobs[len(last.blobs)-1]
		var starts, reqs []time.Duration
		for range 5 {
			t0 := time.Now()
			b, err := bundle.Open(p)
			if err != nil {
				return err
			}
			s, err := registry.New(ctx, b, registry.Options{Addr: "127.0.0.1:0", TLSConfig: tlsConf, Logger: quiet})
			if err != nil {
				return err
			}
			c, stop := context.WithCancel(ctx)
			go s.Serve(c)
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
			_, err = firstByte(tr, "https://"+s.Addr()+blobPath)
			if err != nil {
				stop()
				return err
			}
			starts = append(starts, time.Since(t0))
			t1 := time.Now()
			if _, err := firstByte(tr, "https://"+s.Addr()+blobPath); err != nil {
				stop()
				return err
			}
			reqs = append(reqs, time.Since(t1))
			tr.CloseIdleConnections()
			stop()
			s.Close()
			b.Close()
		}
		fmt.Printf("| %d GiB | %d | %v | %v |\n", gib, len(imgs), median(starts).Round(10*time.Microsecond), median(reqs).Round(10*time.Microsecond))
		os.Remove(p)
	}
	return nil
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// firstByte GETs url and returns when the first body byte arrives; the rest
// of the body is discarded by closing the connection.
func firstByte(tr *http.Transport, url string) (time.Duration, error) {
	start := time.Now()
	resp, err := tr.RoundTrip(must(http.NewRequest("GET", url, nil)))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, one); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// pullAll pulls every image like a container runtime: manifest, then its
// blobs with a few concurrent downloads, each checked against its digest.
func pullAll(addr string, images []image, tr http.RoundTripper, workers int) error {
	for _, im := range images {
		ref, err := name.ParseReference(addr + "/" + im.repo + ":" + im.tag)
		if err != nil {
			return err
		}
		img, err := remote.Image(ref, remote.WithTransport(tr))
		if err != nil {
			return err
		}
		if _, err := img.RawConfigFile(); err != nil {
			return err
		}
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		sem := make(chan struct{}, workers)
		errs := make(chan error, len(layers))
		var wg sync.WaitGroup
		for _, l := range layers {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				rc, err := l.Compressed()
				if err != nil {
					errs <- err
					return
				}
				defer rc.Close()
				if _, err := io.Copy(io.Discard, rc); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// startFilesystemRegistry runs distribution's handlers with its filesystem
// driver rooted at root: the baseline a user would get by extracting the
// bundle's blobs and running a stock registry.
func startFilesystemRegistry(root string, tlsConf *tls.Config) (string, func(), error) {
	logrus.SetOutput(io.Discard)
	cfg := &configuration.Configuration{
		Version: configuration.CurrentVersion,
		Storage: configuration.Storage{
			"filesystem":  configuration.Parameters{"rootdirectory": root},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
			"redirect":    configuration.Parameters{"disable": true},
		},
	}
	cfg.HTTP.Secret = "bench"
	cfg.Log.AccessLog.Disabled = true
	app := handlers.NewApp(context.Background(), cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: app}
	go srv.Serve(tls.NewListener(ln, tlsConf))
	var once sync.Once
	return ln.Addr().String(), func() { once.Do(func() { srv.Close(); app.Shutdown() }) }, nil
}

func duBytes(root string) int64 {
	var n int64
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
