package stub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/registry"
	"github.com/sealpack/sealpack/registry/tlsgen"
)

const registryDefaultTLSDir = "registry-tls"

// runRegistry is `registry serve`: the bundle's images over the OCI
// distribution API, read in place. Built to run as a service too: the
// install engine starts it on the first master with --bundle pointing at the
// copied installer, --tls-generate at a directory that survives restarts.
func runRegistry(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] != "serve" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(env.Stdout, "Usage: %s registry serve [flags]\n\nRun '%s registry serve --help' for its flags.\n", progName(), progName())
			return nil
		}
		return usageError{errors.New("usage: registry serve [flags]")}
	}
	fs := flags(env, "registry serve", "[flags]",
		"Serve the bundle's container images as an OCI registry, read in place from the installer file.\n"+
			"TLS by default: a CA and server certificate are generated into --tls-generate DIR (the CA is\n"+
			"reused on restart; give hosts DIR/ca.crt), or pass --tls-cert/--tls-key.")
	addr := fs.String("addr", ":5000", "listen address HOST:PORT")
	bundlePaths := fs.StringArray("bundle", nil, "serve this bundle file instead of the installer's own payload; again: also serve an older bundle's images (an upgrade's, for the pods that still run them), the first bundle's tags winning")
	tlsDir := fs.String("tls-generate", "", "create (or reuse) a CA and a server certificate in DIR (default ./"+registryDefaultTLSDir+")")
	sans := fs.StringArray("tls-san", nil, "extra DNS name or IP for the generated certificate (repeatable; host name, localhost and interface IPs are always included)")
	certFile := fs.String("tls-cert", "", "server certificate (PEM, with chain)")
	keyFile := fs.String("tls-key", "", "server key (PEM)")
	insecure := fs.Bool("insecure-http", false, "serve plain HTTP (no TLS)")
	writable := fs.String("writable", "", "accept pushes into DIR, layered over the bundle (needs --htpasswd)")
	htpasswd := fs.String("htpasswd", "", "htpasswd file (bcrypt) for basic auth")
	verifyAtStart := fs.Bool("verify-at-start", false, "hash every blob before serving (otherwise blobs are checked as they stream)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error (info adds client errors and a line per blob served: digest, bytes, client; debug every request)")
	if err := parse(fs, args[1:], 0); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))

	opts := registry.Options{
		Addr:          *addr,
		WritableDir:   *writable,
		HtpasswdFile:  *htpasswd,
		VerifyAtStart: *verifyAtStart,
		Logger:        log,
	}
	switch {
	case *insecure && (*certFile != "" || *keyFile != "" || *tlsDir != ""):
		return usageError{errors.New("--insecure-http excludes the TLS flags")}
	case (*certFile == "") != (*keyFile == ""):
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	case *certFile != "" && *tlsDir != "":
		return usageError{errors.New("give either --tls-cert/--tls-key or --tls-generate")}
	case *insecure:
		opts.InsecureHTTP = true
	case *certFile != "":
		opts.TLSCertFile, opts.TLSKeyFile = *certFile, *keyFile
	default:
		dir := *tlsDir
		if dir == "" {
			dir = registryDefaultTLSDir
		}
		ca, err := tlsgen.GenerateCA(dir)
		if err != nil {
			return err
		}
		files, err := ca.IssueServerCert(dir, append(tlsgen.DefaultSANs(), *sans...))
		if err != nil {
			return err
		}
		opts.TLSCertFile, opts.TLSKeyFile = files.CertFile, files.KeyFile
		abs, _ := filepath.Abs(ca.CertFile)
		fmt.Fprintf(env.Stderr, "registry CA: %s (give it to hosts that pull from this registry)\n", abs)
	}

	open := env.Open
	if len(*bundlePaths) > 0 {
		open = func() (*bundle.Bundle, error) { return bundle.Open((*bundlePaths)[0]) }
	}
	b, err := open()
	if err != nil {
		return err
	}
	defer b.Close()
	var older []*bundle.Bundle
	images := len(b.Index.Images)
	for _, p := range *bundlePaths {
		if p == (*bundlePaths)[0] {
			continue // b
		}
		ob, err := bundle.Open(p)
		if err != nil {
			return err
		}
		defer ob.Close()
		older = append(older, ob)
		images += len(ob.Index.Images)
	}
	srv, err := registry.New(ctx, b, opts, older...)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "registry: serving %d image(s) from %d bundle(s) at %s\n", images, 1+len(older), srv.URL())
	return srv.Serve(ctx)
}
