package install

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/progress"
)

// CheckStatus is a preflight verdict.
type CheckStatus int

const (
	Pass CheckStatus = iota
	Warn
	Fail
)

func (s CheckStatus) String() string { return [...]string{"pass", "warn", "FAIL"}[s] }

// CheckResult is one check on one host.
type CheckResult struct {
	Host   string
	Check  string
	Status CheckStatus
	Reason string
}

// PreflightError lists every failed check of every host.
type PreflightError struct{ Failed []CheckResult }

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "preflight failed (%d problems):", len(e.Failed))
	for _, r := range e.Failed {
		fmt.Fprintf(&b, "\n  %s: %s: %s", r.Host, r.Check, r.Reason)
	}
	return b.String()
}

// Connect opens the SSH connection to every host at once and returns each
// host's error (nil when connected); host keys are checked as configured.
func (e *Engine) Connect(ctx context.Context) map[string]error {
	nodes := e.present(e.c.All())
	var mu sync.Mutex
	out := make(map[string]error, len(nodes))
	forEach(ctx, nodes, 0, func(ctx context.Context, n cluster.Node) error {
		e.emit(Event{Kind: StepStart, Host: n.IP, Phase: "connect", Step: "connect"})
		_, err := e.conn(ctx, n)
		kind := StepDone
		if err != nil {
			kind = StepFailed
		}
		e.emit(Event{Kind: kind, Host: n.IP, Phase: "connect", Step: "connect", Err: err})
		mu.Lock()
		out[n.IP] = err
		mu.Unlock()
		return err
	})
	return out
}

// MaxClockSkew is the largest difference allowed between a host's clock and
// the installing host's: certificates and tokens break beyond it.
const MaxClockSkew = 30 * time.Second

// Preflight connects to every host and checks it before anything changes.
// It returns every result, and a *PreflightError naming all failures.
func (e *Engine) Preflight(ctx context.Context) ([]CheckResult, error) {
	nodes := e.present(e.c.All())
	var mu sync.Mutex
	var results []CheckResult
	add := func(r ...CheckResult) {
		mu.Lock()
		results = append(results, r...)
		mu.Unlock()
	}
	e.emit(Event{Kind: Info, Phase: "preflight", Message: fmt.Sprintf("checking %d hosts", len(nodes))})
	forEach(ctx, nodes, 0, func(ctx context.Context, n cluster.Node) error {
		c, err := e.conn(ctx, n)
		if err != nil {
			add(CheckResult{Host: n.IP, Check: "connect", Status: Fail, Reason: reasonOf(err, n.IP)})
			return err
		}
		add(CheckResult{Host: n.IP, Check: "connect", Status: Pass, Reason: "as " + n.SSH.User})
		f, err := gatherFacts(ctx, c, e.dataRoot())
		if err != nil {
			add(CheckResult{Host: n.IP, Check: "facts", Status: Fail, Reason: reasonOf(err, n.IP)})
			return err
		}
		e.mu.Lock()
		e.facts[n.IP] = f
		e.mu.Unlock()
		add(e.checkHost(n, f)...)
		return nil
	})
	add(e.checkHostnames(nodes)...)
	add(checkMasters(len(e.c.Masters()))...)
	sort.SliceStable(results, func(i, j int) bool { return hostOrder(nodes, results[i].Host) < hostOrder(nodes, results[j].Host) })
	var failed []CheckResult
	for _, r := range results {
		if r.Status == Fail {
			failed = append(failed, r)
		}
		e.emit(Event{Kind: Info, Host: r.Host, Phase: "preflight", Step: r.Check, Message: fmt.Sprintf("%s: %s %s", r.Check, r.Status, r.Reason)})
	}
	if len(failed) > 0 {
		return results, &PreflightError{Failed: failed}
	}
	return results, nil
}

func hostOrder(nodes []cluster.Node, ip string) int {
	for i, n := range nodes {
		if n.IP == ip {
			return i
		}
	}
	return len(nodes)
}

// reasonOf strips the host prefix errors carry, since the table names the host.
func reasonOf(err error, ip string) string {
	s := err.Error()
	for _, p := range []string{ip + ": "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

func (e *Engine) checkHost(n cluster.Node, f *Facts) []CheckResult {
	res := func(check string, ok bool, pass, fail string) CheckResult {
		if ok {
			return CheckResult{Host: n.IP, Check: check, Status: Pass, Reason: pass}
		}
		return CheckResult{Host: n.IP, Check: check, Status: Fail, Reason: fail}
	}
	plat := e.opts.Bundle.Index.Platform
	out := []CheckResult{
		res("os", strings.EqualFold(f.OS, plat.OS), f.OS, fmt.Sprintf("host runs %s, the bundle is for %s", f.OS, plat.OS)),
		res("arch", f.Arch == plat.Architecture, f.Arch, fmt.Sprintf("host is %s, the bundle is for %s", f.Arch, plat.Architecture)),
		res("tools", len(f.Missing) == 0, "all present", "missing: "+strings.Join(f.Missing, ", ")),
	}
	skew := time.Since(f.Time)
	if skew < 0 {
		skew = -skew
	}
	out = append(out, res("clock", skew <= MaxClockSkew+time.Second, fmt.Sprintf("off by %v", skew.Round(time.Second)),
		fmt.Sprintf("clock differs from this machine's by %v (max %v): set the time (NTP) first", skew.Round(time.Second), MaxClockSkew)))
	if !f.Installed {
		need := e.diskNeeded(n)
		out = append(out, res("disk", f.FreeBytes >= need, fmt.Sprintf("%s free", progress.Bytes(f.FreeBytes)),
			fmt.Sprintf("needs %s free under %s, has %s", progress.Bytes(need), e.dataRoot(), progress.Bytes(f.FreeBytes))))
	}
	// On a host an earlier run already worked on, the ports may be held by
	// what that run started (the registry, the image's daemons): a re-run
	// must resume, so only untouched hosts are checked.
	if !f.Touched {
		var busy []string
		for _, p := range e.portsNeeded(n) {
			if slices.Contains(f.Listening, p) {
				busy = append(busy, strconv.Itoa(p))
			}
		}
		out = append(out, res("ports", len(busy) == 0, "free", "in use: "+strings.Join(busy, ", ")))
	}
	return out
}

// diskNeeded is what a host stores: the stub, each layer compressed and
// unpacked, on every master the bundle its registry serves, and on every
// host but the first master the container images' blobs the fan-out
// brings for preloading (hostBlobs).
func (e *Engine) diskNeeded(n cluster.Node) int64 {
	b := e.opts.Bundle
	need := b.Index.Stub.Size
	for _, l := range b.Index.Layers {
		_, bl, _ := b.Blob(l.Digest)
		need += bl.Size + l.Size
	}
	if n.IsMaster() {
		need += b.Trailer.LogicalSize
	}
	if n.IP != e.c.Master0().IP {
		for _, bl := range b.Index.ImageBlobs() {
			need += bl.Size
		}
	}
	return need + need/20 + 16<<20
}

// portsNeeded: the registry's on the first master, plus any the cluster image
// declares in its labels (io.sealpack.ports.master / .node, comma-separated).
func (e *Engine) portsNeeded(n cluster.Node) []int {
	var ports []int
	if n.IP == e.c.Master0().IP {
		ports = append(ports, e.c.Registry.Port)
	}
	key := "io.sealpack.ports.node"
	if n.IsMaster() {
		key = "io.sealpack.ports.master"
	}
	for _, s := range strings.Split(e.opts.Bundle.Index.Config.Labels[key], ",") {
		if p, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			ports = append(ports, p)
		}
	}
	return ports
}

// checkMasters warns about a number of masters whose etcd gains nothing from
// the last one: it keeps quorum while more than half its members live, so 2
// masters survive no failure (less than 1 master does) and 4 survive one, as
// 3 do. It is a warning: a site may add the third master later.
func checkMasters(n int) []CheckResult {
	if n < 2 || n%2 == 1 {
		return nil
	}
	survives := "losing either stops the cluster, as with 1 master"
	if tolerated := (n - 1) / 2; tolerated > 0 {
		survives = fmt.Sprintf("the cluster survives %d master failure(s), as with %d masters", tolerated, n-1)
	}
	return []CheckResult{{Host: "cluster", Check: "masters", Status: Warn, Reason: fmt.Sprintf(
		"%d masters: etcd keeps quorum only while more than half of them live, so %s; use %d masters for high availability", n, survives, n+1)}}
}

func (e *Engine) checkHostnames(nodes []cluster.Node) []CheckResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	byName := map[string][]string{}
	for _, n := range nodes {
		if f := e.facts[n.IP]; f != nil {
			byName[f.Hostname] = append(byName[f.Hostname], n.IP)
		}
	}
	var out []CheckResult
	for _, n := range nodes {
		f := e.facts[n.IP]
		if f == nil {
			continue
		}
		if others := byName[f.Hostname]; len(others) > 1 {
			out = append(out, CheckResult{Host: n.IP, Check: "hostname", Status: Fail, Reason: fmt.Sprintf("%q is also the hostname of %s", f.Hostname, strings.Join(without(others, n.IP), ", "))})
		} else {
			out = append(out, CheckResult{Host: n.IP, Check: "hostname", Status: Pass, Reason: f.Hostname})
		}
	}
	return out
}

func without(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
