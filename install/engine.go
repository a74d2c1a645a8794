package install

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/sshsig"
)

// Options configure an engine run.
type Options struct {
	Cluster  *cluster.Cluster
	Bundle   *bundle.Bundle
	HostKeys HostKeyPolicy
	Timeouts Timeouts
	Sink     Sink
	// StateFile records every finished step on the installing host (JSON).
	StateFile string
	// Parallel bounds the hosts whose scripts run at once (default 32).
	// The distribution takes every host at once: its fan-out bounds it.
	Parallel int
	// NodeBatch bounds the worker nodes an upgrade drains and upgrades at
	// once (default 1).
	NodeBatch int
	// Trust, when set, are the keys one of which must have signed the
	// installer's files (detached .sig files): Install checks them with
	// every digest, beside preflight, before any host is changed.
	Trust sshsig.Trust
	// Registry is host:port of the cluster's registry, given to phase scripts.
	// Empty means the first master's address at the Clusterfile's registry port.
	Registry string
}

// Engine installs, joins and resets clusters.
type Engine struct {
	opts         Options
	c            *cluster.Cluster
	state        *localState
	knownHostsMu sync.Mutex

	mu    sync.Mutex
	conns map[string]*Conn
	facts map[string]*Facts
	// counts is each phase's progress across its hosts; failed the worker
	// nodes this run left behind (run.go).
	counts map[string]*HostCount
	failed []HostFailure
	// holder is this run, once a command that changes the cluster began:
	// every connection then holds its host's run lock (locked).
	holder *Holder
	locked map[*Conn]bool
	// runID names this engine's run on hosts (locks, detached scripts).
	runID string
	// absent are hosts a join or reset found installed before but not
	// answering (a master powered off), with their dial's error: the run
	// goes on without them (absent.go).
	absent map[string]error
	// runnerOffsets is how much of each detached script's log was shown,
	// by host and key.
	runnerOffsets map[string]int64
	// markers are each host's step markers (name to content), read in one
	// command before its first step of this run and kept up to date by
	// mark; only this run writes them while it holds the host's lock.
	markers map[string]map[string]string
	dialMu  map[string]*sync.Mutex // one dial per host at a time
	// dialGate bounds the handshakes in flight across all hosts (maxDials).
	dialGate chan struct{}
}

// maxDials is how many SSH handshakes the engine has in flight at once:
// preflight dials every host together, and a hundred key exchanges at once
// cost this machine CPU and descriptors while gaining nothing (each takes
// a few milliseconds). It is also OpenSSH's MaxStartups start (10), for an
// installer that reaches many hosts through one jump host or NAT.
const maxDials = 10

// DefaultParallel is how many hosts run their scripts at once unless told:
// a site of 200 hosts runs them in 7 rounds, not 25 (init-host of the
// kubernetes image takes tens of seconds a host), while a burst of joins
// stays one an API server takes in its stride.
const DefaultParallel = 32

// New returns an engine for the options.
func New(opts Options) (*Engine, error) {
	if opts.Cluster == nil || opts.Bundle == nil {
		return nil, errors.New("install: a cluster and a bundle are required")
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.NodeBatch <= 0 {
		opts.NodeBatch = 1
	}
	if opts.Sink == nil {
		opts.Sink = SinkFunc(func(Event) {})
	}
	opts.Timeouts = opts.Timeouts.withDefaults()
	if opts.Registry == "" {
		opts.Registry = fmt.Sprintf("%s:%d", opts.Cluster.Master0().IP, opts.Cluster.Registry.Port)
	}
	runID, err := newRunID()
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, c: opts.Cluster, conns: map[string]*Conn{}, facts: map[string]*Facts{}, counts: map[string]*HostCount{},
		locked: map[*Conn]bool{}, dialMu: map[string]*sync.Mutex{}, dialGate: make(chan struct{}, maxDials), runID: runID, runnerOffsets: map[string]int64{},
		markers: map[string]map[string]string{}}
	st, err := loadState(opts.StateFile, func(msg string) { e.emit(Event{Kind: Warning, Message: msg}) })
	if err != nil {
		return nil, err
	}
	e.state = st
	return e, nil
}

// Close ends every SSH connection.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ip, c := range e.conns {
		c.Close()
		delete(e.conns, ip)
		delete(e.locked, c)
	}
	return nil
}

func (e *Engine) emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.opts.Sink.Event(ev)
}

// paths on a host, all under the data root.
func (e *Engine) dataRoot() string { return e.c.DataRoot }
func (e *Engine) remote(p ...string) string {
	return path.Join(append([]string{e.c.DataRoot}, p...)...)
}
func (e *Engine) stubPath() string   { return e.remote("bin", "sealpack") }
func (e *Engine) rootfsPath() string { return e.remote("rootfs") }
func (e *Engine) sharePath() string  { return e.remote("share") }
func (e *Engine) blobDir() string    { return e.remote("blobs") }
func (e *Engine) markerPath(step string) string {
	return e.remote("state", step+".done")
}

// forEach runs fn for every node with at most limit at once, and returns
// every node's error joined (nil when all succeed).
func forEach(ctx context.Context, nodes []cluster.Node, limit int, fn func(context.Context, cluster.Node) error) error {
	if limit <= 0 {
		limit = len(nodes)
	}
	sem := make(chan struct{}, limit)
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			errs[i] = fn(ctx, n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// conn returns the host's connection, dialling it if needed or if the last
// one was lost. Once a run began, the connection holds the host's run lock.
func (e *Engine) conn(ctx context.Context, n cluster.Node) (*Conn, error) {
	e.mu.Lock()
	dmu := e.dialMu[n.IP]
	if dmu == nil {
		dmu = &sync.Mutex{}
		e.dialMu[n.IP] = dmu
	}
	e.mu.Unlock()
	dmu.Lock()
	defer dmu.Unlock()
	e.mu.Lock()
	c, holder, locked := e.conns[n.IP], e.holder, false
	if c != nil {
		locked = e.locked[c]
	}
	e.mu.Unlock()
	if c != nil && (holder == nil || locked) {
		return c, nil
	}
	if c == nil {
		var err error
		if c, err = dial(ctx, n, &e.opts.HostKeys, &e.knownHostsMu, e.opts.Timeouts, e.dialGate); err != nil {
			return nil, err
		}
		e.mu.Lock()
		e.conns[n.IP] = c
		e.mu.Unlock()
	}
	if holder != nil {
		if err := e.lockHost(ctx, c); err != nil {
			e.dropConn(n.IP)
			return nil, err
		}
		e.mu.Lock()
		e.locked[c] = true
		e.mu.Unlock()
	}
	return c, nil
}

// dropConn forgets a connection that failed, so the next step redials.
func (e *Engine) dropConn(ip string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.conns[ip]; c != nil {
		c.Close()
		delete(e.conns, ip)
		delete(e.locked, c)
	}
}

// step runs one idempotent step on a host: skipped when the host's marker
// says it is done, recorded on the host and locally when it succeeds.
// A step that loses its connection is retried once on a new one.
func (e *Engine) step(ctx context.Context, n cluster.Node, phase, name string, fn func(ctx context.Context, c *Conn) (string, error)) error {
	return e.stepID(ctx, n, phase, name, "", fn)
}

// stepID is step for work whose result depends on content: the marker holds
// id (a digest), and a marker with another id means the work is redone, as
// when a newer bundle is installed over an older one.
func (e *Engine) stepID(ctx context.Context, n cluster.Node, phase, name, id string, fn func(ctx context.Context, c *Conn) (string, error)) error {
	c, err := e.conn(ctx, n)
	if err != nil {
		e.emit(Event{Kind: StepFailed, Host: n.IP, Phase: phase, Step: name, Err: err})
		return err
	}
	if out, err := e.marker(ctx, c, name); err == nil && markerDone(out, id) {
		e.emit(Event{Kind: StepSkipped, Host: n.IP, Phase: phase, Step: name})
		e.state.record(n.IP, name)
		return nil
	}
	start := time.Now()
	e.emit(Event{Kind: StepStart, Host: n.IP, Phase: phase, Step: name})
	msg, err := fn(ctx, c)
	var ce *ConnError
	if errors.As(err, &ce) && ctx.Err() == nil {
		e.dropConn(n.IP)
		e.emit(Event{Kind: Info, Host: n.IP, Phase: phase, Step: name, Message: "connection lost, reconnecting: " + ce.Error()})
		if c, err = e.conn(ctx, n); err == nil {
			msg, err = fn(ctx, c)
		}
	}
	if err == nil {
		content := id
		if content == "" {
			content = time.Now().UTC().Format(time.RFC3339)
		}
		err = e.mark(ctx, c, name, content)
	}
	if err != nil {
		if errors.As(err, &ce) {
			e.dropConn(n.IP)
		}
		e.emit(Event{Kind: StepFailed, Host: n.IP, Phase: phase, Step: name, Err: err, Elapsed: time.Since(start)})
		return fmt.Errorf("%s: %s: %w", phase, name, err)
	}
	e.state.record(n.IP, name)
	if err := e.state.save(); err != nil {
		return err
	}
	e.emit(Event{Kind: StepDone, Host: n.IP, Phase: phase, Step: name, Elapsed: time.Since(start), Message: msg})
	return nil
}

func markerDone(content, id string) bool {
	content = strings.TrimSpace(content)
	return content != "" && (id == "" || content == id)
}

// marker is a step's marker on the host ("" when there is none). A host's
// markers are read together, before its first step of the run: a step
// costs one command less (two programs, an SSH session), which at a few
// milliseconds each adds up on a site of hundreds of hosts. Step names are
// file names (a plugin's is checked to be one: cluster's pluginNameRE).
func (e *Engine) marker(ctx context.Context, c *Conn, name string) (string, error) {
	ip := c.Node.IP
	e.mu.Lock()
	m, ok := e.markers[ip]
	content := m[name]
	e.mu.Unlock()
	if ok {
		return content, nil
	}
	// grep prints FILE:LINE for every file; none there prints nothing
	out, err := c.Output(ctx, "cd "+shellQuote(e.remote("state"))+" 2>/dev/null && grep -Hs '' -- *.done || true", time.Minute)
	if err != nil {
		return "", err
	}
	m = parseMarkers(out)
	e.mu.Lock()
	if have, ok := e.markers[ip]; ok {
		m = have // another step of this host read them first
	} else {
		e.markers[ip] = m
	}
	content = m[name]
	e.mu.Unlock()
	return content, nil
}

// parseMarkers reads grep -H's "NAME.done:CONTENT" lines.
func parseMarkers(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if name, content, ok := strings.Cut(l, ".done:"); ok {
			m[name] = strings.TrimSpace(content)
		}
	}
	return m
}

// forgetMarkers drops what is known of a host's markers (its data root was
// removed): the next step reads them again.
func (e *Engine) forgetMarkers(ip string) {
	e.mu.Lock()
	delete(e.markers, ip)
	e.mu.Unlock()
}

// mark writes a step's marker atomically and durably on the host.
func (e *Engine) mark(ctx context.Context, c *Conn, name, content string) error {
	p := e.markerPath(name)
	// Synced before and after the rename, as writeFileDurable does here: a
	// marker that survives a power cut without its content would say done.
	cmd := fmt.Sprintf("{ [ -d %[1]s ] || mkdir -p %[1]s; } && printf '%%s\\n' %[2]s > %[3]s.tmp && sync %[3]s.tmp && mv %[3]s.tmp %[3]s && sync %[1]s", shellQuote(path.Dir(p)), shellQuote(content), shellQuote(p))
	if _, err := c.Output(ctx, cmd, time.Minute); err != nil {
		return err
	}
	e.mu.Lock()
	if m, ok := e.markers[c.Node.IP]; ok {
		m[name] = content
	}
	e.mu.Unlock()
	return nil
}

func ips(nodes []cluster.Node) string {
	s := make([]string, len(nodes))
	for i, n := range nodes {
		s[i] = n.IP
	}
	return strings.Join(s, " ")
}
