// Package store keeps cluster images on the build machine: an OCI image
// layout (by default $XDG_DATA_HOME/sealpack/images) holding each cluster
// image as an OCI image, named in index.json by its normalised reference,
// and the container images it carries in the same blobs folder.
//
// A cluster image is an OCI image manifest: its layers are the sealpack
// rootfs layers (zstd frames, a valid tar+zstd stream), its config the
// usual OCI config with the cluster metadata in the
// io.sealpack.cluster-image.config label, and its manifest annotation
// io.sealpack.cluster-image.images lists the container images it carries
// (name, repository, tag, manifest digest) as JSON. Their manifests,
// configs and layers are blobs of the same layout; they are reachable only
// through that annotation, which is what rmi's garbage collection follows.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator/images"
)

// Annotations and labels of a stored cluster image.
const (
	// RefName names an image in index.json (OCI image layout spec).
	RefName = "org.opencontainers.image.ref.name"
	// ImagesAnnotation lists the carried container images ([]bundle.Image
	// as JSON) on the cluster image's manifest.
	ImagesAnnotation = "io.sealpack.cluster-image.images"
	// ConfigLabel holds the cluster metadata (bundle.Config as JSON).
	ConfigLabel = "io.sealpack.cluster-image.config"
	// ImagesArtifactType is the artifact type of the index that gen push
	// attaches to a cluster image (OCI referrers) listing its images.
	ImagesArtifactType = "application/vnd.sealpack.cluster-image.images.v1+json"
)

// NotFoundError says a name is not in the store.
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("cluster image %s is not in the local store (gen list shows what is)", e.Name)
}

// Is lets callers test for fs.ErrNotExist.
func (e *NotFoundError) Is(target error) bool { return target == fs.ErrNotExist }

// Store is an OCI image layout of cluster images.
type Store struct {
	dir string
}

// DefaultDir is $XDG_DATA_HOME/sealpack/images, or
// ~/.local/share/sealpack/images.
func DefaultDir(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "sealpack", "images")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "sealpack", "images")
	}
	return filepath.Join(os.TempDir(), "sealpack-images")
}

// Open opens the store at dir, creating an empty layout when there is none.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	if _, err := layout.Write(dir, empty.Index); err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	return s, nil
}

// Dir is the layout's folder.
func (s *Store) Dir() string { return s.dir }

// Blobs is the layout's blobs folder as a verified, atomic blob cache.
func (s *Store) Blobs() *images.Cache { return &images.Cache{Dir: s.dir} }

func (s *Store) path() layout.Path { return layout.Path(s.dir) }

// Normalize turns a user's NAME[:TAG] into the name the store records:
// docker.io/library/NAME:latest for a bare NAME.
func Normalize(n string) (string, error) {
	r, err := images.ParseRef(n, nil)
	if err != nil {
		return "", err
	}
	if r.Digest != "" {
		return "", fmt.Errorf("cluster image name %q: a stored name takes a tag, not a digest", n)
	}
	return r.Name, nil
}

// lock takes the store's exclusive lock for changes to index.json and for
// garbage collection; unlock with the returned function.
func (s *Store) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock image store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock image store %s: %w", s.dir, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// Entry is one named cluster image.
type Entry struct {
	Name       string
	Descriptor v1.Descriptor // of its manifest
}

// List returns the stored cluster images by name.
func (s *Store) List() ([]Entry, error) {
	im, err := s.indexManifest()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, d := range im.Manifests {
		if n := d.Annotations[RefName]; n != "" {
			out = append(out, Entry{Name: n, Descriptor: d})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *Store) indexManifest() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("image store %s: %w", s.dir, err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("image store %s: index.json: %w", s.dir, err)
	}
	return im, nil
}

// Lookup finds name (normalised first) in the store.
func (s *Store) Lookup(n string) (Entry, error) {
	norm, err := Normalize(n)
	if err != nil {
		return Entry{}, err
	}
	es, err := s.List()
	if err != nil {
		return Entry{}, err
	}
	for _, e := range es {
		if e.Name == norm {
			return e, nil
		}
	}
	return Entry{}, &NotFoundError{Name: n}
}

// Image is a stored cluster image, opened.
type Image struct {
	Entry
	Manifest *v1.Manifest
	Config   *v1.ConfigFile
	Cluster  bundle.Config  // from the config label
	Images   []bundle.Image // carried container images
	img      v1.Image
}

// V1 is the cluster image as a go-containerregistry image whose layers
// are read from the store.
func (i *Image) V1() v1.Image { return i.img }

// Get opens a stored cluster image.
func (s *Store) Get(n string) (*Image, error) {
	e, err := s.Lookup(n)
	if err != nil {
		return nil, err
	}
	img, err := s.image(e.Descriptor.Digest.String(), e.Descriptor.MediaType)
	if err != nil {
		return nil, fmt.Errorf("cluster image %s: %w", e.Name, err)
	}
	out, err := describe(e, img)
	if err != nil {
		return nil, fmt.Errorf("cluster image %s: %w", e.Name, err)
	}
	return out, nil
}

// describe reads a cluster image's manifest, config and carried images.
func describe(e Entry, img v1.Image) (*Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	out := &Image{Entry: e, Manifest: m, Config: cf, img: img}
	if s := cf.Config.Labels[ConfigLabel]; s != "" {
		if err := json.Unmarshal([]byte(s), &out.Cluster); err != nil {
			return nil, fmt.Errorf("label %s: %w", ConfigLabel, err)
		}
	}
	if out.Images, err = carried(m); err != nil {
		return nil, err
	}
	return out, nil
}

func carried(m *v1.Manifest) ([]bundle.Image, error) {
	s := m.Annotations[ImagesAnnotation]
	if s == "" {
		return nil, nil
	}
	var ims []bundle.Image
	if err := json.Unmarshal([]byte(s), &ims); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", ImagesAnnotation, err)
	}
	for _, im := range ims {
		if _, err := v1.NewHash(im.Digest); err != nil {
			return nil, fmt.Errorf("annotation %s: image %s: %w", ImagesAnnotation, im.Name, err)
		}
	}
	return ims, nil
}

// Carried opens the carried container images as pulled images whose blobs
// are in the store, ready for images.AddToBundle.
func (s *Store) Carried(i *Image) ([]images.Pulled, error) {
	c := s.Blobs()
	out := make([]images.Pulled, 0, len(i.Images))
	for _, im := range i.Images {
		p, err := images.FromCache(c, im)
		if err != nil {
			return nil, fmt.Errorf("cluster image %s: carried image %s: %w", i.Name, im.Name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Import stores the bundle at path (as written by generator.Build) as the
// cluster image n: its rootfs layers, metadata and container images.
func (s *Store) Import(ctx context.Context, path, n string) (Entry, error) {
	norm, err := Normalize(n)
	if err != nil {
		return Entry{}, err
	}
	b, err := bundle.Open(path)
	if err != nil {
		return Entry{}, err
	}
	defer b.Close()
	// Held throughout, so a concurrent rmi does not collect new blobs.
	unlock, err := s.lock()
	if err != nil {
		return Entry{}, err
	}
	defer unlock()
	c := s.Blobs()
	// Every blob: layers, and the container images' manifests and blobs.
	for _, bl := range b.Index.Blobs {
		if c.Has(bl.Digest, bl.Size) {
			continue
		}
		r, _, err := b.Blob(bl.Digest)
		if err != nil {
			return Entry{}, err
		}
		if _, err := c.Put(ctx, bl.Digest, bl.Size, r); err != nil {
			return Entry{}, fmt.Errorf("store %s: %w", norm, err)
		}
	}
	idx := b.Index
	cfg := idx.Config
	label, err := json.Marshal(cfg)
	if err != nil {
		return Entry{}, err
	}
	cf := v1.ConfigFile{
		OS: idx.Platform.OS, Architecture: idx.Platform.Architecture, Variant: idx.Platform.Variant,
		Author: cfg.Maintainer,
		Config: v1.Config{Env: cfg.Env, Labels: map[string]string{ConfigLabel: string(label)}},
		RootFS: v1.RootFS{Type: "layers"},
	}
	for k, v := range cfg.Labels {
		cf.Config.Labels[k] = v
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Layers: []v1.Descriptor{}}
	for _, l := range idx.Layers {
		h, err := v1.NewHash(l.Digest)
		if err != nil {
			return Entry{}, err
		}
		d, err := v1.NewHash(l.DiffID)
		if err != nil {
			return Entry{}, err
		}
		_, bl, err := b.Blob(l.Digest)
		if err != nil {
			return Entry{}, err
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayerZStd, Size: bl.Size, Digest: h})
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, d)
		cf.History = append(cf.History, v1.History{CreatedBy: l.CreatedBy})
	}
	rawCfg, err := json.Marshal(cf)
	if err != nil {
		return Entry{}, err
	}
	cfgDesc, err := s.putBytes(ctx, rawCfg, types.OCIConfigJSON)
	if err != nil {
		return Entry{}, err
	}
	m.Config = cfgDesc
	if len(idx.Images) > 0 {
		ims, err := json.Marshal(idx.Images)
		if err != nil {
			return Entry{}, err
		}
		m.Annotations = map[string]string{ImagesAnnotation: string(ims)}
	}
	rawM, err := json.Marshal(m)
	if err != nil {
		return Entry{}, err
	}
	md, err := s.putBytes(ctx, rawM, types.OCIManifestSchema1)
	if err != nil {
		return Entry{}, err
	}
	md.Platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	return s.tag(md, norm)
}

func (s *Store) putBytes(ctx context.Context, b []byte, mt types.MediaType) (v1.Descriptor, error) {
	h, n, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := s.Blobs().PutBytes(ctx, h.String(), b); err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Size: n, Digest: h}, nil
}

// tag names the manifest d in index.json, replacing what had the name.
// The caller holds the lock.
func (s *Store) tag(d v1.Descriptor, norm string) (Entry, error) {
	d.Annotations = map[string]string{RefName: norm}
	p := s.path()
	if err := p.RemoveDescriptors(match.Annotation(RefName, norm)); err != nil {
		return Entry{}, fmt.Errorf("image store %s: %w", s.dir, err)
	}
	if err := p.AppendDescriptor(d); err != nil {
		return Entry{}, fmt.Errorf("image store %s: %w", s.dir, err)
	}
	return Entry{Name: norm, Descriptor: d}, nil
}

// Remove forgets the name and deletes the blobs no stored image needs.
func (s *Store) Remove(n string) error {
	e, err := s.Lookup(n)
	if err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.path().RemoveDescriptors(match.Annotation(RefName, e.Name)); err != nil {
		return fmt.Errorf("remove %s: %w", e.Name, err)
	}
	return s.gc()
}

// gc deletes every blob that no named cluster image reaches, through its
// config, layers and carried images. The caller holds the lock.
func (s *Store) gc() error {
	es, err := s.List()
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	c := s.Blobs()
	manifest := func(d string) (*v1.Manifest, error) {
		keep[d] = true
		b, err := c.ReadSmall(d)
		if err != nil {
			return nil, err
		}
		return v1.ParseManifest(bytes.NewReader(b))
	}
	for _, e := range es {
		m, err := manifest(e.Descriptor.Digest.String())
		if err != nil {
			return fmt.Errorf("garbage collection: %s: %w", e.Name, err)
		}
		ims, err := carried(m)
		if err != nil {
			return fmt.Errorf("garbage collection: %s: %w", e.Name, err)
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			keep[d.Digest.String()] = true
		}
		for _, im := range ims {
			cm, err := manifest(im.Digest)
			if err != nil {
				return fmt.Errorf("garbage collection: %s: image %s: %w", e.Name, im.Name, err)
			}
			for _, d := range append([]v1.Descriptor{cm.Config}, cm.Layers...) {
				keep[d.Digest.String()] = true
			}
		}
	}
	dir := filepath.Join(s.dir, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), ".tmp-") || keep["sha256:"+ent.Name()] {
			continue // a temporary file may be a concurrent build's
		}
		if err := os.Remove(filepath.Join(dir, ent.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
