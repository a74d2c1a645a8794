// Package images finds the container images a cluster image needs (in its
// manifests, apps, Helm charts and imageList files), fetches them for one
// platform through a content-addressed cache, and stores them in a bundle.
package images

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Ref is a parsed, normalised image reference.
type Ref struct {
	// Name is the canonical form users recognise: docker.io/library/nginx:1.27.
	Name string
	// Registry is the registry host, docker.io for Docker Hub.
	Registry string
	// Repository is the path inside the registry, library/nginx: what the
	// bundle's registry serves it as.
	Repository string
	Tag        string // empty when only a digest is given
	Digest     string // sha256:..., when pinned
	ref        name.Reference
	// src is where the image is fetched from when it is bundled under
	// another name (gen --image SRC=DEST); nil means ref itself.
	src *Ref
}

// ParseRef validates s as a container image reference (Docker's rules:
// lower-case repository, optional registry, tag and digest). insecure lists
// registries reached over plain HTTP.
func ParseRef(s string, insecure map[string]bool) (Ref, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Ref{}, fmt.Errorf("empty image reference")
	}
	var opts []name.Option
	if host, _, _ := strings.Cut(s, "/"); insecure[host] {
		opts = append(opts, name.Insecure)
	}
	// ggcr rejects "repo:tag@digest"; Docker accepts it and pulls the digest.
	tag := ""
	if at := strings.Index(s, "@"); at >= 0 {
		repo := s[:at]
		if c := strings.LastIndex(repo, ":"); c > strings.LastIndex(repo, "/") {
			tag, s = repo[c+1:], repo[:c]+s[at:]
		}
	}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return Ref{}, fmt.Errorf("invalid image reference %q: %w", s, err)
	}
	r := Ref{ref: ref, Repository: ref.Context().RepositoryStr(), Registry: ref.Context().RegistryStr()}
	if r.Registry == name.DefaultRegistry {
		r.Registry = "docker.io"
	}
	switch v := ref.(type) {
	case name.Tag:
		r.Tag = v.TagStr()
	case name.Digest:
		r.Digest = v.DigestStr()
		if tag != "" {
			if _, err := name.NewTag(r.Registry+"/"+r.Repository+":"+tag, opts...); err != nil {
				return Ref{}, fmt.Errorf("invalid image reference %q: bad tag %q", s, tag)
			}
			r.Tag = tag
		}
	}
	r.Name = r.Registry + "/" + r.Repository
	if r.Tag != "" {
		r.Name += ":" + r.Tag
	}
	if r.Digest != "" {
		r.Name += "@" + r.Digest
	}
	return r, nil
}

// Reference is the go-containerregistry form of r.
func (r Ref) Reference() name.Reference { return r.ref }

// Renamed is dest fetched from src: the registry is asked for src, the
// bundle carries it as dest.
func Renamed(src, dest Ref) Ref {
	src.src = nil
	dest.src = &src
	return dest
}

// Source is the reference the registry is asked for: r itself, or the
// source of a rename.
func (r Ref) Source() Ref {
	if r.src != nil {
		return *r.src
	}
	return r
}

// describe names r in messages: "DEST (from SRC)" for a rename.
func (r Ref) describe() string {
	if r.src != nil {
		return r.Name + " (from " + r.src.Name + ")"
	}
	return r.Name
}

func (r Ref) String() string { return r.Name }
