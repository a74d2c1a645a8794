// Package assets carries what gen embeds: the prebuilt installer stub for
// each architecture, built by `make assets` into assets/stubs.
package assets

import (
	"embed"
	"fmt"
	"io/fs"
)

// The README keeps the pattern matching in a fresh clone, so the package
// builds (and tests run) before any stub exists.
//
//go:embed stubs
var stubs embed.FS

// Stub returns the installer stub for a Linux architecture (amd64, arm64).
func Stub(arch string) ([]byte, error) {
	b, err := fs.ReadFile(stubs, "stubs/stub-linux-"+arch)
	if err != nil {
		return nil, fmt.Errorf("no installer stub for linux/%s is built into this gen: run `make assets` (or `make`) and rebuild gen, or pass --stub FILE", arch)
	}
	return b, nil
}

// Agent returns the small host program for a Linux architecture, or nil
// when this gen was built without it (nodes then get the whole stub).
func Agent(arch string) []byte {
	b, err := fs.ReadFile(stubs, "stubs/agent-linux-"+arch)
	if err != nil {
		return nil
	}
	return b
}

// Arches lists the architectures whose stubs are embedded.
func Arches() []string {
	var out []string
	for _, a := range []string{"amd64", "arm64"} {
		if _, err := fs.Stat(stubs, "stubs/stub-linux-"+a); err == nil {
			out = append(out, a)
		}
	}
	return out
}
