// Package registry serves a bundle's container images as an OCI
// distribution registry: distribution v3's HTTP handlers over a read-only
// storage driver that reads manifests and blobs in place from the installer
// file. Nothing is extracted; the disk it needs is the bundle itself.
package registry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	// The htpasswd access controller registers itself for writable mode.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"

	"github.com/sealpack/sealpack/bundle"
)

// Options configure a Server. The zero value is not usable: choose TLS
// (TLSCertFile/TLSKeyFile or TLSConfig) or set InsecureHTTP.
type Options struct {
	// Addr is the TCP address to listen on; default ":5000". Port 0 picks one.
	Addr string
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener

	// TLSCertFile and TLSKeyFile are a PEM server certificate (with chain)
	// and key, as tlsgen.CA.IssueServerCert writes them.
	TLSCertFile, TLSKeyFile string
	// TLSConfig, when set, is used as is (it must carry certificates).
	TLSConfig *tls.Config
	// InsecureHTTP serves plain HTTP. Only when asked for.
	InsecureHTTP bool

	// WritableDir accepts pushes into this directory, layered over the
	// bundle's read-only content. Empty: pushes are refused (405 UNSUPPORTED).
	WritableDir string
	// HtpasswdFile is an htpasswd file (bcrypt) whose users may push and
	// pull; required with WritableDir, optional otherwise.
	HtpasswdFile string

	// VerifyAtStart hashes every served blob before accepting connections.
	// Without it blobs are checked as they stream (and, for range requests,
	// hashed whole once on first use).
	VerifyAtStart bool

	// Logger receives distribution's log lines; default slog.Default().
	// Request chatter is at Debug, "not found" answers too.
	Logger *slog.Logger
}

// Server is a running registry over one bundle.
type Server struct {
	ln      net.Listener
	srv     *http.Server
	app     *handlers.App
	handler http.Handler
	driver  *bundleDriver
	log     *slog.Logger
	tls     bool
}

// Serve runs a registry over b until ctx is done.
func Serve(ctx context.Context, b *bundle.Bundle, opts Options) error {
	s, err := New(ctx, b, opts)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// New builds the storage layout from b's index, checks every manifest, and
// listens; call Serve to accept connections. b must stay open while the
// server runs.
//
// older are bundles whose images are served too, as during an upgrade: the
// new bundle's images for the upgraded hosts, the old ones' for the pods that
// still run them. A tag two bundles carry is b's, or the first older one's
// that has it; a manifest or blob is found in whichever bundle holds it.
func New(ctx context.Context, b *bundle.Bundle, opts Options, older ...*bundle.Bundle) (*Server, error) {
	all := append([]*bundle.Bundle{b}, older...)
	var images []imageSource
	tagged := map[string]bool{}
	for _, bb := range all {
		for _, im := range bb.Index.Images {
			src := imageSource{Repository: im.Repository, Tag: im.Tag, Digest: im.Digest}
			if im.Tag != "" {
				key := im.Repository + ":" + im.Tag
				if tagged[key] {
					src.Tag = "" // served by digest only: the newer bundle's tag wins
				}
				tagged[key] = true
			}
			images = append(images, src)
		}
	}
	modTime := time.Now()
	if st, err := os.Stat(b.Path); err == nil {
		modTime = st.ModTime()
	}
	if len(older) == 0 {
		return newServer(ctx, b, images, modTime, opts)
	}
	stores := make(multiStore, len(all))
	for i, bb := range all {
		stores[i] = bb
	}
	return newServer(ctx, stores, images, modTime, opts)
}

// multiStore finds a blob in the first of several bundles that holds it.
type multiStore []blobStore

func (m multiStore) Blob(digest string) (*io.SectionReader, bundle.Blob, error) {
	var first error
	for _, s := range m {
		r, b, err := s.Blob(digest)
		if err == nil {
			return r, b, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, bundle.Blob{}, first
}

func newServer(ctx context.Context, store blobStore, images []imageSource, modTime time.Time, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	tlsConf, err := serverTLS(opts)
	if err != nil {
		return nil, err
	}
	if opts.WritableDir != "" && opts.HtpasswdFile == "" {
		return nil, errors.New("writable mode needs an htpasswd file: anyone who reaches the port could push otherwise")
	}
	if opts.HtpasswdFile != "" {
		if _, err := os.Stat(opts.HtpasswdFile); err != nil {
			return nil, fmt.Errorf("htpasswd file: %w", err)
		}
	}
	bd, err := newBundleDriver(ctx, store, images, modTime, log)
	if err != nil {
		return nil, fmt.Errorf("build registry layout: %w", err)
	}
	if opts.VerifyAtStart {
		start := time.Now()
		if err := bd.verifyAll(ctx); err != nil {
			return nil, fmt.Errorf("verify blobs: %w", err)
		}
		log.Info("registry blobs verified", "took", time.Since(start).Round(time.Millisecond))
	}
	var drv storagedriver.StorageDriver = bd
	if opts.WritableDir != "" {
		dir, err := filepath.Abs(opts.WritableDir)
		if err != nil {
			return nil, fmt.Errorf("writable dir: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("writable dir: %w", err)
		}
		drv = &overlayDriver{upper: &dirDriver{root: dir}, lower: bd}
	}

	s := &Server{driver: bd, log: log, tls: tlsConf != nil}
	s.app, err = newApp(ctx, drv, opts, log)
	if err != nil {
		return nil, err
	}
	var h http.Handler = s.app
	if opts.WritableDir == "" && opts.HtpasswdFile == "" {
		h = blobFastPath(bd, h)
	}
	if opts.WritableDir == "" {
		h = refuseWrites(h)
	}
	s.handler = withLogger(h, log)

	ln := opts.Listener
	if ln == nil {
		addr := opts.Addr
		if addr == "" {
			addr = ":5000"
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			s.app.Shutdown()
			return nil, fmt.Errorf("registry listen: %w", err)
		}
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	return s, nil
}

// serverTLS loads the server certificate, or returns nil for plain HTTP.
func serverTLS(opts Options) (*tls.Config, error) {
	switch {
	case opts.TLSConfig != nil:
		return opts.TLSConfig, nil
	case opts.TLSCertFile != "" || opts.TLSKeyFile != "":
		cert, err := tls.LoadX509KeyPair(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
	case opts.InsecureHTTP:
		return nil, nil
	}
	return nil, errors.New("no TLS certificate: give one (or generate one), or ask for plain HTTP explicitly")
}

// driverParam is the storage parameter that carries the driver instance to
// the factory, so each App gets its own driver without package state.
const driverParam = "sealpack.driver"

// instanceFactory hands distribution the driver it was given in the
// parameters. Registering a factory is distribution's only way to supply a
// storage driver to handlers.NewApp; it is registered once per process and
// holds no state.
type instanceFactory struct{}

func (instanceFactory) Create(_ context.Context, params map[string]any) (storagedriver.StorageDriver, error) {
	d, ok := params[driverParam].(storagedriver.StorageDriver)
	if !ok {
		return nil, fmt.Errorf("storage parameter %q carries no driver", driverParam)
	}
	return d, nil
}

var registerFactory = sync.OnceFunc(func() { factory.Register(bundleDriverName, instanceFactory{}) })

// newApp configures distribution's handlers: our driver, read-only unless
// writable, no upload purger over the bundle, no redirects, no access log.
func newApp(ctx context.Context, drv storagedriver.StorageDriver, opts Options, log *slog.Logger) (app *handlers.App, err error) {
	registerFactory()
	installLogBridge()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("registry secret: %w", err)
	}
	writable := opts.WritableDir != ""
	cfg := &configuration.Configuration{
		Version: configuration.CurrentVersion,
		Storage: configuration.Storage{
			bundleDriverName: configuration.Parameters{driverParam: drv},
			"maintenance": configuration.Parameters{
				"uploadpurging": map[any]any{"enabled": false},
				"readonly":      map[any]any{"enabled": !writable},
			},
			"redirect": configuration.Parameters{"disable": true},
			"delete":   configuration.Parameters{"enabled": false},
		},
	}
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	cfg.Log.AccessLog.Disabled = true
	cfg.Catalog.MaxEntries = 10000
	// Pushed images may carry non-distributable (foreign) layers that name
	// where to fetch them; distribution refuses every such URL by default.
	cfg.Validation.Manifests.URLs.Allow = []string{"^https?://"}
	if opts.HtpasswdFile != "" {
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "sealpack", "path": opts.HtpasswdFile}}
	}
	// NewApp reports configuration errors by panicking.
	defer func() {
		if r := recover(); r != nil {
			app, err = nil, fmt.Errorf("configure registry: %v", r)
		}
	}()
	return handlers.NewApp(withLogContext(ctx, log), cfg), nil
}

// Addr is the address the server listens on, e.g. "[::]:5000".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the base URL of the registry, with the scheme it serves.
func (s *Server) URL() string {
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return scheme + "://" + s.ln.Addr().String()
}

// Handler is the registry's HTTP handler, for embedding in another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve accepts connections until ctx is done, then shuts down gracefully
// (in-flight pulls get up to 10 seconds).
func (s *Server) Serve(ctx context.Context) error {
	defer s.app.Shutdown()
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info("registry serving", "url", s.URL())
	select {
	case err := <-errc:
		return fmt.Errorf("registry: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
		return fmt.Errorf("registry shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// Close stops the server at once; a running Serve returns.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.ln.Close() // Serve may never have taken the listener
	return err
}
