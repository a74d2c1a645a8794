package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// Screen names one step of the wizard.
type Screen string

// The wizard's screens; the order they are shown in is Model.screens.
const (
	ScreenStart     Screen = "Start"
	ScreenWelcome   Screen = "Welcome"
	ScreenHosts     Screen = "Hosts"
	ScreenSSH       Screen = "SSH"
	ScreenConnect   Screen = "Connect"
	ScreenPreflight Screen = "Preflight"
	ScreenReview    Screen = "Review"
	ScreenInstall   Screen = "Install"
	ScreenDone      Screen = "Done"
)

// screen is what the model asks of each step of the wizard. The model
// keeps what is global (the frame, help, quitting, host key questions, the
// cluster and the engine); a screen keeps its own fields and answers keys.
// A new screen is a type with these methods and a line in New's list.
type screen interface {
	// title is the screen's name in the step bar and on the help screen.
	title(m *Model) string
	// shown says whether the screen is a step of this wizard's run: the
	// start screen only for an installed cluster, Welcome only without.
	shown(m *Model) bool
	// enter is called when the wizard comes to the screen: it starts the
	// screen's work.
	enter(m *Model) tea.Cmd
	update(m *Model, msg tea.KeyPressMsg) tea.Cmd
	view(m *Model) string
	// bindings are the keys the screen answers to, for the footer and help.
	bindings(m *Model) []key.Binding
	// typing says a text field has the keyboard, so ? is typed, not help.
	typing() bool
	// setSize gives the screen the terminal's width and the body's height.
	setSize(w, h int)
}

// plainScreen is the defaults a screen embeds for what it does not need:
// shown always, nothing to start, no text field, no size to keep.
type plainScreen struct{}

func (plainScreen) shown(*Model) bool    { return true }
func (plainScreen) enter(*Model) tea.Cmd { return nil }
func (plainScreen) typing() bool         { return false }
func (plainScreen) setSize(w, h int)     {}

// namedScreen is a screen with its name, in the order the wizard shows them.
type namedScreen struct {
	id Screen
	screen
}

// cur is the screen the wizard is on.
func (m *Model) cur() screen {
	for _, s := range m.screens {
		if s.id == m.screen {
			return s.screen
		}
	}
	panic("tui: no screen " + string(m.screen))
}
