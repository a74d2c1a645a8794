package generator_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator"
	"github.com/sealpack/sealpack/generator/internal/testreg"
	"github.com/sealpack/sealpack/rootfs"
)

// clusterImage makes a gzip-layered image holding files, with config env
// and labels, and manifest annotations.
func clusterImage(t *testing.T, arch string, files map[string]string, env []string, labels, annotations map[string]string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, body := range files {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Env, cf.Config.Labels = env, labels
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if annotations != nil {
		img = mutate.Annotations(img, annotations).(v1.Image)
	}
	return img
}

func TestMergeThreeBases(t *testing.T) {
	reg := testreg.Start(t)
	ext, _ := json.Marshal(map[string]any{
		"type":         "kube-installer",
		"applications": []map[string]any{{"name": "calico", "type": "kube", "launchfiles": []string{"calico.yaml"}}},
		"launch":       map[string]any{"app_names": []string{"calico"}},
		"env":          map[string]string{"POD_CIDR": "10.0.0.0/16", "SHARED": "sealer"},
	})
	reg.Push(t, "cluster/base:v1", clusterImage(t, "amd64", map[string]string{
		"etc/shared.conf": "from base", "bin/kubeadm": "k", "application/apps/calico/calico.yaml": "kind: x",
	}, nil, nil, map[string]string{generator.SealerExtension: string(ext)}))

	dir := testreg.CopyContext(t, "../testdata/build/merge", reg.Host)
	net := clusterImage(t, "amd64", map[string]string{"etc/net.conf": "net"}, []string{"SHARED=net", "NET=1"},
		map[string]string{generator.ConfigLabel: `{"apps":[{"name":"web","type":"kube","paths":["application/apps/web/web.yaml"]}],"labels":{"tier":"net"}}`}, nil)
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(net, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "net"})); err != nil {
		t.Fatal(err)
	}
	storage := clusterImage(t, "amd64", map[string]string{"etc/shared.conf": "from storage", "bin/kubeadm": "k2"}, []string{"STORAGE=1"}, nil, nil)
	tag, _ := name.NewTag("storage:1")
	if err := tarball.WriteToFile(filepath.Join(dir, "storage.tar"), tag, storage); err != nil {
		t.Fatal(err)
	}

	var warnings bytes.Buffer
	out := filepath.Join(t.TempDir(), "m.run")
	opts := generator.Options{
		Kubefile: filepath.Join(dir, "Kubefile"), Output: out, Arch: "amd64", Stub: []byte("s"),
		BuildArgs: map[string]string{"REG_HOST": reg.Host}, CacheDir: t.TempDir(), Warnings: &warnings,
	}
	res, err := generator.Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"2 conflicting paths", "bin/kubeadm: from docker-archive:storage.tar replaces the one from " + reg.Host + "/cluster/base:v1", "etc/shared.conf: from docker-archive:storage.tar"} {
		if !strings.Contains(warnings.String(), c) {
			t.Errorf("warnings lack %q:\n%s", c, warnings.String())
		}
	}
	c := res.Index.Config
	if got := strings.Join(c.Env, " "); got != "POD_CIDR=10.0.0.0/16 SHARED=net NET=1 STORAGE=1" {
		t.Errorf("env = %s", got)
	}
	if len(c.Apps) != 2 || c.Apps[0].Name != "calico" || c.Apps[0].Cmds[0] != "kubectl apply -f calico.yaml" || c.Apps[0].Paths[0] != "application/apps/calico/calico.yaml" || c.Apps[1].Name != "web" {
		t.Errorf("apps = %+v", c.Apps)
	}
	if strings.Join(c.Launch, ",") != "calico,web" || c.Labels["tier"] != "net" {
		t.Errorf("launch %v labels %v", c.Launch, c.Labels)
	}

	// Later files win in the bundle's layers.
	b, err := bundle.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rdir := t.TempDir()
	root, _ := os.OpenRoot(rdir)
	defer root.Close()
	for _, l := range b.Index.Layers {
		rc, err := b.OpenLayer(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		if err := rootfs.Apply(context.Background(), root, l.Digest, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	for p, want := range map[string]string{"etc/shared.conf": "from storage", "etc/net.conf": "net", "etc/extra.txt": "extra\n", "bin/kubeadm": "k2"} {
		if got, _ := os.ReadFile(filepath.Join(rdir, p)); string(got) != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}

	opts.MergeConflict = "error"
	opts.Output = filepath.Join(t.TempDir(), "e.run")
	if _, err := generator.Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "2 conflicting paths") {
		t.Errorf("--merge-conflict=error: err = %v", err)
	}
	opts.MergeConflict, opts.Arch = "", "arm64"
	if _, err := generator.Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "Kubefile:4:1: FROM "+reg.Host+"/cluster/base:v1: image is for linux/amd64, the target is linux/arm64") {
		t.Errorf("platform mismatch: err = %v", err)
	}
}
