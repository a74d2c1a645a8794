package install

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sealpack/sealpack/cluster"
)

// upgradeWhat says what each upgrade phase does, for the plan.
var upgradeWhat = map[string]string{
	"distribute":         "the new program and layers to every host (layers a host has are not sent again); the first master keeps the installed bundle as bundle/previous.run",
	PhaseUpgradePrepare:  "scripts/upgrade-prepare.sh on every host, while the cluster still runs the old version: what a host can do ahead of its turn (the kubernetes image loads the new images into containerd)",
	PhaseUpgradeSnapshot: "scripts/upgrade-snapshot.sh: an etcd snapshot under the data root (snapshots/)",
	"registry":           "the registry serves the new bundle's images and still the old one's",
	"control-plane":      "master by master: drain, scripts/upgrade-master0.sh (kubeadm upgrade apply) or upgrade-master.sh (kubeadm upgrade node), uncordon, wait Ready",
	"nodes":              "in batches of --parallel: drain (PodDisruptionBudgets honoured), scripts/upgrade-node.sh, uncordon, wait Ready",
	"apps":               "the bundle's apps, as install launches them",
}

// upgradePhases is the upgrade, in order, built like installPhases. Every
// step's marker holds the bundle's digest: a re-run of the same bundle
// skips what is done, a newer bundle does it again.
func (e *Engine) upgradePhases(p *UpgradePlan) []phase {
	all, m0 := e.c.All(), e.c.Master0()
	masters := e.c.Masters()
	return []phase{
		{"distribute", all, func(ctx context.Context) error {
			// a master's failure stops the run: no host count of its own
			for _, m := range masters {
				if err := e.keepPreviousBundle(ctx, m); err != nil {
					return err
				}
			}
			return e.distribute(ctx, all)
		}},
		// Before anything changes: the first master's upgrade rolls out
		// DaemonSets of the new version (kube-proxy) to every node at once,
		// and a node that has not loaded the new images by then pulls them
		// from the masters' registries, 200 nodes at once.
		{PhaseUpgradePrepare, all, func(ctx context.Context) error {
			return e.eachHost(ctx, PhaseUpgradePrepare, all, func(ctx context.Context, n cluster.Node) error {
				return e.runUpgradePhase(ctx, n, PhaseUpgradePrepare, p)
			})
		}},
		{PhaseUpgradeSnapshot, []cluster.Node{m0}, func(ctx context.Context) error {
			return e.hostDone(ctx, PhaseUpgradeSnapshot, m0, e.runUpgradePhase(ctx, m0, PhaseUpgradeSnapshot, p))
		}},
		{"registry", masters, func(ctx context.Context) error {
			return e.serveRegistries(ctx, m0, masters, nil)
		}},
		{"control-plane", masters, func(ctx context.Context) error {
			// One at a time: each master's etcd member and API server are
			// replaced while the others keep quorum and serve.
			for _, n := range masters {
				phase := PhaseUpgradeMaster
				if n.IP == m0.IP {
					phase = PhaseUpgradeMaster0
				}
				if err := e.hostDone(ctx, "control-plane", n, e.upgradeHost(ctx, n, phase, p)); err != nil {
					return &ControlPlaneError{Host: n.IP, From: p.From, To: p.To, Err: err}
				}
			}
			return nil
		}},
		{"nodes", e.c.Nodes(), func(ctx context.Context) error {
			return forEach(ctx, e.live(e.c.Nodes()), e.opts.NodeBatch, func(ctx context.Context, n cluster.Node) error {
				return e.hostDone(ctx, "nodes", n, e.upgradeHost(ctx, n, PhaseUpgradeNode, p))
			})
		}},
		{"apps", []cluster.Node{m0}, func(ctx context.Context) error {
			return e.hostDone(ctx, "apps", m0, e.apps(ctx, m0, e.bundleID()))
		}},
	}
}

// ControlPlaneError is a master whose upgrade failed. The image's script
// runs kubeadm, which puts back the static pods it replaced when the new
// ones do not come up, so the control plane keeps running the old version.
type ControlPlaneError struct {
	Host     string
	From, To string
	Err      error
}

func (e *ControlPlaneError) Error() string {
	return fmt.Sprintf("the control plane's upgrade to %s failed on %s: %v\n"+
		"kubeadm puts back the static pods it replaced when the new ones do not come up, so the control plane there still runs %s "+
		"(check with: kubectl get pods -n kube-system -o wide). Nodes were not touched. "+
		"The etcd snapshot taken before is under the data root's snapshots/ on the first master (docs/UPGRADE.md)",
		e.To, e.Host, e.Err, e.From)
}

func (e *ControlPlaneError) Unwrap() error { return e.Err }

func (e *Engine) previousBundlePath() string { return e.remote("bundle", "previous.run") }

// keepPreviousBundle keeps the installed bundle copy as previous.run
// before the new one replaces it (a hard link: no copy), so the registry
// can go on serving the images running pods use. The old name goes: the
// first master's blob server would otherwise serve the old file at the new
// bundle's offsets until the new copy lands (the registry holds it open).
// Done once per target bundle; a resumed run finds the link already made.
func (e *Engine) keepPreviousBundle(ctx context.Context, m0 cluster.Node) error {
	return e.stepID(ctx, m0, "distribute", "keep-bundle", e.bundleID(), func(ctx context.Context, c *Conn) (string, error) {
		cur, prev := e.bundleCopyPath(), e.previousBundlePath()
		script := fmt.Sprintf(`if [ "$(cat %[1]s 2>/dev/null)" != %[2]s ] && [ -f %[3]s ]; then ln -f %[3]s %[4]s.tmp && mv -f %[4]s.tmp %[4]s && rm -f %[3]s && echo kept; fi`,
			shellQuote(e.markerPath("bundle")), shellQuote(e.bundleID()), shellQuote(cur), shellQuote(prev))
		out, err := c.Output(ctx, script, time.Minute)
		if strings.TrimSpace(out) == "kept" {
			return "the installed bundle kept as " + prev, err
		}
		return "", err
	})
}

// hasPreviousBundle says whether the master keeps the bundle an upgrade
// replaced, whose images its registry then serves too.
func (e *Engine) hasPreviousBundle(ctx context.Context, c *Conn) (bool, error) {
	out, err := c.Output(ctx, "[ -f "+shellQuote(e.previousBundlePath())+" ] && echo yes || true", time.Minute)
	return strings.TrimSpace(out) == "yes", err
}

// upgradeEnv is an upgrade script's environment.
func (e *Engine) upgradeEnv(n cluster.Node, p *UpgradePlan) []string {
	return e.scriptEnv(n, envFromVersion+"="+p.From, envToVersion+"="+p.To, envSnapshotDir+"="+e.remote("snapshots"))
}

// runUpgradePhase runs scripts/PHASE.sh of the new rootfs on a host, once
// per target bundle.
func (e *Engine) runUpgradePhase(ctx context.Context, n cluster.Node, phase string, p *UpgradePlan) error {
	return e.stepID(ctx, n, phase, phase, e.bundleID(), func(ctx context.Context, c *Conn) (string, error) {
		return "", e.runDetached(ctx, c, phase, "scripts/"+phase+".sh", phase, e.rootfsPath(), e.upgradeEnv(n, p), phaseScript(phase))
	})
}

// upgradeHost upgrades one host: drain it (evictions honour
// PodDisruptionBudgets), run its upgrade script, uncordon it and wait
// until it is Ready. Each is a step of its own, so a re-run after a failed
// script does not drain again and one after an uncordon does nothing.
// A cluster of one host is not drained: its pods have nowhere to go.
func (e *Engine) upgradeHost(ctx context.Context, n cluster.Node, phase string, p *UpgradePlan) error {
	name := nodeName(p.Nodes, n.IP)
	drain := len(e.c.All()) > 1
	if drain && name == "" {
		return fmt.Errorf("the cluster reports no node with the address %s", n.IP)
	}
	if drain {
		err := e.stepID(ctx, n, phase, "upgrade-drain", e.bundleID(), func(ctx context.Context, c *Conn) (string, error) {
			_, err := e.kubectl(ctx, "drain", name, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout="+drainTimeout.String())
			if err != nil {
				// Leave it schedulable as it was: nothing else changed yet.
				e.kubectl(context.WithoutCancel(ctx), "uncordon", name)
			}
			return "drained " + name, err
		})
		if err != nil {
			return err
		}
	}
	if err := e.runUpgradePhase(ctx, n, phase, p); err != nil {
		if drain {
			e.emit(Event{Kind: Warning, Host: n.IP, Phase: phase, Message: fmt.Sprintf("node %s stays cordoned (drained, its upgrade failed): a re-run finishes it and uncordons it", name)})
		}
		return err
	}
	if !drain {
		return nil
	}
	return e.stepID(ctx, n, phase, "upgrade-uncordon", e.bundleID(), func(ctx context.Context, c *Conn) (string, error) {
		if _, err := e.kubectl(ctx, "uncordon", name); err != nil {
			return "", err
		}
		_, err := e.kubectl(ctx, "wait", "--for=condition=Ready", "node/"+name, "--timeout="+readyTimeout.String())
		return name + " Ready", err
	})
}

// How long a node may take to drain (PodDisruptionBudgets may hold
// evictions until replacements run elsewhere) and to be Ready again.
const (
	drainTimeout = 10 * time.Minute
	readyTimeout = 5 * time.Minute
)

func nodeName(nodes []ClusterNode, ip string) string {
	for _, n := range nodes {
		if n.IP == ip {
			return n.Name
		}
	}
	return ""
}

// kubectl runs the bundle's kubectl on a master and returns its output.
// Every use is one that can be repeated (drain, uncordon, wait, reads), so
// one the API dropped midway (a master's API server restarting after its
// upgrade: the tier saw a drain's evictions end in "unexpected EOF" just
// after the last master was upgraded) is run again, up to kubectlTries
// times, instead of leaving a node behind.
func (e *Engine) kubectl(ctx context.Context, args ...string) (string, error) {
	wait := 2 * time.Second
	for try := 1; ; try++ {
		var out, errOut bytes.Buffer
		err := e.Kubectl(ctx, args, nil, &out, &errOut)
		if err == nil {
			return out.String(), nil
		}
		s := strings.TrimSpace(errOut.String())
		if s != "" {
			err = fmt.Errorf("%w: %s", err, s)
		}
		if try == kubectlTries || !apiWentAway(s) {
			return out.String(), err
		}
		e.emit(Event{Kind: Info, Message: fmt.Sprintf("kubectl %s: the API dropped the request (%s): again in %v", args[0], apiWentAwayRE.FindString(s), wait)})
		select {
		case <-ctx.Done():
			return out.String(), err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// kubectlTries is how often kubectl runs when the API drops its request:
// waits of 2, 4 and 8 s cover an API server's restart.
const kubectlTries = 4

// apiWentAwayRE matches kubectl errors that say the API server went away
// mid-request or did not answer, not that it refused the request (a
// PodDisruptionBudget holding an eviction, an unknown node).
var apiWentAwayRE = regexp.MustCompile(`unexpected EOF|connection refused|connection reset by peer|i/o timeout|TLS handshake timeout|http2: server sent GOAWAY|http2: client connection lost|the server is currently unable to handle the request|etcdserver: leader changed|etcdserver: request timed out`)

func apiWentAway(stderr string) bool { return apiWentAwayRE.MatchString(stderr) }

// clusterVersions asks the cluster which version its control plane and
// each node's kubelet run.
func (e *Engine) clusterVersions(ctx context.Context) (string, []ClusterNode, error) {
	out, err := e.kubectl(ctx, "version", "-o", "json")
	if err != nil {
		return "", nil, fmt.Errorf("read the cluster's version (kubectl version): %w", err)
	}
	var v struct {
		Server *struct {
			GitVersion string `json:"gitVersion"`
		} `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Server == nil || v.Server.GitVersion == "" {
		return "", nil, fmt.Errorf("read the cluster's version: kubectl version -o json gave no serverVersion (%v): %.200s", err, out)
	}
	out, err = e.kubectl(ctx, "get", "nodes", "-o", "json")
	if err != nil {
		return "", nil, fmt.Errorf("list the cluster's nodes: %w", err)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				NodeInfo struct {
					KubeletVersion string `json:"kubeletVersion"`
				} `json:"nodeInfo"`
				Addresses []struct {
					Type    string `json:"type"`
					Address string `json:"address"`
				} `json:"addresses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return "", nil, fmt.Errorf("list the cluster's nodes: kubectl get nodes -o json: %w", err)
	}
	var nodes []ClusterNode
	for _, it := range list.Items {
		n := ClusterNode{Name: it.Metadata.Name, Kubelet: it.Status.NodeInfo.KubeletVersion}
		for _, a := range it.Status.Addresses {
			if a.Type == "InternalIP" {
				n.IP = a.Address
			}
		}
		nodes = append(nodes, n)
	}
	var missing []string
	for _, h := range e.c.All() {
		if nodeName(nodes, h.IP) == "" {
			missing = append(missing, h.IP)
		}
	}
	if len(missing) > 0 {
		return "", nil, fmt.Errorf("the cluster has no node with the address %s: join the hosts of the answers file first (join)", strings.Join(missing, ", "))
	}
	return v.Server.GitVersion, nodes, nil
}
