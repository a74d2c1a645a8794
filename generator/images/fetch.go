package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"sort"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/sealpack/sealpack/internal/progress"
)

// FetchOptions configure a Fetcher. Zero values are the defaults.
type FetchOptions struct {
	Cache    *Cache
	Platform v1.Platform // linux/amd64 when empty
	// Offline resolves tags from the cache's records and fetches nothing;
	// anything missing is an error.
	Offline bool
	// Jobs bounds concurrent registry requests; 8 by default.
	Jobs int
	// Transport carries every request; http.DefaultTransport by default.
	Transport http.RoundTripper
	// Keychain supplies credentials; authn.DefaultKeychain (docker config)
	// by default.
	Keychain authn.Keychain
	// Progress receives one line per image as it completes; nil discards.
	Progress io.Writer
	// Terminal draws a progress bar per image on Progress while blobs
	// download (set it when Progress is a terminal).
	Terminal bool
}

// Pulled is an image whose manifest and blobs are all in the cache.
type Pulled struct {
	Ref Ref
	// Digest and MediaType are of the single-platform manifest, which is
	// what the bundle's registry serves under the tag.
	Digest    string
	MediaType string
	// Index is the digest of the multi-platform index the tag pointed to,
	// when it did; the index itself is not kept.
	Index string
	Blobs []v1.Descriptor // config, then layers
	Size  int64           // manifest plus blobs
	// Fetched counts the bytes this run downloaded for the image's blobs.
	Fetched int64
	// Source holds the blobs when they are not in the fetch cache (an
	// image carried by a stored cluster image, or read from a local file
	// by gen --image oci:DIR); nil means the cache.
	Source BlobSource
}

// Fetch brings every image's platform manifest, config and layers into the
// cache: resolution runs per image, blob downloads run once per digest
// across all images, both bounded by Jobs.
func Fetch(ctx context.Context, refs []Ref, o FetchOptions) ([]Pulled, error) {
	f, err := newFetcher(o)
	if err != nil {
		return nil, err
	}
	out, err := f.resolveAll(ctx, refs)
	if err != nil {
		return nil, err
	}
	if err := f.fetchBlobs(ctx, out, func(int) {}); err != nil {
		return nil, err
	}
	for i := range out {
		if err := f.checkPlatform(&out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Stream fetches as Fetch does and hands each image to add in name order
// as soon as its blobs and those of the images before it are cached, so a
// bundle is written from the cache while later blobs still download: the
// copy uses the second core and overlaps the network. Blobs are fetched in
// that same order (each image's largest first), and the pulled images are
// returned in name order. add runs in the calling goroutine.
func Stream(ctx context.Context, refs []Ref, o FetchOptions, add func(Pulled) error) ([]Pulled, error) {
	f, err := newFetcher(o)
	if err != nil {
		return nil, err
	}
	refs = append([]Ref(nil), refs...)
	sort.SliceStable(refs, func(i, j int) bool { return refs[i].Name < refs[j].Name })
	out, err := f.resolveAll(ctx, refs)
	if err != nil {
		return nil, err
	}
	ready := make([]chan struct{}, len(out))
	for i := range ready {
		ready[i] = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.inOrder = true
	fetched := make(chan error, 1)
	go func() { fetched <- f.fetchBlobs(ctx, out, func(i int) { close(ready[i]) }) }()
	var ferr error
	done := false // fetched has been received from
	stop := func(err error) ([]Pulled, error) {
		cancel()
		if !done { // else nothing is left to wait for, or send
			<-fetched
		}
		return nil, err
	}
	for i := range out {
		if !done {
			select {
			case <-ready[i]:
			case ferr = <-fetched:
				done = true
				if ferr != nil {
					return nil, ferr
				}
			}
		}
		if err := f.checkPlatform(&out[i]); err != nil {
			return stop(err)
		}
		if err := add(out[i]); err != nil {
			return stop(err)
		}
	}
	if !done {
		ferr = <-fetched
	}
	if ferr != nil {
		return nil, ferr
	}
	return out, nil
}

func newFetcher(o FetchOptions) (*fetcher, error) {
	if o.Cache == nil {
		return nil, errors.New("fetch images: no cache")
	}
	if o.Platform.OS == "" {
		o.Platform = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	if o.Jobs <= 0 {
		o.Jobs = 8
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	f := &fetcher{o: o, log: newBars(o.Progress, o.Terminal)}
	if !o.Offline {
		// One Puller shares pings and tokens per registry across requests.
		p, err := remote.NewPuller(remote.WithTransport(o.Transport), remote.WithAuthFromKeychain(o.Keychain),
			remote.WithPlatform(o.Platform), remote.WithJobs(o.Jobs))
		if err != nil {
			return nil, err
		}
		f.puller = p
	}
	return f, nil
}

// resolveAll resolves every reference concurrently, bounded by Jobs.
func (f *fetcher) resolveAll(ctx context.Context, refs []Ref) ([]Pulled, error) {
	out := make([]Pulled, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.o.Jobs)
	for i, r := range refs {
		g.Go(func() error {
			p, err := f.resolve(gctx, r)
			if err != nil {
				return fmt.Errorf("%s: %w", r.describe(), err)
			}
			out[i] = p
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

type fetcher struct {
	o      FetchOptions
	puller *remote.Puller
	log    *bars
	// inOrder fetches blobs in image order rather than largest first,
	// for Stream's in-order consumer.
	inOrder bool
}

func isIndex(mt types.MediaType) bool {
	return mt == types.OCIImageIndex || mt == types.DockerManifestList
}

// sniff tells an index from a manifest when the media type is not known,
// as for a manifest read from the cache.
func sniff(b []byte) types.MediaType {
	var m struct {
		MediaType types.MediaType  `json:"mediaType"`
		Manifests *json.RawMessage `json:"manifests"`
		Config    *struct {
			MediaType types.MediaType `json:"mediaType"`
		} `json:"config"`
	}
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.Manifests != nil:
		return types.OCIImageIndex
	case m.Config != nil && m.Config.MediaType == types.DockerConfigJSON:
		return types.DockerManifestSchema2
	}
	return types.OCIManifestSchema1
}

// resolve finds the digest a reference names for the target platform and
// makes sure its manifests are cached. Only a tag needs the registry when
// everything else is cached: a HEAD request. A renamed reference is
// resolved, and its tag recorded, under its source's name.
func (f *fetcher) resolve(ctx context.Context, r Ref) (Pulled, error) {
	p := Pulled{Ref: r}
	r = r.Source()
	top := r.Digest
	if top == "" {
		if f.o.Offline {
			rec, err := f.o.Cache.LoadTag(r.Name)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return p, fmt.Errorf("--offline: the cache has no record of this tag; build once online or pin a digest")
				}
				return p, err
			}
			top = rec.Digest
		} else {
			d, err := f.puller.Head(ctx, r.Reference())
			if err != nil {
				// Some registries refuse HEAD on manifests: fall back to GET.
				rd, gerr := f.puller.Get(ctx, r.Reference())
				if gerr != nil {
					return p, fmt.Errorf("resolve: %w", gerr)
				}
				if err := f.o.Cache.PutBytes(ctx, rd.Digest.String(), rd.Manifest); err != nil {
					return p, err
				}
				d = &rd.Descriptor
			}
			top = d.Digest.String()
			if err := f.o.Cache.SaveTag(r.Name, top, string(d.MediaType)); err != nil {
				return p, fmt.Errorf("record tag in cache: %w", err)
			}
		}
	}
	if p.Ref.Digest != "" && p.Ref.Digest != top {
		return p, fmt.Errorf("the rename pins %s, %s is %s", p.Ref.Digest, r.Name, top)
	}
	b, err := f.manifest(ctx, r, top)
	if err != nil {
		return p, err
	}
	mt := sniff(b)
	if isIndex(mt) {
		idx, err := v1.ParseIndexManifest(bytesReader(b))
		if err != nil {
			return p, fmt.Errorf("index %s: %w", top, err)
		}
		child, err := pickPlatform(idx, f.o.Platform)
		if err != nil {
			return p, fmt.Errorf("index %s: %w", top, err)
		}
		p.Index = top
		top, mt = child.Digest.String(), child.MediaType
		if b, err = f.manifest(ctx, r, top); err != nil {
			return p, err
		}
	}
	if mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed {
		return p, fmt.Errorf("schema 1 manifests are not supported; push the image again with a recent client")
	}
	m, err := v1.ParseManifest(bytesReader(b))
	if err != nil {
		return p, fmt.Errorf("manifest %s: %w", top, err)
	}
	p.Digest, p.MediaType = top, string(mt)
	p.Blobs = append([]v1.Descriptor{m.Config}, m.Layers...)
	p.Size = int64(len(b))
	for _, d := range p.Blobs {
		p.Size += d.Size
	}
	return p, nil
}

func (f *fetcher) manifest(ctx context.Context, r Ref, digest string) ([]byte, error) {
	if f.o.Cache.Has(digest, -1) {
		if b, err := f.o.Cache.ReadSmall(digest); err == nil {
			return b, nil
		} else if f.o.Offline {
			return nil, err
		}
	}
	if f.o.Offline {
		return nil, fmt.Errorf("--offline: manifest %s is not in the cache", digest)
	}
	rd, err := f.puller.Get(ctx, r.Reference().Context().Digest(digest))
	if err != nil {
		return nil, fmt.Errorf("fetch manifest %s: %w", digest, err)
	}
	if err := f.o.Cache.PutBytes(ctx, digest, rd.Manifest); err != nil {
		return nil, err
	}
	return rd.Manifest, nil
}

// pickPlatform chooses the manifest for the target platform; a variant in
// the target must match, one only in the index is accepted (arm64 is v8).
func pickPlatform(idx *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	var seen []string
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			continue
		}
		seen = append(seen, d.Platform.String())
		if platformMatches(*d.Platform, want) {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no manifest for %s (the index has %v)", want, seen)
}

// platformMatches says whether an image for p runs on want: same OS and
// architecture, and the same variant when want names one.
func platformMatches(p, want v1.Platform) bool {
	return p.OS == want.OS && p.Architecture == want.Architecture && (want.Variant == "" || p.Variant == want.Variant)
}

// fetchBlobs downloads each missing blob once, however many images share it.
// ready(i) is called once image i's blobs are all cached.
func (f *fetcher) fetchBlobs(ctx context.Context, pulled []Pulled, ready func(int)) error {
	type job struct {
		desc   v1.Descriptor
		repo   name.Repository
		owners []int
	}
	jobs := map[v1.Hash]*job{}
	var order []v1.Hash
	left := make([]atomic.Int64, len(pulled))
	for i, p := range pulled {
		for _, d := range p.Blobs {
			if j, ok := jobs[d.Digest]; ok {
				if j.owners[len(j.owners)-1] != i {
					j.owners = append(j.owners, i)
					left[i].Add(1)
				}
				continue
			}
			if f.o.Cache.Has(d.Digest.String(), d.Size) {
				continue
			}
			if f.o.Offline {
				return fmt.Errorf("%s: --offline: blob %s (%s) is not in the cache", p.Ref.describe(), d.Digest, progress.Bytes(d.Size))
			}
			jobs[d.Digest] = &job{desc: d, repo: p.Ref.Source().Reference().Context(), owners: []int{i}}
			order = append(order, d.Digest)
			left[i].Add(1)
		}
	}
	names, totals := make([]string, len(pulled)), make([]int64, len(pulled))
	for i, p := range pulled {
		names[i] = p.Ref.Name
	}
	for _, j := range jobs {
		for _, i := range j.owners {
			totals[i] += j.desc.Size
		}
	}
	f.log.start(names, totals)
	defer f.log.close()
	var fetched = make([]atomic.Int64, len(pulled))
	done := func(i int) {
		p := &pulled[i]
		p.Fetched = fetched[i].Load()
		f.log.finish(i, "%-50s %s  %s, fetched %s", p.Ref.Name, p.Digest[:19], progress.Bytes(p.Size), progress.Bytes(p.Fetched))
		ready(i)
	}
	for i := range pulled {
		if left[i].Load() == 0 {
			done(i)
		}
	}
	// Largest first, so one big layer does not start last and finish alone;
	// in order, the first image's blobs first, each image's largest first.
	sort.SliceStable(order, func(a, b int) bool {
		ja, jb := jobs[order[a]], jobs[order[b]]
		if f.inOrder && ja.owners[0] != jb.owners[0] {
			return ja.owners[0] < jb.owners[0]
		}
		return ja.desc.Size > jb.desc.Size
	})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.o.Jobs)
	for _, h := range order {
		j := jobs[h]
		g.Go(func() error {
			n, err := f.fetchBlob(gctx, j.repo, j.desc, func(n int64) {
				for _, i := range j.owners {
					f.log.add(i, n)
				}
			})
			if err != nil {
				return fmt.Errorf("%s: %w", pulled[j.owners[0]].Ref.Name, err)
			}
			for _, i := range j.owners {
				fetched[i].Add(n)
				if left[i].Add(-1) == 0 {
					done(i)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

func (f *fetcher) fetchBlob(ctx context.Context, repo name.Repository, d v1.Descriptor, read func(int64)) (int64, error) {
	l, err := f.puller.Layer(ctx, repo.Digest(d.Digest.String()))
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	// Compressed's reader checks the digest as it streams.
	return f.o.Cache.putVerified(ctx, d.Digest.String(), d.Size, countReader{rc, read})
}

// checkPlatform refuses a single-platform image built for another machine.
func (f *fetcher) checkPlatform(p *Pulled) error {
	if p.Index != "" {
		return nil // chosen from the index by platform
	}
	b, err := f.o.Cache.ReadSmall(p.Blobs[0].Digest.String())
	if err != nil {
		return fmt.Errorf("%s: config: %w", p.Ref.describe(), err)
	}
	var c struct{ OS, Architecture string }
	if err := json.Unmarshal(b, &c); err != nil {
		return nil // not an image config we understand (an artifact): keep it
	}
	if c.Architecture != "" && (c.OS != f.o.Platform.OS || c.Architecture != f.o.Platform.Architecture) {
		return fmt.Errorf("%s: image is for %s/%s, the target is %s", p.Ref.describe(), c.OS, c.Architecture, f.o.Platform)
	}
	return nil
}

// countReader reports the bytes read through it.
type countReader struct {
	r    io.Reader
	read func(int64)
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read(int64(n))
	return n, err
}
