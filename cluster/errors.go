package cluster

import (
	"strconv"
	"strings"
)

// Error is one problem found in an answers file or in a Cluster built in
// memory. Callers reach it with errors.As; a joined error from Parse or
// Validate holds one *Error per problem so a wizard can mark each field.
type Error struct {
	File string // file name as given to Parse or Load; empty for Validate
	Line int    // 1-based line in File; 0 when unknown (a Cluster edited in memory)
	Path string // field path in YAML terms, e.g. spec.hosts[1].roles[0]
	Msg  string
}

// Error formats as "file:line: path: msg", leaving out the parts that are
// unknown, so the message reads like a compiler diagnostic.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}
