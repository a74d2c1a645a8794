package images_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator/images"
	"github.com/sealpack/sealpack/generator/internal/testreg"
)

// fixtures are local image files written by a test, and their images.
type fixtures struct {
	full, bare, other, flat, nomt, archive string // OCI layouts (flat: one name per platform, no index), a docker save tarball
	web, amd, arm, ctrd, solo              v1.Image
	one, two                               v1.Image
	multiIndex                             string // digest of the multi-platform index
}

func annotate(n string) layout.Option {
	return layout.WithAnnotations(map[string]string{images.RefNameAnnotation: n})
}

func writeFixtures(t *testing.T) *fixtures {
	t.Helper()
	dir := t.TempDir()
	f := &fixtures{
		full: filepath.Join(dir, "full"), bare: filepath.Join(dir, "bare"), other: filepath.Join(dir, "other"), flat: filepath.Join(dir, "flat"),
		nomt:    filepath.Join(dir, "nomt"),
		archive: filepath.Join(dir, "images.tar"),
		web:     testreg.Image(t, "amd64", 2, 1024), amd: testreg.Image(t, "amd64", 1, 512), arm: testreg.Image(t, "arm64", 1, 512),
		ctrd: testreg.Image(t, "amd64", 1, 256), solo: testreg.Image(t, "amd64", 1, 256),
		one: testreg.Image(t, "amd64", 2, 512), two: testreg.Image(t, "amd64", 1, 512),
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// full: a full name, a multi-platform index, and containerd's naming
	// (the tag in ref.name, the name in its own annotation).
	p, err := layout.Write(f.full, empty.Index)
	must(err)
	must(p.AppendImage(f.web, annotate("docker.io/library/web:1.0")))
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: f.amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: f.arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	must(p.AppendIndex(idx, annotate("quay.io/acme/multi:2")))
	d, err := idx.Digest()
	must(err)
	f.multiIndex = d.String()
	must(p.AppendImage(f.ctrd, layout.WithAnnotations(map[string]string{
		images.RefNameAnnotation: "3.0", "io.containerd.image.name": "docker.io/acme/ctrd:3.0"})))
	// bare: one image named by a tag only.
	p, err = layout.Write(f.bare, empty.Index)
	must(err)
	must(p.AppendImage(f.solo, annotate("1.0")))
	// other: an image for arm64 only.
	p, err = layout.Write(f.other, empty.Index)
	must(err)
	must(p.AppendImage(f.arm, annotate("docker.io/acme/arm:1")))
	// flat: each platform's manifest at the top level under one name,
	// without platform descriptors: their configs say which is which.
	p, err = layout.Write(f.flat, empty.Index)
	must(err)
	must(p.AppendImage(f.arm, annotate("docker.io/acme/flat:1")))
	must(p.AppendImage(f.amd, annotate("docker.io/acme/flat:1")))
	// nomt: an index.json entry without its (required) media type.
	p, err = layout.Write(f.nomt, empty.Index)
	must(err)
	must(p.AppendImage(f.solo, annotate("docker.io/acme/nomt:1")))
	b, err := os.ReadFile(filepath.Join(f.nomt, "index.json"))
	must(err)
	var ix map[string]any
	must(json.Unmarshal(b, &ix))
	delete(ix["manifests"].([]any)[0].(map[string]any), "mediaType")
	b, err = json.Marshal(ix)
	must(err)
	must(os.WriteFile(filepath.Join(f.nomt, "index.json"), b, 0o644))
	// archive: one image under two tags, another under one.
	tags := map[name.Reference]v1.Image{}
	for n, img := range map[string]v1.Image{"acme/one:1": f.one, "acme/one:latest": f.one, "ghcr.io/acme/two:2": f.two} {
		tg, err := name.NewTag(n)
		must(err)
		tags[tg] = img
	}
	must(tarball.MultiRefWriteToFile(f.archive, tags))
	return f
}

func digest(t *testing.T, img v1.Image) string { return testreg.Digest(t, img) }

// digestOf is img's manifest digest, for test tables (random images do not fail).
func digestOf(img v1.Image) string {
	d, _ := img.Digest()
	return d.String()
}

func TestExtraImages(t *testing.T) {
	f := writeFixtures(t)
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	for _, tc := range []struct {
		name     string
		args     []string
		platform v1.Platform
		want     map[string]v1.Image // bundled name → the source image
		index    string              // Index of the pulled multi-platform image
		err      string              // else, an error containing this
	}{
		{name: "layout, every named image", args: []string{"oci:" + f.full}, want: map[string]v1.Image{
			"docker.io/library/web:1.0": f.web, "quay.io/acme/multi:2": f.amd, "docker.io/acme/ctrd:3.0": f.ctrd}, index: f.multiIndex},
		{name: "layout, one by full name", args: []string{"oci:" + f.full + ":docker.io/library/web:1.0"}, want: map[string]v1.Image{"docker.io/library/web:1.0": f.web}},
		{name: "layout, one by short name", args: []string{"oci:" + f.full + ":web:1.0"}, want: map[string]v1.Image{"docker.io/library/web:1.0": f.web}},
		{name: "layout, one by containerd name", args: []string{"oci:" + f.full + ":docker.io/acme/ctrd:3.0"}, want: map[string]v1.Image{"docker.io/acme/ctrd:3.0": f.ctrd}},
		{name: "layout index for arm64", args: []string{"oci:" + f.full + ":quay.io/acme/multi:2"}, platform: arm64,
			want: map[string]v1.Image{"quay.io/acme/multi:2": f.arm}, index: f.multiIndex},
		{name: "layout, one name per platform", args: []string{"oci:" + f.flat}, want: map[string]v1.Image{"docker.io/acme/flat:1": f.amd}},
		{name: "layout, one name per platform, arm64", args: []string{"oci:" + f.flat}, platform: arm64, want: map[string]v1.Image{"docker.io/acme/flat:1": f.arm}},
		{name: "layout entry without media type", args: []string{"oci:" + f.nomt}, want: map[string]v1.Image{"docker.io/acme/nomt:1": f.solo}},
		{name: "layout renamed", args: []string{"oci:" + f.full + ":web:1.0=127.0.0.1:5000/e2e/web:v1"}, want: map[string]v1.Image{"127.0.0.1:5000/e2e/web:v1": f.web}},
		{name: "bare tag renamed", args: []string{"oci:" + f.bare + "=docker.io/e2e/solo:1"}, want: map[string]v1.Image{"docker.io/e2e/solo:1": f.solo}},
		{name: "bare tag named and renamed", args: []string{"oci:" + f.bare + ":1.0=solo:1"}, want: map[string]v1.Image{"docker.io/library/solo:1": f.solo}},
		{name: "archive, every tag", args: []string{"docker-archive:" + f.archive}, want: map[string]v1.Image{
			"docker.io/acme/one:1": f.one, "docker.io/acme/one:latest": f.one, "ghcr.io/acme/two:2": f.two}},
		{name: "archive, one", args: []string{"docker-archive:" + f.archive + ":ghcr.io/acme/two:2"}, want: map[string]v1.Image{"ghcr.io/acme/two:2": f.two}},
		{name: "archive, one renamed", args: []string{"docker-archive:" + f.archive + ":acme/one:1=docker.io/e2e/one:v1"}, want: map[string]v1.Image{"docker.io/e2e/one:v1": f.one}},

		{name: "layout renamed and pinned", args: []string{"oci:" + f.full + ":web:1.0=docker.io/e2e/web:v1@" + digestOf(f.web)},
			want: map[string]v1.Image{"docker.io/e2e/web:v1@" + digestOf(f.web): f.web}},
		{name: "layout index renamed and pinned to the index", args: []string{"oci:" + f.full + ":quay.io/acme/multi:2=docker.io/e2e/multi:2@" + f.multiIndex},
			want: map[string]v1.Image{"docker.io/e2e/multi:2@" + f.multiIndex: f.amd}, index: f.multiIndex},

		{name: "pinned to another digest", args: []string{"oci:" + f.full + ":web:1.0=docker.io/e2e/web@sha256:" + strings.Repeat("0", 64)},
			err: "docker.io/e2e/web@sha256:" + strings.Repeat("0", 64) + " pins sha256:" + strings.Repeat("0", 64) + ", the image is " + digestOf(f.web)},
		{name: "missing layout", args: []string{"oci:/nope"}, err: "--image oci:/nope: open /nope/index.json: no such file"},
		{name: "missing archive", args: []string{"docker-archive:/nope.tar"}, err: "--image docker-archive:/nope.tar: open /nope.tar: no such file"},
		{name: "bare tag without rename", args: []string{"oci:" + f.bare}, err: `the image named "1.0" has no repository (a bare tag); name it with --image oci:` + f.bare + "=REPO:TAG"},
		{name: "no such name", args: []string{"oci:" + f.full + ":nope:1"}, err: `no image is named "nope:1"`},
		{name: "no such tag", args: []string{"docker-archive:" + f.archive + ":acme/three:3"}, err: "no image is tagged acme/three:3"},
		{name: "rename of several", args: []string{"oci:" + f.full + "=x:1"}, err: "3 images match"},
		{name: "archive rename of several", args: []string{"docker-archive:" + f.archive + "=x:1"}, err: "2 images; name one"},
		{name: "other platform", args: []string{"oci:" + f.other}, err: "docker.io/acme/arm:1: image is for linux/arm64, the target is linux/amd64"},
		{name: "index without the platform", args: []string{"oci:" + f.full + ":quay.io/acme/multi:2"}, platform: v1.Platform{OS: "linux", Architecture: "riscv64"},
			err: "no image for linux/riscv64 (the layout has [linux/amd64 linux/arm64])"},
		{name: "empty rename", args: []string{"oci:" + f.bare + "="}, err: "expected SRC=DEST"},
		{name: "bad rename", args: []string{"oci:" + f.bare + "=UP"}, err: "rename: invalid image reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.platform
			if p.OS == "" {
				p = amd64
			}
			extras, err := images.ExtraImages(context.Background(), tc.args, p, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			var pulled []images.Pulled
			for _, e := range extras {
				if e.Local == nil || e.Local.Ref.Name != e.Ref.Name {
					t.Fatalf("%s: not a local image named %s: %+v", e.Arg, e.Ref.Name, e.Local)
				}
				got[e.Ref.Name] = e.Local.Digest
				if e.Local.Index != tc.index && e.Local.Index != "" {
					t.Errorf("%s: index %s, want %s", e.Ref.Name, e.Local.Index, tc.index)
				}
				pulled = append(pulled, *e.Local)
			}
			want := map[string]string{}
			for n, img := range tc.want {
				want[n] = digest(t, img)
			}
			if !equal(got, want) {
				t.Fatalf("images = %v\nwant %v", got, want)
			}
			// In the bundle: each name, with the source's manifest and blobs.
			out, err := bundleOf(t, pulled)
			if err != nil {
				t.Fatal(err)
			}
			checkBundle(t, out, tc.want)
		})
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// bundleOf writes the images into a new bundle and returns its path.
func bundleOf(t *testing.T, pulled []images.Pulled) (string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "b.run")
	w, err := bundle.Create(out, strings.NewReader("stub"), bundle.WriterOptions{Platform: bundle.Platform{OS: "linux", Architecture: "amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := images.AddToBundle(context.Background(), w, &images.Cache{Dir: t.TempDir()}, pulled); err != nil {
		w.Abort()
		return "", err
	}
	return out, w.Commit()
}

// checkBundle reads each image back from the bundle: its record, manifest
// and blobs must be the source image's.
func checkBundle(t *testing.T, path string, want map[string]v1.Image) {
	t.Helper()
	b, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var names []string
	for _, im := range b.Index.Images {
		names = append(names, im.Name)
		img, ok := want[im.Name]
		if !ok {
			t.Errorf("unexpected image %s", im.Name)
			continue
		}
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		if im.Digest != digest(t, img) || !bytes.Equal(readBlob(t, b, im.Digest), raw) {
			t.Errorf("%s: manifest %s differs from the source's %s", im.Name, im.Digest, digest(t, img))
		}
		m, _ := img.Manifest()
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			readBlob(t, b, d.Digest.String())
		}
	}
	sort.Strings(names)
	if len(names) != len(want) {
		t.Errorf("bundle images %v, want %d", names, len(want))
	}
}

func readBlob(t *testing.T, b *bundle.Bundle, digest string) []byte {
	t.Helper()
	r, _, err := b.OpenBlob(digest)
	if err != nil {
		t.Fatalf("blob %s: %v", digest, err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("blob %s: %v", digest, err)
	}
	return data
}

func TestLocalImagesCorrupt(t *testing.T) {
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, f *fixtures) (arg, file, digest string)
		atOpen  bool // found when the image is opened, else when it is bundled
	}{
		{name: "layout layer", corrupt: func(t *testing.T, f *fixtures) (string, string, string) {
			m, _ := f.web.Manifest()
			d := m.Layers[1].Digest
			p := filepath.Join(f.full, "blobs", "sha256", d.Hex)
			overwrite(t, p)
			return "oci:" + f.full + ":web:1.0", p, d.String()
		}},
		{name: "layout manifest", atOpen: true, corrupt: func(t *testing.T, f *fixtures) (string, string, string) {
			d, _ := f.web.Digest()
			p := filepath.Join(f.full, "blobs", "sha256", d.Hex)
			overwrite(t, p)
			return "oci:" + f.full + ":web:1.0", p, d.String()
		}},
		{name: "layout config", atOpen: true, corrupt: func(t *testing.T, f *fixtures) (string, string, string) {
			d, _ := f.web.ConfigName()
			p := filepath.Join(f.full, "blobs", "sha256", d.Hex)
			overwrite(t, p)
			return "oci:" + f.full + ":web:1.0", p, d.String()
		}},
		{name: "layout layer missing", atOpen: true, corrupt: func(t *testing.T, f *fixtures) (string, string, string) {
			m, _ := f.web.Manifest()
			d := m.Layers[0].Digest
			p := filepath.Join(f.full, "blobs", "sha256", d.Hex)
			os.Remove(p)
			return "oci:" + f.full + ":web:1.0", p, ""
		}},
		{name: "archive layer", corrupt: func(t *testing.T, f *fixtures) (string, string, string) {
			cf, _ := f.two.ConfigFile()
			m, _ := f.two.Manifest()
			rewriteTar(t, f.archive, m.Layers[0].Digest.Hex+".tar.gz", gzipped(t, []byte("not the layer")))
			return "docker-archive:" + f.archive + ":ghcr.io/acme/two:2", f.archive, cf.RootFS.DiffIDs[0].String()
		}},
		{name: "archive config", atOpen: true, corrupt: func(t *testing.T, f *fixtures) (string, string, string) {
			d, _ := f.two.ConfigName()
			rewriteTar(t, f.archive, d.String(), []byte(`{"architecture":"amd64","os":"linux"}`))
			return "docker-archive:" + f.archive + ":ghcr.io/acme/two:2", f.archive, d.String()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := writeFixtures(t)
			arg, file, dg := tc.corrupt(t, f)
			extras, err := images.ExtraImages(context.Background(), []string{arg}, amd64, nil)
			if err == nil {
				if tc.atOpen {
					t.Fatalf("opened a corrupt source")
				}
				_, err = bundleOf(t, []images.Pulled{*extras[0].Local})
			} else if !tc.atOpen {
				t.Fatalf("open: %v", err)
			}
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), dg) {
				t.Fatalf("err = %v, want it to name %s and %s", err, file, dg)
			}
		})
	}
}

// overwrite replaces a file's content with as many other bytes.
func overwrite(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0x55
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rewriteTar replaces the content of one member of a tarball.
func rewriteTar(t *testing.T, path, member string, body []byte) {
	t.Helper()
	in, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(in)), tar.NewWriter(&out)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if h.Name == member {
			data, found = body, true
			h.Size = int64(len(body))
		}
		tw.WriteHeader(h)
		tw.Write(data)
	}
	tw.Close()
	if !found {
		t.Fatalf("%s has no member %s", path, member)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseLocal(t *testing.T) {
	tmp := t.TempDir()
	os.Mkdir(filepath.Join(tmp, "a:b"), 0o755)
	for _, tc := range []struct {
		in, dir string
		want    images.Local
		ok      bool
	}{
		{in: "oci:dir", want: images.Local{Kind: "oci", Path: "dir"}, ok: true},
		{in: "oci:dir:1.0", want: images.Local{Kind: "oci", Path: "dir", Name: "1.0"}, ok: true},
		{in: "oci:dir:docker.io/library/nginx:1.27", want: images.Local{Kind: "oci", Path: "dir", Name: "docker.io/library/nginx:1.27"}, ok: true},
		{in: "docker-archive:a.tar:nginx:1", want: images.Local{Kind: "docker-archive", Path: "a.tar", Name: "nginx:1"}, ok: true},
		{in: "oci:sub:x", dir: "ctx", want: images.Local{Kind: "oci", Path: "ctx/sub", Name: "x"}, ok: true},
		{in: "oci:/abs", dir: "ctx", want: images.Local{Kind: "oci", Path: "/abs"}, ok: true},
		{in: "oci:" + tmp + "/a:b", want: images.Local{Kind: "oci", Path: tmp + "/a:b"}, ok: true},
		{in: "nginx:1.27"},
		{in: "ocifoo/bar:1"},
	} {
		got, ok := images.ParseLocal(tc.in, tc.dir)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseLocal(%q, %q) = %+v, %v; want %+v, %v", tc.in, tc.dir, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDiscoverPinnedFromLocal(t *testing.T) {
	f := writeFixtures(t)
	root := t.TempDir()
	list := strings.Join([]string{
		"quay.io/acme/multi:2@" + f.multiIndex,    // the index the layout holds
		"quay.io/acme/multi@" + digestOf(f.amd),   // its amd64 manifest
		"quay.io/acme/multi:2@" + digestOf(f.arm), // not the target's
		"quay.io/other/multi:2@" + f.multiIndex,   // another repository
		"quay.io/acme/multi:3",                    // not pinned
	}, "\n")
	if err := os.WriteFile(filepath.Join(root, "imageList"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	found, err := images.Discover(context.Background(), images.DiscoverOptions{Root: root, Extra: []string{"oci:" + f.full + ":quay.io/acme/multi:2"}})
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]string{}
	for _, x := range found {
		if x.Local != nil {
			local[x.Ref.Name] = x.Local.Digest
		}
	}
	amd := digestOf(f.amd)
	want := map[string]string{"quay.io/acme/multi:2": amd, "quay.io/acme/multi:2@" + f.multiIndex: amd, "quay.io/acme/multi@" + amd: amd}
	if !equal(local, want) {
		t.Errorf("supplied locally: %v\nwant %v", local, want)
	}
}
