// Package agent is what the install engine runs on cluster hosts, from the
// copy of the program it placed there: receive, fetch and serve verified
// blobs, and unpack the rootfs. It is kept apart from the installer's other
// commands so that nodes can be given a small program: the agent binary
// (cmd/agent) carries only this package.
package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/klauspost/compress/zstd"
	"github.com/spf13/pflag"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/rootfs"
)

var digestRE = regexp.MustCompile(`^sha256:([a-f0-9]{64})$`)

// Env is what an agent command sees of the world.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Main runs an agent command (args start after "agent") and returns the exit status.
func Main(ctx context.Context, env *Env, args []string) int {
	if err := run(ctx, env, args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(env.Stderr, "agent: %v\n", err)
		return 1
	}
	return 0
}

func flags(env *Env, name, args, summary string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: %s %s\n\n%s\n\nFlags:\n%s", name, args, summary, fs.FlagUsages())
	}
	return fs
}

func parse(fs *pflag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > maxArgs {
		return fmt.Errorf("unexpected arguments: %v", fs.Args()[maxArgs:])
	}
	return nil
}

func run(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return errors.New("expected receive-blob, fetch-blob, serve-blobs or unpack")
	}
	switch args[0] {
	case "receive-blob":
		return agentReceiveBlob(ctx, env, args[1:])
	case "unpack":
		return agentUnpack(ctx, env, args[1:])
	case "serve-blobs":
		return agentServeBlobs(ctx, env, args[1:])
	case "fetch-blob":
		return agentFetchBlob(ctx, env, args[1:])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// blobPath is where a host keeps a blob: DIR/sha256/<hex>.
func blobPath(dir, digest string) (string, error) {
	m := digestRE.FindStringSubmatch(digest)
	if m == nil {
		return "", fmt.Errorf("invalid digest %q", digest)
	}
	return filepath.Join(dir, "sha256", m[1]), nil
}

// agentReceiveBlob stores stdin as a blob, only if it hashes to the digest.
func agentReceiveBlob(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "agent receive-blob", "--digest D --dir DIR", "Store standard input as blob D under DIR if it matches D.")
	digest := fs.String("digest", "", "expected digest")
	dir := fs.String("dir", "", "blob directory")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	return storeBlob(ctx, env.Stdin, *dir, *digest)
}

// agentUnpack builds the merged rootfs from layers, in order, and swaps it
// into place atomically. Layers come from the blob directory (each checked
// against its digest as it streams) or from a bundle file on the host.
func agentUnpack(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "agent unpack", "--to DIR (--bundle FILE | --blobs DIR --layer D...)", "Unpack layers into DIR atomically.")
	to := fs.String("to", "", "rootfs directory")
	bundlePath := fs.String("bundle", "", "take the layers from this bundle file")
	blobs := fs.String("blobs", "", "take the layers from this blob directory")
	layers := fs.StringArray("layer", nil, "layer digest, in order (with --blobs)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *to == "" || (*bundlePath == "") == (*blobs == "") {
		return errors.New("need --to and exactly one of --bundle or --blobs")
	}
	if *bundlePath != "" {
		b, err := bundle.Open(*bundlePath)
		if err != nil {
			return err
		}
		defer b.Close()
		return rootfs.ReplaceAtomic(*to, func(root *os.Root) error { return ApplyBundleLayers(ctx, b, root) })
	}
	return rootfs.ReplaceAtomic(*to, func(root *os.Root) error {
		for i, d := range *layers {
			if err := applyBlobLayer(ctx, root, *blobs, d, i+1); err != nil {
				return err
			}
		}
		return nil
	})
}

// ApplyBundleLayers applies every layer of the bundle, in order, to root.
// Hosts call it with no options: the setuid bits a cluster image's author
// gave its programs stay, as they do for every other byte of its verified
// layers.
func ApplyBundleLayers(ctx context.Context, b *bundle.Bundle, root *os.Root, opts ...rootfs.Option) error {
	for i, l := range b.Index.Layers {
		r, err := b.OpenLayer(ctx, l)
		if err != nil {
			return err
		}
		err = rootfs.Apply(ctx, root, fmt.Sprintf("layer %d (%s)", i+1, l.CreatedBy), r, opts...)
		r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func applyBlobLayer(ctx context.Context, root *os.Root, dir, digest string, n int) error {
	p, err := blobPath(dir, digest)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("layer %d: %w", n, err)
	}
	defer f.Close()
	h := sha256.New()
	dec, err := zstd.NewReader(io.TeeReader(f, h))
	if err != nil {
		return err
	}
	defer dec.Close()
	if err := rootfs.Apply(ctx, root, fmt.Sprintf("layer %d", n), dec); err != nil {
		return err
	}
	// The tar ends before the compressed stream does: read the rest through
	// the decoder (which may read ahead on its own goroutines), then any
	// bytes it never asked for, so every byte of the blob is hashed once.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return fmt.Errorf("layer %d: %w", n, err)
	}
	dec.Close()
	io.Copy(h, f)
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("layer %d: blob %s on disk hashes to %s", n, digest, got)
	}
	return nil
}
