package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
)

// Media types of the blobs a bundle stores besides container image content,
// which keeps the media types it was pulled with.
const (
	MediaTypeRootfsLayer = "application/vnd.sealpack.rootfs.layer.v1.tar+zstd"
	MediaTypeAgent       = "application/vnd.sealpack.agent.v1"
)

// Index describes everything in a bundle. It is JSON, written after the blobs,
// and covered by the trailer's SHA-256 (and signature when signed).
type Index struct {
	FormatVersion int      `json:"formatVersion"`
	CreatedBy     string   `json:"createdBy"`
	Created       string   `json:"created,omitempty"` // RFC 3339, only from SOURCE_DATE_EPOCH: builds stay reproducible
	Platform      Platform `json:"platform"`
	Stub          Stub     `json:"stub"`
	// Blobs are sorted by offset and fill the bytes from the end of the stub
	// to the index without gaps, so every byte of the file is covered by a digest.
	Blobs []Blob `json:"blobs"`
	// Parts holds, for a split bundle, the SHA-256 of the content of each part
	// that ends before the index, so verify can name the part that is wrong.
	Parts  []string `json:"parts,omitempty"`
	Layers []Layer  `json:"layers"`
	Config Config   `json:"config"`
	Images []Image  `json:"images"`
	// Agent is the digest of the small host program (cmd/agent) the install
	// engine gives nodes instead of the whole stub; empty when not carried.
	Agent string `json:"agent,omitempty"`
}

// Platform is the target of the bundle's stub and content.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Stub records the executable that starts the file.
type Stub struct {
	Size   int64  `json:"size"`
	Digest string `json:"digest"`
}

// Blob is one content-addressed run of bytes.
type Blob struct {
	Digest    string `json:"digest"`
	Offset    int64  `json:"offset"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType,omitempty"`
}

// Layer is one rootfs layer: a tar stream compressed as independent zstd frames.
type Layer struct {
	Digest    string  `json:"digest"` // of the compressed blob
	DiffID    string  `json:"diffID"` // of the uncompressed tar
	Size      int64   `json:"size"`   // uncompressed
	CreatedBy string  `json:"createdBy,omitempty"`
	Frames    []Frame `json:"frames"`
}

// Frame is one independent zstd frame of a layer: compressed and uncompressed sizes.
type Frame struct {
	C int64 `json:"c"`
	U int64 `json:"u"`
}

// Config is the cluster image's metadata gathered from the Kubefile.
type Config struct {
	Env         []string          `json:"env,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"` // encoding/json sorts keys: deterministic
	Maintainer  string            `json:"maintainer,omitempty"`
	KubeVersion string            `json:"kubeVersion,omitempty"`
	Apps        []App             `json:"apps,omitempty"`
	Launch      []string          `json:"launch,omitempty"`
	Cmds        []string          `json:"cmds,omitempty"`
	CNI         []App             `json:"cni,omitempty"`
	CSI         []App             `json:"csi,omitempty"`
}

// App is an application the cluster image carries (APP, CNI, CSI).
type App struct {
	Name  string   `json:"name"`
	Type  string   `json:"type,omitempty"` // helm, kube or shell
	Paths []string `json:"paths"`
	Cmds  []string `json:"cmds,omitempty"`
	Env   []string `json:"env,omitempty"`
}

// Image is a container image in the bundle's registry content.
type Image struct {
	Name       string `json:"name"`       // as referenced, e.g. docker.io/library/nginx:1.27
	Repository string `json:"repository"` // as served, e.g. library/nginx
	Tag        string `json:"tag,omitempty"`
	Digest     string `json:"digest"` // of the manifest or index blob
	MediaType  string `json:"mediaType"`
	Size       int64  `json:"size"` // manifest plus all blobs it references, for display
}

// ImageBlobs are the blobs of the container images (manifests, configs,
// layers): every blob but the rootfs layers and the agent.
func (idx *Index) ImageBlobs() []Blob {
	var out []Blob
	for _, b := range idx.Blobs {
		if b.MediaType != MediaTypeRootfsLayer && b.MediaType != MediaTypeAgent {
			out = append(out, b)
		}
	}
	return out
}

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

func decodeIndex(b []byte) (*Index, error) {
	var idx Index
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&idx); err != nil {
		return nil, fmt.Errorf("%w: decode index: %v", ErrCorrupt, err)
	}
	return &idx, nil
}

// validate checks that the index describes a file of this trailer's shape:
// every byte from the stub to the index belongs to exactly one blob, every
// reference points at a blob, and no size is negative, overflows when added
// or (for frames) exceeds what a reader may allocate. It returns the blobs by
// digest: the one lookup every later reference uses.
func (idx *Index) validate(t *Trailer) (map[string]Blob, error) {
	if idx.FormatVersion != int(t.Version) {
		return nil, fmt.Errorf("%w: index says format %d, trailer %d", ErrCorrupt, idx.FormatVersion, t.Version)
	}
	if idx.Stub.Size != t.StubSize || !digestRE.MatchString(idx.Stub.Digest) {
		return nil, fmt.Errorf("%w: index stub record disagrees with the trailer", ErrCorrupt)
	}
	// The trailer bounds StubSize <= IndexOffset <= 2^62, so next never
	// overflows: a blob is refused before it could carry next past the index.
	next := t.StubSize
	blobs := make(map[string]Blob, len(idx.Blobs))
	for i, b := range idx.Blobs {
		switch _, dup := blobs[b.Digest]; {
		case !digestRE.MatchString(b.Digest):
			return nil, fmt.Errorf("%w: blob %d has an invalid digest %q", ErrCorrupt, i, b.Digest)
		case dup:
			return nil, fmt.Errorf("%w: blob %s stored twice", ErrCorrupt, b.Digest)
		case b.Offset < 0:
			return nil, fmt.Errorf("%w: blob %s has a negative offset %d", ErrCorrupt, b.Digest, b.Offset)
		case b.Size < 0:
			return nil, fmt.Errorf("%w: blob %s has a negative size %d", ErrCorrupt, b.Digest, b.Size)
		case b.Offset != next:
			return nil, fmt.Errorf("%w: blob %s starts at %d, want %d", ErrCorrupt, b.Digest, b.Offset, next)
		case b.Size > t.IndexOffset-next:
			return nil, fmt.Errorf("%w: blob %s of %d bytes at %d runs past the index at %d", ErrCorrupt, b.Digest, b.Size, b.Offset, t.IndexOffset)
		}
		blobs[b.Digest] = b
		next += b.Size
	}
	if next != t.IndexOffset {
		return nil, fmt.Errorf("%w: blobs end at %d but the index starts at %d", ErrCorrupt, next, t.IndexOffset)
	}
	// A split bundle copied as one file keeps its part digests; they only
	// matter while it is split.
	if t.PartSize > 0 && len(idx.Parts) >= t.Parts() {
		return nil, fmt.Errorf("%w: index lists %d part digests for %d parts", ErrCorrupt, len(idx.Parts), t.Parts())
	}
	for i, l := range idx.Layers {
		b, ok := blobs[l.Digest]
		if !ok {
			return nil, fmt.Errorf("%w: layer %d refers to missing blob %s", ErrCorrupt, i+1, l.Digest)
		}
		if !digestRE.MatchString(l.DiffID) {
			return nil, fmt.Errorf("%w: layer %d has an invalid diffID %q", ErrCorrupt, i+1, l.DiffID)
		}
		if err := checkFrames(l, b.Size); err != nil {
			return nil, fmt.Errorf("%w: layer %d %v", ErrCorrupt, i+1, err)
		}
	}
	if _, ok := blobs[idx.Agent]; idx.Agent != "" && !ok {
		return nil, fmt.Errorf("%w: agent refers to missing blob %s", ErrCorrupt, idx.Agent)
	}
	for _, im := range idx.Images {
		if _, ok := blobs[im.Digest]; !ok {
			return nil, fmt.Errorf("%w: image %s refers to missing blob %s", ErrCorrupt, im.Name, im.Digest)
		}
	}
	return blobs, nil
}

// maxFrameBytes bounds both sizes of one frame: the writer makes frames of
// FrameSize bytes that compress to at most FrameSize+maxFrameOverhead, so
// twice FrameSize is room to spare, and it bounds what a reader allocates
// for a frame before it has read a byte of it.
const maxFrameBytes = 2 * FrameSize

// checkFrames checks a layer's frame table against its blob's size: every
// frame within bounds, the compressed sizes adding up to the blob and the
// uncompressed ones to the layer's size. Sums are checked frame by frame, so
// they cannot overflow.
func checkFrames(l Layer, blobSize int64) error {
	if l.Size < 0 {
		return fmt.Errorf("has a negative size %d", l.Size)
	}
	var c, u int64
	for i, f := range l.Frames {
		if f.C <= 0 || f.C > maxFrameBytes || f.U < 0 || f.U > maxFrameBytes {
			return fmt.Errorf("frame %d: sizes %d compressed, %d uncompressed: want 1 to %d and 0 to %d", i+1, f.C, f.U, maxFrameBytes, maxFrameBytes)
		}
		c, u = c+f.C, u+f.U
		if c > blobSize || u > l.Size {
			return fmt.Errorf("frame %d ends at %d/%d bytes, past the blob's %d/%d", i+1, c, u, blobSize, l.Size)
		}
	}
	if c != blobSize || u != l.Size {
		return fmt.Errorf("frames add up to %d/%d bytes, want %d/%d", c, u, blobSize, l.Size)
	}
	return nil
}
