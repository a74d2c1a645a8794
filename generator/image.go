package generator

import (
	"context"
	"fmt"
	"os"

	"github.com/sealpack/sealpack/generator/store"
)

// placeholderStub stands in for the installer program in the bundle a
// stored cluster image is made from: the store keeps layers, metadata and
// images, never a stub.
const placeholderStub = "#!/bin/sh\necho 'sealpack cluster image, not an installer' >&2\nexit 1\n"

// BuildImage builds the Kubefile as Build does and stores the result in
// the local store (opts.StoreDir) as the cluster image name, with every
// container image it needs, for later FROM, push and inspect.
func BuildImage(ctx context.Context, opts Options, name string) (store.Entry, error) {
	if _, err := store.Normalize(name); err != nil {
		return store.Entry{}, fmt.Errorf("-t %s: %w", name, err)
	}
	if err := opts.defaults(); err != nil {
		return store.Entry{}, err
	}
	s, err := store.Open(opts.StoreDir)
	if err != nil {
		return store.Entry{}, err
	}
	tmp, err := os.MkdirTemp(s.Dir(), ".build-")
	if err != nil {
		return store.Entry{}, err
	}
	defer os.RemoveAll(tmp)
	opts.Output = tmp + "/image.run"
	opts.Stub, opts.SplitSize = []byte(placeholderStub), 0
	if _, err := Build(ctx, opts); err != nil {
		return store.Entry{}, err
	}
	e, err := s.Import(ctx, opts.Output, name)
	if err != nil {
		return store.Entry{}, fmt.Errorf("store %s: %w", name, err)
	}
	return e, nil
}
