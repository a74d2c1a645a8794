package generator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/sealpack/sealpack/generator/kubefile"
	"github.com/sealpack/sealpack/rootfs"
)

// fileState is what tells whether RUN touched a path. ctime cannot be set
// by the command, so a write that restores size and mtime is still seen.
type fileState struct {
	mode         fs.FileMode
	size         int64
	mtime, ctime int64
	ino          uint64
	link         string
}

func snapshot(ctx context.Context, dir string) (map[string]fileState, error) {
	m := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st := fileState{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
		if s, ok := fi.Sys().(*syscall.Stat_t); ok {
			st.ctime = s.Ctim.Nano()
			st.ino = s.Ino
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			st.link, _ = os.Readlink(p)
		}
		m[filepath.ToSlash(rel)] = st
		return nil
	})
	return m, err
}

// runStep runs a RUN command in the working rootfs and returns what it
// changed as a layer: new and changed paths, and an OCI whiteout for each
// removed one.
func (b *builder) runStep(ctx context.Context, st kubefile.Step) (*rootfs.Layer, error) {
	in := st.Instruction
	script := strings.Join(in.Args, " ")
	if in.JSONForm {
		// RUN ["prog", "arg"] runs without a shell, as in Dockerfiles.
		script = ""
	}
	before, err := snapshot(ctx, b.work)
	if err != nil {
		return nil, fmt.Errorf("scan the working rootfs: %w", err)
	}
	var cmd *exec.Cmd
	if in.JSONForm {
		if len(in.Args) == 0 {
			return nil, errors.New("expected a command")
		}
		cmd = exec.CommandContext(ctx, in.Args[0], in.Args[1:]...)
	} else {
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", script)
	}
	cmd.Dir = b.work
	cmd.Env = runEnv(st.Env, b.opts.Getenv)
	var out bytes.Buffer
	w := io.Writer(&out)
	if b.opts.RunOutput != nil {
		w = io.MultiWriter(&out, b.opts.RunOutput)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("command failed with exit code %d:\n%s", ee.ExitCode(), tail(out.String(), 8<<10))
		}
		return nil, fmt.Errorf("command did not run: %w", err)
	}
	after, err := snapshot(ctx, b.work)
	if err != nil {
		return nil, fmt.Errorf("scan the working rootfs: %w", err)
	}
	return b.diffLayer(before, after)
}

// runEnv is the step's ARG/ENV; PATH comes from gen's environment unless
// the Kubefile sets it, so the build machine's tools are found.
func runEnv(env []string, getenv func(string) string) []string {
	out := append([]string(nil), env...)
	for _, k := range []string{"PATH", "HOME"} {
		set := false
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				set = true
			}
		}
		if v := getenv(k); !set && v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

func (b *builder) diffLayer(before, after map[string]fileState) (*rootfs.Layer, error) {
	l := rootfs.NewLayer(b.modTime())
	var changed []string
	for p, a := range after {
		if o, ok := before[p]; !ok || o != a {
			changed = append(changed, p)
		}
	}
	sort.Strings(changed)
	for _, p := range changed {
		// Parents first with their real modes; Add would make them 0755.
		for _, d := range ancestors(p) {
			if err := b.addPath(l, d, after[d].mode); err != nil {
				return nil, err
			}
		}
		if err := b.addPath(l, p, after[p].mode); err != nil {
			return nil, err
		}
	}
	var removed []string
	for p := range before {
		if _, ok := after[p]; !ok {
			removed = append(removed, p)
		}
	}
	sort.Strings(removed)
	for _, p := range removed {
		if _, parentGone := before[path.Dir(p)]; parentGone && path.Dir(p) != "." {
			if _, still := after[path.Dir(p)]; !still {
				continue // the parent's whiteout covers it
			}
		}
		for _, d := range ancestors(p) {
			if err := b.addPath(l, d, after[d].mode); err != nil {
				return nil, err
			}
		}
		wh := path.Join(path.Dir(p), ".wh."+path.Base(p))
		if err := l.Add(rootfs.Entry{Path: wh, Mode: 0o644}); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func ancestors(p string) []string {
	var out []string
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

func (b *builder) addPath(l *rootfs.Layer, p string, mode fs.FileMode) error {
	src := filepath.Join(b.work, filepath.FromSlash(p))
	e := rootfs.Entry{Path: p, Source: src, Mode: mode}
	switch {
	case mode.IsDir():
	case mode.IsRegular():
		fi, err := os.Lstat(src)
		if err != nil {
			return err
		}
		e.Size = fi.Size()
	case mode&fs.ModeSymlink != 0:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		e.Linkname = t
	default:
		return fmt.Errorf("RUN made %s, a %s: only files, folders and symlinks can be in a layer", p, mode.Type())
	}
	return l.Add(e)
}
