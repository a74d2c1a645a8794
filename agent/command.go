package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/sealpack/sealpack/internal/shell"
)

// The install engine runs agent commands on hosts as shell command lines.
// Each command is a type here, beside the parser that reads it back: the
// engine fills the type and renders it with Line, so what it sends and what
// the agent accepts cannot drift apart.

// TokenEnv is the environment variable that gives serve-blobs and
// fetch-blob the transfer token: in the environment, it never shows in a
// process list.
const TokenEnv = "SEALPACK_BLOB_TOKEN"

// Command is one agent command with its arguments.
type Command interface {
	// Args are the arguments after "agent": the command's name, then its
	// flags, which Parse reads back into an equal Command.
	Args() []string
	run(ctx context.Context, env *Env) error
}

// Line is the shell command line that runs c with program (the installer
// or agent binary on the host); every word is quoted.
func Line(program string, c Command) string {
	return shell.Join(append([]string{program, "agent"}, c.Args()...)...)
}

// ReceiveBlob stores standard input as blob Digest under Dir, only if it
// hashes to Digest.
type ReceiveBlob struct {
	Digest string
	Dir    string
}

// FetchBlob fetches Blobs, in order, from a host running serve-blobs at
// From and stores each under Dir if it matches its digest (one already
// there is kept). With Bundle set that host serves a bundle file: each blob
// is the range [Offset, Offset+Size) of it, not a blob by digest.
type FetchBlob struct {
	From   string
	Bundle bool
	Blobs  []BlobRef
	Dir    string
}

// BlobRef is one blob FetchBlob asks for.
type BlobRef struct {
	Digest string
	Size   int64
	Offset int64 // in the source's bundle file (FetchBlob.Bundle)
}

func (b BlobRef) String() string {
	return b.Digest + "," + strconv.FormatInt(b.Size, 10) + "," + strconv.FormatInt(b.Offset, 10)
}

func parseBlobRef(s string) (BlobRef, error) {
	f := strings.Split(s, ",")
	if len(f) != 3 {
		return BlobRef{}, fmt.Errorf("blob %q: want DIGEST,SIZE,OFFSET", s)
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || size < 0 {
		return BlobRef{}, fmt.Errorf("blob %q: bad size", s)
	}
	off, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || off < 0 {
		return BlobRef{}, fmt.Errorf("blob %q: bad offset", s)
	}
	return BlobRef{Digest: f[0], Size: size, Offset: off}, nil
}

// ServeBlobs serves the blobs of Dir, or ranges of the bundle File, to the
// other hosts of an install, also while they arrive. It listens on Addr
// (port 0 picks one), writes the address to AddrFile when set, and exits
// after IdleTimeout without a request (zero: defaultIdleTimeout).
type ServeBlobs struct {
	Addr        string
	Dir         string
	File        string
	AddrFile    string
	IdleTimeout time.Duration
}

const defaultIdleTimeout = 30 * time.Minute

// Unpack builds the rootfs To from layers, in order, and swaps it into
// place atomically: from the Bundle file, or from the blob directory Blobs
// (each of Layers checked against its digest as it streams).
type Unpack struct {
	To     string
	Bundle string
	Blobs  string
	Layers []string
}

// APIProxy is the node-local, health-checked API endpoint of an HA cluster
// (package apiproxy): it listens on Listen and forwards each connection to
// a healthy one of Backends, or of the host:port lines of BackendsFile,
// which it reads again every Interval (zero: the proxy's default). With
// HealthPath (e.g. /readyz) a backend is healthy when an HTTPS GET of it
// answers 200, not merely when it accepts a connection. Cluster images run
// it as a service.
type APIProxy struct {
	Listen       string
	Backends     []string
	BackendsFile string
	Interval     time.Duration
	HealthPath   string
}

// Args renders the command for Parse.
func (c APIProxy) Args() []string {
	a := []string{"api-proxy", "--listen=" + c.Listen}
	for _, b := range c.Backends {
		a = append(a, "--backend="+b)
	}
	if c.BackendsFile != "" {
		a = append(a, "--backends-file="+c.BackendsFile)
	}
	if c.Interval != 0 {
		a = append(a, "--interval="+c.Interval.String())
	}
	if c.HealthPath != "" {
		a = append(a, "--health-path="+c.HealthPath)
	}
	return a
}

// Args renders the command for Parse.
func (c ReceiveBlob) Args() []string {
	return []string{"receive-blob", "--digest=" + c.Digest, "--dir=" + c.Dir}
}

// Args renders the command for Parse.
func (c FetchBlob) Args() []string {
	a := []string{"fetch-blob", "--from=" + c.From}
	if c.Bundle {
		a = append(a, "--bundle")
	}
	for _, b := range c.Blobs {
		a = append(a, "--blob="+b.String())
	}
	return append(a, "--dir="+c.Dir)
}

// Args renders the command for Parse.
func (c ServeBlobs) Args() []string {
	a := []string{"serve-blobs", "--addr=" + c.Addr}
	for _, f := range []struct{ name, value string }{{"dir", c.Dir}, {"file", c.File}, {"addr-file", c.AddrFile}} {
		if f.value != "" {
			a = append(a, "--"+f.name+"="+f.value)
		}
	}
	if c.IdleTimeout != 0 {
		a = append(a, "--idle-timeout="+c.IdleTimeout.String())
	}
	return a
}

// Args renders the command for Parse.
func (c Unpack) Args() []string {
	a := []string{"unpack", "--to=" + c.To}
	if c.Bundle != "" {
		a = append(a, "--bundle="+c.Bundle)
	}
	if c.Blobs != "" {
		a = append(a, "--blobs="+c.Blobs)
	}
	for _, l := range c.Layers {
		a = append(a, "--layer="+l)
	}
	return a
}

// Parse reads the arguments after "agent" into a Command. Usage and flag
// errors are written to stderr; --help returns pflag.ErrHelp.
func Parse(args []string, stderr io.Writer) (Command, error) {
	if len(args) == 0 {
		return nil, errors.New("expected receive-blob, fetch-blob, serve-blobs, unpack or api-proxy")
	}
	fs := pflag.NewFlagSet("agent "+args[0], pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var synopsis, summary string
	var result func() (Command, error)
	switch args[0] {
	case "receive-blob":
		var c ReceiveBlob
		synopsis, summary = "--digest D --dir DIR", "Store standard input as blob D under DIR if it matches D."
		fs.StringVar(&c.Digest, "digest", "", "expected digest")
		fs.StringVar(&c.Dir, "dir", "", "blob directory")
		result = func() (Command, error) { return c, nil }
	case "fetch-blob":
		var c FetchBlob
		var blobs []string
		synopsis, summary = "--from IP:PORT [--bundle] --blob DIGEST,SIZE,OFFSET... --dir DIR", "Fetch blobs from another host and store each if it matches its digest."
		fs.StringVar(&c.From, "from", "", "address of a host running serve-blobs")
		fs.BoolVar(&c.Bundle, "bundle", false, "the host serves a bundle file: fetch each blob from its offset in it")
		fs.StringArrayVar(&blobs, "blob", nil, "a blob: its digest, size and offset in the bundle (repeated, fetched in order)")
		fs.StringVar(&c.Dir, "dir", "", "blob directory")
		result = func() (Command, error) {
			for _, s := range blobs {
				b, err := parseBlobRef(s)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", fs.Name(), err)
				}
				c.Blobs = append(c.Blobs, b)
			}
			return c, nil
		}
	case "serve-blobs":
		var c ServeBlobs
		synopsis, summary = "--addr IP:PORT (--dir DIR | --file FILE)", "Serve blobs to other hosts of the install, also while they arrive."
		fs.StringVar(&c.Addr, "addr", "", "listen address; port 0 picks one")
		fs.StringVar(&c.Dir, "dir", "", "blob directory: serve /blobs/DIGEST?size=N")
		fs.StringVar(&c.File, "file", "", "a bundle file: serve /range/OFFSET/LENGTH of it")
		fs.StringVar(&c.AddrFile, "addr-file", "", "write the address listened on to this file")
		fs.DurationVar(&c.IdleTimeout, "idle-timeout", 0, fmt.Sprintf("exit after this long without a request (0: %v)", defaultIdleTimeout))
		result = func() (Command, error) { return c, nil }
	case "unpack":
		var c Unpack
		synopsis, summary = "--to DIR (--bundle FILE | --blobs DIR --layer D...)", "Unpack layers into DIR atomically."
		fs.StringVar(&c.To, "to", "", "rootfs directory")
		fs.StringVar(&c.Bundle, "bundle", "", "take the layers from this bundle file")
		fs.StringVar(&c.Blobs, "blobs", "", "take the layers from this blob directory")
		fs.StringArrayVar(&c.Layers, "layer", nil, "layer digest, in order (with --blobs)")
		result = func() (Command, error) { return c, nil }
	case "api-proxy":
		var c APIProxy
		synopsis, summary = "--listen IP:PORT (--backend HOST:PORT... | --backends-file FILE)", "Forward connections to whichever API server answers: the HA endpoint of a host."
		fs.StringVar(&c.Listen, "listen", "", "address to listen on, e.g. 127.0.0.1:6443")
		fs.StringArrayVar(&c.Backends, "backend", nil, "an API server, host:port (repeat)")
		fs.StringVar(&c.BackendsFile, "backends-file", "", "a file of host:port lines, read again while running; wins over --backend once it exists")
		fs.DurationVar(&c.Interval, "interval", 0, "time between health checks (0: 2s)")
		fs.StringVar(&c.HealthPath, "health-path", "", "check backends with an HTTPS GET of this path (e.g. /readyz), healthy on 200; empty: a TCP connect")
		result = func() (Command, error) { return c, nil }
	default:
		return nil, fmt.Errorf("unknown command %q", args[0])
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s %s\n\n%s\n\nFlags:\n%s", fs.Name(), synopsis, summary, fs.FlagUsages())
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%s: unexpected arguments: %v", fs.Name(), fs.Args())
	}
	return result()
}
