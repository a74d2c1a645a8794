package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Push uploads the cluster image n to ref, with its container images:
// each is pushed by digest into ref's repository (so its manifest and
// blobs sit beside the cluster image), then the cluster image under ref,
// then an OCI index of the container images whose subject is the cluster
// image (artifact type ImagesArtifactType), so registries list them as
// its referrers and keep them while the cluster image is there.
func (s *Store) Push(ctx context.Context, n string, ref name.Reference, opts ...remote.Option) (v1.Descriptor, error) {
	i, err := s.Get(n)
	if err != nil {
		return v1.Descriptor{}, err
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	repo := ref.Context()
	attached := v1.IndexManifest{
		SchemaVersion: 2, MediaType: types.OCIImageIndex, ArtifactType: ImagesArtifactType,
		Manifests: []v1.Descriptor{}, Annotations: map[string]string{"org.opencontainers.image.title": "container images of " + i.Name},
	}
	for _, im := range i.Images {
		h, err := v1.NewHash(im.Digest)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%s: image %s: %w", i.Name, im.Name, err)
		}
		img, err := s.image(im.Digest, types.MediaType(im.MediaType))
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%s: image %s: %w", i.Name, im.Name, err)
		}
		if err := remote.Write(repo.Digest(im.Digest), img, opts...); err != nil {
			return v1.Descriptor{}, fmt.Errorf("push %s: image %s: %w", i.Name, im.Name, err)
		}
		raw, err := img.RawManifest()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%s: image %s: %w", i.Name, im.Name, err)
		}
		attached.Manifests = append(attached.Manifests, v1.Descriptor{
			MediaType: types.MediaType(im.MediaType), Size: int64(len(raw)), Digest: h,
			Annotations: map[string]string{RefName: im.Name},
		})
	}
	if err := remote.Write(ref, i.V1(), opts...); err != nil {
		return v1.Descriptor{}, fmt.Errorf("push %s to %s: %w", i.Name, ref, err)
	}
	if len(attached.Manifests) > 0 {
		sub := i.Descriptor
		sub.Annotations, sub.Platform = nil, nil
		attached.Subject = &sub
		raw, err := json.Marshal(attached)
		if err != nil {
			return v1.Descriptor{}, err
		}
		h, _, err := v1.SHA256(bytes.NewReader(raw))
		if err != nil {
			return v1.Descriptor{}, err
		}
		if err := remote.Put(repo.Digest(h.String()), rawManifest{raw, types.OCIImageIndex}, opts...); err != nil {
			return v1.Descriptor{}, fmt.Errorf("push %s: index of its container images: %w", i.Name, err)
		}
	}
	return i.Descriptor, nil
}

// rawManifest is a manifest pushed as it is.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// Pull downloads the cluster image at ref and the container images it
// carries (by digest, from the same repository) into the store, named as
// (ref's name when empty).
func (s *Store) Pull(ctx context.Context, ref name.Reference, as string, platform v1.Platform, opts ...remote.Option) (Entry, error) {
	if as == "" {
		as = ref.Name()
	}
	norm, err := Normalize(as)
	if err != nil {
		return Entry{}, err
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithPlatform(platform)}, opts...)
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return Entry{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return Entry{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	if m.Config.MediaType != types.OCIConfigJSON && m.Config.MediaType != types.DockerConfigJSON {
		return Entry{}, fmt.Errorf("pull %s: config media type %s is not an image config", ref, m.Config.MediaType)
	}
	ims, err := carried(m)
	if err != nil {
		return Entry{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	unlock, err := s.lock()
	if err != nil {
		return Entry{}, err
	}
	defer unlock()
	for _, im := range ims {
		cimg, err := remote.Image(ref.Context().Digest(im.Digest), opts...)
		if err != nil {
			return Entry{}, fmt.Errorf("pull %s: image %s: %w", ref, im.Name, err)
		}
		if _, err := s.writeImage(ctx, cimg); err != nil {
			return Entry{}, fmt.Errorf("pull %s: image %s: %w", ref, im.Name, err)
		}
	}
	d, err := s.writeImage(ctx, img)
	if err != nil {
		return Entry{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	if cf, err := img.ConfigFile(); err == nil {
		d.Platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	}
	return s.tag(d, norm)
}

// writeImage stores an image's layers, config and manifest as verified
// blobs, the layers concurrently.
func (s *Store) writeImage(ctx context.Context, img v1.Image) (v1.Descriptor, error) {
	c := s.Blobs()
	ls, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, l := range ls {
		g.Go(func() error {
			d, err := l.Digest()
			if err != nil {
				return err
			}
			n, err := l.Size()
			if err != nil {
				return err
			}
			if c.Has(d.String(), n) {
				return nil
			}
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = c.Put(gctx, d.String(), n, rc)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return v1.Descriptor{}, err
	}
	rc, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if _, err := s.putBytes(ctx, rc, ""); err != nil {
		return v1.Descriptor{}, err
	}
	rm, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return s.putBytes(ctx, rm, mt)
}
