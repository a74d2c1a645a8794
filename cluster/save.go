package cluster

import (
	"fmt"
	"os"
	"path/filepath"
)

// Save writes an answers file (Marshal's output) at path with mode 0600,
// atomically: a temporary file in the same directory, created 0600 so a
// password in it is never readable by others even for a moment, synced,
// then renamed over path. An existing file's wider mode is not kept. On
// any error path is unchanged and no temporary file is left.
func Save(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save answers file %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("save answers file %s: %w", path, err)
		}
	}()
	// CreateTemp makes the file 0600; chmod keeps it so under any umask.
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// The rename itself survives a crash once the directory is synced.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
