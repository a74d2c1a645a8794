package install

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sealpack/sealpack/internal/progress"
)

// The upgrade phases a cluster image's scripts implement (docs/IMAGE-AUTHORS.md,
// "Upgrade"). Without the three upgrade-* scripts of the control plane and
// the nodes an image cannot be upgraded to; the prepare and snapshot scripts
// are optional.
const (
	PhaseUpgradePrepare  = "upgrade-prepare"
	PhaseUpgradeSnapshot = "upgrade-snapshot"
	PhaseUpgradeMaster0  = "upgrade-master0"
	PhaseUpgradeMaster   = "upgrade-master"
	PhaseUpgradeNode     = "upgrade-node"
)

// The variables upgrade scripts get besides the install's.
const (
	envFromVersion = "SEALPACK_FROM_VERSION"
	envToVersion   = "SEALPACK_TO_VERSION"
	envSnapshotDir = "SEALPACK_SNAPSHOT_DIR"
)

// UpgradePlan is what an upgrade does to this cluster, read from the
// cluster itself before anything changes: the versions, each host's
// kubelet, and the phases in the order they run.
type UpgradePlan struct {
	From, To string // the control plane's version when the upgrade began, the bundle's
	// Resumed: an earlier run of this bundle's upgrade began (From is the
	// version it recorded then).
	Resumed bool
	Nodes   []ClusterNode
	Phases  []PlannedPhase // Engine.Plan(ActionUpgrade)
	// Send is what this machine sends at most: the first master's bundle
	// copy and the layers of every other host.
	Send int64
}

// ClusterNode is one node as the cluster reports it.
type ClusterNode struct {
	Name, IP, Kubelet string
}

// String is the plan as a person reads it: versions, then each phase.
func (p *UpgradePlan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "upgrade Kubernetes %s -> %s", p.From, p.To)
	if p.Resumed {
		b.WriteString(" (begun by an earlier run: its finished steps are skipped)")
	}
	b.WriteString("\nnodes:\n")
	for _, n := range p.Nodes {
		fmt.Fprintf(&b, "  %-20s %-15s kubelet %s\n", n.Name, n.IP, n.Kubelet)
	}
	fmt.Fprintf(&b, "steps (at most %s sent from this machine):\n", progress.Bytes(p.Send))
	for i, ph := range p.Phases {
		fmt.Fprintf(&b, "  %d. %-16s %s\n     on %s\n", i+1, ph.Name, upgradeWhat[ph.Name], strings.Join(ph.Hosts, " "))
	}
	return b.String()
}

// VersionError is an upgrade the engine refuses because of the versions:
// a downgrade, a skipped minor version, a node left too far behind.
type VersionError struct{ Msg string }

func (e *VersionError) Error() string { return e.Msg }

// Upgrade upgrades the installed cluster to this bundle: preflight (the
// versions from the cluster, the image's upgrade scripts, every host),
// then each phase of upgradePhases, every step recorded on its host under
// the bundle's digest, so a re-run resumes at the step that failed and a
// run after a finished upgrade changes nothing.
func (e *Engine) Upgrade(ctx context.Context) error {
	release, err := e.begin("upgrade")
	if err != nil {
		return err
	}
	defer release()
	plan, err := e.upgradePreflight(ctx)
	if err != nil {
		return err
	}
	e.emit(Event{Kind: Info, Phase: "preflight", Message: plan.String()})
	if err := e.recordUpgrade(ctx, plan); err != nil {
		return err
	}
	start := time.Now()
	if err := e.runPhases(ctx, e.upgradePhases(plan)); err != nil {
		return err
	}
	e.emit(Event{Kind: Info, Message: fmt.Sprintf("cluster upgraded to %s on %d hosts in %v", plan.To, len(e.c.All()), time.Since(start).Round(time.Millisecond))})
	return nil
}

// PlanUpgrade runs the upgrade's preflight and returns its plan; it
// changes nothing on any host (--plan, and the wizard's review).
func (e *Engine) PlanUpgrade(ctx context.Context) (*UpgradePlan, error) {
	return e.upgradePreflight(ctx)
}

// upgradePreflight checks everything the upgrade needs before any change:
// the image can be upgraded to, the installer file, every host (as install
// checks them, plus disk for the new bundle), and the versions the cluster
// runs against the bundle's.
func (e *Engine) upgradePreflight(ctx context.Context) (*UpgradePlan, error) {
	to, err := e.bundleVersion()
	if err != nil {
		return nil, err
	}
	if err := e.checkUpgradeScripts(ctx); err != nil {
		return nil, err
	}
	if err := e.preflightAndCheck(ctx); err != nil {
		return nil, err
	}
	if err := e.checkUpgradeDisk(); err != nil {
		return nil, err
	}
	m0 := e.c.Master0()
	c, err := e.conn(ctx, m0)
	if err != nil {
		return nil, err
	}
	if out, _ := c.Output(ctx, "cat "+shellQuote(e.markerPath(PhaseInitMaster0))+" 2>/dev/null || true", time.Minute); strings.TrimSpace(out) == "" {
		return nil, fmt.Errorf("upgrade: %s has no cluster (init-master0 never finished there): install it first", m0.IP)
	}
	server, nodes, err := e.clusterVersions(ctx)
	if err != nil {
		return nil, err
	}
	plan := &UpgradePlan{From: server, To: to, Nodes: nodes}
	if rec, err := e.readUpgradeRecord(ctx); err != nil {
		return nil, err
	} else if rec != "" {
		plan.From, plan.Resumed = rec, true
	}
	if err := checkVersions(plan); err != nil {
		return nil, err
	}
	if plan.Phases, err = e.Plan(ActionUpgrade); err != nil {
		return nil, err
	}
	// At most: layers a host already has are not sent (distributeLayers).
	b := e.opts.Bundle
	plan.Send = b.SingleSize() - b.Trailer.StubSize + int64(len(e.c.All())-1)*e.layersSize()
	return plan, nil
}

// bundleVersion is the Kubernetes version this bundle installs (KUBEVERSION).
func (e *Engine) bundleVersion() (string, error) {
	v := e.opts.Bundle.Index.Config.KubeVersion
	if v == "" {
		return "", errors.New("this image cannot be upgraded to: its Kubefile sets no KUBEVERSION, so the installer cannot tell which Kubernetes version it brings")
	}
	if _, err := parseKubeVersion(v); err != nil {
		return "", fmt.Errorf("this image cannot be upgraded to: KUBEVERSION %q: %w", v, err)
	}
	return v, nil
}

// checkUpgradeScripts refuses an image without the upgrade phases the
// cluster's hosts need: it reads the bundle's layers' file lists.
func (e *Engine) checkUpgradeScripts(ctx context.Context) error {
	need := []string{PhaseUpgradeMaster0}
	if len(e.c.Masters()) > 1 {
		need = append(need, PhaseUpgradeMaster)
	}
	if len(e.c.Nodes()) > 0 {
		need = append(need, PhaseUpgradeNode)
	}
	files := map[string]bool{}
	for _, p := range need {
		files["scripts/"+p+".sh"] = false
	}
	if err := e.findFiles(ctx, files); err != nil {
		return fmt.Errorf("read the bundle's layers: %w", err)
	}
	var missing []string
	for _, p := range need {
		if !files["scripts/"+p+".sh"] {
			missing = append(missing, "scripts/"+p+".sh")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("this image cannot be upgraded to: it has no %s (docs/IMAGE-AUTHORS.md, \"Upgrade\"); install it on new hosts instead", strings.Join(missing, ", "))
	}
	return nil
}

// findFiles sets files[name] when the merged rootfs holds name: the last
// layer that names it (or whites it out) decides.
func (e *Engine) findFiles(ctx context.Context, files map[string]bool) error {
	b := e.opts.Bundle
	for _, l := range b.Index.Layers {
		r, err := b.OpenLayer(ctx, l)
		if err != nil {
			return err
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				r.Close()
				return err
			}
			name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
			dir, base := path.Split(name)
			if wh, ok := strings.CutPrefix(base, ".wh."); ok {
				if _, known := files[dir+wh]; known {
					files[dir+wh] = false
				}
				continue
			}
			if _, known := files[name]; known {
				files[name] = h.Typeflag == tar.TypeReg
			}
		}
		r.Close()
	}
	return nil
}

// checkUpgradeDisk: every host must hold the new layers beside the old
// ones, and the first master the new bundle copy beside the previous one.
func (e *Engine) checkUpgradeDisk() error {
	var failed []CheckResult
	for _, n := range e.c.All() {
		e.mu.Lock()
		f := e.facts[n.IP]
		e.mu.Unlock()
		if f == nil {
			continue
		}
		need := e.diskNeeded(n)
		r := CheckResult{Host: n.IP, Check: "disk", Status: Pass, Reason: fmt.Sprintf("%s free for the new bundle's %s", progress.Bytes(f.FreeBytes), progress.Bytes(need))}
		if f.FreeBytes < need {
			r.Status, r.Reason = Fail, fmt.Sprintf("the new bundle needs %s free under %s, the host has %s", progress.Bytes(need), e.dataRoot(), progress.Bytes(f.FreeBytes))
			failed = append(failed, r)
		}
		e.emit(Event{Kind: Info, Host: n.IP, Phase: "preflight", Step: "disk", Message: fmt.Sprintf("disk: %s %s", r.Status, r.Reason)})
	}
	if len(failed) > 0 {
		return &PreflightError{Failed: failed}
	}
	return nil
}

func (e *Engine) layersSize() int64 {
	var n int64
	for _, l := range e.opts.Bundle.Index.Layers {
		if _, bl, err := e.opts.Bundle.Blob(l.Digest); err == nil {
			n += bl.Size
		}
	}
	return n
}

// checkVersions refuses what kubeadm cannot do in one upgrade: a
// downgrade, a skipped minor version, and nodes whose kubelet is older than
// the control plane's minor version before this one.
func checkVersions(p *UpgradePlan) error {
	from, err := parseKubeVersion(p.From)
	if err != nil {
		return fmt.Errorf("the cluster reports version %q: %w", p.From, err)
	}
	to, _ := parseKubeVersion(p.To)
	switch {
	case to.less(from):
		return &VersionError{fmt.Sprintf("the cluster runs Kubernetes %s, newer than this installer's %s: a downgrade is not supported. Use the installer of %s (or a newer one) with this cluster", p.From, p.To, p.From)}
	case to.major != from.major:
		return &VersionError{fmt.Sprintf("the cluster runs Kubernetes %s and this installer brings %s: no upgrade goes across major versions", p.From, p.To)}
	case to.minor > from.minor+1:
		return &VersionError{fmt.Sprintf("the cluster runs Kubernetes %s; this installer's %s would skip v%d.%d, and Kubernetes upgrades one minor version at a time: run the installer of Kubernetes v%d.%d first, then this one", p.From, p.To, from.major, from.minor+1, from.major, from.minor+1)}
	}
	var behind []string
	for _, n := range p.Nodes {
		k, err := parseKubeVersion(n.Kubelet)
		if err != nil {
			return fmt.Errorf("node %s reports kubelet version %q: %w", n.Name, n.Kubelet, err)
		}
		switch {
		case to.less(k):
			return &VersionError{fmt.Sprintf("node %s (%s) runs kubelet %s, newer than this installer's %s: a downgrade is not supported", n.Name, n.IP, n.Kubelet, p.To)}
		case k.minor+1 < to.minor:
			behind = append(behind, fmt.Sprintf("%s (%s) runs kubelet %s", n.Name, n.IP, n.Kubelet))
		}
	}
	if len(behind) > 0 {
		return &VersionError{fmt.Sprintf("%s: more than one minor version behind %s; upgrade those nodes with the installer of v%d.%d first", strings.Join(behind, ", "), p.To, to.major, to.minor-1)}
	}
	return nil
}

type kubeVersion struct{ major, minor, patch int }

func (v kubeVersion) less(o kubeVersion) bool {
	return slices.Compare([]int{v.major, v.minor, v.patch}, []int{o.major, o.minor, o.patch}) < 0
}

// parseKubeVersion reads vMAJOR.MINOR.PATCH, ignoring a pre-release or build
// suffix (v1.37.2-rc.0, v1.37.2+k3s1).
func parseKubeVersion(s string) (kubeVersion, error) {
	core, ok := strings.CutPrefix(s, "v")
	core, _, _ = strings.Cut(core, "-")
	core, _, _ = strings.Cut(core, "+")
	parts := strings.Split(core, ".")
	if !ok || len(parts) != 3 {
		return kubeVersion{}, errors.New("want vMAJOR.MINOR.PATCH")
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return kubeVersion{}, errors.New("want vMAJOR.MINOR.PATCH")
		}
		n[i] = v
	}
	return kubeVersion{n[0], n[1], n[2]}, nil
}

// upgradeRecord is where the first master keeps the version an upgrade to
// this bundle began from, so a resumed run (whose control plane may already
// run the new version) gives the scripts the same SEALPACK_FROM_VERSION.
func (e *Engine) upgradeRecord() string { return e.remote("state", "upgrade-from") }

func (e *Engine) readUpgradeRecord(ctx context.Context) (string, error) {
	c, err := e.conn(ctx, e.c.Master0())
	if err != nil {
		return "", err
	}
	out, err := c.Output(ctx, "cat "+shellQuote(e.upgradeRecord())+" 2>/dev/null || true", time.Minute)
	if err != nil {
		return "", err
	}
	id, from, ok := strings.Cut(strings.TrimSpace(out), " ")
	if !ok || id != e.bundleID() {
		return "", nil // none, or an earlier upgrade's
	}
	return from, nil
}

func (e *Engine) recordUpgrade(ctx context.Context, p *UpgradePlan) error {
	if p.Resumed {
		return nil
	}
	c, err := e.conn(ctx, e.c.Master0())
	if err != nil {
		return err
	}
	rec := e.upgradeRecord()
	_, err = c.Output(ctx, fmt.Sprintf("mkdir -p %s && printf '%%s %%s\\n' %s %s > %s.tmp && mv -f %s.tmp %s",
		shellQuote(path.Dir(rec)), shellQuote(e.bundleID()), shellQuote(p.From), shellQuote(rec), shellQuote(rec), shellQuote(rec)), time.Minute)
	return err
}
