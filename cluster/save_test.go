package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSave(t *testing.T) {
	secret := []byte("apiVersion: sealer.io/v2\nkind: Cluster\nspec:\n  ssh:\n    passwd: hunter2\n")
	cases := []struct {
		name    string
		setup   func(t *testing.T, path string) // what is at path before
		wantErr string
	}{
		{name: "new file"},
		{name: "existing 0644 file", setup: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a directory in the way", setup: func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "save answers file"},
		{name: "missing directory", setup: func(t *testing.T, path string) {
			if err := os.Remove(filepath.Dir(path)); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "save answers file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "answers")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "cluster.yaml")
			if tc.setup != nil {
				tc.setup(t, path)
			}
			err := Save(path, secret)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want %q naming %s", err, tc.wantErr, path)
				}
				if entries, _ := os.ReadDir(dir); len(entries) > 0 && (len(entries) != 1 || entries[0].Name() != "cluster.yaml") {
					t.Errorf("left behind after the error: %v", entries)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
			if got, _ := os.ReadFile(path); string(got) != string(secret) {
				t.Errorf("content %q", got)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("directory holds %v, want only cluster.yaml", entries)
			}
		})
	}
}
