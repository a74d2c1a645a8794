package kubefile

import "strings"

// lookupFunc returns a variable's value and whether it is set. An ARG
// declared without a value is unset, so ${A:-x} and ${A-x} give x.
type lookupFunc func(name string) (string, bool)

// wordError is an expansion problem at a byte offset of the word.
type wordError struct {
	off int
	msg string
}

// expandWord expands variables in one word, as Docker does for the
// instructions it expands: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
// ${VAR:+alt}, ${VAR+alt}. With shell set, the word is also unquoted the
// way a shell would ('…' literal, "…" expanded, \x is x), which is how words
// written outside JSON arrays are read; without it (JSON strings, already
// decoded), only \$ is an escape. The result is one word: values are never
// split or re-expanded.
func expandWord(s string, shell bool, look lookupFunc) (string, *wordError) {
	e := &expander{s: s, shell: shell, look: look}
	out, err := e.until(false)
	if err != nil {
		return "", err
	}
	return out, nil
}

type expander struct {
	s     string
	i     int
	shell bool
	look  lookupFunc
}

// until processes the word up to its end or, inside ${…}, up to the
// closing brace, which it leaves unread.
func (e *expander) until(inBraces bool) (string, *wordError) {
	var b strings.Builder
	for e.i < len(e.s) {
		c := e.s[e.i]
		switch {
		case inBraces && c == '}':
			return b.String(), nil
		case c == '$':
			v, err := e.variable()
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		case c == '\\':
			e.escape(&b, !e.shell)
		case e.shell && c == '\'':
			end := strings.IndexByte(e.s[e.i+1:], '\'')
			if end < 0 {
				return "", &wordError{e.i, "unterminated single-quoted string; expected a closing '"}
			}
			b.WriteString(e.s[e.i+1 : e.i+1+end])
			e.i += end + 2
		case e.shell && c == '"':
			if err := e.doubleQuoted(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			e.i++
		}
	}
	return b.String(), nil
}

// escape handles a backslash. In shell words it quotes the next byte; in
// JSON strings and inside double quotes (onlyDollar) it escapes just $ (and,
// in double quotes, " and \), and is kept otherwise.
func (e *expander) escape(b *strings.Builder, onlyDollar bool) {
	if e.i+1 >= len(e.s) {
		b.WriteByte('\\')
		e.i++
		return
	}
	next := e.s[e.i+1]
	if !onlyDollar || next == '$' {
		b.WriteByte(next)
		e.i += 2
		return
	}
	b.WriteByte('\\')
	e.i++
}

func (e *expander) doubleQuoted(b *strings.Builder) *wordError {
	start := e.i
	e.i++
	for e.i < len(e.s) {
		switch c := e.s[e.i]; c {
		case '"':
			e.i++
			return nil
		case '$':
			v, err := e.variable()
			if err != nil {
				return err
			}
			b.WriteString(v)
		case '\\':
			if e.i+1 < len(e.s) && (e.s[e.i+1] == '"' || e.s[e.i+1] == '\\') {
				b.WriteByte(e.s[e.i+1])
				e.i += 2
				continue
			}
			e.escape(b, true)
		default:
			b.WriteByte(c)
			e.i++
		}
	}
	return &wordError{start, "unterminated double-quoted string; expected a closing \""}
}

func isNameStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isNameByte(c byte) bool { return isNameStart(c) || '0' <= c && c <= '9' }

// variable expands the reference at e.s[e.i] == '$'. A '$' not followed by
// a name or '{' is a literal dollar, as in Docker.
func (e *expander) variable() (string, *wordError) {
	start := e.i
	e.i++
	if e.i < len(e.s) && isNameStart(e.s[e.i]) {
		n := e.i
		for e.i < len(e.s) && isNameByte(e.s[e.i]) {
			e.i++
		}
		v, _ := e.look(e.s[n:e.i])
		return v, nil
	}
	if e.i >= len(e.s) || e.s[e.i] != '{' {
		return "$", nil
	}
	e.i++
	n := e.i
	for e.i < len(e.s) && isNameByte(e.s[e.i]) {
		e.i++
	}
	name := e.s[n:e.i]
	if e.i >= len(e.s) {
		return "", &wordError{start, "unclosed '${'; expected '}'"}
	}
	if name == "" || !isNameStart(name[0]) {
		return "", &wordError{start, "bad substitution; expected a variable name after '${'"}
	}
	val, set := e.look(name)
	if e.s[e.i] == '}' {
		e.i++
		return val, nil
	}
	// ${NAME:-word} and friends: the colon makes an empty value count as
	// unset, as in the shell.
	colon := e.s[e.i] == ':'
	if colon {
		e.i++
	}
	if e.i >= len(e.s) {
		return "", &wordError{start, "unclosed '${'; expected '}'"}
	}
	op := e.s[e.i]
	if op != '-' && op != '+' {
		return "", &wordError{e.i, "bad substitution; expected '}', ':-', ':+', '-' or '+' after the name"}
	}
	e.i++
	word, err := e.until(true)
	if err != nil {
		return "", err
	}
	if e.i >= len(e.s) {
		return "", &wordError{start, "unclosed '${'; expected '}'"}
	}
	e.i++ // the closing brace
	present := set && (!colon || val != "")
	if op == '-' {
		if present {
			return val, nil
		}
		return word, nil
	}
	if present {
		return word, nil
	}
	return "", nil
}
