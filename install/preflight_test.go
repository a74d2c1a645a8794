package install

import (
	"strings"
	"testing"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
)

// The disk a host needs follows what it will hold: every master keeps a
// copy of the bundle for its registry, every host but the first master the
// images' blobs the fan-out brings for preloading.
func TestDiskNeededFollowsWhatAHostHolds(t *testing.T) {
	const stub, bundleSize, image = 1 << 20, 300 << 20, 100 << 20
	b := &bundle.Bundle{
		Trailer: bundle.Trailer{LogicalSize: bundleSize},
		Index: &bundle.Index{
			Stub: bundle.Stub{Size: stub},
			Blobs: []bundle.Blob{
				{Digest: "sha256:" + strings.Repeat("a", 64), Size: image - 1000, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip"},
				{Digest: "sha256:" + strings.Repeat("b", 64), Size: 1000, MediaType: "application/vnd.oci.image.manifest.v1+json"},
				{Digest: "sha256:" + strings.Repeat("c", 64), Size: 7 << 20, MediaType: bundle.MediaTypeAgent},
			},
		},
	}
	c := &cluster.Cluster{Name: "disk", DataRoot: "/var/lib/sealpack", Hosts: []cluster.Host{
		{IPs: []string{"10.0.0.1", "10.0.0.2"}, Roles: []string{cluster.RoleMaster}},
		{IPs: []string{"10.0.0.3"}, Roles: []string{cluster.RoleNode}},
	}}
	c.ApplyDefaults()
	e, err := New(Options{Cluster: c, Bundle: b})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	margin := func(n int64) int64 { return n + n/20 + 16<<20 }
	for _, tc := range []struct {
		ip   string
		want int64
	}{
		{"10.0.0.1", margin(stub + bundleSize)},         // the first master: its registry reads its copy
		{"10.0.0.2", margin(stub + bundleSize + image)}, // another master: a copy, and the images to import
		{"10.0.0.3", margin(stub + image)},              // a node: the images to import
	} {
		var n cluster.Node
		for _, h := range c.All() {
			if h.IP == tc.ip {
				n = h
			}
		}
		if got := e.diskNeeded(n); got != tc.want {
			t.Errorf("%s: needs %d bytes, want %d", tc.ip, got, tc.want)
		}
	}
}
