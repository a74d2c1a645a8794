package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/sealpack/sealpack/install"
)

// runState is the engine the wizard is working with and the operation in
// flight. gen numbers operations so a result that arrives after the user
// went back or retried is dropped.
type runState struct {
	eng    Engine
	info   EngineInfo
	gen    int
	cancel context.CancelFunc
	busy   bool
	err    error // building the engine failed

	conn      map[string]string // per-host connect status
	connErr   map[string]error
	connDone  bool
	checks    []install.CheckResult
	checkErr  error
	checkDone bool
	sel       int
}

func (r *runState) stop() {
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	r.busy = false
}

// begin starts an operation and returns its context and number.
func (m *Model) begin() (context.Context, int) {
	m.run.stop()
	m.run.gen++
	ctx, cancel := context.WithCancel(m.ctx)
	m.run.cancel, m.run.busy = cancel, true
	return ctx, m.run.gen
}

// newEngine replaces the engine with one for the cluster as it is now.
func (m *Model) newEngine() tea.Cmd {
	old := m.run.eng
	m.run.eng, m.run.err = nil, nil
	eng, info, err := m.opts.NewEngine(EngineConfig{Cluster: cloneCluster(m.c), Sink: m.br.sink(), Decide: m.br.decide, Action: m.action})
	if err != nil {
		m.run.err = err
	} else {
		m.run.eng, m.run.info = eng, info
	}
	return closeEngine(old)
}

func (m *Model) startConnect() tea.Cmd {
	closeOld := m.newEngine()
	m.run.conn, m.run.connErr, m.run.connDone, m.run.sel = map[string]string{}, nil, false, 0
	if m.run.err != nil {
		return closeOld
	}
	for _, n := range m.c.All() {
		m.run.conn[n.IP] = "waiting"
	}
	return tea.Batch(closeOld, m.connectCmd())
}

func (m *Model) connectCmd() tea.Cmd {
	ctx, gen := m.begin()
	eng, br := m.run.eng, m.br
	// Results follow the events through the bridge, in order.
	return func() tea.Msg {
		br.send(connectedMsg{gen: gen, results: eng.Connect(ctx)})
		return nil
	}
}

func (m *Model) startPreflight() tea.Cmd {
	m.run.checks, m.run.checkErr, m.run.checkDone, m.run.sel = nil, nil, false, 0
	var closeOld tea.Cmd
	if m.run.eng == nil {
		closeOld = m.newEngine()
		if m.run.err != nil {
			return closeOld
		}
	}
	ctx, gen := m.begin()
	eng, br := m.run.eng, m.br
	return tea.Batch(closeOld, func() tea.Msg {
		res, err := eng.Preflight(ctx)
		br.send(preflightMsg{gen: gen, results: res, err: err})
		return nil
	})
}

// onResult handles the end of an engine operation or a save.
func (m *Model) onResult(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case connectedMsg:
		if msg.gen != m.run.gen {
			return nil
		}
		m.run.busy, m.run.connDone, m.run.connErr = false, true, msg.results
		for ip, err := range msg.results {
			if err != nil {
				m.run.conn[ip] = "failed"
			} else {
				m.run.conn[ip] = "connected"
			}
		}
	case preflightMsg:
		if msg.gen != m.run.gen {
			return nil
		}
		m.run.busy, m.run.checkDone, m.run.checks, m.run.checkErr = false, true, msg.results, msg.err
		m.preflightOK = msg.err == nil
	case installedMsg:
		if msg.gen != m.run.gen {
			return nil
		}
		return m.install.finished(m, msg.err)
	case savedMsg:
		return m.review.onSaved(m, msg)
	case keyCheckedMsg:
		return m.ssh.onKeyChecked(m, msg)
	}
	return nil
}

// onEvent updates per-host state from the engine's events.
func (m *Model) onEvent(e eventMsg) {
	if e.Phase == "connect" && e.Host != "" && m.run.conn != nil && !m.run.connDone {
		switch e.Kind {
		case install.StepStart:
			m.run.conn[e.Host] = "connecting"
		case install.StepDone:
			m.run.conn[e.Host] = "connected"
		case install.StepFailed:
			m.run.conn[e.Host] = "failed"
		}
	}
	if m.screen == ScreenInstall || m.install.running {
		m.install.event(m, install.Event(e))
	}
}

func (m *Model) allConnected() bool {
	if !m.run.connDone {
		return false
	}
	for _, err := range m.run.connErr {
		if err != nil {
			return false
		}
	}
	return true
}

// connectScreen logs in to every host and asks about unknown host keys.
type connectScreen struct{ plainScreen }

func (connectScreen) title(*Model) string { return "Connect" }

func (connectScreen) shown(*Model) bool      { return true }
func (connectScreen) enter(m *Model) tea.Cmd { return m.startConnect() }
func (connectScreen) bindings(m *Model) []key.Binding {
	k := m.keys
	return []key.Binding{k.Enter, k.Retry, k.Up, k.Down, k.Back, k.Help}
}

func (connectScreen) update(m *Model, msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	switch {
	case key.Matches(msg, k.Back):
		m.run.stop()
		return m.back()
	case key.Matches(msg, k.Retry) && !m.run.busy:
		return m.goTo(ScreenConnect)
	case key.Matches(msg, k.Enter) && m.allConnected():
		return m.next()
	}
	return nil
}

func (connectScreen) view(m *Model) string {
	st := m.st
	var b strings.Builder
	b.WriteString(st.Title.Render("Connect") + st.Faint.Render(fmt.Sprintf("  logging in to %s at once as %s", plural(len(m.c.All()), "host"), m.c.SSH.User)) + "\n\n")
	if m.run.err != nil {
		b.WriteString(st.Fail.Render("✗ "+m.run.err.Error()) + "\n")
		return b.String()
	}
	failed := 0
	ipw := 15
	for _, n := range m.c.All() {
		ipw = max(ipw, len(n.IP))
	}
	for _, n := range m.c.All() {
		status := m.run.conn[n.IP]
		var mark string
		switch status {
		case "connected":
			mark = st.Pass.Render("✓ connected")
		case "failed":
			failed++
			mark = st.Fail.Render("✗ failed")
		default:
			mark = st.Info.Render("… " + status)
		}
		b.WriteString(fmt.Sprintf("  %-*s %-12s %s\n", ipw, n.IP, strings.Join(n.Roles, "+"), mark))
		if err := m.run.connErr[n.IP]; err != nil {
			b.WriteString(st.Fail.Render("      "+reason(err, n.IP)) + "\n")
		}
	}
	b.WriteString("\n")
	switch {
	case !m.run.connDone:
		b.WriteString(st.Faint.Render("Connecting…") + "\n")
	case failed > 0:
		b.WriteString(st.Fail.Render(fmt.Sprintf("%s not reachable.", plural(failed, "host"))) + " Esc to fix the hosts or SSH settings, r to retry.\n")
	default:
		next := " Enter runs the preflight checks.\n"
		if m.action == install.ActionReset {
			next = " Enter resets them.\n"
		}
		b.WriteString(st.Pass.Render("All hosts connected.") + next)
	}
	return b.String()
}

// reason drops the host prefix errors carry: the screen already names it.
func reason(err error, ip string) string {
	var ke *install.HostKeyError
	if errors.As(err, &ke) && !ke.Changed && !ke.Pinned {
		return "host key refused (" + ke.Fingerprint + ")"
	}
	return strings.TrimPrefix(err.Error(), ip+": ")
}
