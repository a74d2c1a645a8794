// Package version holds the release version, set at link time:
// -ldflags "-X github.com/sealpack/sealpack/internal/version.Version=v1.2.3".
package version

// Version is the sealpack release; "dev" for builds outside the Makefile.
var Version = "dev"
