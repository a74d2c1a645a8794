package tui

import "charm.land/lipgloss/v2"

// styles are built once per model. Colours are downsampled by the program's
// renderer to what the terminal supports, and dropped for NO_COLOR; every
// status also carries a word or mark, so nothing depends on colour alone.
type styles struct {
	Title, Step, StepActive, Faint, Bold lipgloss.Style
	Pass, Warn, Fail, Info               lipgloss.Style
	Selected, Focused, Box               lipgloss.Style
}

func defaultStyles() styles {
	green, yellow, red, blue := lipgloss.Color("2"), lipgloss.Color("3"), lipgloss.Color("1"), lipgloss.Color("4")
	return styles{
		Title:      lipgloss.NewStyle().Bold(true),
		Step:       lipgloss.NewStyle().Faint(true),
		StepActive: lipgloss.NewStyle().Bold(true).Underline(true),
		Faint:      lipgloss.NewStyle().Faint(true),
		Bold:       lipgloss.NewStyle().Bold(true),
		Pass:       lipgloss.NewStyle().Foreground(green),
		Warn:       lipgloss.NewStyle().Foreground(yellow),
		Fail:       lipgloss.NewStyle().Foreground(red).Bold(true),
		Info:       lipgloss.NewStyle().Foreground(blue),
		Selected:   lipgloss.NewStyle().Reverse(true),
		Focused:    lipgloss.NewStyle().Bold(true),
		Box:        lipgloss.NewStyle().Border(lipgloss.NormalBorder()).Padding(0, 1),
	}
}
