package cluster

import (
	"fmt"
	"io"
	"log/slog"
)

// Secret holds a password or passphrase. Every way of printing it (fmt
// verbs, slog, encoding.TextMarshaler users such as encoding/json) shows
// "***", so a Cluster can be logged or dumped with %+v without leaking. Use
// Reveal where the value is really needed.
type Secret string

const redacted = "***"

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// String shows whether a secret is set, never what it is.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return fmt.Sprintf("cluster.Secret(%q)", s.String()) }

// Format covers every verb (%s, %q, %x, %d...): without it %x would print
// the bytes in hex.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// LogValue keeps slog from logging the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText redacts, so a Cluster written to JSON (a state file, a debug
// dump) carries no secrets. Writing secrets is only done by Marshal with
// IncludeSecrets.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
