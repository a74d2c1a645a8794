package tui

import (
	"fmt"
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/sealpack/sealpack/install"
)

// preflightScreen runs the engine's checks on every host: there is no way
// past a failed one.
type preflightScreen struct{ plainScreen }

func (preflightScreen) title(*Model) string { return "Preflight" }

// shown: a reset has nothing to check; its hosts are the installed ones.
func (preflightScreen) shown(m *Model) bool             { return m.action != install.ActionReset }
func (preflightScreen) enter(m *Model) tea.Cmd          { return m.startPreflight() }
func (preflightScreen) bindings(m *Model) []key.Binding { return connectScreen{}.bindings(m) }

func (preflightScreen) update(m *Model, msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	hosts := m.c.All()
	switch {
	case key.Matches(msg, k.Back):
		m.run.stop()
		return m.back()
	case key.Matches(msg, k.Retry) && !m.run.busy:
		return m.goTo(ScreenPreflight)
	case key.Matches(msg, k.Up):
		m.run.sel = max(m.run.sel-1, 0)
	case key.Matches(msg, k.Down):
		m.run.sel = min(m.run.sel+1, len(hosts)-1)
	case key.Matches(msg, k.Enter) && m.run.checkDone && m.preflightOK:
		// There is no way past a failed check: the engine would refuse
		// the install anyway, after changing nothing.
		return m.next()
	}
	return nil
}

func (preflightScreen) view(m *Model) string {
	st := m.st
	var b strings.Builder
	b.WriteString(st.Title.Render("Preflight") + st.Faint.Render("  every host checked before anything changes") + "\n\n")
	if m.run.err != nil {
		b.WriteString(st.Fail.Render("✗ "+m.run.err.Error()) + "\n")
		return b.String()
	}
	if !m.run.checkDone {
		b.WriteString(st.Info.Render("Checking "+plural(len(m.c.All()), "host")+"…") + "\n")
		return b.String()
	}
	var checks []string
	for _, r := range m.run.checks {
		if r.Host != "" && !slices.Contains(checks, r.Check) {
			checks = append(checks, r.Check)
		}
	}
	hosts := m.c.All()
	ipw := 4
	for _, n := range hosts {
		ipw = max(ipw, len(n.IP))
	}
	head := "  " + padRight("HOST", ipw)
	for _, c := range checks {
		head += " " + padRight(c, max(len(c), 4))
	}
	b.WriteString(st.Bold.Render(head) + "\n")
	for i, n := range hosts {
		row := padRight(n.IP, ipw)
		for _, c := range checks {
			w := max(len(c), 4)
			cell := padRight("-", w)
			if r, ok := findCheck(m.run.checks, n.IP, c); ok {
				cell = m.status(r.Status, padRight(statusWord(r.Status), w))
			}
			row += " " + cell
		}
		if i == m.run.sel {
			b.WriteString(st.Focused.Render("> ") + row + "\n")
		} else {
			b.WriteString("  " + row + "\n")
		}
	}
	b.WriteString("\n")
	var fails, warns int
	for _, r := range m.run.checks {
		switch r.Status {
		case install.Fail:
			fails++
		case install.Warn:
			warns++
		}
	}
	// Problems first, for every host; then the selected host's details.
	for _, r := range m.run.checks {
		if r.Status != install.Pass {
			b.WriteString(m.status(r.Status, fmt.Sprintf("%s %s %s:", statusMark(r.Status), r.Host, r.Check)) + " " + r.Reason + "\n")
		}
	}
	if m.run.sel < len(hosts) {
		ip := hosts[m.run.sel].IP
		b.WriteString(st.Faint.Render(ip+":") + "\n")
		for _, r := range m.run.checks {
			if r.Host == ip && r.Status == install.Pass {
				b.WriteString(st.Faint.Render(fmt.Sprintf("  %-9s %s", r.Check, r.Reason)) + "\n")
			}
		}
	}
	b.WriteString("\n")
	switch {
	case fails > 0:
		b.WriteString(st.Fail.Render(plural(fails, "check")+" failed.") + " Fix the hosts, then r to re-run; Esc goes back.\n")
	case m.run.checkErr != nil:
		b.WriteString(st.Fail.Render("✗ "+m.run.checkErr.Error()) + "\n")
	case warns > 0:
		b.WriteString(st.Warn.Render(plural(warns, "warning")+", no failures.") + " Enter continues to Review.\n")
	default:
		b.WriteString(st.Pass.Render("All checks passed.") + " Enter continues to Review.\n")
	}
	return b.String()
}

func findCheck(rs []install.CheckResult, host, check string) (install.CheckResult, bool) {
	for _, r := range rs {
		if r.Host == host && r.Check == check {
			return r, true
		}
	}
	return install.CheckResult{}, false
}

func statusWord(s install.CheckStatus) string {
	return [...]string{"ok", "warn", "FAIL"}[s]
}

func statusMark(s install.CheckStatus) string {
	return [...]string{"✓", "!", "✗"}[s]
}

func (m *Model) status(s install.CheckStatus, text string) string {
	switch s {
	case install.Warn:
		return m.st.Warn.Render(text)
	case install.Fail:
		return m.st.Fail.Render(text)
	}
	return m.st.Pass.Render(text)
}
