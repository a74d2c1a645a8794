package images

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sealpack/sealpack/bundle"
)

// TestLayoutBlobWithholdsTheLastByte: a layout blob file that is wrong (its
// last byte flipped, or longer or shorter than the manifest says) is never
// read whole, and the error names the file.
func TestLayoutBlobWithholdsTheLastByte(t *testing.T) {
	blob := []byte("layer bytes of an OCI layout")
	sum := sha256.Sum256(blob)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	flipped := append([]byte(nil), blob...)
	flipped[len(flipped)-1] ^= 1
	for _, tc := range []struct {
		name, detail string
		file         []byte
	}{
		{"flipped last byte", "", flipped},
		{"long", "more than", append(append([]byte(nil), blob...), '!')},
		{"short", "only", blob[:len(blob)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "blobs", "sha256", h.Hex)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, tc.file, 0o644)
			rc, err := (&layoutBlob{dir: layoutDir{dir}, d: v1.Descriptor{Digest: h, Size: int64(len(blob))}}).Compressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			var de *bundle.DigestError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("read error %v; want a DigestError naming %s and %q", err, p, tc.detail)
			}
			if len(got) >= len(blob) {
				t.Errorf("%d of %d bytes of a wrong blob handed out", len(got), len(blob))
			}
		})
	}
}
