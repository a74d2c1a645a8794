package generator

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator/images"
	"github.com/sealpack/sealpack/generator/kubefile"
	"github.com/sealpack/sealpack/generator/store"
)

// ConfigLabel is the image config label holding a sealpack cluster image's
// metadata (bundle.Config as JSON).
const ConfigLabel = store.ConfigLabel

// SealerExtension is the annotation (or label) Sealer v0.11 keeps its
// cluster image metadata in.
const SealerExtension = "sealer.image.extension"

// base is one FROM image, opened.
type base struct {
	ref    string
	img    v1.Image
	config bundle.Config
	// carried are the container images a stored cluster image carries;
	// their blobs are read from the store, not fetched.
	carried []images.Pulled
}

// openBase opens a FROM reference: oci:DIR[:TAG], docker-archive:FILE or a
// registry reference.
func (o *Options) openBase(ctx context.Context, b kubefile.Base) (*base, error) {
	platform := v1.Platform{OS: "linux", Architecture: o.Arch}
	if b.Platform != "" {
		p, err := v1.ParsePlatform(b.Platform)
		if err != nil {
			return nil, err
		}
		platform = *p
	}
	if platform.OS != "linux" || platform.Architecture != o.Arch {
		return nil, fmt.Errorf("--platform %s differs from the target linux/%s: every FROM image must be for the target platform", platform, o.Arch)
	}
	var (
		img     v1.Image
		err     error
		carried []images.Pulled
	)
	// oci:DIR[:NAME] and docker-archive:FILE[:REF] are read from the build
	// context, as COPY reads, by the code that reads gen --image's.
	local, isLocal := images.ParseLocal(b.Ref, o.Context)
	switch {
	case isLocal:
		img, err = local.Image(ctx, platform)
	default:
		var st *stored
		if st, err = o.fromStore(b.Ref); err != nil || st != nil {
			if st != nil {
				img, carried = st.img, st.carried
			}
			break
		}
		var r images.Ref
		r, err = images.ParseRef(b.Ref, o.insecure())
		if err == nil {
			opts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(platform), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
			if o.Transport != nil {
				opts = append(opts, remote.WithTransport(o.Transport))
			}
			img, err = remote.Image(r.Reference(), opts...)
		}
	}
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	if cf.Architecture != "" && (cf.OS != platform.OS || cf.Architecture != platform.Architecture) {
		return nil, fmt.Errorf("image is for %s/%s, the target is %s", cf.OS, cf.Architecture, platform)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	c, err := clusterConfig(cf, m.Annotations)
	if err != nil {
		return nil, err
	}
	return &base{ref: b.Ref, img: img, config: c, carried: carried}, nil
}

type stored struct {
	img     v1.Image
	carried []images.Pulled
}

// fromStore opens ref from the local image store, or returns nil when the
// store has no image of that name.
func (o *Options) fromStore(ref string) (*stored, error) {
	if _, err := os.Stat(filepath.Join(o.StoreDir, "index.json")); err != nil {
		return nil, nil
	}
	if _, err := store.Normalize(ref); err != nil {
		return nil, nil // not a name the store can hold: let the registry path report it
	}
	s, err := store.Open(o.StoreDir)
	if err != nil {
		return nil, err
	}
	i, err := s.Get(ref)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	carried, err := s.Carried(i)
	if err != nil {
		return nil, err
	}
	return &stored{img: i.V1(), carried: carried}, nil
}

// sealerExtension is the part of Sealer's image extension we read.
type sealerExtension struct {
	Type         string `json:"type"`
	Applications []struct {
		Name        string   `json:"name"`
		Type        string   `json:"type"`
		LaunchFiles []string `json:"launchfiles"`
	} `json:"applications"`
	Launch struct {
		Cmds     []string `json:"cmds"`
		AppNames []string `json:"app_names"`
	} `json:"launch"`
	Env map[string]string `json:"env"`
}

// clusterConfig reads a base image's cluster metadata: sealpack's own
// label, else Sealer's extension, else the plain config's env and labels.
func clusterConfig(cf *v1.ConfigFile, annotations map[string]string) (bundle.Config, error) {
	var c bundle.Config
	if s := cf.Config.Labels[ConfigLabel]; s != "" {
		if err := json.Unmarshal([]byte(s), &c); err != nil {
			return c, fmt.Errorf("label %s: %w", ConfigLabel, err)
		}
		c.Env = mergeEnv(cf.Config.Env, c.Env)
		return c, nil
	}
	ext := annotations[SealerExtension]
	if ext == "" {
		ext = cf.Config.Labels[SealerExtension]
	}
	c.Env = append(c.Env, cf.Config.Env...)
	for k, v := range cf.Config.Labels {
		if k == SealerExtension {
			continue
		}
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		c.Labels[k] = v
	}
	if ext == "" {
		return c, nil
	}
	var se sealerExtension
	if err := json.Unmarshal([]byte(ext), &se); err != nil {
		return c, fmt.Errorf("%s: %w", SealerExtension, err)
	}
	for _, a := range se.Applications {
		paths := []string{}
		for _, f := range a.LaunchFiles {
			paths = append(paths, "application/apps/"+a.Name+"/"+f)
		}
		c.Apps = append(c.Apps, bundle.App{Name: a.Name, Type: a.Type, Paths: paths})
	}
	c.Launch, c.Cmds = se.Launch.AppNames, se.Launch.Cmds
	keys := make([]string, 0, len(se.Env))
	for k := range se.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.Env = mergeEnv(c.Env, []string{k + "=" + se.Env[k]})
	}
	return c, nil
}

// mergeEnv sets each KEY=VALUE of add in env; later values win.
func mergeEnv(env, add []string) []string {
	out := append([]string(nil), env...)
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// mergeConfig lays b over a: env by key, labels by key, apps by name; a
// later base's launch, commands and Kubernetes version win when it has them.
func mergeConfig(a, b bundle.Config) bundle.Config {
	a.Env = mergeEnv(a.Env, b.Env)
	for k, v := range b.Labels {
		if a.Labels == nil {
			a.Labels = map[string]string{}
		}
		a.Labels[k] = v
	}
	a.Apps = mergeApps(a.Apps, b.Apps)
	a.CNI = mergeApps(a.CNI, b.CNI)
	a.CSI = mergeApps(a.CSI, b.CSI)
	if len(b.Launch) > 0 {
		a.Launch = b.Launch
	}
	if len(b.Cmds) > 0 {
		a.Cmds = b.Cmds
	}
	if b.KubeVersion != "" {
		a.KubeVersion = b.KubeVersion
	}
	if b.Maintainer != "" {
		a.Maintainer = b.Maintainer
	}
	return a
}

func mergeApps(a, b []bundle.App) []bundle.App {
	out := append([]bundle.App(nil), a...)
next:
	for _, x := range b {
		for i := range out {
			if out[i].Name == x.Name {
				// A Kubefile naming a base's app (APPCMDS, APPENV) keeps
				// the base's files and type.
				if len(x.Paths) == 0 {
					x.Paths, x.Type = out[i].Paths, out[i].Type
				}
				if len(x.Cmds) == 0 {
					x.Cmds = out[i].Cmds
				}
				x.Env = mergeEnv(out[i].Env, x.Env)
				out[i] = x
				continue next
			}
		}
		out = append(out, x)
	}
	return out
}

// MergeConflict is a path that more than one FROM image provides.
type MergeConflict struct {
	Path     string
	Old, New string // the base images
}

func (c MergeConflict) String() string {
	return fmt.Sprintf("%s: from %s replaces the one from %s", c.Path, c.New, c.Old)
}

// addBases merges the FROM images into the working rootfs and the bundle:
// their layers in order, re-encoded as sealpack layers; later files win and
// every path given by two images is a conflict.
func (b *builder) addBases(ctx context.Context, bases []*base) ([]MergeConflict, error) {
	owner := map[string]string{} // non-directory path → base that provided it
	var conflicts []MergeConflict
	for _, bs := range bases {
		layers, err := bs.img.Layers()
		if err != nil {
			return nil, fmt.Errorf("FROM %s: %w", bs.ref, err)
		}
		mine := map[string]bool{}
		for i, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				return nil, fmt.Errorf("FROM %s: layer %d: %w", bs.ref, i+1, err)
			}
			pr, pw := io.Pipe()
			names := make(chan []string, 1)
			go func() {
				var ns []string
				tr := tar.NewReader(pr)
				for {
					h, err := tr.Next()
					if err != nil {
						_, _ = io.Copy(io.Discard, pr)
						break
					}
					if h.Typeflag != tar.TypeDir {
						ns = append(ns, strings.TrimPrefix(path.Clean("/"+h.Name), "/"))
					}
				}
				names <- ns
			}()
			err = b.addTar(ctx, io.TeeReader(rc, pw), fmt.Sprintf("FROM %s layer %d", bs.ref, i+1))
			pw.CloseWithError(err)
			rc.Close()
			ns := <-names
			if err != nil {
				return nil, fmt.Errorf("FROM %s: layer %d: %w", bs.ref, i+1, err)
			}
			for _, n := range ns {
				dir, file := path.Split(n)
				if strings.HasPrefix(file, ".wh.") {
					delete(mine, path.Join(dir, strings.TrimPrefix(file, ".wh.")))
					continue
				}
				mine[n] = true
			}
		}
		var ps []string
		for p := range mine {
			ps = append(ps, p)
		}
		sort.Strings(ps)
		for _, p := range ps {
			if old, ok := owner[p]; ok && old != bs.ref {
				conflicts = append(conflicts, MergeConflict{Path: p, Old: old, New: bs.ref})
			}
			owner[p] = bs.ref
		}
	}
	return conflicts, nil
}
