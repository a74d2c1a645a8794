package bundle

import (
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func newStreamDecoder(t testing.TB, r io.Reader) io.Reader {
	d, err := zstd.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}
