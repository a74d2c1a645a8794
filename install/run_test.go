package install

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/cluster"
)

func TestPlan(t *testing.T) {
	one := &cluster.Cluster{Hosts: []cluster.Host{{IPs: []string{"10.0.0.1"}, Roles: []string{"master"}}}}
	three := &cluster.Cluster{Hosts: []cluster.Host{
		{IPs: []string{"10.0.0.1"}, Roles: []string{"master"}},
		{IPs: []string{"10.0.0.2", "10.0.0.3"}, Roles: []string{"node"}},
	}}
	ha := &cluster.Cluster{Hosts: []cluster.Host{
		{IPs: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}, Roles: []string{"master"}},
		{IPs: []string{"10.0.0.4"}, Roles: []string{"node"}},
	}}
	all3 := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	all4 := append(all3[:3:3], "10.0.0.4")
	tests := []struct {
		name   string
		c      *cluster.Cluster
		action string
		want   []PlannedPhase
	}{
		{"one master: the phases without hosts are left out", one, ActionInstall, []PlannedPhase{
			{"distribute", []string{"10.0.0.1"}},
			{"registry", []string{"10.0.0.1"}},
			{"pre-install plugins", []string{"10.0.0.1"}},
			{"init-host", []string{"10.0.0.1"}},
			{"init-master0", []string{"10.0.0.1"}},
			{"apps", []string{"10.0.0.1"}},
			{"post-install plugins", []string{"10.0.0.1"}},
		}},
		{"a master and two nodes", three, ActionInstall, []PlannedPhase{
			{"distribute", all3},
			{"registry", all3},
			{"pre-install plugins", all3},
			{"init-host", all3},
			{"init-master0", []string{"10.0.0.1"}},
			{"share", []string{"10.0.0.2", "10.0.0.3"}},
			{"join-node", []string{"10.0.0.2", "10.0.0.3"}},
			{"apps", []string{"10.0.0.1"}},
			{"post-install plugins", all3},
		}},
		{"join runs the install's phases", ha, ActionJoin, []PlannedPhase{
			{"distribute", all4},
			{"registry", all4},
			{"pre-install plugins", all4},
			{"init-host", all4},
			{"init-master0", []string{"10.0.0.1"}},
			{"share", []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"}},
			{"join-master", []string{"10.0.0.2", "10.0.0.3"}},
			{"join-node", []string{"10.0.0.4"}},
			{"apps", []string{"10.0.0.1"}},
			{"post-install plugins", all4},
		}},
		{"reset: the nodes, the other masters one by one, the first master last", ha, ActionReset, []PlannedPhase{
			{"reset-host", []string{"10.0.0.4"}},
			{"reset masters", []string{"10.0.0.3", "10.0.0.2"}},
			{"reset first master", []string{"10.0.0.1"}},
		}},
		{"reset of one host", one, ActionReset, []PlannedPhase{
			{"reset first master", []string{"10.0.0.1"}},
		}},
		{"upgrade: masters one by one, then the nodes", ha, ActionUpgrade, []PlannedPhase{
			{"distribute", all4},
			{"upgrade-prepare", all4},
			{"upgrade-snapshot", []string{"10.0.0.1"}},
			{"registry", all3},
			{"control-plane", all3},
			{"nodes", []string{"10.0.0.4"}},
			{"apps", []string{"10.0.0.1"}},
		}},
		{"upgrade of one host", one, ActionUpgrade, []PlannedPhase{
			{"distribute", []string{"10.0.0.1"}},
			{"upgrade-prepare", []string{"10.0.0.1"}},
			{"upgrade-snapshot", []string{"10.0.0.1"}},
			{"registry", []string{"10.0.0.1"}},
			{"control-plane", []string{"10.0.0.1"}},
			{"apps", []string{"10.0.0.1"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Plan(tt.c, tt.action)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestPlanRefuses(t *testing.T) {
	nodesOnly := &cluster.Cluster{Hosts: []cluster.Host{{IPs: []string{"10.0.0.1"}, Roles: []string{"node"}}}}
	one := &cluster.Cluster{Hosts: []cluster.Host{{IPs: []string{"10.0.0.1"}, Roles: []string{"master"}}}}
	for _, tt := range []struct {
		name   string
		c      *cluster.Cluster
		action string
		want   string
	}{
		{"no master", nodesOnly, ActionInstall, "no master"},
		{"unknown action", one, "deploy", `unknown action "deploy"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Plan(tt.c, tt.action); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
