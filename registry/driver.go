package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/internal/ctxio"
	"github.com/sealpack/sealpack/internal/verify"
)

// bundleDriverName is the name distribution's storage factory knows the
// bundle driver by, and the driver name in its errors.
const bundleDriverName = "sealpack-bundle"

const (
	rootPath  = "/docker/registry/v2"
	reposPath = rootPath + "/repositories"
	blobsPath = rootPath + "/blobs"
)

// blobStore is what the driver needs of a bundle: where each blob's bytes
// are. *bundle.Bundle has it; tests and benchmarks may give another.
type blobStore interface {
	Blob(digest string) (*io.SectionReader, bundle.Blob, error)
}

// file is one synthesized file of distribution's storage layout: either a
// small link (its bytes) or a blob's data (read in place from the bundle).
type file struct {
	link   []byte
	digest string // set for blob data
	size   int64
}

// bundleDriver is a read-only distribution storage driver over a bundle. It
// synthesizes the paths distribution's storage layer asks for
// (registry/storage/paths.go) from the bundle index and serves blob data
// through io.SectionReader, so nothing is copied out of the installer file.
//
// It does not embed driver/base: that brings tracing exporters and gRPC into
// the stub. Errors distribution type-switches on (PathNotFoundError,
// InvalidOffsetError) are returned as bare values, never wrapped.
type bundleDriver struct {
	store   blobStore
	files   map[string]*file
	dirs    map[string][]string // directory → sorted child paths
	modTime time.Time
	log     *slog.Logger

	mu       sync.Mutex
	verified map[string]*verification
}

// verification is the result of hashing one blob whole, computed once.
type verification struct {
	once sync.Once
	err  error
	ok   atomic.Bool // set once the bytes matched: readable without waiting on once
}

var _ storagedriver.StorageDriver = (*bundleDriver)(nil)

// imageSource is one image to publish: a repository, an optional tag and the
// digest of its manifest or index.
type imageSource struct {
	Repository, Tag, Digest string
}

// manifestRefs is the part of an OCI/Docker manifest or index the driver
// needs: the blobs and child manifests it references.
type manifestRefs struct {
	MediaType string `json:"mediaType"`
	Config    *struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
	} `json:"layers"`
	Manifests []struct {
		Digest string `json:"digest"`
	} `json:"manifests"`
}

// maxManifestSize bounds how much of a manifest blob is read into memory.
const maxManifestSize = 4 << 20

// newBundleDriver builds the storage layout for images whose blobs are in
// store. Every manifest is read and checked against its digest here, so a
// corrupt manifest stops the registry at start instead of being served.
func newBundleDriver(ctx context.Context, store blobStore, images []imageSource, modTime time.Time, log *slog.Logger) (*bundleDriver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &bundleDriver{
		store:    store,
		files:    map[string]*file{},
		dirs:     map[string][]string{},
		modTime:  modTime,
		log:      log,
		verified: map[string]*verification{},
	}
	childSets := map[string]map[string]bool{}
	for _, im := range images {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := validateRepository(im.Repository); err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Repository, err)
		}
		repo := path.Join(reposPath, im.Repository)
		hexd, err := hexOf(im.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Repository, err)
		}
		if im.Tag != "" {
			if err := validateTag(im.Tag); err != nil {
				return nil, fmt.Errorf("image %s: %w", im.Repository, err)
			}
			link := []byte(im.Digest)
			d.addFile(childSets, path.Join(repo, "_manifests/tags", im.Tag, "current/link"), &file{link: link, size: int64(len(link))})
			d.addFile(childSets, path.Join(repo, "_manifests/tags", im.Tag, "index/sha256", hexd, "link"), &file{link: link, size: int64(len(link))})
		}
		if err := d.addManifest(ctx, childSets, repo, im.Digest, 0); err != nil {
			return nil, fmt.Errorf("image %s@%s: %w", im.Repository, im.Digest, err)
		}
	}
	for dir, set := range childSets {
		children := make([]string, 0, len(set))
		for c := range set {
			children = append(children, c)
		}
		sort.Strings(children)
		d.dirs[dir] = children
	}
	return d, nil
}

// addManifest links a manifest (and, for an index, its children) into repo,
// with the config and layer blobs it references.
func (d *bundleDriver) addManifest(ctx context.Context, childSets map[string]map[string]bool, repo, digest string, depth int) error {
	if depth > 4 {
		return fmt.Errorf("manifest %s: indexes nested too deep", digest)
	}
	raw, err := d.readVerified(ctx, digest, maxManifestSize)
	if err != nil {
		return err
	}
	d.linkRevision(childSets, repo, digest)
	d.linkLayer(childSets, repo, digest) // some clients fetch manifests through the blobs endpoint
	var m manifestRefs
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("parse manifest %s: %w", digest, err)
	}
	for _, c := range m.Manifests {
		if _, _, err := d.store.Blob(c.Digest); err != nil {
			// An index may name platforms the bundle does not carry: they
			// stay unknown to clients, as on the upstream registry's mirror.
			d.log.Debug("index child not in bundle", "index", digest, "child", c.Digest)
			continue
		}
		if err := d.addManifest(ctx, childSets, repo, c.Digest, depth+1); err != nil {
			return err
		}
	}
	refs := make([]string, 0, len(m.Layers)+1)
	if m.Config != nil && m.Config.Digest != "" {
		refs = append(refs, m.Config.Digest)
	}
	for _, l := range m.Layers {
		refs = append(refs, l.Digest)
	}
	for _, ref := range refs {
		if _, _, err := d.store.Blob(ref); err != nil {
			d.log.Debug("blob not in bundle (foreign or omitted layer)", "manifest", digest, "blob", ref)
			continue
		}
		d.linkLayer(childSets, repo, ref)
	}
	return nil
}

func (d *bundleDriver) linkRevision(childSets map[string]map[string]bool, repo, digest string) {
	hexd, _ := hexOf(digest)
	d.addFile(childSets, path.Join(repo, "_manifests/revisions/sha256", hexd, "link"), &file{link: []byte(digest), size: int64(len(digest))})
	d.addBlobData(childSets, digest)
}

func (d *bundleDriver) linkLayer(childSets map[string]map[string]bool, repo, digest string) {
	hexd, err := hexOf(digest)
	if err != nil {
		return
	}
	d.addFile(childSets, path.Join(repo, "_layers/sha256", hexd, "link"), &file{link: []byte(digest), size: int64(len(digest))})
	d.addBlobData(childSets, digest)
}

func (d *bundleDriver) addBlobData(childSets map[string]map[string]bool, digest string) {
	hexd, err := hexOf(digest)
	if err != nil {
		return
	}
	_, bl, err := d.store.Blob(digest)
	if err != nil {
		return
	}
	d.addFile(childSets, path.Join(blobsPath, "sha256", hexd[:2], hexd, "data"), &file{digest: digest, size: bl.Size})
}

// addFile records a file and every directory above it.
func (d *bundleDriver) addFile(childSets map[string]map[string]bool, p string, f *file) {
	d.files[p] = f
	for child := p; child != "/"; {
		dir := path.Dir(child)
		set := childSets[dir]
		if set == nil {
			set = map[string]bool{}
			childSets[dir] = set
		}
		if set[child] {
			return
		}
		set[child] = true
		child = dir
	}
}

// readVerified reads a small blob whole and checks its digest.
func (d *bundleDriver) readVerified(ctx context.Context, digest string, limit int64) ([]byte, error) {
	sr, bl, err := d.store.Blob(digest)
	if err != nil {
		return nil, err
	}
	if bl.Size > limit {
		return nil, fmt.Errorf("blob %s: %d bytes is more than the %d this registry reads into memory", digest, bl.Size, limit)
	}
	buf := make([]byte, bl.Size)
	r := blobReader(ctx, sr, bl.Size, digest)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("read blob %s: %w", digest, err)
	}
	if _, err := r.Read(nil); err != io.EOF { // an empty blob is checked here
		return nil, fmt.Errorf("read blob %s: %w", digest, err)
	}
	return buf, nil
}

// verify hashes a blob whole once per driver and remembers the answer. Range
// requests that start past byte 0 need it: their bytes cannot be checked
// against the digest as they stream.
func (d *bundleDriver) verify(ctx context.Context, digest string) error {
	d.mu.Lock()
	v := d.verified[digest]
	if v == nil {
		v = &verification{}
		d.verified[digest] = v
	}
	d.mu.Unlock()
	v.once.Do(func() {
		sr, bl, err := d.store.Blob(digest)
		if err != nil {
			v.err = err
			return
		}
		_, v.err = io.Copy(io.Discard, blobReader(ctx, sr, bl.Size, digest))
		v.ok.Store(v.err == nil)
	})
	if v.err != nil && ctx.Err() != nil {
		// A cancelled check proves nothing: let the next request try again.
		d.mu.Lock()
		if d.verified[digest] == v {
			delete(d.verified, digest)
		}
		d.mu.Unlock()
	}
	return v.err
}

// markVerified records that a full streamed read matched the digest.
func (d *bundleDriver) markVerified(digest string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.verified[digest] == nil {
		v := &verification{}
		v.once.Do(func() {})
		v.ok.Store(true)
		d.verified[digest] = v
	}
}

// isVerified says whether the blob's bytes have matched its digest in this
// process. The corruption this guards against (a bad copy, a failing USB
// stick) is in the file from the start, so the first full read finds it;
// later reads of a verified blob skip the hashing and serve at disk speed.
func (d *bundleDriver) isVerified(digest string) bool {
	d.mu.Lock()
	v := d.verified[digest]
	d.mu.Unlock()
	return v != nil && v.ok.Load()
}

// Verify checks every blob the registry serves against its digest.
func (d *bundleDriver) verifyAll(ctx context.Context) error {
	seen := map[string]bool{}
	var digests []string
	for _, f := range d.files {
		if f.digest != "" && !seen[f.digest] {
			seen[f.digest] = true
			digests = append(digests, f.digest)
		}
	}
	sort.Strings(digests)
	for _, dg := range digests {
		if err := d.verify(ctx, dg); err != nil {
			return err
		}
	}
	return nil
}

func (d *bundleDriver) Name() string { return bundleDriverName }

func (d *bundleDriver) lookup(p string) (*file, error) {
	f, ok := d.files[p]
	if !ok {
		return nil, storagedriver.PathNotFoundError{Path: p, DriverName: bundleDriverName}
	}
	return f, nil
}

func (d *bundleDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	f, err := d.lookup(p)
	if err != nil {
		return nil, err
	}
	if f.digest == "" {
		return bytes.Clone(f.link), nil
	}
	return d.readVerified(ctx, f.digest, maxManifestSize)
}

func (d *bundleDriver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	f, err := d.lookup(p)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > f.size {
		return nil, storagedriver.InvalidOffsetError{Path: p, Offset: offset, DriverName: bundleDriverName}
	}
	if f.digest == "" {
		return io.NopCloser(bytes.NewReader(f.link[offset:])), nil
	}
	sr, _, err := d.store.Blob(f.digest)
	if err != nil {
		return nil, storagedriver.Error{DriverName: bundleDriverName, Detail: err}
	}
	if offset == 0 && !d.isVerified(f.digest) {
		// The whole blob streams past: check it as it goes, and withhold the
		// last bytes if the digest does not match.
		return &verifiedBlob{Reader: blobReader(ctx, sr, f.size, f.digest), digest: f.digest, done: d.markVerified}, nil
	}
	if err := d.verify(ctx, f.digest); err != nil {
		return nil, storagedriver.Error{DriverName: bundleDriverName, Detail: err}
	}
	if _, err := sr.Seek(offset, io.SeekStart); err != nil {
		return nil, storagedriver.Error{DriverName: bundleDriverName, Detail: err}
	}
	return io.NopCloser(ctxio.Reader(ctx, sr)), nil
}

func (d *bundleDriver) Stat(ctx context.Context, p string) (storagedriver.FileInfo, error) {
	if f, ok := d.files[p]; ok {
		return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: p, Size: f.size, ModTime: d.modTime}}, nil
	}
	if _, ok := d.dirs[p]; ok {
		return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: p, ModTime: d.modTime, IsDir: true}}, nil
	}
	return nil, storagedriver.PathNotFoundError{Path: p, DriverName: bundleDriverName}
}

func (d *bundleDriver) List(ctx context.Context, p string) ([]string, error) {
	if p != "/" {
		p = strings.TrimSuffix(p, "/")
	}
	children, ok := d.dirs[p]
	if !ok {
		return nil, storagedriver.PathNotFoundError{Path: p, DriverName: bundleDriverName}
	}
	return append([]string(nil), children...), nil
}

func (d *bundleDriver) Walk(ctx context.Context, p string, fn storagedriver.WalkFn, options ...func(*storagedriver.WalkOptions)) error {
	return storagedriver.WalkFallback(ctx, d, p, fn, options...)
}

// RedirectURL returns "" so distribution serves the bytes itself.
func (d *bundleDriver) RedirectURL(*http.Request, string) (string, error) { return "", nil }

func (d *bundleDriver) unsupported() error {
	return storagedriver.ErrUnsupportedMethod{DriverName: bundleDriverName}
}

func (d *bundleDriver) PutContent(context.Context, string, []byte) error { return d.unsupported() }
func (d *bundleDriver) Writer(context.Context, string, bool) (storagedriver.FileWriter, error) {
	return nil, d.unsupported()
}
func (d *bundleDriver) Move(context.Context, string, string) error { return d.unsupported() }
func (d *bundleDriver) Delete(context.Context, string) error       { return d.unsupported() }

// verifiedBlob is a whole-blob read; one that reaches the end with the right
// digest marks the blob verified for range requests.
type verifiedBlob struct {
	*verify.Reader
	digest string
	done   func(digest string)
}

func (s *verifiedBlob) Read(p []byte) (int, error) {
	n, err := s.Reader.Read(p)
	if s.Verified() && s.done != nil {
		s.done(s.digest)
		s.done = nil
	}
	return n, err
}

func (s *verifiedBlob) Close() error { return nil }

// blobReader checks a blob of the bundle as it streams from byte 0 (see
// verify.Reader: a wrong blob is never handed out whole).
func blobReader(ctx context.Context, r io.Reader, size int64, digest string) *verify.Reader {
	return verify.NewReader(ctxio.Reader(ctx, r), verify.Expect{Digest: digest, Size: size, What: "blob " + digest})
}

func hexOf(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("unsupported digest %q", digest)
	}
	return h, nil
}

// validateRepository refuses names that would escape the layout or that
// distribution could not route (its reference grammar, lower case paths).
func validateRepository(name string) error {
	if name == "" {
		return fmt.Errorf("empty repository name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." || c == ".." || strings.HasPrefix(c, "_") {
			return fmt.Errorf("invalid repository name %q", name)
		}
		if strings.Trim(c, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" {
			return fmt.Errorf("invalid repository name %q", name)
		}
	}
	return nil
}

// validateTag checks distribution's tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func validateTag(tag string) error {
	if len(tag) > 128 || tag[0] == '.' || tag[0] == '-' ||
		strings.Trim(tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" {
		return fmt.Errorf("invalid tag %q", tag)
	}
	return nil
}
