package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
)

// ReplaceAtomic fills a new directory beside dir and swaps it in place of
// dir, which may exist: a host re-unpacking a newer rootfs never shows a
// half-written one, and an interrupted unpack leaves the old one intact.
func ReplaceAtomic(dir string, fill func(root *os.Root) error) error {
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err != nil {
		return ExtractAtomic(dir, fill)
	}
	parent := filepath.Dir(dir)
	next := filepath.Join(parent, "."+filepath.Base(dir)+".next")
	os.RemoveAll(next) // left by an interrupted run
	if err := ExtractAtomic(next, fill); err != nil {
		return err
	}
	old, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".old-*")
	if err != nil {
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	os.Remove(old)
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := os.Rename(next, dir); err != nil {
		os.Rename(old, dir)
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	return os.RemoveAll(old)
}
