package kubefile

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ResolveOptions are the inputs of Resolve that do not come from the file.
type ResolveOptions struct {
	// BuildArgs are --build-arg values. They override the default of an ARG
	// of the same name, and only take effect where an ARG declares them.
	BuildArgs map[string]string
	// Arch is the target architecture, amd64 or arm64. It defines ${ARCH}
	// everywhere, including RUN's environment.
	Arch string
	// BaseApps names the apps the FROM images already hold, which APPCMDS,
	// APPENV and LAUNCH may refer to besides the apps this file declares.
	BaseApps []string
}

// KeyValue is one variable or label.
type KeyValue struct {
	Key, Value string
}

// Base is a FROM image. Ref is "scratch" for an empty base.
type Base struct {
	Ref      string
	Platform string // os/arch[/variant], or empty for the target's
	Pos      Pos
}

// App is an app declared by APP, CNI or CSI, or a base image's app that
// APPCMDS or APPENV refer to (Kind is then KindInvalid and Paths empty).
type App struct {
	Name  string
	Kind  Kind     // KindApp, KindCNI or KindCSI
	Paths []string // as written after expansion, with their local:// scheme
	Cmds  []string // from APPCMDS, raw
	Env   []KeyValue
	Pos   Pos
}

// Step is one instruction with its variables expanded.
type Step struct {
	// Instruction is an expanded copy: words are unquoted and expanded,
	// flags too; ENV, ARG, LABEL and APPENV hold one "key=value" per pair
	// (an ARG without value holds just its name); RUN, CMD, CMDS, APPCMDS
	// and MAINTAINER are left as written. Its String is for display only:
	// expanded words are not quoted again, so it may not parse back.
	Instruction *Instruction
	// Env is what a command of this step sees: ARCH, the ARGs that have a
	// value, and ENV (which wins over ARG), as sorted "KEY=value".
	Env []string
}

// Resolved is a Kubefile with its variables expanded and its meaning
// checked. Every list is in file order unless it says sorted.
type Resolved struct {
	Steps       []Step
	Bases       []Base
	Env         []KeyValue // final ENV, sorted by key
	Labels      []KeyValue // sorted by key; a later LABEL wins
	Maintainer  string     // the last MAINTAINER
	Apps        []*App     // in order of declaration, then base apps by first reference
	CNI, CSI    []string   // names of the apps declared by CNI and CSI
	Launch      []string   // LAUNCH's apps
	Cmds        []string   // CMDS's commands, or those of the deprecated CMD
	KubeVersion string     // "v1.x.y", or empty
	Warnings    []string   // "file:line:col: INSTR: message", for the user
}

// App returns the named app, or nil.
func (r *Resolved) App(name string) *App {
	for _, a := range r.Apps {
		if a.Name == name {
			return a
		}
	}
	return nil
}

var (
	// platformRE is os/arch[/variant] as OCI platforms spell them.
	platformRE = regexp.MustCompile(`^[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_.]+)?$`)
	chmodRE    = regexp.MustCompile(`^[0-7]{3,4}$`)
	// semverRE is Semantic Versioning 2.0.0 with the v prefix Kubernetes uses.
	semverRE = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
		`(-(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?` +
		`(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?$`)
)

const localScheme = "local://"

// Resolve expands ARG and ENV variables in order, as a build would see
// them, and checks what needs the expanded values: platforms, chmod modes,
// local:// sources, the Kubernetes version, and that APPCMDS, APPENV and
// LAUNCH name known apps. All problems found are returned joined.
func (f *File) Resolve(opts ResolveOptions) (*Resolved, error) {
	if opts.Arch != "amd64" && opts.Arch != "arm64" {
		return nil, fmt.Errorf("resolve %s: target architecture %q is not supported; expected amd64 or arm64", f.Name, opts.Arch)
	}
	if _, ok := opts.BuildArgs["ARCH"]; ok {
		return nil, fmt.Errorf("resolve %s: build arg ARCH cannot be set; ARCH is the target architecture (%s)", f.Name, opts.Arch)
	}
	r := &resolver{
		opts:   opts,
		out:    &Resolved{},
		args:   map[string]*string{},
		env:    map[string]string{},
		labels: map[string]string{},
		used:   map[string]bool{},
	}
	for _, in := range f.Instructions {
		r.step(in)
	}
	var unused []string
	for k := range opts.BuildArgs {
		if !r.used[k] {
			unused = append(unused, k)
		}
	}
	sort.Strings(unused)
	for _, k := range unused {
		r.out.Warnings = append(r.out.Warnings, fmt.Sprintf("%s: build arg %s was not consumed by any ARG", f.Name, k))
	}
	if len(r.errs) > 0 {
		return nil, errors.Join(r.errs...)
	}
	r.out.Env = sortedPairs(r.env)
	r.out.Labels = sortedPairs(r.labels)
	return r.out, nil
}

type resolver struct {
	opts   ResolveOptions
	out    *Resolved
	errs   []error
	args   map[string]*string // declared ARGs; nil value means unset
	env    map[string]string
	labels map[string]string
	used   map[string]bool // build args an ARG consumed
}

func sortedPairs(m map[string]string) []KeyValue {
	kv := make([]KeyValue, 0, len(m))
	for k, v := range m {
		kv = append(kv, KeyValue{k, v})
	}
	sort.Slice(kv, func(i, j int) bool { return kv[i].Key < kv[j].Key })
	return kv
}

// lookup sees ENV first, then ARG, then ARCH, as Docker gives ENV
// precedence over ARG.
func (r *resolver) lookup(name string) (string, bool) {
	if v, ok := r.env[name]; ok {
		return v, true
	}
	if v, ok := r.args[name]; ok && v != nil {
		return *v, true
	}
	if name == "ARCH" {
		return r.opts.Arch, true
	}
	return "", false
}

func (r *resolver) environ() []string {
	m := map[string]string{"ARCH": r.opts.Arch}
	for k, v := range r.args {
		if v != nil {
			m[k] = *v
		}
	}
	for k, v := range r.env {
		m[k] = v
	}
	env := make([]string, 0, len(m))
	for _, kv := range sortedPairs(m) {
		env = append(env, kv.Key+"="+kv.Value)
	}
	return env
}

func (r *resolver) errf(p Pos, in *Instruction, format string, a ...any) {
	r.errs = append(r.errs, newError(p, in.Kind.String(), format, a...))
}

// posIn is the position of byte k of the word that starts at logical
// offset off; without a line map it counts from fallback.
func posIn(in *Instruction, off int, fallback Pos, k int) Pos {
	if in.lm != nil && off >= 0 {
		return in.lm.pos(off + k)
	}
	fallback.Col += k
	return fallback
}

// argPos is where argument i starts; a hand-made Instruction may lack it.
func argPos(in *Instruction, i int) Pos {
	if i < len(in.ArgPos) {
		return in.ArgPos[i]
	}
	return in.Pos
}

// firstPos is the positions of the first n arguments.
func firstPos(in *Instruction, n int) []Pos {
	out := make([]Pos, n)
	for i := range out {
		out[i] = argPos(in, i)
	}
	return out
}

// expand expands argument i of in (or part of it, from byte from).
func (r *resolver) expand(in *Instruction, i, from int, s string) (string, bool) {
	off := -1
	if i < len(in.argOff) {
		off = in.argOff[i]
	}
	fallback := argPos(in, i)
	shell := !in.JSONForm
	if !shell {
		from++ // the opening quote of the JSON string
	}
	v, err := expandWord(s, shell, r.lookup)
	if err != nil {
		r.errf(posIn(in, off, fallback, from+err.off), in, "%s", err.msg)
		return "", false
	}
	return v, true
}

func (r *resolver) expandFlag(in *Instruction, f Flag) (string, bool) {
	from := len("--" + f.Name + "=")
	v, err := expandWord(f.Value, true, r.lookup)
	if err != nil {
		off := -1
		if in.lm != nil {
			off = f.off
		}
		r.errf(posIn(in, off, f.Pos, from+err.off), in, "--%s: %s", f.Name, err.msg)
		return "", false
	}
	return v, true
}

func (r *resolver) step(in *Instruction) {
	x := *in
	x.Args = append([]string(nil), in.Args...)
	x.Flags = append([]Flag(nil), in.Flags...)
	x.Warnings = append([]string(nil), in.Warnings...)
	nerr := len(r.errs)
	env := r.environ()
	for _, w := range in.Warnings {
		r.out.Warnings = append(r.out.Warnings, fmt.Sprintf("%s: %s: %s", in.Pos, in.Kind, w))
	}
	switch in.Kind {
	case KindFrom:
		r.from(in, &x)
	case KindCopy:
		r.copy(in, &x)
	case KindEnv:
		r.envInstr(in, &x)
	case KindArg:
		r.arg(in, &x)
	case KindLabel:
		r.label(in, &x)
	case KindMaintainer:
		if len(in.Args) > 0 {
			r.out.Maintainer = in.Args[0]
		}
	case KindApp, KindCNI, KindCSI:
		r.app(in, &x)
	case KindAppCmds:
		if a := r.ref(in, 0, "APPCMDS"); a != nil {
			a.Cmds = append([]string(nil), in.Args[1:]...)
		}
	case KindAppEnv:
		r.appEnv(in, &x)
	case KindKubeVersion:
		r.kubeVersion(in, &x)
	case KindLaunch:
		for i, name := range in.Args {
			if r.ref(in, i, "LAUNCH") != nil {
				r.out.Launch = append(r.out.Launch, name)
			}
		}
	case KindCmds, KindCmd:
		r.out.Cmds = append(r.out.Cmds, in.Args...)
	}
	// The copy's words no longer match the source offsets.
	x.lm, x.argOff = nil, nil
	if len(r.errs) == nerr {
		r.out.Steps = append(r.out.Steps, Step{Instruction: &x, Env: env})
	}
}

func (r *resolver) from(in, x *Instruction) {
	var b Base
	for i, f := range in.Flags {
		v, ok := r.expandFlag(in, f)
		if !ok {
			return
		}
		if !platformRE.MatchString(v) {
			r.errf(f.Pos, in, "invalid platform %q; expected os/arch[/variant] like linux/arm64", v)
			return
		}
		x.Flags[i].Value = v
		b.Platform = v
	}
	if len(in.Args) == 0 {
		return
	}
	ref, ok := r.expand(in, 0, 0, in.Args[0])
	if !ok {
		return
	}
	switch {
	case ref == "":
		r.errf(argPos(in, 0), in, "image reference %q expands to nothing", in.Args[0])
		return
	case strings.ContainsAny(ref, spaces+"\n"):
		r.errf(argPos(in, 0), in, "invalid image reference %q; expected no blanks", ref)
		return
	case strings.EqualFold(ref, "scratch"):
		ref = "scratch"
	}
	x.Args[0] = ref
	b.Ref, b.Pos = ref, in.Pos
	r.out.Bases = append(r.out.Bases, b)
}

func (r *resolver) copy(in, x *Instruction) {
	for i, f := range in.Flags {
		v, ok := r.expandFlag(in, f)
		if !ok {
			continue
		}
		if !chmodRE.MatchString(v) {
			r.errf(f.Pos, in, "invalid --chmod %q; expected an octal mode like 0755", v)
			continue
		}
		x.Flags[i].Value = v
	}
	for i, a := range in.Args {
		v, ok := r.expand(in, i, 0, a)
		if !ok {
			continue
		}
		if v == "" {
			r.errf(argPos(in, i), in, "%q expands to an empty path", a)
			continue
		}
		x.Args[i] = v
	}
}

// pairs expands the key=value arguments of in (or the legacy "key value"
// form) with the variables as they were before in, as Docker does: in
// "ENV a=1 b=$a", b sees the previous a.
func (r *resolver) pairs(in *Instruction, first int, expandKey bool) ([]KeyValue, bool) {
	if first > len(in.Args) {
		return nil, true
	}
	args := in.Args[first:]
	legacy := len(args) == 2 && !strings.Contains(args[0], "=")
	if legacy {
		args = []string{args[0] + "=" + args[1]}
	}
	ok := true
	var kvs []KeyValue
	for j, a := range args {
		i := first + j
		k, v, _ := strings.Cut(a, "=")
		vfrom := len(k) + 1
		if legacy {
			vfrom = 0
			i = first + 1
		}
		if expandKey {
			ek, good := r.expand(in, first+j, 0, k)
			if !good {
				ok = false
				continue
			}
			if ek == "" {
				r.errf(argPos(in, first+j), in, "key %q expands to nothing", k)
				ok = false
				continue
			}
			k = ek
		}
		ev, good := r.expand(in, i, vfrom, v)
		if !good {
			ok = false
			continue
		}
		kvs = append(kvs, KeyValue{k, ev})
	}
	return kvs, ok
}

func (r *resolver) envInstr(in, x *Instruction) {
	kvs, ok := r.pairs(in, 0, false)
	if !ok {
		return
	}
	x.Args = x.Args[:0]
	for i, kv := range kvs {
		if kv.Key == "ARCH" {
			r.errf(argPos(in, i), in, "ARCH cannot be set; it is the target architecture (%s)", r.opts.Arch)
			return
		}
		x.Args = append(x.Args, kv.Key+"="+kv.Value)
	}
	x.ArgPos, x.argOff = firstPos(in, len(kvs)), nil
	for _, kv := range kvs {
		r.env[kv.Key] = kv.Value
	}
}

func (r *resolver) label(in, x *Instruction) {
	kvs, ok := r.pairs(in, 0, true)
	if !ok {
		return
	}
	x.Args = x.Args[:0]
	for _, kv := range kvs {
		x.Args = append(x.Args, kv.Key+"="+kv.Value)
		r.labels[kv.Key] = kv.Value
	}
	x.ArgPos, x.argOff = firstPos(in, len(kvs)), nil
}

func (r *resolver) arg(in, x *Instruction) {
	for i, a := range in.Args {
		name, def, hasDef := strings.Cut(a, "=")
		if name == "ARCH" {
			if hasDef {
				r.errf(argPos(in, i), in, "ARCH cannot have a default; it is the target architecture (%s)", r.opts.Arch)
			}
			x.Args[i] = name
			continue
		}
		var val *string
		if v, ok := r.opts.BuildArgs[name]; ok {
			r.used[name] = true
			val = &v
		} else if hasDef {
			v, ok := r.expand(in, i, len(name)+1, def)
			if !ok {
				continue
			}
			val = &v
		}
		r.args[name] = val
		x.Args[i] = name
		if val != nil {
			x.Args[i] = name + "=" + *val
		}
	}
}

func (r *resolver) app(in, x *Instruction) {
	if len(in.Args) == 0 {
		return
	}
	a := &App{Name: in.Args[0], Kind: in.Kind, Pos: in.Pos}
	for i := 1; i < len(in.Args); i++ {
		v, ok := r.expand(in, i, 0, in.Args[i])
		if !ok {
			continue
		}
		if !strings.HasPrefix(v, localScheme) || len(v) == len(localScheme) {
			r.errf(argPos(in, i), in, "unsupported source %q; expected local://PATH (only local sources are supported)", v)
			continue
		}
		x.Args[i] = v
		a.Paths = append(a.Paths, v)
	}
	if len(a.Paths) != len(in.Args)-1 {
		return
	}
	r.out.Apps = append(r.out.Apps, a)
	switch in.Kind {
	case KindCNI:
		r.out.CNI = append(r.out.CNI, a.Name)
	case KindCSI:
		r.out.CSI = append(r.out.CSI, a.Name)
	}
}

// ref returns the app argument i of in names: declared earlier in the
// file, or held by a base image. It records an error if there is none.
func (r *resolver) ref(in *Instruction, i int, what string) *App {
	if i >= len(in.Args) {
		return nil
	}
	name := in.Args[i]
	if a := r.out.App(name); a != nil {
		return a
	}
	if contains(r.opts.BaseApps, name) {
		a := &App{Name: name, Pos: in.Pos}
		r.out.Apps = append(r.out.Apps, a)
		return a
	}
	r.errf(argPos(in, i), in, "app %q is not declared; expected an APP, CNI or CSI before %s, or an app of a FROM image", name, what)
	return nil
}

func (r *resolver) appEnv(in, x *Instruction) {
	a := r.ref(in, 0, "APPENV")
	kvs, ok := r.pairs(in, 1, false)
	if a == nil || !ok {
		return
	}
	x.Args = x.Args[:1]
	m := map[string]string{}
	for _, kv := range a.Env {
		m[kv.Key] = kv.Value
	}
	for _, kv := range kvs {
		x.Args = append(x.Args, kv.Key+"="+kv.Value)
		m[kv.Key] = kv.Value
	}
	a.Env = sortedPairs(m)
}

func (r *resolver) kubeVersion(in, x *Instruction) {
	if len(in.Args) == 0 {
		return
	}
	v, ok := r.expand(in, 0, 0, in.Args[0])
	if !ok {
		return
	}
	if !semverRE.MatchString(v) {
		r.errf(argPos(in, 0), in, "invalid version %q; expected a semantic version with a v prefix like v1.22.15", v)
		return
	}
	x.Args[0] = v
	r.out.KubeVersion = v
}
