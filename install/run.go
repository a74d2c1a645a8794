package install

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sealpack/sealpack/cluster"
)

// phase is one named stage of a run over some hosts. A run is a list of
// phases built in one place per action (phasesOf), so what the engine runs
// is data that a plan or the wizard can show as it is.
type phase struct {
	name  string
	hosts []cluster.Node
	run   func(context.Context) error
}

// The actions Plan knows, named as the installer's commands are.
const (
	ActionInstall = "install"
	ActionJoin    = "join"
	ActionReset   = "reset"
	ActionUpgrade = "upgrade"
)

// ErrUnknownAction is Plan's error for an action the engine does not run.
var ErrUnknownAction = errors.New("unknown action")

// phasesOf is the phase list an action runs: the one place each command
// and Plan get it from. A new action (upgrade) adds its case here.
func (e *Engine) phasesOf(action string) ([]phase, error) {
	switch action {
	case ActionInstall, ActionJoin:
		// A join is an install of the same cluster: every step the hosts
		// already have is recorded and skipped.
		return e.installPhases(), nil
	case ActionReset:
		return e.resetPhases(), nil
	case ActionUpgrade:
		// The versions only matter when the phases run (PlanUpgrade reads
		// them from the cluster); the list is the same without them.
		return e.upgradePhases(&UpgradePlan{}), nil
	}
	return nil, fmt.Errorf("plan: %w %q (want %s, %s, %s or %s)", ErrUnknownAction, action, ActionInstall, ActionJoin, ActionReset, ActionUpgrade)
}

// PlannedPhase is one phase of a plan: its name and the addresses of the
// hosts it works on, in the order the engine takes them.
type PlannedPhase struct {
	Name  string
	Hosts []string
}

// Plan is what action will run on this cluster, phase by phase, from the
// same list the engine runs. A phase with no hosts (join-master with one
// master) is left out, as the run skips it. It connects to nothing.
func (e *Engine) Plan(action string) ([]PlannedPhase, error) {
	if e.c.Master0().IP == "" {
		return nil, fmt.Errorf("plan: the cluster has no master")
	}
	phases, err := e.phasesOf(action)
	if err != nil {
		return nil, err
	}
	var out []PlannedPhase
	for _, p := range phases {
		if len(p.hosts) == 0 {
			continue
		}
		ips := make([]string, len(p.hosts))
		for i, n := range p.hosts {
			ips[i] = n.IP
		}
		out = append(out, PlannedPhase{Name: p.name, Hosts: ips})
	}
	return out, nil
}

// Plan is Engine.Plan for a Clusterfile without an engine (the wizard's
// Review screen has none before it connects). The install, join and reset
// plans depend on the Clusterfile alone; the cluster is not changed.
func Plan(c *cluster.Cluster, action string) ([]PlannedPhase, error) {
	return (&Engine{c: c}).Plan(action)
}

// runPhases runs phases in order, reporting each across its hosts. Worker
// nodes that fail are left behind and the run goes on without them (see
// hostDone); when the phases are over, those nodes are the run's error.
func (e *Engine) runPhases(ctx context.Context, phases []phase) error {
	for _, p := range phases {
		hosts := e.live(p.hosts)
		if len(hosts) == 0 {
			continue // nothing to do, nothing to report (join-master with one master)
		}
		e.beginPhase(p.name, len(hosts))
		t := time.Now()
		err := p.run(ctx)
		e.emit(Event{Kind: PhaseDone, Phase: p.name, Elapsed: time.Since(t), Hosts: e.phaseCount(p.name), Err: err})
		if err != nil {
			return err
		}
	}
	if failed := e.failedHosts(); len(failed) > 0 {
		return &NodesFailedError{Failed: failed, Hosts: len(e.c.All())}
	}
	return nil
}

// HostFailure is a worker node the run left behind, and why.
type HostFailure struct {
	Host  string
	Phase string
	Err   error
}

// NodesFailedError says which worker nodes failed while the run finished
// on every other host. Running the same command again finishes only them:
// every other host's steps are recorded as done.
type NodesFailedError struct {
	Failed []HostFailure
	Hosts  int // hosts in the run
}

func (e *NodesFailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d hosts failed (the others are done):", len(e.Failed), e.Hosts)
	for _, f := range e.Failed {
		fmt.Fprintf(&b, "\n  %s in %s: %v", f.Host, f.Phase, f.Err)
	}
	return b.String()
}

// Unwrap gives each host's error, for errors.As.
func (e *NodesFailedError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// eachHost runs fn on every host of nodes not already left behind, at most
// Parallel at once, and reports each host's end to the phase's count.
func (e *Engine) eachHost(ctx context.Context, phase string, nodes []cluster.Node, fn func(context.Context, cluster.Node) error) error {
	return forEach(ctx, e.live(nodes), e.opts.Parallel, func(ctx context.Context, n cluster.Node) error {
		return e.hostDone(ctx, phase, n, fn(ctx, n))
	})
}

// hostDone counts a host's end of a phase. A worker node's failure is
// recorded and swallowed, so one node never stops the others; a master's
// failure, or any failure once the run is cancelled, is returned.
func (e *Engine) hostDone(ctx context.Context, phase string, n cluster.Node, err error) error {
	var stop *stopError
	tolerate := err != nil && !n.IsMaster() && ctx.Err() == nil && !errors.As(err, &stop)
	e.mu.Lock()
	c := e.counts[phase]
	if c == nil {
		c = &HostCount{}
		e.counts[phase] = c
	}
	if err == nil {
		c.Done++
	} else {
		c.Failed++
	}
	count := *c
	if tolerate && !slices.ContainsFunc(e.failed, func(f HostFailure) bool { return f.Host == n.IP }) {
		e.failed = append(e.failed, HostFailure{Host: n.IP, Phase: phase, Err: err})
	}
	e.mu.Unlock()
	e.emit(Event{Kind: PhaseProgress, Phase: phase, Hosts: count})
	if tolerate {
		e.emit(Event{Kind: Info, Host: n.IP, Phase: phase, Message: "left behind: the other hosts go on; run the same command again to finish it"})
		return nil
	}
	return err
}

func (e *Engine) beginPhase(name string, hosts int) {
	e.mu.Lock()
	e.counts[name] = &HostCount{Total: hosts}
	e.mu.Unlock()
	e.emit(Event{Kind: PhaseStart, Phase: name, Hosts: HostCount{Total: hosts}})
}

func (e *Engine) phaseCount(name string) HostCount {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.counts[name]; c != nil {
		return *c
	}
	return HostCount{}
}

// live is nodes without the ones this run left behind.
func (e *Engine) live(nodes []cluster.Node) []cluster.Node {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.failed) == 0 {
		return nodes
	}
	return slices.DeleteFunc(slices.Clone(nodes), func(n cluster.Node) bool {
		return slices.ContainsFunc(e.failed, func(f HostFailure) bool { return f.Host == n.IP })
	})
}

func (e *Engine) failedHosts() []HostFailure {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.failed)
}

// stopError is a failure that is not the host's own (the first master's,
// while serving a node): it stops the run even on a worker node.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }

func stopRun(err error) error { return &stopError{err} }
