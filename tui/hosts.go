package tui

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
)

// Hosts screen fields, in focus order (top to bottom).
const (
	hostsFocusName = iota
	hostsFocusInput
	hostsFocusRole
	hostsFocusList
	hostsFields
)

// hostRow is one IP in the Hosts list. Rows, not the cluster, are what the
// screen edits; sync rebuilds cluster.Hosts from them, keeping the other
// settings of the entry a row came from (a prefilled file's per-host SSH,
// env, labels, taints).
type hostRow struct {
	IP      string
	Roles   []string
	base    int // index into hostsScreen.base, -1 when added here
	HostKey string
}

type hostsScreen struct {
	rows    []hostRow
	base    []cluster.Host
	name    textinput.Model // the cluster's name: metadata.name
	input   textinput.Model
	newRole string // role given to added hosts
	focus   int
	sel     int
	err     string // why the last Enter did not add or continue
}

func newHostsScreen(m *Model) hostsScreen {
	in := textinput.New()
	in.Prompt = ""
	in.Placeholder = "192.168.0.10, 192.168.0.11 or 192.168.0.10-20"
	in.CharLimit = 400
	name := textinput.New()
	name.Prompt = ""
	name.CharLimit = 100 // past the 63 allowed, so the rule is said, not silently enforced
	name.SetValue(m.c.Name)
	s := hostsScreen{name: name, input: in, newRole: cluster.RoleMaster, base: m.c.Hosts, focus: hostsFocusInput}
	for i, h := range m.c.Hosts {
		for _, ip := range h.IPs {
			s.rows = append(s.rows, hostRow{IP: ip, Roles: slices.Clone(h.Roles), base: i, HostKey: h.HostKey})
		}
	}
	if s.masters() > 0 {
		s.newRole = cluster.RoleNode
	}
	return s
}

func (s *hostsScreen) title(*Model) string { return "Hosts" }
func (s *hostsScreen) shown(m *Model) bool {
	return m.action == install.ActionInstall || m.action == install.ActionJoin
}
func (s *hostsScreen) enter(m *Model) tea.Cmd { return s.setFocus(s.focus) }
func (s *hostsScreen) bindings(m *Model) []key.Binding {
	k := m.keys
	return []key.Binding{k.Enter, k.Next, k.Role, k.Delete, k.Back, k.Help}
}

func (s *hostsScreen) setSize(w, _ int) {
	s.input.SetWidth(min(48, max(w-30, 10)))
	s.name.SetWidth(min(20, max(w-30, 10)))
}

// nameProblem is what the cluster's own validation says of a name, or ""
// when it is valid: the rules of metadata.name, which also names the state
// directory on this machine.
func nameProblem(name string) string {
	for _, e := range unjoin((&cluster.Cluster{Name: name}).Validate()) {
		var ce *cluster.Error
		if errors.As(e, &ce) && ce.Path == "metadata.name" {
			return ce.Msg
		}
	}
	return ""
}

// editName passes a key to the name field and takes the name into the
// cluster as soon as it is valid; an invalid one stays on screen only, and
// Enter will not go on until it is fixed.
func (s *hostsScreen) editName(m *Model, msg tea.KeyPressMsg) tea.Cmd {
	var cmd tea.Cmd
	s.name, cmd = s.name.Update(msg)
	if n := s.name.Value(); n != m.c.Name && nameProblem(n) == "" {
		m.c.Name = n
		m.edited()
	}
	return cmd
}

func (s *hostsScreen) masters() int {
	n := 0
	for _, r := range s.rows {
		if slices.Contains(r.Roles, cluster.RoleMaster) {
			n++
		}
	}
	return n
}

// sync writes the rows into the cluster. Consecutive rows from the same
// entry with the same roles and no pinned key share one hosts entry, so
// the saved file stays as short as the user's.
func (s *hostsScreen) sync(m *Model) {
	var hosts []cluster.Host
	for i, r := range s.rows {
		if i > 0 {
			p := s.rows[i-1]
			if p.base == r.base && p.HostKey == "" && r.HostKey == "" && slices.Equal(p.Roles, r.Roles) {
				hosts[len(hosts)-1].IPs = append(hosts[len(hosts)-1].IPs, r.IP)
				continue
			}
		}
		h := cluster.Host{}
		if r.base >= 0 {
			h = cloneHost(s.base[r.base])
		}
		h.IPs, h.Roles, h.HostKey = []string{r.IP}, slices.Clone(r.Roles), r.HostKey
		hosts = append(hosts, h)
	}
	m.c.Hosts = hosts
	m.edited()
}

// pin records a host key the user trusted, so the saved answers verify it.
func (s *hostsScreen) pin(m *Model, ip, line string) {
	for i := range s.rows {
		if s.rows[i].IP == ip {
			s.rows[i].HostKey = line
		}
	}
	pre := m.preflightOK
	s.sync(m)
	// Pinning what was just trusted changes no check's outcome.
	m.preflightOK = pre
}

// pending parses the input as typed: the addresses it would add, and what
// is wrong with it.
func (s *hostsScreen) pending() ([]string, error) {
	ips, err := parseIPs(s.input.Value())
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, r := range s.rows {
		seen[r.IP] = true
	}
	for _, ip := range ips {
		if seen[ip] {
			return nil, fmt.Errorf("%s is already in the list", ip)
		}
		seen[ip] = true
	}
	return ips, nil
}

// problems are what stops the user going on; warnings do not.
func (s *hostsScreen) problems(m *Model) (errs, warns []string) {
	switch n := s.masters(); {
	case len(s.rows) == 0:
		errs = append(errs, "add at least one host")
	case n == 0:
		errs = append(errs, "no master: select a host and press space to make it one")
	case n%2 == 0:
		warns = append(warns, fmt.Sprintf("%d masters: an even number adds no fault tolerance (etcd quorum); use %d or %d", n, n-1, n+1))
	}
	if err := m.c.Validate(); err != nil {
		for _, e := range unjoin(err) {
			var ce *cluster.Error
			if errors.As(e, &ce) && strings.HasPrefix(ce.Path, "spec.hosts") {
				errs = append(errs, ce.Error())
			}
		}
	}
	return errs, warns
}

func (s *hostsScreen) update(m *Model, msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	s.err = ""
	switch {
	case key.Matches(msg, k.Back) && !(s.focus == hostsFocusInput && s.input.Value() != ""):
		return m.back()
	case key.Matches(msg, k.Next):
		return s.cycle(1)
	case key.Matches(msg, k.Prev):
		return s.cycle(-1)
	case key.Matches(msg, k.Enter):
		if s.input.Value() != "" {
			ips, err := s.pending()
			if err != nil {
				s.err = err.Error()
				return nil
			}
			for _, ip := range ips {
				s.rows = append(s.rows, hostRow{IP: ip, Roles: []string{s.newRole}, base: -1})
				// After the first master, new hosts default to workers.
				if s.newRole == cluster.RoleMaster {
					s.newRole = cluster.RoleNode
				}
			}
			s.input.SetValue("")
			s.sync(m)
			return nil
		}
		if nameProblem(s.name.Value()) != "" {
			// The problem is shown under the field.
			return s.setFocus(hostsFocusName)
		}
		if s.focus == hostsFocusName && len(s.rows) == 0 {
			return s.setFocus(hostsFocusInput)
		}
		if errs, _ := s.problems(m); len(errs) > 0 {
			s.err = errs[0]
			return nil
		}
		return m.goTo(ScreenSSH)
	}
	switch s.focus {
	case hostsFocusName:
		if key.Matches(msg, k.Down) {
			return s.setFocus(hostsFocusInput)
		}
		return s.editName(m, msg)
	case hostsFocusInput:
		if key.Matches(msg, k.Up) {
			return s.setFocus(hostsFocusName)
		}
		if key.Matches(msg, k.Down) && len(s.rows) > 0 {
			return s.setFocus(hostsFocusList)
		}
		var cmd tea.Cmd
		s.input, cmd = s.input.Update(msg)
		return cmd
	case hostsFocusRole:
		if key.Matches(msg, k.Role, k.Left, k.Right, k.Up, k.Down) {
			s.newRole = otherRole(s.newRole)
		}
	case hostsFocusList:
		switch {
		case key.Matches(msg, k.Up):
			if s.sel == 0 {
				return s.setFocus(hostsFocusInput)
			}
			s.sel--
		case key.Matches(msg, k.Down):
			s.sel = min(s.sel+1, len(s.rows)-1)
		case key.Matches(msg, k.Role) && len(s.rows) > 0:
			r := &s.rows[s.sel]
			if slices.Contains(r.Roles, cluster.RoleMaster) {
				r.Roles = []string{cluster.RoleNode}
			} else {
				r.Roles = []string{cluster.RoleMaster}
			}
			s.sync(m)
		case key.Matches(msg, k.Delete) && len(s.rows) > 0:
			s.rows = slices.Delete(s.rows, s.sel, s.sel+1)
			s.sel = max(0, min(s.sel, len(s.rows)-1))
			s.sync(m)
			if len(s.rows) == 0 {
				return s.setFocus(hostsFocusInput)
			}
		}
	}
	return nil
}

// cycle moves the focus d fields on, round, past an empty list.
func (s *hostsScreen) cycle(d int) tea.Cmd {
	f := (s.focus + d + hostsFields) % hostsFields
	if f == hostsFocusList && len(s.rows) == 0 {
		f = (f + d + hostsFields) % hostsFields
	}
	return s.setFocus(f)
}

func (s *hostsScreen) setFocus(f int) tea.Cmd {
	if f == hostsFocusList && len(s.rows) == 0 {
		f = hostsFocusInput
	}
	s.focus = f
	s.input.Blur()
	s.name.Blur()
	switch f {
	case hostsFocusInput:
		return s.input.Focus()
	case hostsFocusName:
		return s.name.Focus()
	}
	return nil
}

// typing reports whether a text field has the keyboard.
func (s *hostsScreen) typing() bool {
	return s.focus == hostsFocusInput || s.focus == hostsFocusName
}

func otherRole(r string) string {
	if r == cluster.RoleMaster {
		return cluster.RoleNode
	}
	return cluster.RoleMaster
}

func (s *hostsScreen) view(m *Model) string {
	st := m.st
	var b strings.Builder
	b.WriteString(st.Title.Render("Hosts") + st.Faint.Render("  the machines to install, reached over SSH") + "\n\n")
	label := func(f int, text string) string {
		if s.focus == f {
			return st.Focused.Render("> " + text)
		}
		return "  " + text
	}
	b.WriteString(label(hostsFocusName, "Name:    ") + "[" + s.name.View() + "]" + st.Faint.Render("  names the cluster and its state directory") + "\n")
	if p := nameProblem(s.name.Value()); p != "" {
		b.WriteString(indentWrap(st.Fail, "✗ name: "+p, 11, m.width))
	}
	b.WriteString(label(hostsFocusInput, "Add IPs: ") + "[" + s.input.View() + "]\n")
	role := "as " + s.newRole
	if s.focus == hostsFocusRole {
		role = st.Selected.Render(role)
	}
	b.WriteString(label(hostsFocusRole, "Role:    ") + role + st.Faint.Render("  (space changes)") + "\n")
	switch ips, err := s.pending(); {
	case s.input.Value() == "":
		b.WriteString(st.Faint.Render("           one IP, a comma list, or a range like 192.168.0.10-20") + "\n")
	case err != nil:
		b.WriteString(st.Fail.Render("           ✗ "+err.Error()) + "\n")
	default:
		b.WriteString(st.Pass.Render("           ✓ Enter adds "+plural(len(ips), "host")+": "+summarizeIPs(ips)) + "\n")
	}
	b.WriteString("\n")
	nm := s.masters()
	ipw := ipWidth(s.rows)
	b.WriteString(st.Bold.Render(fmt.Sprintf("  %-3s %-*s %s", "#", ipw, "IP", "ROLE")) +
		st.Faint.Render(fmt.Sprintf("   %s, %s", plural(nm, "master"), plural(len(s.rows)-nm, "node"))) + "\n")
	// Show a window of rows around the selection so long lists fit, with
	// room below for the "more rows" line, a blank, a problem and a hint.
	room := max(m.bodyHeight()-strings.Count(b.String(), "\n")-4, 3)
	first := 0
	if s.sel >= room {
		first = s.sel - room + 1
	}
	for i := first; i < len(s.rows) && i < first+room; i++ {
		r := s.rows[i]
		line := fmt.Sprintf("%-3d %-*s %s", i+1, ipw, r.IP, strings.Join(r.Roles, "+"))
		if r.HostKey != "" {
			line += st.Faint.Render("  key pinned")
		}
		if s.focus == hostsFocusList && i == s.sel {
			b.WriteString(st.Selected.Render("> "+line) + "\n")
		} else {
			b.WriteString("  " + line + "\n")
		}
	}
	if len(s.rows) == 0 {
		b.WriteString(st.Faint.Render("  (none yet)") + "\n")
	}
	if hidden := len(s.rows) - room; hidden > 0 {
		b.WriteString(st.Faint.Render(fmt.Sprintf("  … %d rows, ↑/↓ to scroll", len(s.rows))) + "\n")
	}
	b.WriteString("\n")
	errs, warns := s.problems(m)
	if s.err != "" {
		b.WriteString(st.Fail.Render("✗ "+s.err) + "\n")
	} else if len(errs) > 0 && len(s.rows) > 0 {
		b.WriteString(st.Fail.Render("✗ "+errs[0]) + "\n")
	}
	for _, w := range warns {
		b.WriteString(st.Warn.Render("! "+w) + "\n")
	}
	if len(errs) == 0 && s.err == "" && nameProblem(s.name.Value()) == "" {
		b.WriteString(st.Faint.Render("Enter on an empty field continues to SSH.") + "\n")
	}
	return b.String()
}

// indentWrap wraps text to the screen, every line indented, so a long
// message under a field is read whole rather than cut at the edge.
func indentWrap(style lipgloss.Style, text string, indent, width int) string {
	var b strings.Builder
	wrapped := lipgloss.NewStyle().Width(max(width-indent, 20)).Render(text)
	for _, l := range strings.Split(wrapped, "\n") {
		b.WriteString(strings.Repeat(" ", indent) + style.Render(strings.TrimRight(l, " ")) + "\n")
	}
	return b.String()
}

// summarizeIPs keeps the preview to one line.
func summarizeIPs(ips []string) string {
	if len(ips) <= 3 {
		return strings.Join(ips, ", ")
	}
	return ips[0] + " … " + ips[len(ips)-1]
}

// unjoin splits an errors.Join result into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// ipWidth fits the IP column to the longest address, IPv4 at least.
func ipWidth(rows []hostRow) int {
	w := 15
	for _, r := range rows {
		w = max(w, len(r.IP))
	}
	return w
}

func itoa(n int) string { return strconv.Itoa(n) }
