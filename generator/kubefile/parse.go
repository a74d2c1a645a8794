package kubefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Parse reads a Kubefile and returns its instructions. name is used in
// positions and errors. Parse checks syntax and the structure of the file
// (argument counts, JSON arrays, flags, one LAUNCH, no LAUNCH with CMDS, …);
// it does not expand variables. All problems found are returned joined.
func Parse(name string, r io.Reader) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read kubefile %s: %w", name, err)
	}
	p := &parser{file: name, apps: map[string]Pos{}, appCmds: map[string]Pos{}, once: map[Kind]Pos{}}
	f := &File{Name: name}
	for _, ll := range p.logicalLines(data) {
		if in := p.instruction(ll); in != nil {
			f.Instructions = append(f.Instructions, in)
		}
	}
	if !p.sawFrom && len(p.errs) == 0 {
		p.errf(Pos{File: name, Line: 1, Col: 1}, "", "no FROM instruction; expected at least one (FROM scratch starts from nothing)")
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return f, nil
}

// parser holds the state of one Parse call.
type parser struct {
	file string
	errs []error

	sawFrom  bool // a FROM keyword was seen, valid or not
	sawOther bool // a keyword other than ARG and FROM was seen
	apps     map[string]Pos
	appCmds  map[string]Pos
	once     map[Kind]Pos // instructions allowed once per file, and LAUNCH/CMD/CMDS conflicts
}

func (p *parser) errf(pos Pos, instr, format string, a ...any) {
	p.errs = append(p.errs, newError(pos, instr, format, a...))
}

// segment is a piece of a logical line taken from one physical line.
type segment struct{ off, line, col int }

// lineMap maps byte offsets in a logical line to source positions.
type lineMap struct {
	file string
	segs []segment
	n    int // length of the logical line
}

func (m *lineMap) pos(off int) Pos {
	i := sort.Search(len(m.segs), func(i int) bool { return m.segs[i].off > off }) - 1
	if i < 0 {
		i = 0
	}
	s := m.segs[i]
	return Pos{File: m.file, Line: s.line, Col: s.col + off - s.off}
}

// end is the position just after the last byte of the logical line, used
// when an argument is missing.
func (m *lineMap) end() Pos {
	if m.n == 0 {
		return m.pos(0)
	}
	p := m.pos(m.n - 1)
	p.Col++
	return p
}

type logicalLine struct {
	text string
	lm   *lineMap
}

// isSpace reports the blanks that separate words. Newlines never reach the
// word level: lines are split first.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

const spaces = " \t\r\v\f"

// logicalLines splits data into instructions: it drops a UTF-8 BOM, CR of
// CRLF, blank lines and comment lines, and joins lines ending in an odd
// number of backslashes with the next (an even number is escaped
// backslashes). As in Docker, comment and blank lines inside a continuation
// are skipped and the continuation goes on; a continuation at end of file
// simply ends the instruction.
func (p *parser) logicalLines(data []byte) []logicalLine {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var (
		out  []logicalLine
		text strings.Builder
		lm   *lineMap
	)
	flush := func() {
		s := strings.TrimRight(text.String(), spaces)
		lm.n = len(s)
		if trailingBackslashes(s)%2 == 1 {
			// Only escaped trailing blanks in a continuation at end of file
			// lead here; rendering it back would read as a continuation.
			p.errf(lm.end(), "", "dangling escape '\\' at end of instruction; expected more text after it")
		} else {
			out = append(out, logicalLine{text: s, lm: lm})
		}
		text.Reset()
		lm = nil
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		body := strings.TrimLeft(line, spaces)
		if body == "" || body[0] == '#' {
			continue
		}
		col := len(line) - len(body) + 1
		if lm != nil {
			// Inside a continuation, leading blanks belong to the text.
			body, col = line, 1
		} else {
			lm = &lineMap{file: p.file}
		}
		cont := false
		if t := strings.TrimRight(body, spaces); trailingBackslashes(t)%2 == 1 {
			body, cont = t[:len(t)-1], true
		}
		lm.segs = append(lm.segs, segment{off: text.Len(), line: i + 1, col: col})
		text.WriteString(body)
		if !cont {
			flush()
		}
	}
	if lm != nil {
		flush()
	}
	return out
}

func trailingBackslashes(s string) int {
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	return n
}

// word is a shell-like word: raw text with quotes and escapes kept, and its
// byte offset in the logical line.
type word struct {
	raw string
	off int
}

// nextWord scans the word starting at or after s[i]. It returns the word,
// the index after it, and an error message with its offset for an
// unterminated quote. ok is false at end of input.
func nextWord(s string, i int) (w word, next int, ok bool, errOff int, errMsg string) {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i >= len(s) {
		return word{}, i, false, 0, ""
	}
	start := i
	for i < len(s) && !isSpace(s[i]) {
		switch s[i] {
		case '\\':
			i += 2
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return word{}, len(s), false, i, "unterminated single-quoted string; expected a closing '"
			}
			i += j + 2
		case '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return word{}, len(s), false, i, "unterminated double-quoted string; expected a closing \""
			}
			i = j + 1
		default:
			i++
		}
	}
	if i > len(s) {
		i = len(s)
	}
	return word{raw: s[start:i], off: start}, i, true, 0, ""
}

var (
	// identRE is a variable name a shell can export and $NAME can reach.
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// appNameRE is an app name; it becomes a directory name, so no slashes.
	appNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// instruction parses one logical line. It returns nil when the line is not
// a usable instruction; the reason is recorded in p.errs.
func (p *parser) instruction(ll logicalLine) *Instruction {
	s := ll.text
	kwEnd := strings.IndexAny(s, spaces)
	if kwEnd < 0 {
		kwEnd = len(s)
	}
	kw := s[:kwEnd]
	in := &Instruction{Kind: kindOf(kw), Raw: s, Pos: ll.lm.pos(0), lm: ll.lm}
	if in.Kind == KindInvalid {
		p.errf(in.Pos, strings.ToUpper(kw), "unknown instruction; expected one of FROM, COPY, RUN, ENV, ARG, LABEL, MAINTAINER, APP, APPCMDS, APPENV, CNI, CSI, KUBEVERSION, LAUNCH, CMDS, CMD")
		return nil
	}
	p.order(in)
	rest := kwEnd
	for rest < len(s) && isSpace(s[rest]) {
		rest++
	}
	c := &ctx{p: p, in: in, s: s, nerr: len(p.errs)}
	switch in.Kind {
	case KindFrom:
		c.from(rest)
	case KindCopy:
		c.copy(rest)
	case KindRun, KindCmd:
		c.command(rest)
	case KindEnv, KindLabel:
		c.keyValues(rest, true)
	case KindArg:
		c.arg(rest)
	case KindMaintainer:
		c.restOfLine(rest, "a name")
	case KindApp, KindCNI, KindCSI:
		c.app(rest)
	case KindAppCmds:
		c.appCmds(rest)
	case KindAppEnv:
		c.appEnv(rest)
	case KindKubeVersion:
		c.kubeVersion(rest)
	case KindLaunch:
		c.launch(rest)
	case KindCmds:
		c.cmds(rest)
	}
	if len(p.errs) > c.nerr {
		return nil
	}
	return in
}

// order checks the rules that tie instructions of a file together. It uses
// only the keyword so that a malformed instruction still counts.
func (p *parser) order(in *Instruction) {
	name := in.Kind.String()
	switch in.Kind {
	case KindFrom:
		p.sawFrom = true
	case KindArg:
	default:
		if !p.sawFrom && !p.sawOther {
			p.errf(in.Pos, name, "expected FROM before any other instruction (only ARG may precede it)")
		}
		p.sawOther = true
	}
	switch in.Kind {
	case KindLaunch, KindCmds, KindKubeVersion:
		if prev, dup := p.once[in.Kind]; dup {
			p.errf(in.Pos, name, "only one %s is allowed; the first is at line %d", name, prev.Line)
		}
	}
	conflicts := map[Kind][]Kind{
		KindLaunch: {KindCmds, KindCmd},
		KindCmds:   {KindLaunch},
		KindCmd:    {KindLaunch},
	}
	for _, other := range conflicts[in.Kind] {
		if prev, ok := p.once[other]; ok {
			p.errf(in.Pos, name, "%s and %s are mutually exclusive; %s is at line %d", name, other, other, prev.Line)
		}
	}
	if _, seen := p.once[in.Kind]; !seen {
		p.once[in.Kind] = in.Pos
	}
}

// ctx parses the arguments of one instruction.
type ctx struct {
	p    *parser
	in   *Instruction
	s    string // the logical line
	nerr int    // errors recorded before this instruction
}

func (c *ctx) name() string { return c.in.Kind.String() }

func (c *ctx) errAt(off int, format string, a ...any) {
	var pos Pos
	if off >= len(c.s) {
		pos = c.in.lm.end()
	} else {
		pos = c.in.lm.pos(off)
	}
	c.p.errf(pos, c.name(), format, a...)
}

func (c *ctx) addArg(val string, off int) {
	c.in.Args = append(c.in.Args, val)
	c.in.ArgPos = append(c.in.ArgPos, c.in.lm.pos(off))
	c.in.argOff = append(c.in.argOff, off)
}

// words splits s[i:] into shell-like words.
func (c *ctx) words(i int) ([]word, bool) {
	var ws []word
	for {
		w, next, ok, eoff, emsg := nextWord(c.s, i)
		if emsg != "" {
			c.errAt(eoff, "%s", emsg)
			return nil, false
		}
		if !ok {
			return ws, true
		}
		ws = append(ws, w)
		i = next
	}
}

// flags reads leading --name=value words allowed by the instruction and
// returns the offset of the first word after them.
func (c *ctx) flags(i int, allowed ...string) (int, bool) {
	ok := true
	for {
		w, next, more, eoff, emsg := nextWord(c.s, i)
		if emsg != "" {
			c.errAt(eoff, "%s", emsg)
			return len(c.s), false
		}
		if !more {
			return next, ok
		}
		if !strings.HasPrefix(w.raw, "--") {
			return w.off, ok
		}
		name, val, hasVal := strings.Cut(w.raw[2:], "=")
		switch {
		case !contains(allowed, name):
			if len(allowed) == 0 {
				c.errAt(w.off, "unknown flag --%s; %s takes no flags", name, c.name())
			} else {
				c.errAt(w.off, "unknown flag --%s; expected --%s=VALUE", name, strings.Join(allowed, "=VALUE or --"))
			}
			ok = false
		case !hasVal || val == "":
			c.errAt(w.off, "flag --%s needs a value; expected --%s=VALUE", name, name)
			ok = false
		default:
			if _, dup := c.in.Flag(name); dup {
				c.errAt(w.off, "flag --%s given twice", name)
				ok = false
				break
			}
			c.in.Flags = append(c.in.Flags, Flag{Name: name, Value: val, Pos: c.in.lm.pos(w.off), off: w.off})
		}
		i = next
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

func (c *ctx) from(i int) {
	i, ok := c.flags(i, "platform")
	if !ok {
		return
	}
	ws, ok := c.words(i)
	if !ok {
		return
	}
	switch {
	case len(ws) == 0:
		c.errAt(i, "expected an image reference or scratch")
	case len(ws) == 3 && strings.EqualFold(ws[1].raw, "AS"):
		c.errAt(ws[1].off, "'AS %s' is not supported: several FROMs are merged into one image, not build stages; remove 'AS %s'", ws[2].raw, ws[2].raw)
	case len(ws) > 1:
		c.errAt(ws[1].off, "expected exactly one image reference, got %s", plural(len(ws), "argument"))
	default:
		c.addArg(ws[0].raw, ws[0].off)
	}
}

func (c *ctx) copy(i int) {
	i, ok := c.flags(i, "chmod")
	if !ok {
		return
	}
	if c.jsonForm(i) {
		if len(c.in.Args) < 2 {
			c.errAt(i, "expected at least a source and a destination, got %s", plural(len(c.in.Args), "argument"))
		}
		return
	}
	if len(c.p.errs) > c.nerr {
		return
	}
	ws, ok := c.words(i)
	if !ok {
		return
	}
	if len(ws) < 2 {
		c.errAt(i, "expected at least a source and a destination, got %s", plural(len(ws), "argument"))
		return
	}
	for _, w := range ws {
		c.addArg(w.raw, w.off)
	}
}

// command parses RUN and CMD: the exec form if the text is a JSON array,
// else the shell form. As in Docker, text that is not valid JSON is shell
// ("[ -f x ] && …" is a test command), except that text starting with `["`
// can only have been meant as JSON, so it is reported as malformed.
func (c *ctx) command(i int) {
	if i >= len(c.s) {
		c.errAt(i, "expected a command")
		return
	}
	if strings.HasPrefix(c.s[i:], "--") {
		w, _, _, _, _ := nextWord(c.s, i)
		c.errAt(i, "unknown flag %s; %s takes no flags", w.raw, c.name())
		return
	}
	if c.in.Kind == KindCmd {
		c.in.Warnings = append(c.in.Warnings, "CMD is deprecated; use CMDS [\"cmd\", …] or LAUNCH [app, …]")
	}
	if c.jsonForm(i) {
		if len(c.in.Args) == 0 {
			c.errAt(i, "expected a command, got an empty JSON array")
		}
		return
	}
	if len(c.p.errs) > c.nerr {
		return
	}
	c.addArg(c.s[i:], i)
}

// jsonForm tries s[i:] as a JSON array of strings. It returns true and
// records the strings as arguments if it is one; it records an error and
// returns false if it starts with `["` but is malformed; it returns false
// and records nothing otherwise.
func (c *ctx) jsonForm(i int) bool {
	vals, offs, eoff, emsg := parseJSONArray(c.s[i:])
	if emsg == "" {
		c.in.JSONForm = true
		for k, v := range vals {
			c.addArg(v, i+offs[k])
		}
		return true
	}
	if strings.HasPrefix(c.s[i:], `["`) {
		c.errAt(i+eoff, "malformed JSON array: %s", emsg)
	}
	return false
}

// requireJSON parses s[i:] as a JSON array of strings, which the
// instruction requires, and records at least one string as arguments.
func (c *ctx) requireJSON(i int, what string) {
	if i >= len(c.s) {
		c.errAt(i, "expected a JSON array of %s like [\"…\", \"…\"]", what)
		return
	}
	vals, offs, eoff, emsg := parseJSONArray(c.s[i:])
	if emsg != "" {
		c.errAt(i+eoff, "malformed JSON array of %s: %s", what, emsg)
		return
	}
	if len(vals) == 0 {
		c.errAt(i, "expected at least one of %s, got an empty JSON array", what)
		return
	}
	c.in.JSONForm = true
	for k, v := range vals {
		c.addArg(v, i+offs[k])
	}
}

// parseJSONArray parses s as exactly one JSON array of strings and nothing
// after it. It returns the strings with the offsets where each starts, or
// an error message with its offset. It is hand-written, rather than
// json.Unmarshal, to point at the exact element that is wrong.
func parseJSONArray(s string) (vals []string, offs []int, errOff int, errMsg string) {
	i := 0
	ws := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
			i++
		}
	}
	if i >= len(s) || s[i] != '[' {
		return nil, nil, i, "expected '['"
	}
	i++
	ws()
	if i < len(s) && s[i] == ']' {
		i++
	} else {
		for {
			if i >= len(s) || s[i] != '"' {
				return nil, nil, i, "expected a string in double quotes"
			}
			start := i
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return nil, nil, start, "unterminated string; expected a closing \""
			}
			i++
			var v string
			if err := json.Unmarshal([]byte(s[start:i]), &v); err != nil {
				return nil, nil, start, fmt.Sprintf("invalid string: %v", err)
			}
			vals = append(vals, v)
			offs = append(offs, start)
			ws()
			if i < len(s) && s[i] == ',' {
				i++
				ws()
				continue
			}
			if i < len(s) && s[i] == ']' {
				i++
				break
			}
			return nil, nil, i, "expected ',' or ']' after an element"
		}
	}
	ws()
	if i < len(s) {
		return nil, nil, i, "unexpected text after ']'"
	}
	if vals == nil {
		vals = []string{}
	}
	return vals, offs, 0, ""
}

func (c *ctx) restOfLine(i int, what string) {
	if i >= len(c.s) {
		c.errAt(i, "expected %s", what)
		return
	}
	c.addArg(c.s[i:], i)
}

// keyValues parses ENV and LABEL: "k=v k2=v2…", or with legacy allowed,
// "k rest of line".
func (c *ctx) keyValues(i int, legacy bool) {
	ws, ok := c.words(i)
	if !ok {
		return
	}
	if len(ws) == 0 {
		if c.in.Kind == KindAppEnv {
			c.errAt(i, "expected key=value pairs after the app name")
		} else {
			c.errAt(i, "expected key=value pairs")
		}
		return
	}
	if legacy && !strings.Contains(ws[0].raw, "=") {
		if !c.checkKey(ws[0].raw, ws[0].off) {
			return
		}
		if len(ws) < 2 {
			c.errAt(len(c.s), "expected a value after %s (or write %s=VALUE)", ws[0].raw, ws[0].raw)
			return
		}
		c.addArg(ws[0].raw, ws[0].off)
		c.addArg(c.s[ws[1].off:], ws[1].off)
		return
	}
	for _, w := range ws {
		k, _, found := strings.Cut(w.raw, "=")
		if !found {
			c.errAt(w.off, "expected key=value, got %q", w.raw)
			continue
		}
		if c.checkKey(k, w.off) {
			c.addArg(w.raw, w.off)
		}
	}
}

// checkKey validates the raw key of a pair. Variables must be names the
// shell can see; label keys are free-form (and may be quoted).
func (c *ctx) checkKey(k string, off int) bool {
	if c.in.Kind == KindLabel {
		if k == "" {
			c.errAt(off, "expected a label key before '='")
			return false
		}
		return true
	}
	if !identRE.MatchString(k) {
		c.errAt(off, "invalid variable name %q; expected letters, digits and _, not starting with a digit", k)
		return false
	}
	return true
}

func (c *ctx) arg(i int) {
	ws, ok := c.words(i)
	if !ok {
		return
	}
	if len(ws) == 0 {
		c.errAt(i, "expected a name or name=default")
		return
	}
	for _, w := range ws {
		k, _, _ := strings.Cut(w.raw, "=")
		if c.checkKey(k, w.off) {
			c.addArg(w.raw, w.off)
		}
	}
}

// appName reads and checks the app name that starts APP, APPCMDS, APPENV,
// CNI and CSI; it returns the offset after it.
func (c *ctx) appName(i int) (string, int, bool) {
	w, next, ok, eoff, emsg := nextWord(c.s, i)
	switch {
	case emsg != "":
		c.errAt(eoff, "%s", emsg)
		return "", 0, false
	case !ok:
		c.errAt(i, "expected an app name")
		return "", 0, false
	case !appNameRE.MatchString(w.raw):
		c.errAt(w.off, "invalid app name %q; expected letters, digits, '.', '_' or '-', starting with a letter or digit", w.raw)
		return "", 0, false
	}
	c.addArg(w.raw, w.off)
	return w.raw, next, true
}

func (c *ctx) app(i int) {
	name, i, ok := c.appName(i)
	if !ok {
		return
	}
	if prev, dup := c.p.apps[name]; dup {
		c.errAt(c.in.argOff[0], "app %q is already declared at line %d", name, prev.Line)
		return
	}
	c.p.apps[name] = c.in.Pos
	ws, ok := c.words(i)
	if !ok {
		return
	}
	if len(ws) == 0 {
		c.errAt(i, "expected at least one source like local://PATH after the name")
		return
	}
	for _, w := range ws {
		c.addArg(w.raw, w.off)
	}
}

func (c *ctx) appCmds(i int) {
	name, i, ok := c.appName(i)
	if !ok {
		return
	}
	if prev, dup := c.p.appCmds[name]; dup {
		c.errAt(c.in.argOff[0], "commands for app %q are already given at line %d", name, prev.Line)
		return
	}
	c.p.appCmds[name] = c.in.Pos
	for i < len(c.s) && isSpace(c.s[i]) {
		i++
	}
	c.requireJSON(i, "commands")
}

func (c *ctx) appEnv(i int) {
	if _, i, ok := c.appName(i); ok {
		c.keyValues(i, false)
	}
}

func (c *ctx) kubeVersion(i int) {
	ws, ok := c.words(i)
	if !ok {
		return
	}
	if len(ws) != 1 {
		c.errAt(i, "expected one version like v1.22.15, got %s", plural(len(ws), "argument"))
		return
	}
	c.addArg(ws[0].raw, ws[0].off)
}

// launch parses LAUNCH ["a","b"] and Sealer's unquoted LAUNCH [a, b].
func (c *ctx) launch(i int) {
	rest := c.s[i:]
	if strings.Contains(rest, `"`) || !strings.HasPrefix(rest, "[") {
		c.requireJSON(i, "app names")
	} else if !strings.HasSuffix(rest, "]") {
		c.errAt(len(c.s), "expected ']' to close the list of app names")
	} else {
		inner := rest[1 : len(rest)-1]
		if strings.Trim(inner, spaces) == "" {
			c.errAt(i, "expected at least one app name, got an empty list")
			return
		}
		off := i + 1
		for _, item := range strings.Split(inner, ",") {
			t := strings.TrimLeft(item, spaces)
			lead := len(item) - len(t)
			if t = strings.TrimRight(t, spaces); t == "" {
				c.errAt(off+lead, "expected an app name between commas")
			} else {
				c.addArg(t, off+lead)
			}
			off += len(item) + 1
		}
		c.in.JSONForm = true
	}
	seen := map[string]bool{}
	for k, a := range c.in.Args {
		switch {
		case !appNameRE.MatchString(a):
			c.errAt(c.in.argOff[k], "invalid app name %q", a)
		case seen[a]:
			c.errAt(c.in.argOff[k], "app %q is listed twice", a)
		}
		seen[a] = true
	}
}

func (c *ctx) cmds(i int) {
	c.requireJSON(i, "commands")
}
