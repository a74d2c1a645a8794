// Package generator turns a Kubefile and its build context into a bundle:
// the installer stub, the rootfs layers and the cluster image's metadata.
package generator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator/kubefile"
	"github.com/sealpack/sealpack/rootfs"
)

// Options are the inputs of one build.
type Options struct {
	Kubefile  string // path of the Kubefile
	Context   string // build context; defaults to the Kubefile's folder
	Output    string // path of the installer to write
	Arch      string // amd64 or arm64
	BuildArgs map[string]string
	Stub      []byte // the installer program for Arch
	SplitSize int64
	SignKey   ed25519.PrivateKey
	CreatedBy string
	// ModTime is stamped on every file of every layer, and Created is set from
	// it when non-zero: SOURCE_DATE_EPOCH, or the Unix epoch for reproducibility.
	ModTime time.Time
	// Warnings receives deprecation and other notes for the user; may be nil.
	Warnings io.Writer
}

// Result says what a build wrote.
type Result struct {
	Output string
	Index  bundle.Index
}

// Build reads the Kubefile, builds each layer and writes the bundle to
// opts.Output. On error nothing is left at the output path.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if opts.Context == "" {
		opts.Context = filepath.Dir(opts.Kubefile)
	}
	if opts.Warnings == nil {
		opts.Warnings = io.Discard
	}
	if fi, err := os.Stat(opts.Context); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("build context %s: not a directory", opts.Context)
	}
	res, err := resolveKubefile(opts)
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(opts.Warnings, "warning: %s\n", w)
	}
	for _, b := range res.Bases {
		if b.Ref != "scratch" {
			return nil, fmt.Errorf("%s: FROM %s: base cluster images are not supported yet; expected FROM scratch", b.Pos, b.Ref)
		}
	}

	if err := os.MkdirAll(filepath.Dir(opts.Output), 0o755); err != nil {
		return nil, fmt.Errorf("create output folder: %w", err)
	}
	created := ""
	if !opts.ModTime.IsZero() && opts.ModTime.Unix() != 0 {
		created = opts.ModTime.UTC().Format(time.RFC3339)
	}
	w, err := bundle.Create(opts.Output, strings.NewReader(string(opts.Stub)), bundle.WriterOptions{
		Platform:  bundle.Platform{OS: "linux", Architecture: opts.Arch},
		CreatedBy: opts.CreatedBy,
		Created:   created,
		SplitSize: opts.SplitSize,
		SignKey:   opts.SignKey,
	})
	if err != nil {
		return nil, err
	}
	b := &builder{opts: opts, w: w}
	if err := b.run(ctx, res); err != nil {
		w.Abort()
		return nil, err
	}
	w.SetConfig(configOf(res, b.appTypes))
	if err := w.Commit(); err != nil {
		return nil, err
	}
	bd, err := bundle.Open(opts.Output)
	if err != nil {
		return nil, fmt.Errorf("reopen %s: %w", opts.Output, err)
	}
	defer bd.Close()
	return &Result{Output: opts.Output, Index: *bd.Index}, nil
}

func resolveKubefile(opts Options) (*kubefile.Resolved, error) {
	f, err := os.Open(opts.Kubefile)
	if err != nil {
		return nil, fmt.Errorf("read Kubefile: %w", err)
	}
	defer f.Close()
	parsed, err := kubefile.Parse(opts.Kubefile, f)
	if err != nil {
		return nil, err
	}
	return parsed.Resolve(kubefile.ResolveOptions{BuildArgs: opts.BuildArgs, Arch: opts.Arch})
}

// builder runs the layer-making steps of a resolved Kubefile.
type builder struct {
	opts     Options
	w        *bundle.Writer
	appTypes map[string]string
}

func (b *builder) run(ctx context.Context, res *kubefile.Resolved) error {
	b.appTypes = map[string]string{}
	for _, st := range res.Steps {
		in := st.Instruction
		var (
			layer *rootfs.Layer
			err   error
		)
		switch in.Kind {
		case kubefile.KindCopy:
			layer, err = b.copyLayer(ctx, in)
		case kubefile.KindApp, kubefile.KindCNI, kubefile.KindCSI:
			layer, err = b.appLayer(ctx, in)
		case kubefile.KindRun:
			err = fmt.Errorf("RUN is not supported yet")
		default:
			continue // metadata only: gathered into the config
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", in.Pos, in.Kind, err)
		}
		if layer == nil || layer.Len() == 0 {
			continue
		}
		if err := b.addLayer(ctx, layer, in.String()); err != nil {
			return fmt.Errorf("%s: %s: %w", in.Pos, in.Kind, err)
		}
	}
	return nil
}

// addLayer streams the layer's tar through the bundle writer's compressor.
func (b *builder) addLayer(ctx context.Context, l *rootfs.Layer, createdBy string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(l.WriteTar(ctx, pw)) }()
	_, err := b.w.AddLayer(ctx, pr, createdBy)
	pr.CloseWithError(errors.New("layer abandoned"))
	return err
}

// contextPath resolves a source path inside the build context. As in
// Docker, a leading "/" means the context's root; ".." may not leave it.
func (b *builder) contextPath(src string) (string, error) {
	c := filepath.Clean(strings.TrimPrefix(filepath.FromSlash(src), string(filepath.Separator)))
	if c != "." && !filepath.IsLocal(c) {
		return "", fmt.Errorf("source %q is outside the build context", src)
	}
	return filepath.Join(b.opts.Context, c), nil
}

// inContext refuses a match that reaches outside the context through a
// symlinked directory on its way.
func (b *builder) inContext(src, p string) error {
	root, err := filepath.EvalSymlinks(b.opts.Context)
	if err != nil {
		return err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(root, dir); err != nil || !filepath.IsLocal(rel) && rel != "." {
		return fmt.Errorf("source %q resolves outside the build context (through a symlink)", src)
	}
	return nil
}

// sources expands a COPY/APP source (glob allowed) into existing paths.
func (b *builder) sources(src string) ([]string, error) {
	p, err := b.contextPath(src)
	if err != nil {
		return nil, err
	}
	matches, err := filepath.Glob(p)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", src, err)
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("source %q: no such file or directory in the build context %s", src, b.opts.Context)
	}
	for _, m := range matches {
		if err := b.inContext(src, m); err != nil {
			return nil, err
		}
	}
	return matches, nil
}

func (b *builder) copyLayer(ctx context.Context, in *kubefile.Instruction) (*rootfs.Layer, error) {
	args := in.Args
	srcs, dest := args[:len(args)-1], args[len(args)-1]
	var paths []string
	for _, s := range srcs {
		m, err := b.sources(s)
		if err != nil {
			return nil, err
		}
		paths = append(paths, m...)
	}
	destDir := strings.HasSuffix(dest, "/") || len(paths) > 1
	dest = strings.TrimPrefix(path.Clean("/"+dest), "/")
	if dest == "" {
		dest = "."
	}
	l := rootfs.NewLayer(b.modTime())
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		target := dest
		if !fi.IsDir() && (destDir || dest == ".") {
			target = strings.TrimPrefix(dest+"/"+filepath.Base(p), "./")
		}
		if err := l.AddTree(ctx, p, target); err != nil {
			return nil, err
		}
	}
	if mode, ok := in.Flag("chmod"); ok {
		if err := l.Chmod(mode); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// appLayer puts an app's files under application/apps/NAME/, where Sealer
// cluster images keep them, and records the app's type.
func (b *builder) appLayer(ctx context.Context, in *kubefile.Instruction) (*rootfs.Layer, error) {
	name := in.Args[0]
	l := rootfs.NewLayer(b.modTime())
	dest := "application/apps/" + name
	for _, raw := range in.Args[1:] {
		matches, err := b.sources(strings.TrimPrefix(raw, "local://"))
		if err != nil {
			return nil, err
		}
		for _, p := range matches {
			target := dest
			if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
				target = dest + "/" + filepath.Base(p)
			}
			if err := l.AddTree(ctx, p, target); err != nil {
				return nil, err
			}
		}
		t, err := detectAppType(matches)
		if err != nil {
			return nil, err
		}
		if prev, ok := b.appTypes[name]; ok && prev != t {
			return nil, fmt.Errorf("app %s mixes %s and %s sources", name, prev, t)
		}
		b.appTypes[name] = t
	}
	return l, nil
}

func (b *builder) modTime() time.Time {
	if b.opts.ModTime.IsZero() {
		return time.Unix(0, 0)
	}
	return b.opts.ModTime
}
