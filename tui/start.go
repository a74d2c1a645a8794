package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
)

// InstalledCluster is a cluster this machine installed: the record its
// state directory keeps (install.ClusterRecord).
type InstalledCluster struct {
	Cluster *cluster.Cluster
	// AnswersPath is the record's path: the answers the start screen's
	// actions run with, and where an edit (added hosts) is saved.
	AnswersPath string
}

// startChoice is one thing the start screen offers.
type startChoice struct {
	action string // an install.Action*, or "upgrade"
	label  string
}

// actionUpgrade is the upgrade engine's action (install.Plan knows it once
// the engine can upgrade).
const actionUpgrade = "upgrade"

// upgrader is an engine that can upgrade the cluster to its bundle's
// versions; the wizard offers the upgrade only to such engines.
type upgrader interface {
	Upgrade(ctx context.Context) error
}

// startScreen opens the wizard where this machine holds an installed
// cluster: add hosts to it, reset it, upgrade it, or install a new one.
type startScreen struct {
	plainScreen
	pick       int // which installed cluster
	sel        int // which choice
	confirming bool
}

func (s *startScreen) title(*Model) string { return "Start" }
func (s *startScreen) shown(m *Model) bool { return len(m.opts.Installed) > 0 }

func (s *startScreen) enter(m *Model) tea.Cmd {
	s.confirming = false
	m.action = s.choices(m)[s.sel].action
	return nil
}

func (s *startScreen) bindings(m *Model) []key.Binding {
	k := m.keys
	switch {
	case s.confirming:
		return []key.Binding{k.Yes, k.No}
	case len(m.opts.Installed) > 1:
		return []key.Binding{k.Enter, k.Up, k.Down, k.Left, k.Right, k.Help, k.Quit}
	}
	return []key.Binding{k.Enter, k.Up, k.Down, k.Help, k.Quit}
}

// choices are the actions for the picked cluster: upgrade only when the
// engine has an upgrade plan for it.
func (s *startScreen) choices(m *Model) []startChoice {
	ic := m.opts.Installed[s.pick]
	out := []startChoice{
		{install.ActionJoin, "Add hosts"},
		{install.ActionReset, "Reset"},
	}
	if _, err := install.Plan(ic.Cluster, actionUpgrade); !errors.Is(err, install.ErrUnknownAction) {
		out = append(out, startChoice{actionUpgrade, "Upgrade"})
	}
	return append(out, startChoice{install.ActionInstall, "New cluster"})
}

func (s *startScreen) update(m *Model, msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	choices := s.choices(m)
	if s.confirming {
		switch {
		case key.Matches(msg, k.Yes):
			s.confirming = false
			// Logging in comes next: the record has no typed password.
			return m.goTo(ScreenSSH)
		case key.Matches(msg, k.No):
			s.confirming = false
		}
		return nil
	}
	switch {
	case key.Matches(msg, k.Up):
		s.sel = max(s.sel-1, 0)
	case key.Matches(msg, k.Down):
		s.sel = min(s.sel+1, len(choices)-1)
	case key.Matches(msg, k.Left, k.Right) && len(m.opts.Installed) > 1:
		d := 1
		if key.Matches(msg, k.Left) {
			d = len(m.opts.Installed) - 1
		}
		s.pick = (s.pick + d) % len(m.opts.Installed)
		s.sel = min(s.sel, len(s.choices(m))-1)
	case key.Matches(msg, k.Enter):
		c := choices[s.sel]
		if c.action == install.ActionInstall {
			m.load(nil, "")
		} else {
			ic := m.opts.Installed[s.pick]
			m.load(ic.Cluster, ic.AnswersPath)
		}
		m.action = c.action
		switch c.action {
		case install.ActionInstall:
			return m.goTo(ScreenWelcome)
		case install.ActionJoin:
			// The hosts screen opens at the field that adds them.
			m.hosts.focus = hostsFocusInput
			return m.goTo(ScreenHosts)
		case install.ActionReset:
			s.confirming = true
			return nil
		}
		return m.goTo(ScreenSSH)
	}
	m.action = s.choices(m)[s.sel].action
	return nil
}

func (s *startScreen) view(m *Model) string {
	st := m.st
	ic := m.opts.Installed[s.pick]
	c := ic.Cluster
	var b strings.Builder
	b.WriteString(st.Title.Render("Start") + st.Faint.Render("  a cluster installed from this machine") + "\n\n")
	row := func(k, v string) {
		b.WriteString("  " + st.Bold.Render(padRight(k, 12)) + truncate(v, max(m.width-14, 10)) + "\n")
	}
	name := c.Name
	if n := len(m.opts.Installed); n > 1 {
		name += st.Faint.Render(fmt.Sprintf("  (%d of %d: ←/→ for the others)", s.pick+1, n))
	}
	row("Cluster", name)
	var ms, ns []string
	for _, n := range c.All() {
		if n.IsMaster() {
			ms = append(ms, n.IP)
		} else {
			ns = append(ns, n.IP)
		}
	}
	row("Masters", hostList(ms, m.width-14))
	if len(ns) > 0 {
		row("Nodes", hostList(ns, m.width-14))
	}
	row("Answers", ic.AnswersPath)
	row("Installer", m.opts.Bundle.Name+kubeWords(m.opts.Bundle.KubeVersion))
	b.WriteString("\n")
	if s.confirming {
		all := make([]string, 0, len(c.All()))
		for _, n := range c.All() {
			all = append(all, n.IP)
		}
		b.WriteString(st.Warn.Render("Reset "+c.Name+"?") + " This removes the cluster and everything under " + c.DataRoot + "\n")
		b.WriteString(indentWrap(st.Bold, "from "+plural(len(all), "host")+": "+strings.Join(all, ", "), 0, m.width))
		b.WriteString("\nIts workloads and their data on these hosts are gone for good.\n\n")
		b.WriteString(st.Bold.Render("  y") + " reset   " + st.Bold.Render("n") + " keep it")
		return b.String()
	}
	for i, ch := range s.choices(m) {
		line := padRight(ch.label, 13) + st.Faint.Render(s.describe(m, ch.action))
		if i == s.sel {
			b.WriteString(st.Focused.Render("> ") + st.Selected.Render(padRight(ch.label, 13)) + st.Faint.Render(s.describe(m, ch.action)) + "\n")
		} else {
			b.WriteString("  " + line + "\n")
		}
	}
	b.WriteString("\n" + st.Faint.Render("↑/↓ chooses, Enter goes on. Nothing changes on any host before you confirm.") + "\n")
	return b.String()
}

// describe says what a choice does to the picked cluster.
func (s *startScreen) describe(m *Model, action string) string {
	c := m.opts.Installed[s.pick].Cluster
	switch action {
	case install.ActionJoin:
		return "join new hosts to " + c.Name
	case install.ActionReset:
		return "undo the install on its " + plural(len(c.All()), "host")
	case actionUpgrade:
		return "to this installer's versions" + kubeWords(m.opts.Bundle.KubeVersion)
	}
	return "install another cluster on other hosts"
}

func kubeWords(v string) string {
	if v == "" {
		return ""
	}
	return " (Kubernetes " + v + ")"
}
