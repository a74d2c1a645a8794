package kubefile

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata/kubefile/valid")

const testdata = "../../testdata/kubefile"

// directives reads the "# key: value" comments test Kubefiles use to state
// what a test expects (want, want-resolve) and how to resolve them
// (build-arg, base-app, arch).
func directives(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	d := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		for _, key := range []string{"want", "want-resolve", "build-arg", "base-app", "arch"} {
			if v, ok := strings.CutPrefix(line, "# "+key+": "); ok {
				d[key] = append(d[key], v)
			}
		}
	}
	return d
}

func optsFrom(d map[string][]string) ResolveOptions {
	opts := ResolveOptions{Arch: "amd64", BuildArgs: map[string]string{}, BaseApps: d["base-app"]}
	if a := d["arch"]; len(a) > 0 {
		opts.Arch = a[0]
	}
	for _, kv := range d["build-arg"] {
		k, v, _ := strings.Cut(kv, "=")
		opts.BuildArgs[k] = v
	}
	return opts
}

// kubefileErrors unpacks the errors.Join of Parse and Resolve.
func kubefileErrors(t *testing.T, err error) []*Error {
	t.Helper()
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else if err != nil {
		list = []error{err}
	}
	var out []*Error
	for _, e := range list {
		var ke *Error
		if !errors.As(e, &ke) {
			t.Fatalf("error %v is not a *kubefile.Error", e)
		}
		out = append(out, ke)
	}
	return out
}

// checkWants asserts that errs are exactly the wanted ones, in order. A
// want is "line:col INSTR: start of message"; the error must read
// "Kubefile:line:col: INSTR: start of message…".
func checkWants(t *testing.T, err error, wants []string) {
	t.Helper()
	got := kubefileErrors(t, err)
	for i := 0; i < len(got) || i < len(wants); i++ {
		switch {
		case i >= len(got):
			t.Errorf("missing error %q", wants[i])
		case i >= len(wants):
			t.Errorf("unexpected error %q", got[i].Error())
		default:
			pos, rest, _ := strings.Cut(wants[i], " ")
			want := "Kubefile:" + pos + ": " + rest
			if !strings.HasPrefix(got[i].Error(), want) {
				t.Errorf("error %d:\n got: %s\nwant: %s…", i, got[i].Error(), want)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdata, "errors", "*.Kubefile"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			d := directives(t, data)
			if len(d["want"])+len(d["want-resolve"]) == 0 {
				t.Fatal("the file states no want")
			}
			f, err := Parse("Kubefile", bytes.NewReader(data))
			checkWants(t, err, d["want"])
			if len(d["want"]) > 0 {
				if f != nil {
					t.Error("Parse returned a File with an error")
				}
				return
			}
			r, err := f.Resolve(optsFrom(d))
			checkWants(t, err, d["want-resolve"])
			if r != nil {
				t.Error("Resolve returned a result with an error")
			}
		})
	}
}

// dump renders everything Parse and Resolve say about a file, for golden
// comparison.
func dump(f *File, r *Resolved) string {
	var b strings.Builder
	for _, in := range f.Instructions {
		fmt.Fprintf(&b, "%d:%d %s", in.Pos.Line, in.Pos.Col, in.Kind)
		for _, fl := range in.Flags {
			fmt.Fprintf(&b, " --%s=%q@%d:%d", fl.Name, fl.Value, fl.Pos.Line, fl.Pos.Col)
		}
		if in.JSONForm {
			b.WriteString(" json")
		}
		for i, a := range in.Args {
			fmt.Fprintf(&b, " %q@%d:%d", a, in.ArgPos[i].Line, in.ArgPos[i].Col)
		}
		for _, w := range in.Warnings {
			fmt.Fprintf(&b, " warning=%q", w)
		}
		b.WriteByte('\n')
	}
	b.WriteString("-- resolved --\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "step %s\n     env %q\n", s.Instruction, s.Env)
	}
	for _, base := range r.Bases {
		fmt.Fprintf(&b, "base %q platform=%q at %d:%d\n", base.Ref, base.Platform, base.Pos.Line, base.Pos.Col)
	}
	fmt.Fprintf(&b, "env %q\nlabels %q\nmaintainer %q\n", r.Env, r.Labels, r.Maintainer)
	for _, a := range r.Apps {
		fmt.Fprintf(&b, "app %q kind=%s paths=%q cmds=%q env=%q\n", a.Name, a.Kind, a.Paths, a.Cmds, a.Env)
	}
	fmt.Fprintf(&b, "cni %q\ncsi %q\nlaunch %q\ncmds %q\nkubeversion %q\nwarnings %q\n",
		r.CNI, r.CSI, r.Launch, r.Cmds, r.KubeVersion, r.Warnings)
	return b.String()
}

func TestValidGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdata, "valid", "*.Kubefile"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse("Kubefile", bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			r, err := f.Resolve(optsFrom(directives(t, data)))
			if err != nil {
				t.Fatal(err)
			}
			got := dump(f, r)
			golden := strings.TrimSuffix(path, ".Kubefile") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from Parse+Resolve:\n%s", golden, got)
			}
			checkRoundTrip(t, f)
		})
	}
}

// sameAST compares what String must preserve: positions and Raw are not
// part of it, since rendering changes the layout.
func sameAST(a, b *File) bool {
	if len(a.Instructions) != len(b.Instructions) {
		return false
	}
	strip := func(fl []Flag) []Flag {
		out := []Flag{}
		for _, f := range fl {
			out = append(out, Flag{Name: f.Name, Value: f.Value})
		}
		return out
	}
	for i, x := range a.Instructions {
		y := b.Instructions[i]
		if x.Kind != y.Kind || x.JSONForm != y.JSONForm ||
			!reflect.DeepEqual(x.Args, y.Args) ||
			!reflect.DeepEqual(strip(x.Flags), strip(y.Flags)) ||
			!reflect.DeepEqual(x.Warnings, y.Warnings) {
			return false
		}
	}
	return true
}

func checkRoundTrip(t *testing.T, f *File) {
	t.Helper()
	text := f.String()
	g, err := Parse("Kubefile", strings.NewReader(text))
	if err != nil {
		t.Fatalf("rendered file does not parse: %v\n%s", err, text)
	}
	if !sameAST(f, g) {
		t.Fatalf("rendered file parses to another AST:\n%s\nback:\n%s", text, g)
	}
}

func TestExpandWord(t *testing.T) {
	vars := map[string]string{"A": "a", "EMPTY": "", "SP": "x y"}
	look := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	tests := []struct {
		in, want string
		json     bool
		errOff   int // -1: no error
	}{
		{in: "$A", want: "a", errOff: -1},
		{in: "${A}b", want: "ab", errOff: -1},
		{in: "$Ab", want: "", errOff: -1},
		{in: "x$", want: "x$", errOff: -1},
		{in: "$1", want: "$1", errOff: -1},
		{in: `\$A`, want: "$A", errOff: -1},
		{in: `'$A'`, want: "$A", errOff: -1},
		{in: `"$A b"`, want: "a b", errOff: -1},
		{in: `"\$A \" \\ \n"`, want: `$A " \ \n`, errOff: -1},
		{in: `a\ b`, want: "a b", errOff: -1},
		{in: `a\`, want: `a\`, errOff: -1},
		{in: "$SP", want: "x y", errOff: -1},
		{in: "${NOPE:-d}", want: "d", errOff: -1},
		{in: "${EMPTY:-d}", want: "d", errOff: -1},
		{in: "${EMPTY-d}", want: "", errOff: -1},
		{in: "${NOPE-d}", want: "d", errOff: -1},
		{in: "${A:-d}", want: "a", errOff: -1},
		{in: "${A:+alt}", want: "alt", errOff: -1},
		{in: "${EMPTY:+alt}", want: "", errOff: -1},
		{in: "${EMPTY+alt}", want: "alt", errOff: -1},
		{in: "${NOPE:+alt}", want: "", errOff: -1},
		{in: "${NOPE:-${A}-$A}", want: "a-a", errOff: -1},
		{in: "${NOPE:-'}'}", want: "}", errOff: -1},
		{in: `"${A}"`, want: `"a"`, json: true, errOff: -1},
		{in: `\a\$A`, want: `\a$A`, json: true, errOff: -1},
		{in: "x${A", errOff: 1},
		{in: "${A:-x", errOff: 0},
		{in: "${}", errOff: 0},
		{in: "${1}", errOff: 0},
		{in: "${A:?x}", errOff: 4},
		{in: "${A%x}", errOff: 3},
		{in: "'x", errOff: 0},
		{in: `a"x`, errOff: 1},
	}
	for _, tt := range tests {
		got, err := expandWord(tt.in, !tt.json, look)
		switch {
		case tt.errOff >= 0 && err == nil:
			t.Errorf("expandWord(%q) = %q, want an error at %d", tt.in, got, tt.errOff)
		case tt.errOff >= 0 && err.off != tt.errOff:
			t.Errorf("expandWord(%q): error %q at %d, want at %d", tt.in, err.msg, err.off, tt.errOff)
		case tt.errOff < 0 && err != nil:
			t.Errorf("expandWord(%q): unexpected error %q", tt.in, err.msg)
		case tt.errOff < 0 && got != tt.want:
			t.Errorf("expandWord(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestResolveExpansion(t *testing.T) {
	const src = "ARG V=v1\nARG EMPTY\nFROM reg/k:${V}\n" +
		"COPY a$E $EMPTY${EMPTY-unset} ${ARCH}/\n" +
		"ENV E=1 F=${E:-before}\n" +
		"COPY a$E $F /\n" +
		"RUN echo $V $E\n"
	tests := []struct {
		name      string
		opts      ResolveOptions
		from      string
		copy1     []string
		copy2     []string
		runEnv    []string
		finalEnv  []KeyValue
		nWarnings int
	}{
		{
			name:     "defaults",
			opts:     ResolveOptions{Arch: "amd64"},
			from:     "reg/k:v1",
			copy1:    []string{"a", "unset", "amd64/"},
			copy2:    []string{"a1", "before", "/"},
			runEnv:   []string{"ARCH=amd64", "E=1", "F=before", "V=v1"},
			finalEnv: []KeyValue{{"E", "1"}, {"F", "before"}},
		},
		{
			name:      "build args override defaults and fill empty ARGs",
			opts:      ResolveOptions{Arch: "arm64", BuildArgs: map[string]string{"V": "v2", "EMPTY": "", "UNUSED": "x"}},
			from:      "reg/k:v2",
			copy1:     []string{"a", "", "arm64/"},
			copy2:     []string{"a1", "before", "/"},
			runEnv:    []string{"ARCH=arm64", "E=1", "EMPTY=", "F=before", "V=v2"},
			finalEnv:  []KeyValue{{"E", "1"}, {"F", "before"}},
			nWarnings: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("Kubefile", strings.NewReader(src))
			if err != nil {
				t.Fatal(err)
			}
			r, err := f.Resolve(tt.opts)
			if len(tt.copy1) > 1 && tt.copy1[1] == "" {
				// EMPTY set to "" leaves a COPY source empty, which is an error.
				checkWants(t, err, []string{`4:10 COPY: "$EMPTY${EMPTY-unset}" expands to an empty path`})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st := r.Steps
			if got := st[2].Instruction.Args[0]; got != tt.from {
				t.Errorf("FROM = %q, want %q", got, tt.from)
			}
			if got := st[3].Instruction.Args; !reflect.DeepEqual(got, tt.copy1) {
				t.Errorf("first COPY = %q, want %q", got, tt.copy1)
			}
			if got := st[5].Instruction.Args; !reflect.DeepEqual(got, tt.copy2) {
				t.Errorf("second COPY = %q, want %q", got, tt.copy2)
			}
			if got := st[6].Instruction.Args[0]; got != "echo $V $E" {
				t.Errorf("RUN = %q, want it raw", got)
			}
			if got := st[6].Env; !reflect.DeepEqual(got, tt.runEnv) {
				t.Errorf("RUN env = %q, want %q", got, tt.runEnv)
			}
			if !reflect.DeepEqual(r.Env, tt.finalEnv) {
				t.Errorf("Env = %q, want %q", r.Env, tt.finalEnv)
			}
			if len(r.Warnings) != tt.nWarnings {
				t.Errorf("warnings = %q, want %d", r.Warnings, tt.nWarnings)
			}
		})
	}
}

func TestResolveBuildArgEmpty(t *testing.T) {
	f, err := Parse("Kubefile", strings.NewReader("ARG E\nFROM scratch\nLABEL a=${E-unset} b=${E:-empty}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Resolve(ResolveOptions{Arch: "amd64", BuildArgs: map[string]string{"E": ""}})
	if err != nil {
		t.Fatal(err)
	}
	want := []KeyValue{{"a", ""}, {"b", "empty"}}
	if !reflect.DeepEqual(r.Labels, want) {
		t.Errorf("Labels = %q, want %q", r.Labels, want)
	}
}

func TestResolveOptionErrors(t *testing.T) {
	f, err := Parse("Kubefile", strings.NewReader("FROM scratch\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []ResolveOptions{
		{},
		{Arch: "x86_64"},
		{Arch: "amd64", BuildArgs: map[string]string{"ARCH": "arm64"}},
	} {
		if _, err := f.Resolve(opts); err == nil {
			t.Errorf("Resolve(%+v) succeeded, want an error", opts)
		}
	}
}

func TestBaseAppsAcceptReferences(t *testing.T) {
	f, err := Parse("Kubefile", strings.NewReader(
		"FROM kubernetes:v1.22\nAPPCMDS calico [\"kubectl apply -f c.yaml\"]\nAPPENV calico K=v\nLAUNCH [calico]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Resolve(ResolveOptions{Arch: "amd64", BaseApps: []string{"calico"}})
	if err != nil {
		t.Fatal(err)
	}
	a := r.App("calico")
	if a == nil || a.Kind != KindInvalid || len(a.Cmds) != 1 || len(a.Env) != 1 || len(r.Launch) != 1 {
		t.Errorf("base app = %+v, launch %q", a, r.Launch)
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{File: "Kubefile", Line: 7, Col: 6, Instruction: "COPY", Msg: "expected at least a source and a destination, got 1 argument"}
	if got, want := e.Error(), "Kubefile:7:6: COPY: expected at least a source and a destination, got 1 argument"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e.Instruction = ""
	if got, want := e.Error(), "Kubefile:7:6: expected at least a source and a destination, got 1 argument"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseReadError(t *testing.T) {
	_, err := Parse("Kubefile", failingReader{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v, want the read error wrapped", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"valid", "errors"} {
		files, _ := filepath.Glob(filepath.Join(testdata, dir, "*.Kubefile"))
		for _, path := range files {
			if data, err := os.ReadFile(path); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("Kubefile", bytes.NewReader(data))
		if err != nil {
			kubefileErrors(t, err) // every error must be a *Error
			return
		}
		for _, arch := range []string{"amd64", "arm64"} {
			_, _ = file.Resolve(ResolveOptions{Arch: arch, BuildArgs: map[string]string{"V": "1"}, BaseApps: []string{"base"}})
		}
		checkRoundTrip(t, file)
	})
}

// TestResolveHandMade checks that Resolve copes with Files built by hand,
// which may lack arguments and positions Parse always sets.
func TestResolveHandMade(t *testing.T) {
	for k := KindFrom; k <= KindCmd; k++ {
		for _, args := range [][]string{nil, {"a"}, {"a", "b=c"}, {"a", "b"}} {
			f := &File{Name: "hand", Instructions: []*Instruction{{Kind: k, Args: args}}}
			_, _ = f.Resolve(ResolveOptions{Arch: "amd64"})
		}
	}
}
