// Package kubefile parses Kubefiles — the Dockerfile-like build recipe of
// Sealer v0.11 — into an AST with exact source positions, and resolves
// ARG/ENV variables in it. It executes nothing: the build steps consume the
// AST.
//
// Parse checks syntax and the structure of one file; Resolve expands
// variables and checks meaning (sources, versions, app references). Both
// report every problem they find as *Error values joined with errors.Join.
package kubefile

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Kind is the instruction keyword.
type Kind int

// The instructions a Kubefile may hold.
const (
	KindInvalid Kind = iota
	KindFrom
	KindCopy
	KindRun
	KindEnv
	KindArg
	KindLabel
	KindMaintainer
	KindApp
	KindAppCmds
	KindAppEnv
	KindCNI
	KindCSI
	KindKubeVersion
	KindLaunch
	KindCmds
	KindCmd
)

// String returns the keyword as written in canonical (upper) case.
func (k Kind) String() string {
	switch k {
	case KindFrom:
		return "FROM"
	case KindCopy:
		return "COPY"
	case KindRun:
		return "RUN"
	case KindEnv:
		return "ENV"
	case KindArg:
		return "ARG"
	case KindLabel:
		return "LABEL"
	case KindMaintainer:
		return "MAINTAINER"
	case KindApp:
		return "APP"
	case KindAppCmds:
		return "APPCMDS"
	case KindAppEnv:
		return "APPENV"
	case KindCNI:
		return "CNI"
	case KindCSI:
		return "CSI"
	case KindKubeVersion:
		return "KUBEVERSION"
	case KindLaunch:
		return "LAUNCH"
	case KindCmds:
		return "CMDS"
	case KindCmd:
		return "CMD"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// kindOf maps a keyword, in any case, to its Kind. A switch rather than a
// package-level map keeps the package free of mutable globals.
func kindOf(word string) Kind {
	for k := KindFrom; k <= KindCmd; k++ {
		if strings.EqualFold(word, k.String()) {
			return k
		}
	}
	return KindInvalid
}

// Pos is a position in a Kubefile. Line and Col are 1-based; Col counts
// bytes, as the Go toolchain does, after any UTF-8 byte order mark.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is a problem at a position of a Kubefile. Parse and Resolve return
// them joined (errors.Join); reach each with errors.As.
type Error struct {
	File        string
	Line, Col   int
	Instruction string // keyword in upper case; empty for file-level problems
	Msg         string // what was expected, and what was found
}

func (e *Error) Error() string {
	if e.Instruction == "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Instruction, e.Msg)
}

func newError(p Pos, instr string, format string, a ...any) *Error {
	return &Error{File: p.File, Line: p.Line, Col: p.Col, Instruction: instr, Msg: fmt.Sprintf(format, a...)}
}

// Flag is a --name=value option of an instruction (FROM --platform,
// COPY --chmod). Value is raw: Resolve expands it.
type Flag struct {
	Name, Value string
	Pos         Pos // of the leading "--"
	off         int // byte offset of the leading "--" in the logical line
}

// Instruction is one instruction of a Kubefile, after line continuations are
// joined.
//
// Args hold the arguments as written, so that String can render them back:
//   - shell-like words (FROM, COPY, ENV, ARG, LABEL, APP, APPENV, CNI, CSI,
//     KUBEVERSION) keep their quotes and backslashes; Resolve removes them;
//   - RUN, CMD (shell form) and MAINTAINER hold the rest of the line as one
//     string, never expanded: the shell expands RUN with the step's Env;
//   - ENV and LABEL hold "key=value" words, or, in the legacy form
//     "ENV key value…", two args: the key (which has no '=') and the rest;
//   - JSON forms (JSONForm) hold the decoded strings; APPCMDS holds the app
//     name first, then the commands; LAUNCH is always JSONForm, also when
//     written as [app1, app2].
type Instruction struct {
	Kind     Kind
	Raw      string   // the logical line: continuations joined, comments inside dropped
	Args     []string // see above
	ArgPos   []Pos    // where each of Args starts
	Flags    []Flag   // in source order; names are unique
	JSONForm bool
	Pos      Pos      // of the keyword
	Warnings []string // e.g. deprecations; Resolve passes them on with positions

	// lm and argOff map byte offsets inside Args back to source positions,
	// so that Resolve can point into a word. A hand-made Instruction has
	// none and Resolve falls back to ArgPos.
	lm     *lineMap
	argOff []int
}

// Flag returns the raw value of the named flag.
func (in *Instruction) Flag(name string) (string, bool) {
	for _, f := range in.Flags {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// String renders the instruction on one line in canonical form; Parse reads
// it back to the same Kind, Args, Flags, JSONForm and Warnings.
func (in *Instruction) String() string {
	var b strings.Builder
	b.WriteString(in.Kind.String())
	for _, f := range in.Flags {
		b.WriteString(" --")
		b.WriteString(f.Name)
		b.WriteByte('=')
		b.WriteString(f.Value)
	}
	args := in.Args
	if in.JSONForm && in.Kind == KindAppCmds && len(args) > 0 {
		b.WriteByte(' ')
		b.WriteString(args[0])
		args = args[1:]
	}
	if in.JSONForm {
		b.WriteByte(' ')
		b.WriteString(jsonArray(args))
		return b.String()
	}
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	return b.String()
}

// jsonArray renders strs as a JSON array without HTML escaping, which would
// only make commands like "a && b" harder to read.
func jsonArray(strs []string) string {
	if strs == nil {
		strs = []string{}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(strs); err != nil {
		// A []string always encodes; reaching here is a bug in encoding/json.
		panic(fmt.Sprintf("kubefile: encode JSON array: %v", err))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// File is a parsed Kubefile.
type File struct {
	Name         string
	Instructions []*Instruction
}

// String renders the file, one instruction per line, without comments.
func (f *File) String() string {
	var b strings.Builder
	for _, in := range f.Instructions {
		b.WriteString(in.String())
		b.WriteByte('\n')
	}
	return b.String()
}
