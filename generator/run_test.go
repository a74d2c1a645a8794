package generator_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator"
	"github.com/sealpack/sealpack/rootfs"
)

func TestRunAddsChangesRemoves(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "run.run")
	res, err := generator.Build(ctx, generator.Options{
		Kubefile: "../testdata/build/run/Kubefile", Output: out, Arch: "arm64", Stub: []byte("stub"),
		BuildArgs: map[string]string{"WHO": "sealpack"}, CacheDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Index.Layers); n != 3 {
		t.Fatalf("%d layers, want COPY and two RUNs", n)
	}
	b, err := bundle.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// The first RUN's layer holds exactly what it touched.
	rc, err := b.OpenLayer(ctx, res.Index.Layers[1])
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	modes := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		modes[h.Name] = h.Mode
	}
	rc.Close()
	sort.Strings(names)
	want := "etc/ etc/app/ etc/app/.wh.gone.txt etc/app/.wh.olddir etc/app/keep.txt etc/app/mode.txt etc/app/new.txt opt/ opt/tool/ opt/tool/link"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("RUN layer:\n got %s\nwant %s", got, want)
	}
	if modes["etc/app/mode.txt"] != 0o600 {
		t.Errorf("mode.txt mode %o, want 600", modes["etc/app/mode.txt"])
	}

	// Applied in order, the layers give the tree the commands made.
	dir := t.TempDir()
	root, _ := os.OpenRoot(dir)
	defer root.Close()
	for _, l := range res.Index.Layers {
		rc, err := b.OpenLayer(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if err := rootfs.Apply(ctx, root, l.Digest, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	for p, body := range map[string]string{
		"etc/app/keep.txt": "v1\nv2\n", "etc/app/untouched.txt": "same\n", "etc/app/mode.txt": "secret\n",
	} {
		if got, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(got) != body {
			t.Errorf("%s = %q, %v; want %q", p, got, err, body)
		}
	}
	for _, gone := range []string{"etc/app/gone.txt", "etc/app/olddir", "etc/app/new.txt"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s still there", gone)
		}
	}
	if l, err := os.Readlink(filepath.Join(dir, "opt/tool/link")); err != nil || l != "../../etc/app/new.txt" {
		t.Errorf("link = %q, %v", l, err)
	}
}

func TestRunSeesArgEnvArch(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "Kubefile")
	os.WriteFile(kf, []byte("FROM scratch\nARG WHO=world\nENV GREETING=hello\nRUN echo \"$GREETING $WHO $ARCH\" > out.txt\n"), 0o644)
	out := filepath.Join(dir, "o.run")
	if _, err := generator.Build(context.Background(), generator.Options{Kubefile: kf, Output: out, Arch: "arm64", Stub: []byte("s"),
		BuildArgs: map[string]string{"WHO": "sealpack"}, CacheDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rc, _ := b.OpenLayer(context.Background(), b.Index.Layers[0])
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(tr); string(got) != "hello sealpack arm64\n" {
		t.Errorf("out.txt = %q", got)
	}
}
