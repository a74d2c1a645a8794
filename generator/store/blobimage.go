package store

import (
	"bytes"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sealpack/sealpack/generator/images"
)

// blobImage is an image read from the store's blobs by manifest digest,
// whether or not index.json names it (carried images are not named).
type blobImage struct {
	c        *images.Cache
	mt       types.MediaType
	raw      []byte
	manifest *v1.Manifest
}

var _ partial.CompressedImageCore = (*blobImage)(nil)

// image opens the manifest digest d (of media type mt) as a v1.Image.
func (s *Store) image(d string, mt types.MediaType) (v1.Image, error) {
	c := s.Blobs()
	raw, err := c.ReadSmall(d)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	if mt == "" {
		mt = m.MediaType
	}
	return partial.CompressedToImage(&blobImage{c: c, mt: mt, raw: raw, manifest: m})
}

func (b *blobImage) RawConfigFile() ([]byte, error) {
	return b.c.ReadSmall(b.manifest.Config.Digest.String())
}

func (b *blobImage) MediaType() (types.MediaType, error) { return b.mt, nil }

func (b *blobImage) RawManifest() ([]byte, error) { return b.raw, nil }

func (b *blobImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == b.manifest.Config.Digest {
		return &blobLayer{c: b.c, d: b.manifest.Config}, nil
	}
	for _, l := range b.manifest.Layers {
		if l.Digest == h {
			return &blobLayer{c: b.c, d: l}, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not in manifest", h)
}

// blobLayer is one stored blob; its bytes are checked when read into a
// bundle or pushed (the registry checks the digest).
type blobLayer struct {
	c *images.Cache
	d v1.Descriptor
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *blobLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	f, err := l.c.Open(l.d.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", l.d.Digest, err)
	}
	return f, nil
}
