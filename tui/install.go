package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/sealpack/sealpack/install"
	"github.com/sealpack/sealpack/internal/progress"
)

// maxLogLines bounds the log pane; the full log is in the log directory.
const maxLogLines = 2000

// hostProgress is one host's line on the Install screen.
type hostProgress struct {
	phase, step string
	state       string // running, done, skipped, failed
	steps       int    // steps finished or skipped
	bytes       int64
	total       int64
	// rate is measured from the first Progress event of the step.
	since      time.Time
	sinceBytes int64
	at         time.Time
}

// phaseProgress is one phase of the run across its hosts.
type phaseProgress struct {
	name    string
	hosts   install.HostCount
	done    bool
	failed  bool
	elapsed time.Duration
}

type installScreen struct {
	plainScreen
	running     bool
	confirmStop bool
	stopping    bool
	hosts       map[string]*hostProgress
	phases      []*phaseProgress // in the order they started
	failures    []string
	logs        []string
	vp          viewport.Model
	// follow keeps the log pane on the newest line until the user scrolls
	// up, and again once they scroll back to the bottom. It is kept apart
	// from the viewport's position because the pane's height changes as
	// the screen above it grows, which moves "the bottom".
	follow bool
	// trouble lists the hosts that failed or are slow, on big clusters
	// where a line per host does not fit; tab moves the keys to it.
	trouble      viewport.Model
	troubleFocus bool
	start, last  time.Time
	err          error
}

// perHostLines is the most hosts the Install screen shows a line each for;
// bigger clusters get phases with counts and the hosts that need a look.
const perHostLines = 8

// slowAfter is how long a host may run one step before it is listed as slow.
const slowAfter = 2 * time.Minute

func newInstallScreen() installScreen {
	return installScreen{vp: viewport.New(), trouble: viewport.New(), follow: true, hosts: map[string]*hostProgress{}}
}

// title is the action the screen runs: Install, or Join when it adds hosts.
func (s *installScreen) title(m *Model) string  { return strings.ToUpper(m.action[:1]) + m.action[1:] }
func (s *installScreen) enter(m *Model) tea.Cmd { return m.startInstall() }
func (s *installScreen) bindings(m *Model) []key.Binding {
	k := m.keys
	return []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Quit, k.Help}
}

func (s *installScreen) setSize(w, h int) {
	s.vp.SetWidth(w)
	s.vp.SetHeight(max(h/2-1, 3))
}

// startInstall saves the answers when they exist nowhere yet (a resume
// needs a file), then runs the engine's action: the same code as
// `install --answers --yes` (or join, reset, upgrade), preflight included.
func (m *Model) startInstall() tea.Cmd {
	s := &m.install
	*s = newInstallScreen()
	s.setSize(m.width, m.bodyHeight())
	s.running = true
	if m.dirty || m.answersFile() == "" {
		m.review.refresh(m)
		return saveCmd(strings.TrimSpace(m.review.path.Value()), m.review.text, true)
	}
	return m.installCmd()
}

// answersFile is the file that holds the answers being installed.
func (m *Model) answersFile() string {
	if m.result.Saved != "" {
		return m.result.Saved
	}
	if m.opts.Cluster != nil && !m.dirty {
		return m.opts.AnswersPath
	}
	return ""
}

func (m *Model) installCmd() tea.Cmd {
	var closeOld tea.Cmd
	if m.run.eng == nil {
		closeOld = m.newEngine()
		if m.run.err != nil {
			return tea.Batch(closeOld, m.install.finished(m, m.run.err))
		}
	}
	run, err := m.runner(m.run.eng)
	if err != nil {
		return tea.Batch(closeOld, m.install.finished(m, err))
	}
	ctx, gen := m.begin()
	br := m.br
	// The result goes through the bridge behind the engine's events, so
	// Done never shows before the last of them.
	return tea.Batch(closeOld, func() tea.Msg {
		br.send(installedMsg{gen: gen, err: run(ctx)})
		return nil
	})
}

// runner is the engine's method for the wizard's action.
func (m *Model) runner(eng Engine) (func(context.Context) error, error) {
	switch m.action {
	case install.ActionJoin:
		return eng.Join, nil
	case install.ActionReset:
		return eng.Reset, nil
	case actionUpgrade:
		if u, ok := eng.(upgrader); ok {
			return u.Upgrade, nil
		}
		return nil, errors.New("this installer's engine cannot upgrade a cluster")
	}
	return eng.Install, nil
}

func (s *installScreen) finished(m *Model, err error) tea.Cmd {
	s.running, s.confirmStop = false, false
	m.run.busy = false
	s.err = err
	m.result.Installed = err == nil
	m.result.Action = m.action
	m.result.Err = err
	m.result.Aborted = false
	return m.goTo(ScreenDone)
}

func (s *installScreen) update(m *Model, msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	if s.confirmStop {
		switch {
		case key.Matches(msg, k.Yes):
			s.confirmStop, s.stopping = false, true
			// The engine returns at its next step boundary or command;
			// what finished is recorded on the hosts and in the state file.
			m.run.cancel()
		case key.Matches(msg, k.No):
			s.confirmStop = false
		}
		return nil
	}
	if key.Matches(msg, k.Next) && len(m.c.All()) > perHostLines {
		s.troubleFocus = !s.troubleFocus
		return nil
	}
	var cmd tea.Cmd
	if s.troubleFocus {
		s.trouble, cmd = s.trouble.Update(msg)
		return cmd
	}
	s.vp, cmd = s.vp.Update(msg)
	s.follow = s.vp.AtBottom()
	return cmd
}

// event folds one engine event into the screen.
func (s *installScreen) event(m *Model, e install.Event) {
	if e.Time.IsZero() {
		e.Time = s.last
	}
	if s.start.IsZero() {
		s.start = e.Time
	}
	s.last = e.Time
	who := e.Host
	if who == "" {
		who = "cluster"
	}
	what := e.Phase
	if e.Step != "" && e.Step != e.Phase {
		what += "/" + e.Step
	}
	h := s.hosts[e.Host]
	if h == nil && e.Host != "" {
		h = &hostProgress{}
		s.hosts[e.Host] = h
	}
	st := m.st
	switch e.Kind {
	case install.StepStart:
		*h = hostProgress{phase: e.Phase, step: e.Step, state: "running", steps: h.steps, at: e.Time}
	case install.Progress:
		if h.step != e.Step || h.since.IsZero() {
			h.since, h.sinceBytes = e.Time, e.Bytes
		}
		h.phase, h.step, h.state, h.bytes, h.total, h.at = e.Phase, e.Step, "running", e.Bytes, e.Total, e.Time
	case install.StepDone, install.StepSkipped:
		h.phase, h.step, h.steps = e.Phase, e.Step, h.steps+1
		h.state = "done"
		line := fmt.Sprintf("[%s] %s: done in %s", who, what, e.Elapsed.Round(10*time.Millisecond))
		if e.Kind == install.StepSkipped {
			h.state, line = "skipped", fmt.Sprintf("[%s] %s: already done", who, what)
		}
		s.log(line)
	case install.StepFailed:
		h.phase, h.step, h.state = e.Phase, e.Step, "failed"
		msg := fmt.Sprintf("%s %s: %v", who, what, e.Err)
		s.failures = append(s.failures, msg)
		s.log(st.Fail.Render("✗ [" + who + "] " + what + ": FAILED: " + fmt.Sprint(e.Err)))
	case install.Log:
		s.log(st.Faint.Render(fmt.Sprintf("[%s] %s: %s", who, what, e.Message)))
	case install.Warning:
		s.log(st.Fail.Render(fmt.Sprintf("[%s] warning: %s", who, e.Message)))
	case install.Info:
		s.log(fmt.Sprintf("[%s] %s", who, e.Message))
	case install.PhaseStart:
		s.phases = append(s.phases, &phaseProgress{name: e.Phase, hosts: e.Hosts})
	case install.PhaseProgress, install.PhaseDone:
		p := s.phase(e.Phase)
		p.hosts = e.Hosts
		if e.Kind == install.PhaseDone {
			p.done, p.failed, p.elapsed = true, e.Err != nil, e.Elapsed
			s.log(fmt.Sprintf("[cluster] %s finished in %v (%s)", e.Phase, e.Elapsed.Round(time.Millisecond), e.Hosts))
		}
	}
}

// phase is the named phase's progress, started now if no event said so.
func (s *installScreen) phase(name string) *phaseProgress {
	for _, p := range s.phases {
		if p.name == name {
			return p
		}
	}
	p := &phaseProgress{name: name}
	s.phases = append(s.phases, p)
	return p
}

func (s *installScreen) log(line string) {
	s.logs = append(s.logs, line)
	if len(s.logs) > maxLogLines {
		s.logs = s.logs[len(s.logs)-maxLogLines:]
	}
	s.vp.SetContentLines(s.logs)
	if s.follow {
		s.vp.GotoBottom()
	}
}

func (s *installScreen) view(m *Model) string {
	st := m.st
	var b strings.Builder
	hosts := m.c.All()
	head := fmt.Sprintf("  %s · %s", plural(len(hosts), "host"), since(s.start, s.last).Round(time.Second))
	if s.stopping {
		head += st.Warn.Render("  stopping after the current step…")
	}
	b.WriteString(st.Title.Render("Install") + st.Faint.Render(head) + "\n")
	if len(hosts) <= perHostLines {
		s.viewHosts(m, &b)
	} else {
		s.viewPhases(m, &b)
	}
	if s.confirmStop {
		b.WriteString("\n" + st.Warn.Render("Stop the install?") + " Finished steps are recorded; running the installer\n")
		b.WriteString("again resumes where it stopped.   " + st.Bold.Render("y") + " stop   " + st.Bold.Render("n") + " keep going\n")
		return b.String()
	}
	b.WriteString(st.Faint.Render(truncate("── log "+strings.Repeat("─", m.width), m.width)) + "\n")
	used := strings.Count(b.String(), "\n")
	s.vp.SetHeight(max(m.bodyHeight()-used, 3))
	if s.follow {
		s.vp.GotoBottom()
	}
	b.WriteString(s.vp.View())
	return b.String()
}

// viewHosts is a line per host: what it does now, with its transfer.
func (s *installScreen) viewHosts(m *Model, b *strings.Builder) {
	st := m.st
	for _, n := range m.c.All() {
		h := s.hosts[n.IP]
		if h == nil {
			h = &hostProgress{state: "waiting"}
		}
		what := h.phase
		if h.step != "" && h.step != h.phase {
			what += "/" + h.step
		}
		line := fmt.Sprintf("  %-15s %-6s %-24s ", n.IP, roleShort(n.Roles), truncate(what, 24))
		b.WriteString(line + s.hostStatus(m, h) + "\n")
		if transferring(h) {
			// Bytes and ETA get a line of their own: they do not fit
			// beside the step at 80 columns.
			b.WriteString(st.Faint.Render(strings.Repeat(" ", 18)+eta(h)) + "\n")
		}
	}
	var done []string
	for _, p := range s.phases {
		if p.done && !p.failed {
			done = append(done, p.name)
		}
	}
	if len(done) > 0 {
		b.WriteString(st.Faint.Render(truncate("  phases done: "+strings.Join(done, ", "), m.width)) + "\n")
	}
	for _, f := range s.failures {
		b.WriteString(st.Fail.Render(truncate("✗ "+f, m.width)) + "\n")
	}
}

// viewPhases is the view of a big cluster: the phases with their counts
// (finished ones on one line), then a scrollable list of the hosts that
// failed or are slow.
func (s *installScreen) viewPhases(m *Model, b *strings.Builder) {
	st := m.st
	var done []string
	for _, p := range s.phases {
		switch {
		case p.done && !p.failed && p.hosts.Failed == 0:
			done = append(done, p.name)
		case p.done:
			b.WriteString(st.Fail.Render(truncate(fmt.Sprintf("  ✗ %-22s %s", p.name, p.hosts), m.width)) + "\n")
		default:
			b.WriteString(st.Info.Render(truncate(fmt.Sprintf("  … %-22s %s", p.name, p.hosts), m.width)) + "\n")
		}
	}
	if len(done) > 0 {
		b.WriteString(st.Pass.Render(truncate("  ✓ "+strings.Join(done, ", "), m.width)) + "\n")
	}
	var trouble []string
	for _, n := range m.c.All() {
		h := s.hosts[n.IP]
		switch {
		case h == nil:
		case h.state == "failed":
			trouble = append(trouble, st.Fail.Render(truncate(fmt.Sprintf("  ✗ %-15s %s/%s failed", n.IP, h.phase, h.step), m.width)))
		case h.state == "running" && s.last.Sub(h.at) > slowAfter:
			trouble = append(trouble, st.Warn.Render(truncate(fmt.Sprintf("  ! %-15s %s/%s for %v", n.IP, h.phase, h.step, s.last.Sub(h.at).Round(time.Second)), m.width)))
		}
	}
	if len(trouble) == 0 {
		return
	}
	title := fmt.Sprintf("── %d hosts failed or slow (tab: scroll this list) ", len(trouble))
	if s.troubleFocus {
		title = fmt.Sprintf("── %d hosts failed or slow (tab: back to the log) ", len(trouble))
	}
	b.WriteString(st.Faint.Render(truncate(title+strings.Repeat("─", m.width), m.width)) + "\n")
	s.trouble.SetWidth(m.width)
	s.trouble.SetHeight(min(len(trouble), 5))
	s.trouble.SetContentLines(trouble)
	b.WriteString(s.trouble.View() + "\n")
}

func (s *installScreen) hostStatus(m *Model, h *hostProgress) string {
	st := m.st
	switch h.state {
	case "failed":
		return st.Fail.Render("✗ failed")
	case "done", "skipped":
		return st.Pass.Render(fmt.Sprintf("✓ %d steps", h.steps))
	case "running":
		if transferring(h) {
			return progressBar(h.bytes, h.total, 16) + fmt.Sprintf(" %3d%%", h.bytes*100/h.total)
		}
		return st.Info.Render("… running")
	}
	return st.Faint.Render("waiting")
}

func transferring(h *hostProgress) bool {
	return h.state == "running" && h.total > 0 && h.bytes < h.total
}

func progressBar(done, total int64, w int) string {
	n := int(done * int64(w) / total)
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", w-n) + "]"
}

// eta is the bytes done of the total and the time left at the rate seen
// since the step's first progress report.
func eta(h *hostProgress) string {
	s := progress.Bytes(h.bytes) + " of " + progress.Bytes(h.total)
	el := h.at.Sub(h.since)
	moved := h.bytes - h.sinceBytes
	if el <= 0 || moved <= 0 {
		return s
	}
	rate := float64(moved) / el.Seconds()
	left := time.Duration(float64(h.total-h.bytes) / rate * float64(time.Second))
	return s + ", " + progress.Bytes(int64(rate)) + "/s, ETA " + left.Round(time.Second).String()
}

func roleShort(roles []string) string {
	return strings.Join(roles, "+")
}

// doneScreen says how the run ended and what to run next.
type doneScreen struct{ plainScreen }

func (doneScreen) title(*Model) string { return "Done" }

func (doneScreen) update(m *Model, msg tea.KeyPressMsg) tea.Cmd {
	if key.Matches(msg, m.keys.Enter, m.keys.Back) || msg.String() == "q" {
		return m.quit()
	}
	return nil
}

func (doneScreen) bindings(m *Model) []key.Binding {
	k := m.keys
	return []key.Binding{k.Enter, k.Quit}
}

func (doneScreen) view(m *Model) string {
	st := m.st
	var b strings.Builder
	s := &m.install
	answers := m.answersFile()
	if answers == "" {
		answers = strings.TrimSpace(m.review.path.Value())
	}
	cmd := func(verb string) string {
		if m.opts.Command != nil {
			return m.opts.Command(verb, answers)
		}
		return "./installer.run " + verb + " --answers " + answers + " --yes"
	}
	bi := m.opts.Bundle
	took := " in " + since(s.start, s.last).Round(time.Second).String()
	switch {
	case s.err == nil && m.action == install.ActionReset:
		b.WriteString(st.Pass.Render("✓ Reset") + " " + m.c.Name + ": the install is undone on " + plural(len(m.c.All()), "host") + took + "\n\n")
	case s.err == nil:
		hosts := plural(len(m.c.All()), "host")
		switch m.action {
		case install.ActionJoin:
			b.WriteString(st.Pass.Render("✓ Hosts added:") + " " + m.c.Name + " runs on " + hosts + took + "\n\n")
		case actionUpgrade:
			b.WriteString(st.Pass.Render("✓ Upgraded") + " " + m.c.Name + " to " + bi.Name + kubeWords(bi.KubeVersion) + took + "\n\n")
		default:
			b.WriteString(st.Pass.Render("✓ Installed") + " " + bi.Name + kubeWords(bi.KubeVersion) + " on " + hosts + took + "\n\n")
		}
		var ms, ns []string
		for _, n := range m.c.All() {
			if n.IsMaster() {
				ms = append(ms, n.IP)
			} else {
				ns = append(ns, n.IP)
			}
		}
		b.WriteString("  Masters:  " + strings.Join(ms, ", ") + "\n")
		if len(ns) > 0 {
			b.WriteString("  Nodes:    " + strings.Join(ns, ", ") + "\n")
		}
		if len(bi.Apps) > 0 {
			b.WriteString("  Apps:     " + strings.Join(bi.Apps, ", ") + "\n")
		}
		b.WriteString("  Kubeconfig: " + install.KubeconfigHint(bi.Labels, m.c.Master0().IP) + "\n")
	default:
		b.WriteString(st.Fail.Render("✗ The "+m.action+" did not finish") + "\n")
		msg := s.err.Error()
		var pe *install.PreflightError
		switch {
		case errors.As(s.err, &pe):
			msg = "preflight failed on the hosts"
		case errors.Is(s.err, context.Canceled):
			msg = "stopped at your request; finished steps are recorded"
		}
		for _, l := range strings.Split(msg, "\n") {
			b.WriteString(st.Fail.Render("  "+l) + "\n")
		}
		b.WriteString("\n")
	}
	b.WriteString("  Answers:  " + answers + "\n")
	if m.run.info.LogDir != "" {
		b.WriteString("  Logs:     " + m.run.info.LogDir + "\n")
	}
	if m.run.info.StateDir != "" {
		b.WriteString("  State:    " + m.run.info.StateDir + "\n")
	}
	b.WriteString("\n")
	switch {
	case s.err != nil:
		b.WriteString("Fix the cause, then resume (finished steps are skipped):\n")
		b.WriteString(st.Bold.Render("  "+cmd(m.action)) + "\n")
	case m.action == install.ActionReset:
	default:
		b.WriteString("Add hosts later: add them to the answers file, then\n")
		b.WriteString(st.Bold.Render("  "+cmd("join")) + "\n")
		b.WriteString("Undo the install on every host:\n")
		b.WriteString(st.Bold.Render("  "+cmd("reset")) + "\n")
	}
	if what, is, _ := secretWords(m.c); what != "" && !m.review.secrets {
		// Left out of the file: the commands above need it from elsewhere.
		b.WriteString(st.Faint.Render("  The "+what+" "+is+" not in "+answers+": add "+secretFields(m.c)+" first.") + "\n")
	}
	b.WriteString("\nPress Enter to exit.")
	// Wrap rather than cut: paths and commands must be readable whole.
	return lipgloss.NewStyle().Width(m.width).Render(b.String())
}
