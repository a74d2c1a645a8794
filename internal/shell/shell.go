// Package shell writes POSIX shell text: the install engine runs everything
// on hosts as sh command lines, and every value in them goes through Quote.
package shell

import "strings"

// Quote makes s one shell word that stands for exactly s.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Join quotes each word and joins them into one command line.
func Join(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}
