// Package generator turns a Kubefile and its build context into a bundle:
// the installer stub, the rootfs layers and the cluster image's metadata.
package generator

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator/images"
	"github.com/sealpack/sealpack/generator/kubefile"
	"github.com/sealpack/sealpack/generator/store"
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
	// Agent is the small program nodes get instead of Stub (cmd/agent);
	// without it nodes get the whole stub.
	Agent     []byte
	SplitSize int64
	CreatedBy string
	// ModTime is stamped on every file of every layer, and Created is set from
	// it when non-zero: SOURCE_DATE_EPOCH, or the Unix epoch for reproducibility.
	ModTime time.Time
	// Warnings receives deprecation and other notes for the user; may be nil.
	Warnings io.Writer

	// Images are added to those discovered (gen --image: a reference,
	// oci:DIR[:NAME] or docker-archive:FILE[:REF], each maybe renamed with
	// =DEST; see images.ExtraImages); ExcludeImages are dropped (a
	// reference without tag drops every tag).
	Images, ExcludeImages []string
	// Insecure registries are reached over plain HTTP (loopback always is).
	Insecure []string
	// Offline fetches nothing: tags resolve through the cache's records.
	Offline bool
	// CacheDir holds fetched blobs; images.DefaultCacheDir when empty.
	CacheDir string
	// StoreDir is the local cluster image store (gen build -t) that FROM
	// looks in first; store.DefaultDir when empty.
	StoreDir string
	// Jobs bounds concurrent registry requests (8 when zero).
	Jobs int
	// Transport carries registry requests; http.DefaultTransport when nil.
	Transport http.RoundTripper
	// Progress receives a line per image fetched; may be nil.
	Progress io.Writer
	// ProgressBars draws a bar per image on Progress while downloading
	// (Progress is a terminal).
	ProgressBars bool
	// MergeConflict is "error" to refuse paths given by two FROM images;
	// otherwise they are warnings.
	MergeConflict string
	// RunOutput receives what RUN commands print, as they print it; may be nil.
	RunOutput io.Writer
	// Getenv reads the environment (XDG dirs, PATH for RUN); os.Getenv when nil.
	Getenv func(string) string
}

func (o *Options) defaults() error {
	if o.Context == "" {
		o.Context = filepath.Dir(o.Kubefile)
	}
	if o.Warnings == nil {
		o.Warnings = io.Discard
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.CacheDir == "" {
		o.CacheDir = images.DefaultCacheDir(o.Getenv)
	}
	if o.StoreDir == "" {
		o.StoreDir = store.DefaultDir(o.Getenv)
	}
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	if fi, err := os.Stat(o.Context); err != nil || !fi.IsDir() {
		return fmt.Errorf("build context %s: not a directory", o.Context)
	}
	return nil
}

func (o *Options) insecure() map[string]bool {
	m := map[string]bool{}
	for _, h := range o.Insecure {
		m[h] = true
	}
	return m
}

// Result says what a build wrote.
type Result struct {
	Output string
	Index  bundle.Index
}

// Build reads the Kubefile, builds each layer and writes the bundle to
// opts.Output. On error nothing is left at the output path.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	res, bases, err := prepare(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(opts.Output), 0o755); err != nil {
		return nil, fmt.Errorf("create output folder: %w", err)
	}
	created := ""
	if !opts.ModTime.IsZero() && opts.ModTime.Unix() != 0 {
		created = opts.ModTime.UTC().Format(time.RFC3339)
	}
	w, err := bundle.Create(opts.Output, bytes.NewReader(opts.Stub), bundle.WriterOptions{
		Platform:  bundle.Platform{OS: "linux", Architecture: opts.Arch},
		CreatedBy: opts.CreatedBy,
		Created:   created,
		SplitSize: opts.SplitSize,
	})
	if err != nil {
		return nil, err
	}
	if len(opts.Agent) > 0 {
		if err := w.AddAgent(ctx, bytes.NewReader(opts.Agent)); err != nil {
			w.Abort()
			return nil, err
		}
	}
	if err := buildInto(ctx, opts, res, bases, w); err != nil {
		w.Abort()
		return nil, err
	}
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

// prepare reads the Kubefile and opens its FROM images: their apps are
// needed to resolve the rest (LAUNCH and APPCMDS may name them).
func prepare(ctx context.Context, opts Options) (*kubefile.Resolved, []*base, error) {
	f, err := os.Open(opts.Kubefile)
	if err != nil {
		return nil, nil, fmt.Errorf("read Kubefile: %w", err)
	}
	parsed, err := kubefile.Parse(opts.Kubefile, f)
	f.Close()
	if err != nil {
		return nil, nil, err
	}
	// Resolve up to the last FROM to learn the base references, with
	// their ARGs expanded.
	last := -1
	for i, in := range parsed.Instructions {
		if in.Kind == kubefile.KindFrom {
			last = i
		}
	}
	head := &kubefile.File{Name: parsed.Name, Instructions: parsed.Instructions[:last+1]}
	hres, err := head.Resolve(kubefile.ResolveOptions{BuildArgs: opts.BuildArgs, Arch: opts.Arch})
	if err != nil {
		return nil, nil, err
	}
	var (
		bases    []*base
		baseApps []string
	)
	for _, b := range hres.Bases {
		if b.Ref == "scratch" {
			continue
		}
		bs, err := opts.openBase(ctx, b)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: FROM %s: %w", b.Pos, b.Ref, err)
		}
		bases = append(bases, bs)
		for _, a := range append(append(bs.config.Apps, bs.config.CNI...), bs.config.CSI...) {
			baseApps = append(baseApps, a.Name)
		}
	}
	// The head's unused build args are no news: resolve the whole file.
	res, err := parsed.Resolve(kubefile.ResolveOptions{BuildArgs: opts.BuildArgs, Arch: opts.Arch, BaseApps: baseApps})
	if err != nil {
		return nil, nil, err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(opts.Warnings, "warning: %s\n", w)
	}
	return res, bases, nil
}

// buildInto runs the steps into w, then discovers, fetches and adds the
// container images.
func buildInto(ctx context.Context, opts Options, res *kubefile.Resolved, bases []*base, w *bundle.Writer) error {
	b, err := newBuilder(opts, w)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.runAll(ctx, res, bases); err != nil {
		return err
	}
	found, err := b.discover(ctx)
	if err != nil {
		return err
	}
	// Images read from local files (--image oci:DIR) come from them,
	// those the FROM images carry from the store (a later base's copy of a
	// name wins); only the others are fetched.
	carried := map[string]images.Pulled{}
	for _, bs := range bases {
		for _, p := range bs.carried {
			carried[p.Ref.Name] = p
		}
	}
	excluded, err := images.Excluder(opts.ExcludeImages, opts.insecure())
	if err != nil {
		return err
	}
	var refs []images.Ref
	var local []images.Pulled
	for _, f := range found {
		switch _, ok := carried[f.Ref.Name]; {
		case f.Local != nil:
			local = append(local, *f.Local)
			delete(carried, f.Ref.Name)
		case !ok:
			refs = append(refs, f.Ref)
		}
	}
	for _, p := range carried {
		if !excluded(p.Ref) {
			local = append(local, p)
		}
	}
	sort.Slice(local, func(i, j int) bool { return local[i].Ref.Name < local[j].Ref.Name })
	// Carried images go in name order among the fetched ones, which are
	// written to the bundle while later ones still download.
	cache := &images.Cache{Dir: opts.CacheDir}
	addLocal := func(before string) error {
		for len(local) > 0 && (before == "" || local[0].Ref.Name < before) {
			if err := images.AddImage(ctx, w, cache, local[0]); err != nil {
				return err
			}
			local = local[1:]
		}
		return nil
	}
	_, err = images.Stream(ctx, refs, images.FetchOptions{
		Cache: cache, Platform: v1.Platform{OS: "linux", Architecture: opts.Arch},
		Offline: opts.Offline, Jobs: opts.Jobs, Transport: opts.Transport, Progress: opts.Progress,
		Terminal: opts.ProgressBars,
	}, func(p images.Pulled) error {
		if err := addLocal(p.Ref.Name); err != nil {
			return err
		}
		return images.AddImage(ctx, w, cache, p)
	})
	if err != nil {
		return err
	}
	if err := addLocal(""); err != nil {
		return err
	}
	w.SetConfig(b.config(res, bases))
	return nil
}

// runAll merges the bases, then runs the Kubefile's steps.
func (b *builder) runAll(ctx context.Context, res *kubefile.Resolved, bases []*base) error {
	for _, st := range res.Steps {
		if st.Instruction.Kind == kubefile.KindRun {
			b.runsLeft++
		}
	}
	conflicts, err := b.addBases(ctx, bases)
	if err != nil {
		return err
	}
	if len(conflicts) > 0 {
		lines := make([]string, len(conflicts))
		for i, c := range conflicts {
			lines[i] = "  " + c.String()
		}
		msg := fmt.Sprintf("merging FROM images: %d conflicting paths (later images win):\n%s", len(conflicts), strings.Join(lines, "\n"))
		if b.opts.MergeConflict == "error" {
			return errors.New(msg)
		}
		fmt.Fprintf(b.opts.Warnings, "warning: %s\n", msg)
	}
	return b.run(ctx, res)
}

// config is the bases' metadata merged in order, then the Kubefile's.
func (b *builder) config(res *kubefile.Resolved, bases []*base) bundle.Config {
	var c bundle.Config
	for _, bs := range bases {
		c = mergeConfig(c, bs.config)
	}
	return mergeConfig(c, configOf(res, b.appTypes))
}

// Discover builds the Kubefile's rootfs in a temporary folder, without
// writing a bundle or fetching anything, and lists the images it needs.
func Discover(ctx context.Context, opts Options) ([]images.Found, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	res, bases, err := prepare(ctx, opts)
	if err != nil {
		return nil, err
	}
	b, err := newBuilder(opts, nil)
	if err != nil {
		return nil, err
	}
	defer b.close()
	if err := b.runAll(ctx, res, bases); err != nil {
		return nil, err
	}
	return b.discover(ctx)
}

func (b *builder) discover(ctx context.Context) ([]images.Found, error) {
	return images.Discover(ctx, images.DiscoverOptions{
		Root: b.work, Extra: b.opts.Images, Exclude: b.opts.ExcludeImages,
		Insecure: b.opts.insecure(), Render: renderChart,
		Platform: v1.Platform{OS: "linux", Architecture: b.opts.Arch},
	})
}

// builder runs the layer-making steps of a resolved Kubefile. Every layer
// is also applied to work, the rootfs so far, which RUN runs in and image
// discovery reads.
type builder struct {
	opts     Options
	w        *bundle.Writer // nil when only discovering
	appTypes map[string]string
	work     string
	root     *os.Root
	// runsLeft counts the RUN steps still ahead. With none left, layers
	// are applied to the working rootfs only where discovery looks: a
	// large rootfs is not written to disk a second time for nothing.
	runsLeft int
}

func newBuilder(opts Options, w *bundle.Writer) (*builder, error) {
	work, err := os.MkdirTemp("", "sealpack-rootfs-")
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(work)
	if err != nil {
		os.RemoveAll(work)
		return nil, err
	}
	return &builder{opts: opts, w: w, work: work, root: root, appTypes: map[string]string{}}, nil
}

func (b *builder) close() {
	b.root.Close()
	removeAll(b.work)
}

// removeAll also removes what a layer or RUN made read-only.
func removeAll(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

func (b *builder) run(ctx context.Context, res *kubefile.Resolved) error {
	for _, st := range res.Steps {
		in := st.Instruction
		if in.Kind == kubefile.KindRun {
			b.runsLeft--
		}
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
			// The working rootfs already holds RUN's changes: store only.
			layer, err = b.runStep(ctx, st)
			if err == nil && layer.Len() > 0 && b.w != nil {
				err = b.storeLayer(ctx, layer, in.String())
			}
			if err != nil {
				return fmt.Errorf("%s: RUN: %w", in.Pos, err)
			}
			continue
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
	err := b.addTar(ctx, pr, createdBy)
	pr.CloseWithError(errors.New("layer abandoned"))
	return err
}

// storeLayer writes a layer to the bundle without applying it.
func (b *builder) storeLayer(ctx context.Context, l *rootfs.Layer, createdBy string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(l.WriteTar(ctx, pw)) }()
	_, err := b.w.AddLayer(ctx, pr, createdBy)
	pr.CloseWithError(errors.New("layer abandoned"))
	return err
}

// addTar stores one uncompressed layer tar in the bundle and applies it to
// the working rootfs in the same pass.
func (b *builder) addTar(ctx context.Context, r io.Reader, createdBy string) error {
	apply := func(r io.Reader) error {
		if b.runsLeft > 0 {
			return rootfs.Apply(ctx, b.root, createdBy, r)
		}
		return applyDiscoverable(ctx, b.root, createdBy, r)
	}
	if b.w == nil {
		return apply(r)
	}
	ar, aw := io.Pipe()
	applied := make(chan error, 1)
	go func() {
		err := apply(ar)
		if err == nil {
			_, err = io.Copy(io.Discard, ar) // tar padding after the last entry
		}
		ar.CloseWithError(err)
		applied <- err
	}()
	_, err := b.w.AddLayer(ctx, io.TeeReader(r, aw), createdBy)
	aw.CloseWithError(err)
	if aerr := <-applied; err == nil && aerr != nil {
		err = fmt.Errorf("apply to the working rootfs: %w", aerr)
	}
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
	} else {
		// A build machine's 0644 would make every copied file readable by
		// every account on every host: keep the owner and group bits only.
		l.Restrict(0o007)
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

// applyDiscoverable applies only the entries of a layer under the paths
// image discovery reads (images.SearchRoots), whiteouts included.
func applyDiscoverable(ctx context.Context, root *os.Root, createdBy string, r io.Reader) error {
	pr, pw := io.Pipe()
	go func() {
		tr, tw := tar.NewReader(r), tar.NewWriter(pw)
		err := func() error {
			for {
				h, err := tr.Next()
				if err == io.EOF {
					return tw.Close()
				}
				if err != nil {
					return err
				}
				if !discoverable(h.Name) {
					continue
				}
				if err := tw.WriteHeader(h); err != nil {
					return err
				}
				if _, err := io.Copy(tw, tr); err != nil {
					return err
				}
			}
		}()
		pw.CloseWithError(err)
	}()
	err := rootfs.Apply(ctx, root, createdBy, pr)
	pr.CloseWithError(errors.New("layer abandoned"))
	return err
}

func discoverable(name string) bool {
	top, _, _ := strings.Cut(strings.TrimPrefix(path.Clean("/"+name), "/"), "/")
	top = strings.TrimPrefix(top, ".wh.")
	return top == ".wh..opq" || slices.Contains(images.SearchRoots(), top)
}
