package install

import "testing"

func TestKubeconfigHint(t *testing.T) {
	cases := []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{LabelKubeconfig: "/etc/kubernetes/admin.conf"}, "/etc/kubernetes/admin.conf on 10.0.0.1 (copy it: scp root@10.0.0.1:/etc/kubernetes/admin.conf .)"},
		{nil, "on the first master, 10.0.0.1, where the cluster image puts it"},
	}
	for _, c := range cases {
		if got := KubeconfigHint(c.labels, "10.0.0.1"); got != c.want {
			t.Errorf("KubeconfigHint(%v) = %q, want %q", c.labels, got, c.want)
		}
	}
}
