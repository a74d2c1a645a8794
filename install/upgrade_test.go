package install

import (
	"strings"
	"testing"
)

func TestCheckVersions(t *testing.T) {
	nodes := func(v ...string) []ClusterNode {
		var out []ClusterNode
		for i, k := range v {
			out = append(out, ClusterNode{Name: "n" + string(rune('1'+i)), IP: "10.0.0." + string(rune('1'+i)), Kubelet: k})
		}
		return out
	}
	tests := []struct {
		name, from, to string
		kubelets       []string
		want           string // empty: allowed
	}{
		{"next minor", "v1.36.3", "v1.37.2", []string{"v1.36.3", "v1.36.3"}, ""},
		{"patch", "v1.37.0", "v1.37.2", []string{"v1.37.0"}, ""},
		{"the same version (a re-run, or new apps)", "v1.37.2", "v1.37.2", []string{"v1.37.2"}, ""},
		{"a node upgraded already (resumed)", "v1.36.3", "v1.37.2", []string{"v1.37.2", "v1.36.3"}, ""},
		{"pre-release suffixes", "v1.36.3+k3s1", "v1.37.0-rc.1", []string{"v1.36.3"}, ""},
		{"downgrade", "v1.37.2", "v1.36.3", []string{"v1.37.2"}, "a downgrade is not supported. Use the installer of v1.37.2"},
		{"patch downgrade", "v1.37.2", "v1.37.1", []string{"v1.37.2"}, "a downgrade is not supported"},
		{"skipped minor", "v1.35.1", "v1.37.2", []string{"v1.35.1"}, "would skip v1.36, and Kubernetes upgrades one minor version at a time: run the installer of Kubernetes v1.36 first"},
		{"major", "v1.37.2", "v2.0.0", []string{"v1.37.2"}, "no upgrade goes across major versions"},
		{"a node two minors behind", "v1.36.3", "v1.37.2", []string{"v1.36.3", "v1.35.0"}, "n2 (10.0.0.2) runs kubelet v1.35.0: more than one minor version behind v1.37.2; upgrade those nodes with the installer of v1.36 first"},
		{"a node newer than the bundle", "v1.37.2", "v1.37.2", []string{"v1.38.0"}, "runs kubelet v1.38.0, newer than this installer's v1.37.2"},
		{"garbage from the cluster", "1.37", "v1.37.2", nil, `the cluster reports version "1.37"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkVersions(&UpgradePlan{From: tt.from, To: tt.to, Nodes: nodes(tt.kubelets...)})
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestAPIWentAway(t *testing.T) {
	for _, tc := range []struct {
		stderr string
		want   bool
	}{
		// the tier's drain, just after the last master's upgrade
		{`error when evicting pods/"httpd-cfdc49676-chbpr" -n "default": Post "https://127.0.0.1:6444/api/v1/namespaces/default/pods/httpd-cfdc49676-chbpr/eviction": unexpected EOF`, true},
		{`The connection to the server 127.0.0.1:6444 was refused - did you specify the right host or port?: dial tcp 127.0.0.1:6444: connect: connection refused`, true},
		{`Error from server (ServiceUnavailable): the server is currently unable to handle the request`, true},
		{`Error from server: etcdserver: leader changed`, true},
		// refusals: running again would change nothing
		{`error when evicting pods/"web-0" -n "default" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.`, false},
		{`Error from server (NotFound): nodes "h9" not found`, false},
		{``, false},
	} {
		if got := apiWentAway(tc.stderr); got != tc.want {
			t.Errorf("apiWentAway(%q) = %v, want %v", tc.stderr, got, tc.want)
		}
	}
}
