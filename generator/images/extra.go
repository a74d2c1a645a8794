package images

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Extra is one image given with gen --image.
type Extra struct {
	Arg string // the flag's value
	// Ref is the name the bundle carries it as; a renamed registry image
	// is fetched from Ref.Source().
	Ref Ref
	// Local is the image when it is read from a local file (oci:,
	// docker-archive:): nothing is fetched for it.
	Local *Pulled
}

// Renamed says whether the value gave the bundled name (SRC=DEST).
func (e Extra) Renamed() bool { return strings.Contains(e.Arg, "=") }

// ExtraImages reads gen --image values:
//
//	REF                              fetch REF from its registry
//	oci:DIR[:NAME]                   every named image of an OCI layout, or NAME
//	docker-archive:FILE[:REF]        every tagged image of a docker save tarball, or REF
//	SRC=DEST                         any of those, bundled as DEST
//
// Local files are opened for platform: manifests, indexes and configs are
// read and digest-checked; layers are read when bundled. Relative paths
// are read from the working directory. Errors name the value.
func ExtraImages(ctx context.Context, args []string, platform v1.Platform, insecure map[string]bool) ([]Extra, error) {
	var out []Extra
	for _, arg := range args {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		es, err := extraImage(ctx, arg, platform, insecure)
		if err != nil {
			return nil, fmt.Errorf("--image %s: %w", arg, err)
		}
		out = append(out, es...)
	}
	return out, nil
}

func extraImage(ctx context.Context, arg string, platform v1.Platform, insecure map[string]bool) ([]Extra, error) {
	src, dest := arg, ""
	if i := strings.LastIndex(arg, "="); i >= 0 {
		src, dest = arg[:i], arg[i+1:]
		if src == "" || dest == "" {
			return nil, fmt.Errorf("expected SRC=DEST")
		}
	}
	var destRef Ref
	if dest != "" {
		r, err := ParseRef(dest, insecure)
		if err != nil {
			return nil, fmt.Errorf("rename: %w", err)
		}
		destRef = r
	}
	l, ok := ParseLocal(src, "")
	if !ok {
		r, err := ParseRef(src, insecure)
		if err != nil {
			return nil, err
		}
		if dest != "" {
			r = Renamed(r, destRef)
		}
		return []Extra{{Arg: arg, Ref: r}}, nil
	}
	ims, err := l.open(ctx, platform, dest != "" || l.Name != "")
	if err != nil {
		return nil, err
	}
	out := make([]Extra, 0, len(ims))
	for _, im := range ims {
		r := destRef
		if dest == "" {
			if im.ref == nil {
				return nil, fmt.Errorf("the image named %q has no repository (a bare tag); name it with --image %s=REPO:TAG", im.name, src)
			}
			r = *im.ref
		}
		p, err := im.pulled(r)
		if err != nil {
			return nil, err
		}
		if r.Digest != "" && r.Digest != p.Digest && r.Digest != p.Index {
			return nil, fmt.Errorf("%s pins %s, the image is %s", r.Name, r.Digest, p.Digest)
		}
		out = append(out, Extra{Arg: arg, Ref: r, Local: &p})
	}
	return out, nil
}
