package generator

import "testing"

func TestDiscoverable(t *testing.T) {
	cases := map[string]bool{
		"manifests/app.yaml":          true,
		"./manifests/":                true,
		"application/apps/web/x.yaml": true,
		"charts/web/Chart.yaml":       true,
		"imageList":                   true,
		".wh.manifests":               true,
		"manifests/.wh.old.yaml":      true,
		".wh..wh..opq":                true,
		"bin/kubelet":                 false,
		"etc/manifests/x.yaml":        false,
		"manifests-old/x.yaml":        false,
		".wh.bin":                     false,
		"usr/share/charts/Chart.yaml": false,
	}
	for name, want := range cases {
		if got := discoverable(name); got != want {
			t.Errorf("discoverable(%q) = %v, want %v", name, got, want)
		}
	}
}
