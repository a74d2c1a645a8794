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

func run(ctx context.Context, env *Env, args []string) error {
	c, err := Parse(args, env.Stderr)
	if err != nil {
		return err
	}
	return c.run(ctx, env)
}

// blobPath is where a host keeps a blob: DIR/sha256/<hex>.
func blobPath(dir, digest string) (string, error) {
	m := digestRE.FindStringSubmatch(digest)
	if m == nil {
		return "", fmt.Errorf("invalid digest %q", digest)
	}
	return filepath.Join(dir, "sha256", m[1]), nil
}

func (c ReceiveBlob) run(ctx context.Context, env *Env) error {
	return storeBlob(ctx, env.Stdin, c.Dir, c.Digest)
}

func (c Unpack) run(ctx context.Context, _ *Env) error {
	if c.To == "" || (c.Bundle == "") == (c.Blobs == "") {
		return errors.New("unpack: need --to and exactly one of --bundle or --blobs")
	}
	if c.Bundle != "" {
		b, err := bundle.Open(c.Bundle)
		if err != nil {
			return err
		}
		defer b.Close()
		return rootfs.ReplaceAtomic(c.To, func(root *os.Root) error { return ApplyBundleLayers(ctx, b, root) })
	}
	return rootfs.ReplaceAtomic(c.To, func(root *os.Root) error {
		for i, d := range c.Layers {
			if err := applyBlobLayer(ctx, root, c.Blobs, d, i+1); err != nil {
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
