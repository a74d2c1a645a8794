package bundle

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestPartWriterWriteback writes past the early-writeback threshold, split
// and unsplit, with a take-back in between: the bytes must be exactly those
// kept, whatever writeback was started on the way.
func TestPartWriterWriteback(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MiB")
	}
	data := randomBytes(7, 3*writebackChunk/2)
	for _, partSize := range []int64{0, writebackChunk + 12345} {
		path := filepath.Join(t.TempDir(), "out")
		p := &partWriter{final: path, partSize: partSize}
		if _, err := p.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := p.truncate(writebackChunk / 3); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := p.commit(nil); err != nil {
			t.Fatal(err)
		}
		var got []byte
		for k := 1; k <= p.count(); k++ {
			b, err := os.ReadFile(PartPath(path, k))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b...)
		}
		want := append(append([]byte{}, data[:writebackChunk/3]...), data...)
		if !bytes.Equal(got, want) {
			t.Errorf("part size %d: content differs (%d bytes, want %d)", partSize, len(got), len(want))
		}
	}
}
