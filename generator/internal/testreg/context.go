package testreg

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// CopyContext copies a testdata build context to a temporary folder,
// replacing the word REGISTRY in every file with host (the test registry's).
func CopyContext(t testing.TB, src, host string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), bytes.ReplaceAll(b, []byte("REGISTRY"), []byte(host)), fi.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
