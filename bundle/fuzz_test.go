package bundle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzOpen feeds arbitrary files to the trailer and index reader: Open must
// never panic, and a file it accepts must verify without panicking too.
// Seeds are in testdata/fuzz/FuzzOpen; `SEALPACK_WRITE_CORPUS=1 go test -run
// TestWriteFuzzCorpus` regenerates them.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("not a bundle"))
	// It verified, then ran extract out of memory: the frame table says 1 TiB.
	if huge, err := os.ReadFile(hugeFrameBundle); err == nil {
		f.Add(huge)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "b")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := Open(p)
		if err != nil {
			return
		}
		defer b.Close()
		b.Verify(context.Background(), nil)
		for _, l := range b.Index.Layers {
			if r, err := b.OpenLayer(context.Background(), l); err == nil {
				buf := make([]byte, 4096)
				for {
					if _, err := r.Read(buf); err != nil {
						break
					}
				}
				r.Close()
			}
		}
	})
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("SEALPACK_WRITE_CORPUS") == "" {
		t.Skip("set SEALPACK_WRITE_CORPUS=1 to regenerate the checked-in seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	os.MkdirAll(dir, 0o755)
	seeds := map[string]fixture{
		"empty":       {stub: []byte("S")},
		"one-layer":   {stub: []byte("STUB"), layers: [][]byte{tarOf(t, "etc/x", "hello", "bin/y", "world")}},
		"layer-blobs": {stub: []byte("STUB"), layers: [][]byte{tarOf(t, "a", "1")}, blobs: [][]byte{[]byte("blob"), {}}},
	}
	for name, fx := range seeds {
		p := filepath.Join(t.TempDir(), name)
		fx.build(t, p)
		data, _ := os.ReadFile(p)
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
