package images

import (
	"context"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in, name, repo, tag, err string
	}{
		{in: "nginx", name: "docker.io/library/nginx:latest", repo: "library/nginx", tag: "latest"},
		{in: "docker.io/library/nginx:1.27", name: "docker.io/library/nginx:1.27", repo: "library/nginx", tag: "1.27"},
		{in: "127.0.0.1:5000/a/b:c", name: "127.0.0.1:5000/a/b:c", repo: "a/b", tag: "c"},
		{in: "quay.io/x/y:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			name: "quay.io/x/y:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", repo: "x/y", tag: "v1"},
		{in: "Upper/Case", err: "invalid image reference"},
		{in: "a b", err: "invalid image reference"},
		{in: "", err: "empty"},
	} {
		r, err := ParseRef(tc.in, nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if r.Name != tc.name || r.Repository != tc.repo || r.Tag != tc.tag {
			t.Errorf("%q: got %q %q %q, want %q %q %q", tc.in, r.Name, r.Repository, r.Tag, tc.name, tc.repo, tc.tag)
		}
	}
}

func TestDiscover(t *testing.T) {
	found, err := Discover(context.Background(), DiscoverOptions{
		Root:    "../../testdata/images/rootfs",
		Extra:   []string{"alpine:3.20", "ghcr.io/acme/agent:2.0"},
		Exclude: []string{"ghcr.io/acme/agent", "redis:6"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range found {
		got[f.Ref.Name] = f.Sources[0].String()
	}
	want := map[string]string{
		"docker.io/library/alpine:3.20":  "--image",
		"docker.io/library/busybox:1.36": "manifests/workloads.yaml:11:18 (Deployment/web initContainer init)",
		"docker.io/library/nginx:1.27":   "manifests/workloads.yaml:14:18 (Deployment/web container nginx)",
		"quay.io/acme/backup:v2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": "manifests/workloads.yaml:28:22 (CronJob/backup container backup)",
		"registry.k8s.io/pause:3.9":       "manifests/workloads.yaml:37:14 (Pod/debug container main)",
		"docker.io/calico/node:v3.27.0":   "manifests/imageList:2:1 (imageList)",
		"quay.io/tigera/operator:v1.32.0": "manifests/imageList:3:3 (imageList)",
		"docker.io/library/postgres:16":   "manifests/sub/other.yml:6:10 (Database/db)",
		"docker.io/acme/exporter:0.1":     "manifests/sub/other.yml:8:14 (Database/db)",
		"docker.io/library/redis:7":       "application/apps/web/app.yaml:10:18 (StatefulSet/cache container redis)",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: found at %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected image %s at %s", k, got[k])
		}
	}
	for _, f := range found {
		if f.Ref.Name == "docker.io/library/nginx:1.27" && len(f.Sources) != 2 {
			t.Errorf("nginx sources = %v, want the Deployment and the ephemeral container", f.Sources)
		}
	}
}

func TestDiscoverErrors(t *testing.T) {
	for _, tc := range []struct {
		root  string
		extra []string
		want  string
	}{
		{root: "../../testdata/images/bad-workload", want: `manifests/bad.yaml:10:18: Deployment/web container "nginx": invalid image reference`},
		{root: "../../testdata/images/bad-list", want: `imageList:3:1: invalid image reference "bad image name"`},
		{root: "../../testdata/images/bad-list", extra: []string{"UP"}, want: `--image UP: invalid image reference "UP"`},
		{root: "../../testdata/images/rootfs", extra: []string{"a/b:1=x:1", "c/d:1=x:1"}, want: `--image c/d:1=x:1: docker.io/library/x:1 is also given by --image a/b:1=x:1`},
	} {
		_, err := Discover(context.Background(), DiscoverOptions{Root: tc.root, Extra: tc.extra})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.root, err, tc.want)
		}
	}
}

func TestDiscoverRenameSuppliesManifestImage(t *testing.T) {
	found, err := Discover(context.Background(), DiscoverOptions{
		Root:  "../../testdata/images/rootfs",
		Extra: []string{"127.0.0.1:5000/mirror/nginx:1.27=nginx:1.27"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		if f.Ref.Name != "docker.io/library/nginx:1.27" {
			continue
		}
		var where []string
		for _, s := range f.Sources {
			where = append(where, s.String())
		}
		if got := f.Ref.Source().Name; got != "127.0.0.1:5000/mirror/nginx:1.27" {
			t.Errorf("fetched from %s, want the rename's source", got)
		}
		want := "--image (127.0.0.1:5000/mirror/nginx:1.27=nginx:1.27); manifests/workloads.yaml:14:18 (Deployment/web container nginx); manifests/workloads.yaml:40:14 (Pod/debug ephemeralContainer dbg)"
		if got := strings.Join(where, "; "); got != want {
			t.Errorf("sources = %s\nwant %s", got, want)
		}
		return
	}
	t.Fatal("nginx:1.27 not found")
}
