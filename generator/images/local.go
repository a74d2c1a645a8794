package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sealpack/sealpack/internal/ctxio"
	"github.com/sealpack/sealpack/internal/verify"
)

// Annotations naming the images of an OCI layout's index.json. containerd
// (ctr export, nerdctl save, docker save since 25) writes the full name in
// its own and only the tag in the OCI one.
const (
	RefNameAnnotation        = "org.opencontainers.image.ref.name"
	containerdNameAnnotation = "io.containerd.image.name"
)

// Local is an image source on disk: an OCI image layout (oci:DIR[:NAME])
// or a `docker save` tarball (docker-archive:FILE[:NAME]).
type Local struct {
	Kind string // "oci" or "docker-archive"
	Path string // the layout's folder or the tarball
	Name string // the image to take; "" for every named image
}

func (l Local) String() string {
	s := l.Kind + ":" + l.Path
	if l.Name != "" {
		s += ":" + l.Name
	}
	return s
}

// ParseLocal reads oci:DIR[:NAME] and docker-archive:FILE[:NAME]; ok is
// false for anything else. The path ends at the first colon, as skopeo
// reads these, unless the whole rest names an existing file. A relative
// path is read from dir ("" for the working directory).
func ParseLocal(s, dir string) (l Local, ok bool) {
	for _, kind := range []string{"oci", "docker-archive"} {
		rest, found := strings.CutPrefix(s, kind+":")
		if !found {
			continue
		}
		l = Local{Kind: kind, Path: rest}
		if p, n, cut := strings.Cut(rest, ":"); cut {
			if _, err := os.Stat(inDir(dir, rest)); err != nil {
				l.Path, l.Name = p, n
			}
		}
		l.Path = inDir(dir, l.Path)
		return l, true
	}
	return Local{}, false
}

func inDir(dir, p string) string {
	if dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Image opens the one image the source names (or holds), for platform:
// FROM oci:DIR[:NAME] and docker-archive:FILE[:NAME].
func (l Local) Image(ctx context.Context, platform v1.Platform) (v1.Image, error) {
	ims, err := l.open(ctx, platform, true)
	if err != nil {
		return nil, err
	}
	return ims[0].img, nil
}

// localImage is one image of a local source, for the target platform.
type localImage struct {
	name  string // its name in the source (ref.name or RepoTag); "" if none
	ref   *Ref   // name as a reference; nil without one or for a bare tag
	img   v1.Image
	index string // the index it was chosen from, if any
	src   *localSource
}

// open reads the images the source names: with one, exactly one (the
// only image when no name is given, named or not); otherwise every image
// that has a name when none is given. Manifests, indexes and configs are
// read and digest-checked; a layout's layers are checked as they are read,
// a tarball's before they are copied (and read once here, since their
// digests are computed: a tarball records none).
func (l Local) open(ctx context.Context, platform v1.Platform, one bool) ([]localImage, error) {
	if platform.OS == "" {
		platform = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	if l.Kind == "docker-archive" {
		return l.openArchive(ctx, platform, one)
	}
	return l.openLayout(ctx, platform, one)
}

// pulled is the image as a Pulled named ref, read from its source.
func (li localImage) pulled(ref Ref) (Pulled, error) {
	raw, err := li.img.RawManifest()
	if err != nil {
		return Pulled{}, err
	}
	m, err := li.img.Manifest()
	if err != nil {
		return Pulled{}, err
	}
	mt, err := li.img.MediaType()
	if err != nil {
		return Pulled{}, err
	}
	p := Pulled{Ref: ref, Digest: sha256Digest(raw), MediaType: string(mt), Index: li.index, Source: li.src,
		Blobs: append([]v1.Descriptor{m.Config}, m.Layers...), Size: int64(len(raw))}
	for _, d := range p.Blobs {
		p.Size += d.Size
	}
	return p, nil
}

// bareTag says whether an image's name is only a tag ("1.27", "latest"),
// as the OCI ref.name annotation often is: it names no repository.
func bareTag(s string) bool { return !strings.ContainsAny(s, "/:@") }

// ---- OCI image layouts ----

// layoutDir reads the blobs of an OCI image layout, checking each digest.
type layoutDir struct{ dir string }

func (l layoutDir) blobPath(h v1.Hash) string {
	return filepath.Join(l.dir, "blobs", h.Algorithm, h.Hex)
}

// maxSmallBlob bounds the manifests, indexes and configs read into memory.
const maxSmallBlob = 64 << 20

// read reads a manifest, index or config and checks its digest and size.
func (l layoutDir) read(d v1.Descriptor) ([]byte, error) {
	if d.Digest.Algorithm != "sha256" {
		return nil, fmt.Errorf("blob %s: unsupported digest algorithm", d.Digest)
	}
	p := l.blobPath(d.Digest)
	if d.Size > maxSmallBlob {
		return nil, fmt.Errorf("%s: %d bytes is too large for a manifest or config", p, d.Size)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if got := sha256Digest(b); got != d.Digest.String() {
		return nil, fmt.Errorf("blob %s is corrupt: %s has content %s", d.Digest, p, got)
	}
	if d.Size > 0 && int64(len(b)) != d.Size {
		return nil, fmt.Errorf("%s: blob %s has %d bytes, the descriptor says %d", p, d.Digest, len(b), d.Size)
	}
	return b, nil
}

// layoutEntry is a group of index.json entries under one name (several
// when a tool lists each platform's manifest at the top level).
type layoutEntry struct {
	name  string // ref.name annotation, "" for none
	ref   *Ref
	descs []v1.Descriptor
}

// entryRef is the reference an index.json entry names: its ref.name
// when that is a full reference, else containerd's name annotation.
func entryRef(d v1.Descriptor) *Ref {
	n := d.Annotations[RefNameAnnotation]
	if n == "" || bareTag(n) {
		n = d.Annotations[containerdNameAnnotation]
	}
	if n == "" {
		return nil
	}
	r, err := ParseRef(n, nil)
	if err != nil {
		return nil
	}
	return &r
}

// matches says whether the entry is the one NAME asks for: the same
// ref.name, the same reference once normalised, or (NAME a bare tag) a
// full name with that tag.
func (e *layoutEntry) matches(want string) bool {
	if e.name == want || (bareTag(want) && strings.HasSuffix(e.name, ":"+want)) {
		return true
	}
	if bareTag(want) || e.ref == nil {
		return false
	}
	w, err := ParseRef(want, nil)
	return err == nil && w.Name == e.ref.Name
}

func (l Local) openLayout(ctx context.Context, platform v1.Platform, one bool) ([]localImage, error) {
	lay := layoutDir{dir: l.Path}
	b, err := os.ReadFile(filepath.Join(l.Path, "index.json"))
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(l.Path, "index.json"), err)
	}
	var entries []*layoutEntry
	byKey := map[string]*layoutEntry{}
	for _, d := range idx.Manifests {
		e := &layoutEntry{name: d.Annotations[RefNameAnnotation], ref: entryRef(d)}
		key := e.name
		if e.ref != nil {
			key = e.ref.Name
		}
		if g, ok := byKey[key]; ok && key != "" {
			g.descs = append(g.descs, d)
			continue
		}
		e.descs = []v1.Descriptor{d}
		byKey[key] = e
		entries = append(entries, e)
	}
	var picked []*layoutEntry
	var names []string
	for _, e := range entries {
		if e.name != "" {
			names = append(names, e.name)
		}
		switch {
		case l.Name != "":
			if e.matches(l.Name) {
				picked = append(picked, e)
			}
		case one || e.name != "":
			picked = append(picked, e)
		}
	}
	switch {
	case len(entries) == 0:
		return nil, errors.New("the layout holds no image")
	case l.Name != "" && len(picked) == 0:
		return nil, fmt.Errorf("no image is named %q (%s: %q)", l.Name, RefNameAnnotation, names)
	case len(picked) == 0:
		return nil, fmt.Errorf("no image has a %s annotation; name the one to take with oci:DIR=NAME", RefNameAnnotation)
	case one && len(picked) > 1:
		return nil, fmt.Errorf("%d images match %q; name one with oci:DIR:NAME", len(picked), l.Name)
	}
	out := make([]localImage, 0, len(picked))
	for _, e := range picked {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		im, err := lay.image(e.descs, platform)
		if err != nil {
			if e.name != "" {
				return nil, fmt.Errorf("%s: %w", e.name, err)
			}
			return nil, err
		}
		im.name, im.ref = e.name, e.ref
		out = append(out, im)
	}
	return out, nil
}

// candidate is a single-platform manifest found under an entry.
type candidate struct {
	desc  v1.Descriptor
	index string // the top index it was found in
}

// image picks the manifest for platform among descs (manifests or
// indexes, which are searched as registry fetches search them: by the
// platform each entry declares) and opens it.
func (l layoutDir) image(descs []v1.Descriptor, platform v1.Platform) (localImage, error) {
	var cands []candidate
	var walk func(ds []v1.Descriptor, index string, depth int) error
	walk = func(ds []v1.Descriptor, index string, depth int) error {
		for _, d := range ds {
			if d.MediaType == "" {
				// Required, but some tools leave it out: the blob says.
				b, err := l.read(d)
				if err != nil {
					return err
				}
				d.MediaType = sniff(b)
			}
			switch {
			case d.MediaType.IsIndex():
				if depth > 4 {
					return fmt.Errorf("index %s: indexes nested too deeply", d.Digest)
				}
				b, err := l.read(d)
				if err != nil {
					return err
				}
				im, err := v1.ParseIndexManifest(bytes.NewReader(b))
				if err != nil {
					return fmt.Errorf("index %s: %w", d.Digest, err)
				}
				top := index
				if top == "" {
					top = d.Digest.String()
				}
				if err := walk(im.Manifests, top, depth+1); err != nil {
					return err
				}
			case d.MediaType.IsImage():
				cands = append(cands, candidate{desc: d, index: index})
			}
		}
		return nil
	}
	if err := walk(descs, "", 0); err != nil {
		return localImage{}, err
	}
	var seen []string
	for _, c := range cands {
		if c.desc.Platform != nil {
			seen = append(seen, c.desc.Platform.String())
			if platformMatches(*c.desc.Platform, platform) {
				return l.open(c)
			}
			continue
		}
		// No platform in the descriptor: the image's config says.
		im, err := l.open(c)
		if err != nil {
			return localImage{}, err
		}
		cf, err := im.img.ConfigFile()
		if err != nil {
			return localImage{}, fmt.Errorf("manifest %s: config: %w", c.desc.Digest, err)
		}
		if cf.Architecture == "" {
			return im, nil // not an image config we understand (an artifact): keep it
		}
		p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
		if platformMatches(p, platform) {
			return im, nil
		}
		seen = append(seen, p.String())
	}
	switch len(seen) {
	case 0:
		return localImage{}, errors.New("no image manifest")
	case 1:
		return localImage{}, fmt.Errorf("image is for %s, the target is %s", seen[0], platform)
	}
	return localImage{}, fmt.Errorf("no image for %s (the layout has %v)", platform, seen)
}

// open reads a manifest and its config, and checks that its layers are
// there with their sizes.
func (l layoutDir) open(c candidate) (localImage, error) {
	raw, err := l.read(c.desc)
	if err != nil {
		return localImage{}, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return localImage{}, fmt.Errorf("manifest %s: %w", c.desc.Digest, err)
	}
	cfg, err := l.read(m.Config)
	if err != nil {
		return localImage{}, err
	}
	for _, d := range m.Layers {
		if d.Digest.Algorithm != "sha256" {
			return localImage{}, fmt.Errorf("layer %s: unsupported digest algorithm", d.Digest)
		}
		fi, err := os.Stat(l.blobPath(d.Digest))
		if err != nil {
			return localImage{}, err
		}
		if fi.Size() != d.Size {
			return localImage{}, fmt.Errorf("%s: blob %s has %d bytes, the manifest says %d", l.blobPath(d.Digest), d.Digest, fi.Size(), d.Size)
		}
	}
	mt := c.desc.MediaType
	if m.MediaType != "" {
		mt = m.MediaType
	}
	img, err := partial.CompressedToImage(&layoutImage{dir: l, raw: raw, config: cfg, m: m, mt: mt})
	if err != nil {
		return localImage{}, err
	}
	src := &localSource{img: img, small: map[string][]byte{c.desc.Digest.String(): raw, m.Config.Digest.String(): cfg},
		where: func(h v1.Hash) string { return l.blobPath(h) }}
	return localImage{img: img, index: c.index, src: src}, nil
}

// layoutImage is an image of an OCI layout whose manifest and config were
// read and checked; its layers are read from their files as needed.
type layoutImage struct {
	dir         layoutDir
	raw, config []byte
	m           *v1.Manifest
	mt          types.MediaType
}

var _ partial.CompressedImageCore = (*layoutImage)(nil)

func (i *layoutImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *layoutImage) MediaType() (types.MediaType, error) { return i.mt, nil }
func (i *layoutImage) RawManifest() ([]byte, error)        { return i.raw, nil }

func (i *layoutImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, d := range append([]v1.Descriptor{i.m.Config}, i.m.Layers...) {
		if d.Digest == h {
			return &layoutBlob{dir: i.dir, d: d}, nil
		}
	}
	return nil, fmt.Errorf("the image has no blob %s", h)
}

// layoutBlob is a layer file of a layout, digest-checked as it is read.
type layoutBlob struct {
	dir layoutDir
	d   v1.Descriptor
}

func (b *layoutBlob) Digest() (v1.Hash, error)            { return b.d.Digest, nil }
func (b *layoutBlob) Size() (int64, error)                { return b.d.Size, nil }
func (b *layoutBlob) MediaType() (types.MediaType, error) { return b.d.MediaType, nil }

// Compressed reads the blob's file, checked against the manifest's digest
// and size: a wrong file fails, naming it, before its last byte is read.
func (b *layoutBlob) Compressed() (io.ReadCloser, error) {
	p := b.dir.blobPath(b.d.Digest)
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	d := b.d.Digest.String()
	v := verify.NewReader(f, verify.Expect{Digest: d, Size: b.d.Size, What: "blob " + d, Location: p})
	return struct {
		io.Reader
		io.Closer
	}{v, f}, nil
}

// ---- docker save tarballs ----

// archiveEntry is one image of a docker save tarball under one of its tags.
type archiveEntry struct {
	desc *tarball.Descriptor
	tag  string // "" for an image without RepoTags
}

func (l Local) openArchive(ctx context.Context, platform v1.Platform, one bool) ([]localImage, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(l.Path) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: manifest.json: %w", l.Path, err)
	}
	var want *Ref
	if l.Name != "" {
		r, err := ParseRef(l.Name, nil)
		if err != nil {
			return nil, err
		}
		want = &r
	}
	var picked []archiveEntry
	var tags []string
	for i := range m {
		d := &m[i]
		tags = append(tags, d.RepoTags...)
		switch {
		case want != nil:
			for _, t := range d.RepoTags {
				if r, err := ParseRef(t, nil); err == nil && r.Name == want.Name {
					picked = append(picked, archiveEntry{desc: d, tag: t})
					break
				}
			}
		case one:
			if len(m) == 1 {
				e := archiveEntry{desc: d}
				if len(d.RepoTags) > 0 {
					e.tag = d.RepoTags[0]
				}
				picked = append(picked, e)
			}
		default:
			for _, t := range d.RepoTags {
				picked = append(picked, archiveEntry{desc: d, tag: t})
			}
		}
	}
	switch {
	case len(m) == 0:
		return nil, errors.New("the archive holds no image")
	case want != nil && len(picked) == 0:
		return nil, fmt.Errorf("no image is tagged %s (RepoTags: %q)", l.Name, tags)
	case one && len(picked) != 1:
		return nil, fmt.Errorf("%d images; name one with docker-archive:FILE:REF", len(m))
	case len(picked) == 0:
		return nil, errors.New("no image has a RepoTag; name the one to take with docker-archive:FILE=NAME")
	}
	opened := map[*tarball.Descriptor]localImage{}
	out := make([]localImage, 0, len(picked))
	for _, e := range picked {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		im, ok := opened[e.desc]
		if !ok {
			if im, err = l.archiveImage(opener, e, len(m) == 1, platform); err != nil {
				if e.tag != "" {
					return nil, fmt.Errorf("%s: %w", e.tag, err)
				}
				return nil, err
			}
			opened[e.desc] = im
		}
		im.name = e.tag
		if r, err := ParseRef(e.tag, nil); err == nil && e.tag != "" {
			im.ref = &r
		} else {
			im.ref = nil
		}
		out = append(out, im)
	}
	return out, nil
}

// archiveImage opens one image of the tarball and checks its config
// against the file name it is stored under (its digest) and its platform.
func (l Local) archiveImage(opener tarball.Opener, e archiveEntry, only bool, platform v1.Platform) (localImage, error) {
	var tag *name.Tag
	if !only {
		t, err := name.NewTag(e.tag)
		if err != nil {
			return localImage{}, err
		}
		tag = &t
	}
	img, err := tarball.Image(opener, tag)
	if err != nil {
		return localImage{}, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return localImage{}, err
	}
	// The config is stored under its digest: HEX.json (docker save before
	// 25), blobs/sha256/HEX (since), or sha256:HEX (go-containerregistry).
	if hx := strings.TrimPrefix(strings.TrimSuffix(path.Base(e.desc.Config), ".json"), "sha256:"); len(hx) == 64 {
		if _, err := hex.DecodeString(hx); err == nil {
			if got := sha256Digest(cfg); got != "sha256:"+hx {
				return localImage{}, fmt.Errorf("%s: config %s is corrupt: its content is %s", l.Path, e.desc.Config, got)
			}
		}
	}
	var c struct {
		OS, Architecture, Variant string
		RootFS                    struct {
			DiffIDs []v1.Hash `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return localImage{}, fmt.Errorf("config %s: %w", e.desc.Config, err)
	}
	if p := (v1.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}); c.Architecture != "" && !platformMatches(p, platform) {
		return localImage{}, fmt.Errorf("image is for %s, the target is %s", p, platform)
	}
	// The manifest (with each layer's digest) is computed from the tarball.
	raw, err := img.RawManifest()
	if err != nil {
		return localImage{}, err
	}
	m, err := img.Manifest()
	if err != nil {
		return localImage{}, err
	}
	if len(c.RootFS.DiffIDs) != len(m.Layers) {
		return localImage{}, fmt.Errorf("config %s lists %d layers, the archive has %d", e.desc.Config, len(c.RootFS.DiffIDs), len(m.Layers))
	}
	src := &localSource{img: img, small: map[string][]byte{sha256Digest(raw): raw, m.Config.Digest.String(): cfg},
		where: func(v1.Hash) string { return l.Path }}
	// A layer's digest is computed from its content, so only its
	// uncompressed digest, which the config records, can catch damage.
	src.check = func(ctx context.Context, h v1.Hash) error {
		for i, d := range m.Layers {
			if d.Digest != h {
				continue
			}
			ly, err := img.LayerByDigest(h)
			if err != nil {
				return err
			}
			rc, err := ly.Uncompressed()
			if err != nil {
				return fmt.Errorf("%s: layer %d (%s): %w", l.Path, i+1, e.desc.Layers[i], err)
			}
			defer rc.Close()
			got := sha256.New()
			if _, err := io.Copy(got, ctxio.Reader(ctx, rc)); err != nil {
				return fmt.Errorf("%s: layer %d (%s): %w", l.Path, i+1, e.desc.Layers[i], err)
			}
			if g := "sha256:" + hex.EncodeToString(got.Sum(nil)); g != c.RootFS.DiffIDs[i].String() {
				return fmt.Errorf("%s: layer %d (%s) is corrupt: its content is %s, the image config says %s", l.Path, i+1, e.desc.Layers[i], g, c.RootFS.DiffIDs[i])
			}
			return nil
		}
		return nil
	}
	return localImage{img: img, src: src}, nil
}

// ---- the blob source ----

// localSource reads an image's blobs from a local file for the bundle.
type localSource struct {
	img   v1.Image
	small map[string][]byte // manifest and config, read and checked
	where func(v1.Hash) string
	// check verifies a layer before it is read, when reading it cannot.
	check func(context.Context, v1.Hash) error
}

var _ BlobSource = (*localSource)(nil)

func (s *localSource) OpenBlob(ctx context.Context, digest string) (io.ReadCloser, error) {
	if b, ok := s.small[digest]; ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, err
	}
	if s.check != nil {
		if err := s.check(ctx, h); err != nil {
			return nil, err
		}
	}
	l, err := s.img.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

func (s *localSource) Corrupt(digest string, err error) error {
	h, herr := v1.NewHash(digest)
	if herr != nil {
		return err
	}
	return fmt.Errorf("%s: blob %s is corrupt: %w", s.where(h), digest, err)
}
