// Package ctxio makes long copies stop when their context ends.
package ctxio

import (
	"context"
	"io"
)

// Reader returns r, failing its next Read once ctx is done: a copy of a
// multi-gigabyte blob stops at the next buffer instead of at EOF.
func Reader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
