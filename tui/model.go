// Package tui is the installer's wizard: a bubbletea program that edits a
// cluster.Cluster screen by screen and renders the install engine's events.
// It holds no install logic: connecting, checking and installing are the
// Engine's, the same code the unattended mode runs.
package tui

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
)

// BundleInfo is what the Welcome screen says about the bundle; the stub
// reads it from the index and trailer.
type BundleInfo struct {
	Name        string
	Labels      map[string]string
	KubeVersion string
	Apps        []string
	Images      int
	Size        int64
	Arch        string
	// Signature says who signed, or "not signed"; one or two lines.
	Signature string
	// Trusted is true when Signature names a key checked against trusted
	// keys (--require-signature); otherwise it is the file's own claim.
	Trusted bool
}

// Options configure a wizard.
type Options struct {
	Bundle BundleInfo
	// Cluster prefills the wizard (from --answers), which then opens at
	// Review. Nil starts from an empty cluster at Welcome.
	Cluster *cluster.Cluster
	// AnswersPath is where Cluster came from, and the default save path
	// (cluster.yaml when empty).
	AnswersPath string
	// DefaultKey is the first ~/.ssh/id_* that exists, found by the caller
	// (the model does no I/O outside commands).
	DefaultKey string
	// Installed are the clusters this machine installed. With any, and no
	// Cluster, the wizard opens at Start: add hosts, reset, upgrade, or a
	// new cluster.
	Installed []InstalledCluster
	NewEngine NewEngine
	// Command formats the command line that runs verb with an answers file
	// unattended, for the Done screen.
	Command func(verb, answers string) string
}

// Result is what the wizard leaves behind.
type Result struct {
	Cluster   *cluster.Cluster
	Saved     string // the answers file written, if any
	Installed bool   // the action finished (install, join, reset or upgrade)
	Action    string // what ran, or would have: install, join, reset, upgrade
	// Answers is the file the wizard's answers came from, when not Saved.
	Answers string
	Err     error // the install's error, when it ran and failed
	Aborted bool  // the user quit before the install finished
}

// Model is the root model: it holds every screen's state, handles global
// keys and routes the rest to the active screen.
type Model struct {
	opts   Options
	ctx    context.Context
	keys   keyMap
	st     styles
	help   help.Model
	br     *bridge
	width  int
	height int

	screen  Screen
	screens []namedScreen // every screen, in the order of the step bar
	// action is what the wizard will run: install, or join when it adds
	// hosts to an installed cluster.
	action   string
	showHelp bool
	quitting bool
	result   Result

	c     *cluster.Cluster
	dirty bool // edited since loaded or last saved
	// preflightOK is true once preflight passed for the cluster as it is
	// now; any edit clears it, so Review never installs unchecked answers.
	preflightOK bool

	hosts   hostsScreen
	ssh     sshScreen
	run     runState
	keyQ    []hostKeyMsg // host keys waiting for the user, first shown
	review  reviewScreen
	install installScreen
}

// New returns a wizard model. ctx bounds every engine operation.
func New(ctx context.Context, opts Options) *Model {
	if opts.AnswersPath == "" {
		opts.AnswersPath = "cluster.yaml"
	}
	m := &Model{opts: opts, ctx: ctx, action: install.ActionInstall, keys: defaultKeys(), st: defaultStyles(), help: help.New(), br: newBridge(), width: 80, height: 24}
	switch {
	case opts.Cluster != nil:
		m.screen = ScreenReview
		m.load(opts.Cluster, opts.AnswersPath)
	case len(opts.Installed) > 0:
		m.screen = ScreenStart
		m.load(opts.Installed[0].Cluster, opts.Installed[0].AnswersPath)
	default:
		m.load(nil, opts.AnswersPath)
	}
	m.install = newInstallScreen()
	m.screens = []namedScreen{
		{ScreenStart, &startScreen{}},
		{ScreenWelcome, welcomeScreen{}},
		{ScreenHosts, &m.hosts},
		{ScreenSSH, &m.ssh},
		{ScreenConnect, connectScreen{}},
		{ScreenPreflight, preflightScreen{}},
		{ScreenReview, &m.review},
		{ScreenInstall, &m.install},
		{ScreenDone, doneScreen{}},
	}
	if m.screen == "" {
		m.screen = ScreenWelcome
	}
	m.layout()
	// The screens a wizard opens at (Welcome, Start, Review) start no command.
	m.cur().enter(m)
	return m
}

// load makes c (a copy; an empty cluster when nil), read from path, the
// cluster the wizard edits, with the screens built from it.
func (m *Model) load(c *cluster.Cluster, path string) {
	if path == "" {
		path = "cluster.yaml"
	}
	m.opts.Cluster, m.opts.AnswersPath = c, path
	if c == nil {
		c = &cluster.Cluster{}
	} else {
		c = cloneCluster(c)
	}
	if c.Name == "" {
		// Validate needs a name, and the state directory is named after it.
		c.Name = "cluster"
	}
	c.ApplyDefaults()
	m.c, m.dirty, m.preflightOK, m.result = c, false, false, Result{}
	m.hosts = newHostsScreen(m)
	m.ssh = newSSHScreen(m)
	m.review = newReviewScreen(m)
	if m.screens != nil {
		m.layout()
	}
}

// Result returns the outcome; read it from the final model after Run.
func (m *Model) Result() Result {
	r := m.result
	r.Cluster, r.Action, r.Answers = m.c, m.action, m.answersFile()
	return r
}

// Init starts listening to the engine bridge.
func (m *Model) Init() tea.Cmd { return m.br.wait() }

// Update handles global keys and messages, then the active screen's.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmds []tea.Cmd
	if b, ok := msg.(bridged); ok {
		msg = b.msg
		cmds = append(cmds, m.br.wait())
	}
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, tea.Batch(cmds...)
	case hostKeyMsg:
		m.keyQ = append(m.keyQ, msg)
		return m, tea.Batch(cmds...)
	case eventMsg:
		m.onEvent(msg)
		return m, tea.Batch(cmds...)
	case tea.KeyPressMsg:
		cmds = append(cmds, m.onKey(msg))
		return m, tea.Batch(cmds...)
	}
	cmds = append(cmds, m.onResult(msg))
	return m, tea.Batch(cmds...)
}

func (m *Model) onKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	// A host key question takes every key until answered: the engine is
	// blocked on it.
	if len(m.keyQ) > 0 {
		q := m.keyQ[0]
		switch {
		case key.Matches(msg, k.Yes):
			m.keyQ = m.keyQ[1:]
			q.reply <- true
			m.hosts.pin(m, q.IP, q.Line)
		case key.Matches(msg, k.No, k.Quit):
			m.keyQ = m.keyQ[1:]
			q.reply <- false
		}
		return nil
	}
	if key.Matches(msg, k.Quit) {
		if m.screen == ScreenInstall && m.install.running {
			// Stopping mid-install is safe (steps are recorded) but rarely
			// meant: ask first.
			m.install.confirmStop = true
			return nil
		}
		return m.quit()
	}
	if m.showHelp {
		if key.Matches(msg, k.Help, k.Back) {
			m.showHelp = false
		}
		return nil
	}
	if key.Matches(msg, k.Help) && !m.typing() {
		m.showHelp = true
		return nil
	}
	if m.ssh.checking {
		// The key file is being read before connecting: Esc cancels and
		// goes back; other keys wait for the answer.
		if !key.Matches(msg, k.Back) {
			return nil
		}
		m.ssh.cancelCheck()
	}
	return m.cur().update(m, msg)
}

// typing reports whether a text field has the keyboard, so printable keys
// such as ? go into it.
func (m *Model) typing() bool { return m.cur().typing() }

func (m *Model) quit() tea.Cmd {
	m.quitting = true
	if m.result.Err == nil && !m.result.Installed {
		m.result.Aborted = true
	}
	m.end()
	eng := m.run.eng
	m.run.eng = nil
	return tea.Sequence(closeEngine(eng), tea.Quit)
}

// goTo enters a screen, starting its work.
func (m *Model) goTo(s Screen) tea.Cmd {
	m.screen = s
	m.showHelp = false
	return m.cur().enter(m)
}

// next goes to the screen after this one in this run's steps.
func (m *Model) next() tea.Cmd {
	here := false
	for _, s := range m.screens {
		switch {
		case s.id == m.screen:
			here = true
		case here && s.shown(m):
			return m.goTo(s.id)
		}
	}
	return nil
}

// back goes to the screen before this one in this run's steps.
func (m *Model) back() tea.Cmd {
	prev := m.screen
	for _, s := range m.screens {
		if s.id == m.screen {
			break
		}
		if s.shown(m) {
			prev = s.id
		}
	}
	return m.goTo(prev)
}

// edited records that the cluster changed: checks must run again.
func (m *Model) edited() {
	m.dirty = true
	m.preflightOK = false
}

// layout gives every screen its size.
func (m *Model) layout() {
	m.help.SetWidth(m.width)
	body := m.bodyHeight()
	for _, s := range m.screens {
		s.setSize(m.width, body)
	}
}

// The frame: title, step bar, a blank line, the body, the footer.
const frameLines = 4

func (m *Model) bodyHeight() int { return max(m.height-frameLines, 3) }

// View renders the frame around the active screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "sealpack installer"
	return v
}

func (m *Model) render() string {
	if m.quitting {
		return ""
	}
	var body string
	switch {
	case m.showHelp:
		body = m.viewHelp()
	case len(m.keyQ) > 0:
		body = m.viewHostKey(m.keyQ[0])
	default:
		body = m.viewScreen()
	}
	title := m.st.Title.Render("sealpack installer") + m.st.Faint.Render(" · "+m.opts.Bundle.Name)
	out := []string{truncate(title, m.width), m.viewSteps(), ""}
	out = append(out, fit(body, m.width, m.bodyHeight())...)
	out = append(out, truncate(m.footer(), m.width))
	return strings.Join(out, "\n")
}

func (m *Model) viewScreen() string { return m.cur().view(m) }

// viewSteps is the step bar: the screens of this run, the current one marked.
func (m *Model) viewSteps() string {
	var parts []string
	for _, s := range m.screens {
		if !s.shown(m) {
			continue
		}
		name := s.title(m)
		if s.id == m.screen {
			parts = append(parts, m.st.StepActive.Render("["+name+"]"))
		} else {
			parts = append(parts, m.st.Step.Render(name))
		}
	}
	return truncate(strings.Join(parts, " > "), m.width)
}

// bindings lists the keys the active screen answers to, for the footer and
// the help screen.
func (m *Model) bindings() []key.Binding {
	if b := m.cur().bindings(m); len(b) > 0 {
		return b
	}
	return []key.Binding{m.keys.Enter, m.keys.Quit}
}

func (m *Model) footer() string {
	if len(m.keyQ) > 0 {
		return m.help.ShortHelpView([]key.Binding{m.keys.Yes, m.keys.No})
	}
	return m.help.ShortHelpView(m.bindings())
}

func (m *Model) viewHelp() string {
	var b strings.Builder
	b.WriteString(m.st.Title.Render("Keys on the "+m.cur().title(m)+" screen") + "\n\n")
	all := append(m.bindings(), m.keys.Help, m.keys.Quit)
	seen := map[string]bool{}
	for _, kb := range all {
		h := kb.Help()
		if seen[h.Key] {
			continue
		}
		seen[h.Key] = true
		b.WriteString("  " + m.st.Bold.Render(padRight(h.Key, 12)) + h.Desc + "\n")
	}
	b.WriteString("\n  Esc goes back a screen; nothing changes on the hosts before " + m.install.title(m) + ".\n")
	b.WriteString("  Press ? or Esc to close this help.")
	return b.String()
}

func (m *Model) viewHostKey(q hostKeyMsg) string {
	var b strings.Builder
	b.WriteString(m.st.Warn.Render("Unknown host key") + "\n\n")
	b.WriteString("  Host:        " + q.IP + "\n")
	b.WriteString("  Key type:    " + q.Type + "\n")
	b.WriteString("  Fingerprint: " + m.st.Bold.Render(q.Fingerprint) + "\n\n")
	b.WriteString("Compare it with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub\n")
	b.WriteString("on its console). Trust it? It is recorded in known_hosts and pinned as\n")
	b.WriteString("hostKey in the answers file.\n\n")
	b.WriteString(m.st.Bold.Render("  y") + " trust   " + m.st.Bold.Render("n") + " refuse")
	if n := len(m.keyQ) - 1; n > 0 {
		b.WriteString(m.st.Faint.Render("   (" + plural(n, "more key") + " waiting)"))
	}
	return b.String()
}

// closeEngine ends an engine's connections in a command, since it is I/O.
func closeEngine(e Engine) tea.Cmd {
	if e == nil {
		return nil
	}
	return func() tea.Msg {
		e.Close()
		return nil
	}
}

// now is the wall clock, read only for elapsed times shown on screen.
func since(t time.Time, now time.Time) time.Duration {
	if t.IsZero() || now.Before(t) {
		return 0
	}
	return now.Sub(t)
}

// fit cuts or pads s to exactly h lines of at most w cells, so the footer
// stays on the last line whatever a screen renders.
func fit(s string, w, h int) []string {
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		lines[i] = truncate(l, w)
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return lines
}

func truncate(s string, w int) string {
	if lipgloss.Width(s) <= w {
		return s
	}
	return lipgloss.NewStyle().MaxWidth(w).Render(s)
}

func padRight(s string, w int) string {
	if n := lipgloss.Width(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return itoa(n) + " " + what + "s"
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
