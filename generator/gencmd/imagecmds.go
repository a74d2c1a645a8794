package gencmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/pflag"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator"
	"github.com/sealpack/sealpack/generator/store"
	"github.com/sealpack/sealpack/internal/progress"
)

func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

func openStore(io *IO) (*store.Store, error) {
	return store.Open(store.DefaultDir(io.Getenv))
}

// buildImage is gen build -t NAME:TAG.
func buildImage(ctx context.Context, io *IO, args []string) error {
	fs := newFlags(io, "build", `Usage: gen build -f Kubefile -t NAME:TAG [CONTEXT]

Builds the Kubefile and stores the cluster image, with every container image
it needs, in the local store ($XDG_DATA_HOME/sealpack/images), where a later
Kubefile's FROM NAME:TAG finds it.`)
	cf := addCommonFlags(fs)
	tag := fs.StringP("tag", "t", "", "name of the stored cluster image: NAME[:TAG]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tag == "" {
		return usageError{errors.New("build: expected -t NAME:TAG")}
	}
	opts, err := cf.options(io, fs)
	if err != nil {
		return err
	}
	start := time.Now()
	e, err := generator.BuildImage(ctx, opts, *tag)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "stored %s (%s) in %.1fs\n", e.Name, e.Descriptor.Digest, time.Since(start).Seconds())
	return nil
}

func oneName(fs *pflag.FlagSet, what string) (string, error) {
	if fs.NArg() != 1 {
		return "", usageError{fmt.Errorf("%s: expected one cluster image NAME, got %q", fs.Name(), fs.Args())}
	}
	return fs.Arg(0), nil
}

// storedImages is gen images NAME: the container images a stored cluster
// image carries.
func storedImages(io *IO, n string) error {
	s, err := openStore(io)
	if err != nil {
		return err
	}
	i, err := s.Get(n)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDIGEST\tSIZE")
	for _, im := range i.Images {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", im.Name, im.Digest, progress.Bytes(im.Size))
	}
	return tw.Flush()
}

// Inspection is what gen inspect prints (as JSON).
type Inspection struct {
	Name     string            `json:"name"`
	Digest   string            `json:"digest"`
	Platform string            `json:"platform"`
	Layers   []InspectLayer    `json:"layers"`
	Env      []string          `json:"env,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Config   bundle.Config     `json:"cluster"`
	Images   []bundle.Image    `json:"images"`
}

// InspectLayer is one rootfs layer of a stored cluster image.
type InspectLayer struct {
	Digest    string `json:"digest"`
	DiffID    string `json:"diffID,omitempty"`
	Size      int64  `json:"size"`
	CreatedBy string `json:"createdBy,omitempty"`
}

func inspect(io *IO, args []string) error {
	fs := newFlags(io, "inspect", "Usage: gen inspect NAME\n\nPrints a stored cluster image's metadata as JSON: layers, env, apps, launch, labels and images.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	n, err := oneName(fs, "inspect")
	if err != nil {
		return err
	}
	s, err := openStore(io)
	if err != nil {
		return err
	}
	i, err := s.Get(n)
	if err != nil {
		return err
	}
	out := Inspection{
		Name: i.Name, Digest: i.Descriptor.Digest.String(),
		Platform: i.Config.OS + "/" + i.Config.Architecture,
		Env:      i.Config.Config.Env, Config: i.Cluster, Images: i.Images, Layers: []InspectLayer{},
	}
	if out.Images == nil {
		out.Images = []bundle.Image{}
	}
	out.Labels = map[string]string{}
	for k, v := range i.Config.Config.Labels {
		if k != store.ConfigLabel {
			out.Labels[k] = v
		}
	}
	for k, l := range i.Manifest.Layers {
		il := InspectLayer{Digest: l.Digest.String(), Size: l.Size}
		if k < len(i.Config.RootFS.DiffIDs) {
			il.DiffID = i.Config.RootFS.DiffIDs[k].String()
		}
		if k < len(i.Config.History) {
			il.CreatedBy = i.Config.History[k].CreatedBy
		}
		out.Layers = append(out.Layers, il)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(io.Stdout, "%s\n", b)
	return err
}

// remoteFlags are those of push and pull.
type remoteFlags struct {
	insecure *[]string
	arch     *string
}

func addRemoteFlags(fs *pflag.FlagSet) *remoteFlags {
	return &remoteFlags{
		insecure: fs.StringArray("insecure-registry", nil, "reach this registry HOST[:PORT] over plain HTTP (repeatable)"),
		arch:     fs.String("arch", "amd64", "platform to pull from a multi-platform index: amd64 or arm64"),
	}
}

func (r *remoteFlags) parse(s string) (name.Reference, error) {
	var opts []name.Option
	for _, h := range *r.insecure {
		if ref, err := name.ParseReference(s); err == nil && ref.Context().RegistryStr() == h {
			opts = append(opts, name.Insecure)
		}
	}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, usageError{fmt.Errorf("invalid reference %q: %w", s, err)}
	}
	return ref, nil
}

func remoteOptions() []remote.Option {
	return []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithJobs(4)}
}

func push(ctx context.Context, io *IO, args []string) error {
	fs := newFlags(io, "push", `Usage: gen push NAME REF

Uploads the stored cluster image NAME to the registry reference REF, with its
container images: each by digest in REF's repository, and an OCI index of
them attached to the cluster image (referrers, artifact type
`+store.ImagesArtifactType+`).`)
	rf := addRemoteFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageError{fmt.Errorf("push: expected NAME and REF, got %q", fs.Args())}
	}
	ref, err := rf.parse(fs.Arg(1))
	if err != nil {
		return err
	}
	s, err := openStore(io)
	if err != nil {
		return err
	}
	d, err := s.Push(ctx, fs.Arg(0), ref, remoteOptions()...)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "pushed %s to %s@%s\n", fs.Arg(0), ref.Context(), d.Digest)
	return nil
}

func pull(ctx context.Context, io *IO, args []string) error {
	fs := newFlags(io, "pull", `Usage: gen pull REF [-t NAME:TAG]

Downloads the cluster image REF and the container images it carries into the
local store, named REF (or NAME:TAG).`)
	rf := addRemoteFlags(fs)
	tag := fs.StringP("tag", "t", "", "store it under this name instead of REF")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("pull: expected one REF, got %q", fs.Args())}
	}
	ref, err := rf.parse(fs.Arg(0))
	if err != nil {
		return err
	}
	if *rf.arch != "amd64" && *rf.arch != "arm64" {
		return usageError{fmt.Errorf("--arch %q: expected amd64 or arm64", *rf.arch)}
	}
	s, err := openStore(io)
	if err != nil {
		return err
	}
	e, err := s.Pull(ctx, ref, *tag, v1.Platform{OS: "linux", Architecture: *rf.arch}, remoteOptions()...)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "pulled %s as %s (%s)\n", ref, e.Name, e.Descriptor.Digest)
	return nil
}

func rmi(io *IO, args []string) error {
	fs := newFlags(io, "rmi", "Usage: gen rmi NAME...\n\nRemoves stored cluster images and the blobs no other stored image needs.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{errors.New("rmi: expected at least one NAME")}
	}
	s, err := openStore(io)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range fs.Args() {
		if err := s.Remove(n); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(io.Stdout, "removed %s\n", n)
	}
	return errors.Join(errs...)
}

func list(io *IO, args []string) error {
	fs := newFlags(io, "list", "Usage: gen list\n\nLists the stored cluster images.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("list: unexpected arguments %q", fs.Args())}
	}
	s, err := openStore(io)
	if err != nil {
		return err
	}
	es, err := s.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDIGEST\tPLATFORM\tIMAGES\tSIZE")
	for _, e := range es {
		i, err := s.Get(e.Name)
		if err != nil {
			fmt.Fprintf(tw, "%s\t%s\t?\t?\t%v\n", e.Name, e.Descriptor.Digest, err)
			continue
		}
		size := i.Manifest.Config.Size
		for _, l := range i.Manifest.Layers {
			size += l.Size
		}
		for _, im := range i.Images {
			size += im.Size
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%d\t%s\n", e.Name, e.Descriptor.Digest.String()[:19], i.Config.OS, i.Config.Architecture, len(i.Images), progress.Bytes(size))
	}
	return tw.Flush()
}
