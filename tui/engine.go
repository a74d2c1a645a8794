package tui

import (
	"context"
	"maps"
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
)

// Engine is what the wizard needs of install.Engine. The stub passes the
// real engine, so the wizard installs with the same code as unattended
// mode; model tests pass a fake that replays events.
type Engine interface {
	Connect(ctx context.Context) map[string]error
	Preflight(ctx context.Context) ([]install.CheckResult, error)
	Install(ctx context.Context) error
	Join(ctx context.Context) error
	Reset(ctx context.Context) error
	Close() error
}

var _ Engine = (*install.Engine)(nil)

// EngineConfig is what the wizard gives the factory for each engine.
type EngineConfig struct {
	// Cluster is a copy of the wizard's model: the engine reads it from its
	// own goroutines while the user may keep editing the original.
	Cluster *cluster.Cluster
	// Sink must receive every engine event: the wizard renders them.
	Sink install.Sink
	// Decide is install.HostKeyPolicy.Decide: it asks the user about an
	// unknown host key and blocks until they answer.
	Decide func(ip string, key ssh.PublicKey) bool
	// Action is what the engine will run (install, join, reset, upgrade):
	// it names the run's log directory.
	Action string
}

// EngineInfo tells the Done screen where the engine keeps its records.
type EngineInfo struct {
	LogDir, StateDir string
}

// NewEngine builds an engine; the stub's version is install.New with the
// state directory, log sink and known_hosts of the command line.
type NewEngine func(EngineConfig) (Engine, EngineInfo, error)

// Messages from the engine's goroutines. They arrive through one channel
// that a re-arming command waits on (see waitFor), so the engine never
// blocks on the renderer and the model sees them in order.
type (
	eventMsg   install.Event
	hostKeyMsg struct {
		IP, Type, Fingerprint, Line string
		reply                       chan<- bool
	}
	connectedMsg struct {
		gen     int
		results map[string]error
	}
	preflightMsg struct {
		gen     int
		results []install.CheckResult
		err     error
	}
	installedMsg struct {
		gen int
		err error
	}
	savedMsg struct {
		path string
		err  error
		auto bool
	}
)

// bridge carries messages from engine goroutines to the program.
type bridge struct {
	ch   chan tea.Msg
	done chan struct{} // closed when the wizard ends: senders give up
	// manual leaves reading ch to the caller: model tests pump it
	// themselves instead of leaving a blocked wait behind each step.
	manual bool
}

func newBridge() *bridge {
	return &bridge{ch: make(chan tea.Msg, 256), done: make(chan struct{})}
}

// send delivers msg unless the wizard has ended.
func (b *bridge) send(msg tea.Msg) bool {
	select {
	case b.ch <- msg:
		return true
	case <-b.done:
		return false
	}
}

// wait is the re-arming command: it returns the next message, and the
// model calls it again after handling each one.
func (b *bridge) wait() tea.Cmd {
	if b.manual {
		return nil
	}
	return func() tea.Msg {
		select {
		case msg := <-b.ch:
			return bridged{msg}
		case <-b.done:
			return nil
		}
	}
}

// bridged marks a message that came through the bridge, so Update knows to
// re-arm the wait.
type bridged struct{ msg tea.Msg }

func (b *bridge) sink() install.Sink {
	return install.SinkFunc(func(e install.Event) { b.send(eventMsg(e)) })
}

// decide asks the model about a key and waits for the answer.
func (b *bridge) decide(ip string, key ssh.PublicKey) bool {
	reply := make(chan bool, 1)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	if !b.send(hostKeyMsg{IP: ip, Type: key.Type(), Fingerprint: ssh.FingerprintSHA256(key), Line: line, reply: reply}) {
		return false
	}
	select {
	case ok := <-reply:
		return ok
	case <-b.done:
		return false
	}
}

// cloneCluster copies c deeply, so an engine's copy shares nothing with the
// model the wizard keeps editing.
func cloneCluster(c *cluster.Cluster) *cluster.Cluster {
	out := *c
	out.Hosts = make([]cluster.Host, len(c.Hosts))
	for i, h := range c.Hosts {
		out.Hosts[i] = cloneHost(h)
	}
	out.Env = slices.Clone(c.Env)
	out.Plugins = slices.Clone(c.Plugins)
	return &out
}

func cloneHost(h cluster.Host) cluster.Host {
	h.IPs = slices.Clone(h.IPs)
	h.Roles = slices.Clone(h.Roles)
	h.Env = slices.Clone(h.Env)
	h.Labels = maps.Clone(h.Labels)
	h.Taints = slices.Clone(h.Taints)
	return h
}
