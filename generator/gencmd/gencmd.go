// Package gencmd is gen's command line: flags, subcommands and messages.
// The work is done by package generator.
package gencmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/sealpack/sealpack/assets"
	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator"
	"github.com/sealpack/sealpack/internal/progress"
	"github.com/sealpack/sealpack/internal/sshsig"
	"github.com/sealpack/sealpack/internal/version"
)

// IO is what gen sees of the world.
type IO struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

type usageError struct{ error }

// Main runs gen with args (without the program name) and returns the exit status.
func Main(ctx context.Context, io *IO, args []string) int {
	var err error
	switch {
	case len(args) > 0 && args[0] == "keygen":
		err = keygen(io, args[1:])
	case len(args) > 0 && args[0] == "sign":
		err = signCmd(ctx, io, args[1:])
	case len(args) > 0 && args[0] == "verify":
		err = verifyCmd(ctx, io, args[1:])
	case len(args) > 0 && args[0] == "version":
		fmt.Fprintf(io.Stdout, "sealpack gen %s (bundle format %d, stubs: %s)\n", version.Version, bundle.FormatVersion, strings.Join(assets.Arches(), ", "))
	case len(args) > 0 && args[0] == "images":
		err = imagesCmd(ctx, io, args[1:])
	case len(args) > 0 && args[0] == "build":
		err = buildImage(ctx, io, args[1:])
	case len(args) > 0 && args[0] == "inspect":
		err = inspect(io, args[1:])
	case len(args) > 0 && args[0] == "push":
		err = push(ctx, io, args[1:])
	case len(args) > 0 && args[0] == "pull":
		err = pull(ctx, io, args[1:])
	case len(args) > 0 && args[0] == "rmi":
		err = rmi(io, args[1:])
	case len(args) > 0 && args[0] == "list":
		err = list(io, args[1:])
	default:
		err = build(ctx, io, args)
	}
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return 0
	}
	fmt.Fprintf(io.Stderr, "gen: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func newFlags(io *IO, name, usage string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Stderr)
	fs.Usage = func() { fmt.Fprintf(io.Stderr, "%s\n\nFlags:\n%s", usage, fs.FlagUsages()) }
	return fs
}

func build(ctx context.Context, io *IO, args []string) error {
	fs := newFlags(io, "gen", `Usage: gen -f Kubefile -o installer.run [CONTEXT]

Builds one self-contained installer from a Kubefile. CONTEXT, the folder COPY
and APP sources are read from, defaults to the Kubefile's folder.

--image adds a container image to those the manifests, charts and imageList
files name: a registry REF; oci:DIR[:NAME], every image of an OCI layout named
by an org.opencontainers.image.ref.name annotation, or the one named NAME;
docker-archive:FILE[:REF], every tagged image of a docker save tarball, or REF.
SRC=DEST bundles SRC under the name DEST (a bare-tag name needs one); an image
the manifests name DEST is then taken from SRC, never fetched. Local images
are read for --arch and every blob is digest-checked.

Other commands:
  gen build -f Kubefile -t NAME:TAG [CONTEXT]
                            store a cluster image (with its container images) for FROM NAME:TAG
  gen images --discover -f Kubefile [CONTEXT]
                            list the container images the Kubefile needs and where they are named
  gen images NAME           the container images a stored cluster image carries
  gen inspect NAME          a stored cluster image's metadata (JSON)
  gen push NAME REF         upload a stored cluster image and its container images
  gen pull REF [-t NAME]    download a cluster image and its container images into the store
  gen rmi NAME...           remove stored cluster images
  gen list                  list stored cluster images
  gen keygen --out NAME [--identity ID]
                            make an ed25519 signing key: NAME.key, NAME.pub, NAME.allowed_signers
  gen sign --key NAME.key installer.run
                            sign an installer (and its parts): installer.run.sig, ...
  gen verify --allowed-signers NAME.allowed_signers installer.run
                            check an installer's signature, every digest, and that its
                            programs are the ones this gen embeds
  gen version               print the version`)
	cf := addCommonFlags(fs)
	out := fs.StringP("output", "o", "installer.run", "the installer to write")
	signKey := fs.String("sign-key", "", "sign the installer with this key (from gen keygen, or an OpenSSH key): writes OUT.sig (and one per part)")
	split := fs.String("split", "", "split into files smaller than SIZE (e.g. 4G for FAT32): OUT, OUT.part2, ...")
	stubPath := fs.String("stub", "", "use this installer stub instead of the embedded one (for development)")
	agentPath := fs.String("agent", "", "use this host agent instead of the embedded one (for development)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	opts, err := cf.options(io, fs)
	if err != nil {
		return err
	}
	opts.Output = *out
	arch := &opts.Arch
	if *split != "" {
		if opts.SplitSize, err = ParseSize(*split); err != nil {
			return usageError{fmt.Errorf("--split: %w", err)}
		}
	}
	// The key is read before the build, so a wrong key or passphrase fails
	// at once and not after an hour of building.
	var signer ssh.Signer
	if *signKey != "" {
		if signer, err = sshsig.LoadSigner(*signKey, askPassphrase(*signKey)); err != nil {
			return err
		}
	}
	if *stubPath != "" {
		opts.Stub, err = os.ReadFile(*stubPath)
	} else {
		opts.Stub, err = assets.Stub(*arch)
		opts.Agent = assets.Agent(*arch)
	}
	if err != nil {
		return err
	}
	if *agentPath != "" {
		if opts.Agent, err = os.ReadFile(*agentPath); err != nil {
			return err
		}
	}
	if epoch := io.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		sec, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return usageError{fmt.Errorf("SOURCE_DATE_EPOCH %q: not a number of seconds", epoch)}
		}
		opts.ModTime = time.Unix(sec, 0)
	}
	start := time.Now()
	res, err := generator.Build(ctx, opts)
	if err != nil {
		return err
	}
	if err := signInstaller(ctx, io, res.Output, signer); err != nil {
		return err
	}
	var size int64
	for k := 1; ; k++ {
		fi, err := os.Stat(bundle.PartPath(res.Output, k))
		if err != nil {
			break
		}
		size += fi.Size()
	}
	fmt.Fprintf(io.Stdout, "wrote %s: %d layers, %d images, %s, linux/%s, in %.1fs\n",
		res.Output, len(res.Index.Layers), len(res.Index.Images), progress.Bytes(size), *arch, time.Since(start).Seconds())
	return nil
}

// ParseSize reads sizes like 4G, 700M, 512K or 1048576 (binary units).
func ParseSize(s string) (int64, error) {
	units := map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		if m, ok := units[t[n-1]]; ok {
			mult, t = m, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: want a positive number with an optional K, M, G or T suffix", s)
	}
	return v * mult, nil
}

// commonFlags are those of every command that builds a rootfs.
type commonFlags struct {
	file                                 *string
	arch                                 *string
	buildArgs, images, exclude, insecure *[]string
	offline                              *bool
	jobs                                 *int
	mergeConflict                        *string
}

func addCommonFlags(fs *pflag.FlagSet) *commonFlags {
	return &commonFlags{
		file:          fs.StringP("file", "f", "Kubefile", "the Kubefile to build"),
		arch:          fs.String("arch", "amd64", "target architecture: amd64 or arm64"),
		buildArgs:     fs.StringArray("build-arg", nil, "set an ARG: KEY=VALUE (repeatable)"),
		images:        fs.StringArray("image", nil, "also bundle this container image: REF, oci:DIR[:NAME] or docker-archive:FILE[:REF], each maybe =DEST to bundle it as DEST (repeatable)"),
		exclude:       fs.StringArray("exclude-image", nil, "leave out this image; without a tag, every tag of its repository (repeatable)"),
		insecure:      fs.StringArray("insecure-registry", nil, "reach this registry HOST[:PORT] over plain HTTP (repeatable)"),
		offline:       fs.Bool("offline", false, "fetch nothing: resolve tags and read blobs from the local cache only"),
		jobs:          fs.Int("jobs", 8, "concurrent registry downloads"),
		mergeConflict: fs.String("merge-conflict", "warn", "a path given by two FROM images: warn (later wins) or error"),
	}
}

func (c *commonFlags) options(io *IO, fs *pflag.FlagSet) (generator.Options, error) {
	opts := generator.Options{
		Kubefile: *c.file, Arch: *c.arch, CreatedBy: "sealpack gen " + version.Version,
		Warnings: io.Stderr, Progress: io.Stderr, Getenv: io.Getenv,
		Images: *c.images, ExcludeImages: *c.exclude, Insecure: *c.insecure,
		Offline: *c.offline, Jobs: *c.jobs, MergeConflict: *c.mergeConflict,
	}
	if f, ok := io.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && io.Getenv("TERM") != "dumb" {
		opts.ProgressBars = true
	}
	if m := *c.mergeConflict; m != "warn" && m != "error" {
		return opts, usageError{fmt.Errorf("--merge-conflict %q: expected warn or error", m)}
	}
	if fs.NArg() > 1 {
		return opts, usageError{fmt.Errorf("expected at most one CONTEXT argument, got %q", fs.Args())}
	}
	if fs.NArg() == 1 {
		opts.Context = fs.Arg(0)
	}
	if opts.Arch != "amd64" && opts.Arch != "arm64" {
		return opts, usageError{fmt.Errorf("--arch %q: expected amd64 or arm64", opts.Arch)}
	}
	if *c.jobs < 1 {
		return opts, usageError{fmt.Errorf("--jobs %d: expected at least 1", *c.jobs)}
	}
	opts.BuildArgs = map[string]string{}
	for _, kv := range *c.buildArgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return opts, usageError{fmt.Errorf("--build-arg %q: expected KEY=VALUE", kv)}
		}
		opts.BuildArgs[k] = v
	}
	return opts, nil
}

func imagesCmd(ctx context.Context, io *IO, args []string) error {
	fs := newFlags(io, "images", `Usage: gen images --discover -f Kubefile [CONTEXT]
       gen images NAME

With NAME, lists the container images the stored cluster image NAME carries.
With --discover, builds the Kubefile's rootfs in a temporary folder (nothing is fetched or
written) and prints every container image it needs, with where it is named:
manifests, apps, Helm charts, imageList files and --image.`)
	cf := addCommonFlags(fs)
	discover := fs.Bool("discover", false, "discover the images of a Kubefile")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if !*discover {
		if fs.NArg() != 1 {
			return usageError{errors.New("images: expected a stored cluster image NAME, or --discover -f Kubefile")}
		}
		return storedImages(io, fs.Arg(0))
	}
	opts, err := cf.options(io, fs)
	if err != nil {
		return err
	}
	found, err := generator.Discover(ctx, opts)
	if err != nil {
		return err
	}
	for _, f := range found {
		fmt.Fprintln(io.Stdout, f.Ref.Name)
		for _, s := range f.Sources {
			fmt.Fprintf(io.Stdout, "\t%s\n", s)
		}
	}
	fmt.Fprintf(io.Stderr, "%d images\n", len(found))
	return nil
}
