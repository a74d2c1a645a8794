package install

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sealpack/sealpack/cluster"
)

// A cluster with several masters keeps working while one is down, and so
// must join and reset: a host this machine installed before that does not
// answer now is absent, and the run goes on without it. The lead is the
// first master present; it does what the first master does in a run
// (feeds the others the bundle, renews and hands out the join data, runs
// the apps), since every master holds the same bundle copy and registry.

// present is nodes without the absent ones.
func (e *Engine) present(nodes []cluster.Node) []cluster.Node {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.absent) == 0 {
		return nodes
	}
	return slices.DeleteFunc(slices.Clone(nodes), func(n cluster.Node) bool { return e.absent[n.IP] != nil })
}

// absentErr is why the host is absent, or nil.
func (e *Engine) absentErr(ip string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.absent[ip]
}

// lead is the first master present (the first master, unless it is absent).
func (e *Engine) lead() cluster.Node {
	if ms := e.present(e.c.Masters()); len(ms) > 0 {
		return ms[0]
	}
	return e.c.Master0()
}

// notLead is nodes without the lead.
func (e *Engine) notLead(nodes []cluster.Node) []cluster.Node {
	l := e.lead()
	return slices.DeleteFunc(slices.Clone(nodes), func(n cluster.Node) bool { return n.IP == l.IP })
}

// installedBefore says whether this machine's record has the host through
// its host setup (init-host done): it is part of the cluster.
func (e *Engine) installedBefore(ip string) bool { return e.state.done(ip, PhaseInitHost) }

// findAbsent dials every host this machine installed before, each for at
// most masterDialTimeout, and marks those that do not answer absent, with a
// warning naming each. Hosts never installed are left to preflight, which
// fails on them. At least one master must answer.
func (e *Engine) findAbsent(ctx context.Context, action string) error {
	var installed []cluster.Node
	for _, n := range e.c.All() {
		if e.installedBefore(n.IP) {
			installed = append(installed, n)
		}
	}
	var (
		mu   sync.Mutex
		down []string
	)
	forEach(ctx, installed, 0, func(ctx context.Context, n cluster.Node) error {
		dctx, cancel := context.WithTimeout(ctx, masterDialTimeout)
		defer cancel()
		if _, err := e.conn(dctx, n); err != nil && ctx.Err() == nil {
			mu.Lock()
			down = append(down, n.IP)
			mu.Unlock()
			e.mu.Lock()
			if e.absent == nil {
				e.absent = map[string]error{}
			}
			e.absent[n.IP] = fmt.Errorf("%s does not answer: %w", n.IP, err)
			e.mu.Unlock()
			e.emit(Event{Kind: Warning, Host: n.IP, Message: fmt.Sprintf("%s: does not answer (%v); installed before, so this %s goes on without it", n.IP, firstLine(err.Error()), action)})
		}
		return nil
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(e.present(e.c.Masters())) == 0 {
		return fmt.Errorf("%s: no master answers (%s): the cluster cannot be reached", action, strings.Join(down, ", "))
	}
	return nil
}

// masterDialTimeout bounds the wait for one master: a master that is
// powered off answers nothing, and the next one should be asked.
const masterDialTimeout = 15 * time.Second
