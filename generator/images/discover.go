package images

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.yaml.in/yaml/v3"
)

// Source is where an image reference was found.
type Source struct {
	File      string // slash path relative to the rootfs, or "--image"
	Line, Col int    // 1-based; zero when unknown
	How       string // e.g. "Deployment/web container nginx", "imageList", "chart web"
}

func (s Source) String() string {
	loc := s.File
	if s.Line > 0 {
		loc += fmt.Sprintf(":%d", s.Line)
		if s.Col > 0 {
			loc += fmt.Sprintf(":%d", s.Col)
		}
	}
	if s.How != "" {
		loc += " (" + s.How + ")"
	}
	return loc
}

// Found is one image and every place that asks for it.
type Found struct {
	Ref     Ref
	Sources []Source
	// Local is the image when gen --image read it from a local file:
	// nothing is fetched for it.
	Local *Pulled
}

// RenderFunc renders the Helm chart in dir (a path on disk) with its default
// values and returns the rendered manifests by template name. It lets the
// Helm SDK stay an optional dependency of discovery.
type RenderFunc func(ctx context.Context, dir string) (map[string]string, error)

// DiscoverOptions say where to look.
type DiscoverOptions struct {
	// Root is the merged rootfs of the cluster image on disk.
	Root string
	// Extra are images given on the command line (gen --image: a
	// reference, oci:DIR[:NAME], docker-archive:FILE[:REF], each maybe
	// renamed with =DEST; see ExtraImages). They come first: an image found
	// in the rootfs under a name they supply is theirs.
	Extra []string
	// Platform is the target, for local files' indexes; linux/amd64 when empty.
	Platform v1.Platform
	// Exclude drops images: a reference without tag or digest drops every
	// tag of that repository.
	Exclude []string
	// Insecure registries are reached over plain HTTP.
	Insecure map[string]bool
	// Render renders Helm charts; nil skips charts.
	Render RenderFunc
}

// SearchRoots are the top-level paths of a cluster image's rootfs where
// images are looked for, as Sealer lays them out: manifests, apps, charts,
// and imageList files. Nothing else of the rootfs matters to discovery.
func SearchRoots() []string { return []string{"manifests", "application", "charts", "imageList"} }

// Discover lists every container image the rootfs refers to, sorted by name.
// An invalid reference where an image must be is an error naming its place.
func Discover(ctx context.Context, opts DiscoverOptions) ([]Found, error) {
	d := &discoverer{opts: opts, byName: map[string]*Found{}}
	extras, err := ExtraImages(ctx, opts.Extra, opts.Platform, opts.Insecure)
	if err != nil {
		return nil, err
	}
	for _, e := range extras {
		if err := d.addExtra(e); err != nil {
			return nil, err
		}
	}
	for _, top := range SearchRoots() {
		if err := d.walk(ctx, top); err != nil {
			return nil, err
		}
	}
	d.pinnedFromLocal(extras)
	excluded, err := Excluder(opts.Exclude, opts.Insecure)
	if err != nil {
		return nil, err
	}
	out := make([]Found, 0, len(d.byName))
	for _, f := range d.byName {
		if !excluded(f.Ref) {
			out = append(out, *f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref.Name < out[j].Ref.Name })
	return out, nil
}

// Excluder reports whether a reference is dropped by --exclude-image
// patterns (without tag or digest: every tag of the repository).
func Excluder(patterns []string, insecure map[string]bool) (func(Ref) bool, error) {
	var excl []func(Ref) bool
	for _, s := range patterns {
		m, err := excludeMatcher(s, insecure)
		if err != nil {
			return nil, fmt.Errorf("--exclude-image: %w", err)
		}
		excl = append(excl, m)
	}
	return func(r Ref) bool {
		for _, m := range excl {
			if m(r) {
				return true
			}
		}
		return false
	}, nil
}

func excludeMatcher(s string, insecure map[string]bool) (func(Ref) bool, error) {
	r, err := ParseRef(s, insecure)
	if err != nil {
		return nil, err
	}
	last := s[strings.LastIndex(s, "/")+1:]
	if !strings.ContainsAny(last, ":@") {
		return func(x Ref) bool { return x.Registry == r.Registry && x.Repository == r.Repository }, nil
	}
	return func(x Ref) bool { return x.Name == r.Name }, nil
}

type discoverer struct {
	opts   DiscoverOptions
	byName map[string]*Found
}

// addExtra adds an --image value's image; two values may name the same
// image only when they supply the same thing.
func (d *discoverer) addExtra(e Extra) error {
	s := Source{File: "--image"}
	if e.Local != nil || e.Renamed() {
		s.How = e.Arg
	}
	if f, ok := d.byName[e.Ref.Name]; ok {
		prev := f.Sources[0].How
		if prev == "" {
			prev = f.Ref.Name
		}
		sameRegistry := f.Local == nil && e.Local == nil && f.Ref.Source().Name == e.Ref.Source().Name
		sameImage := f.Local != nil && e.Local != nil && f.Local.Digest == e.Local.Digest
		if !sameRegistry && !sameImage {
			return fmt.Errorf("--image %s: %s is also given by --image %s", e.Arg, e.Ref.Name, prev)
		}
	}
	d.add(e.Ref, s)
	if e.Local != nil {
		d.byName[e.Ref.Name].Local = e.Local
	}
	return nil
}

// pinnedFromLocal supplies a reference pinned by digest (as charts pin
// theirs: name:tag@sha256:...) from a local image of the same repository
// with that digest, its manifest's or its index's: the registry is not
// asked for what is on disk.
func (d *discoverer) pinnedFromLocal(extras []Extra) {
	for _, f := range d.byName {
		if f.Local != nil || f.Ref.Digest == "" || f.Ref.Source().Name != f.Ref.Name {
			continue
		}
		for _, e := range extras {
			l := e.Local
			if l != nil && e.Ref.Registry == f.Ref.Registry && e.Ref.Repository == f.Ref.Repository &&
				(l.Digest == f.Ref.Digest || l.Index == f.Ref.Digest) {
				p := *l
				p.Ref = f.Ref
				f.Local = &p
				f.Sources = append(f.Sources, Source{File: "--image", How: e.Arg})
				break
			}
		}
	}
}

func (d *discoverer) add(r Ref, s Source) {
	f, ok := d.byName[r.Name]
	if !ok {
		f = &Found{Ref: r}
		d.byName[r.Name] = f
	}
	f.Sources = append(f.Sources, s)
}

// walk visits a top-level path of the rootfs: YAML files are manifests, a
// folder with Chart.yaml is a Helm chart, a file named imageList is a list.
func (d *discoverer) walk(ctx context.Context, top string) error {
	start := filepath.Join(d.opts.Root, top)
	if _, err := os.Lstat(start); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(d.opts.Root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(p, "Chart.yaml")); err == nil {
				return d.chart(ctx, p, rel)
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil // symlinks may point outside the rootfs
		}
		switch {
		case e.Name() == "imageList":
			return d.imageList(p, rel)
		case isYAML(e.Name()):
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return d.manifests(rel, b, "")
		}
		return nil
	})
}

func isYAML(n string) bool {
	switch strings.ToLower(path.Ext(n)) {
	case ".yaml", ".yml":
		return true
	}
	return false
}

func (d *discoverer) chart(ctx context.Context, dir, rel string) error {
	if d.opts.Render == nil {
		return filepath.SkipDir
	}
	out, err := d.opts.Render(ctx, dir)
	if err != nil {
		return fmt.Errorf("%s: render Helm chart: %w", rel, err)
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// Template names start with the chart's name; show them under the
		// chart's folder in the rootfs so users can find them.
		_, tmpl, _ := strings.Cut(n, "/")
		if err := d.manifests(rel+"/"+tmpl, []byte(out[n]), "rendered chart"); err != nil {
			return err
		}
	}
	return filepath.SkipDir
}

// imageList reads one reference a line; "#" starts a comment.
func (d *discoverer) imageList(p, rel string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		s := strings.TrimSpace(line)
		if s == "" {
			continue
		}
		col := strings.Index(sc.Text(), s) + 1
		r, err := ParseRef(s, d.opts.Insecure)
		if err != nil {
			return fmt.Errorf("%s:%d:%d: %w", rel, n, col, err)
		}
		d.add(r, Source{File: rel, Line: n, Col: col, How: "imageList"})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// podSpecPaths says where each workload kind keeps its pod spec.
var podSpecPaths = map[string][]string{
	"Pod":                   {"spec"},
	"PodTemplate":           {"template", "spec"},
	"Deployment":            {"spec", "template", "spec"},
	"StatefulSet":           {"spec", "template", "spec"},
	"DaemonSet":             {"spec", "template", "spec"},
	"ReplicaSet":            {"spec", "template", "spec"},
	"ReplicationController": {"spec", "template", "spec"},
	"Job":                   {"spec", "template", "spec"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "spec"},
}

// manifests scans every YAML document of one file.
func (d *discoverer) manifests(rel string, b []byte, how string) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %v", rel, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		if err := d.object(rel, doc.Content[0], how); err != nil {
			return err
		}
	}
}

func (d *discoverer) object(rel string, n *yaml.Node, how string) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	kind := scalar(get(n, "kind"))
	if kind == "List" || strings.HasSuffix(kind, "List") {
		if items := get(n, "items"); items != nil && items.Kind == yaml.SequenceNode {
			for _, it := range items.Content {
				if err := d.object(rel, it, how); err != nil {
					return err
				}
			}
			return nil
		}
	}
	what := kind
	if nm := scalar(get(get(n, "metadata"), "name")); nm != "" {
		what += "/" + nm
	}
	if how != "" {
		what = how + " " + what
	}
	if p, ok := podSpecPaths[kind]; ok {
		spec := n
		for _, k := range p {
			spec = get(spec, k)
		}
		return d.podSpec(rel, spec, what)
	}
	d.looseImages(rel, n, what)
	return nil
}

// podSpec reads the images of a workload's containers: each must be valid.
func (d *discoverer) podSpec(rel string, spec *yaml.Node, what string) error {
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		cs := get(spec, list)
		if cs == nil || cs.Kind != yaml.SequenceNode {
			continue
		}
		for _, c := range cs.Content {
			img := get(c, "image")
			cname := scalar(get(c, "name"))
			if img == nil {
				continue // ephemeral containers and templates may leave it to defaults
			}
			r, err := ParseRef(img.Value, d.opts.Insecure)
			if err != nil {
				return fmt.Errorf("%s:%d:%d: %s %s %q: %w", rel, img.Line, img.Column, what, strings.TrimSuffix(list, "s"), cname, err)
			}
			d.add(r, Source{File: rel, Line: img.Line, Col: img.Column, How: what + " " + strings.TrimSuffix(list, "s") + " " + cname})
		}
	}
	return nil
}

// looseImages takes every "image: REF" of other kinds (operators' custom
// resources, for instance) when REF is a valid reference: such fields are not
// always images, so junk there is skipped rather than an error.
func (d *discoverer) looseImages(rel string, n *yaml.Node, what string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "image" && v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
				if r, err := ParseRef(v.Value, d.opts.Insecure); err == nil && strings.ContainsAny(v.Value, "/:") {
					d.add(r, Source{File: rel, Line: v.Line, Col: v.Column, How: what})
				}
				continue
			}
			d.looseImages(rel, v, what)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			d.looseImages(rel, c, what)
		}
	}
}

func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}
