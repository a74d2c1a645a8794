package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/sealpack/sealpack/install"

	"github.com/sealpack/sealpack/internal/progress"
)

// welcomeScreen says what the bundle holds and what the wizard will do.
type welcomeScreen struct{ plainScreen }

func (welcomeScreen) title(*Model) string { return "Welcome" }
func (welcomeScreen) shown(m *Model) bool { return m.action == install.ActionInstall }

func (welcomeScreen) update(m *Model, msg tea.KeyPressMsg) tea.Cmd {
	switch {
	case key.Matches(msg, m.keys.Enter):
		return m.goTo(ScreenHosts)
	case key.Matches(msg, m.keys.Back) && len(m.opts.Installed) > 0:
		return m.back()
	}
	return nil
}

func (welcomeScreen) bindings(m *Model) []key.Binding {
	k := m.keys
	return []key.Binding{k.Enter, k.Help, k.Quit}
}

func (welcomeScreen) view(m *Model) string {
	st := m.st
	bi := m.opts.Bundle
	var b strings.Builder
	b.WriteString(st.Title.Render("Welcome") + "\n\n")
	b.WriteString("This installer sets up a Kubernetes cluster on your hosts over SSH, from\n")
	b.WriteString("what it carries: nothing is downloaded.\n\n")
	row := func(k, v string) {
		if v != "" {
			b.WriteString("  " + st.Bold.Render(padRight(k, 12)) + v + "\n")
		}
	}
	row("Bundle", bi.Name)
	row("Kubernetes", orDash(bi.KubeVersion))
	apps := "none"
	if len(bi.Apps) > 0 {
		apps = strings.Join(bi.Apps, ", ")
	}
	row("Apps", apps)
	row("Images", fmt.Sprint(bi.Images))
	row("Size", progress.Bytes(bi.Size))
	row("Arch", bi.Arch)
	style := st.Warn
	if bi.Trusted {
		style = st.Pass
	}
	label := "Signature"
	for _, line := range strings.Split(bi.Signature, "\n") {
		row(label, style.Render(line))
		label = ""
	}
	if len(bi.Labels) > 0 {
		var ls []string
		for _, k := range sortedKeys(bi.Labels) {
			ls = append(ls, k+"="+bi.Labels[k])
		}
		row("Labels", truncate(strings.Join(ls, ", "), max(m.width-16, 10)))
	}
	b.WriteString("\nNext: the hosts, how to log in, checks, then the install. Nothing changes\n")
	b.WriteString("on any host before you confirm on the Review screen.\n\n")
	b.WriteString(st.Bold.Render("Press Enter to start."))
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
