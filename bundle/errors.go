package bundle

import (
	"errors"
	"fmt"

	"github.com/sealpack/sealpack/internal/verify"
)

var (
	// ErrNotBundle means the file carries no sealpack payload at all.
	ErrNotBundle = errors.New("not a sealpack bundle")
	// ErrCorrupt means the file is a bundle whose bytes do not match what its index and trailer say.
	ErrCorrupt = errors.New("bundle is corrupt")
	// ErrSignature means a signature is missing or does not match the given key.
	ErrSignature = errors.New("signature check failed")
)

// VersionError reports a bundle written by a newer sealpack than this one.
type VersionError struct{ Version uint32 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("bundle format version %d is newer than this program reads (%d): use a newer sealpack", e.Version, FormatVersion)
}

// DigestError reports stored bytes that do not hash to the digest the index
// records; a bundle's own DigestErrors are ErrCorrupt.
type DigestError = verify.DigestError
