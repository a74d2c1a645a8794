package tui

import "charm.land/bubbles/v2/key"

// keyMap is every binding of the wizard, in one place, so the help screen,
// the footer and Update read the same keys.
type keyMap struct {
	Next, Prev       key.Binding // focus within a screen
	Up, Down         key.Binding
	Left, Right      key.Binding
	PageUp, PageDown key.Binding
	Enter            key.Binding
	Back             key.Binding
	Help             key.Binding
	Quit             key.Binding
	Role             key.Binding // Hosts: change the selected host's role
	Delete           key.Binding // Hosts: remove the selected host
	AuthMode         key.Binding // SSH: key file or password
	Retry            key.Binding // Connect, Preflight: run again
	Save             key.Binding // Review
	Secrets          key.Binding // Review: include the password and passphrase in the file
	Plan             key.Binding // Review: the plan's hosts or the answers file
	Yes, No          key.Binding // questions (host keys, stop the install)
}

func defaultKeys() keyMap {
	return keyMap{
		Next:     key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next field")),
		Prev:     key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous field")),
		Up:       key.NewBinding(key.WithKeys("up"), key.WithHelp("↑", "up")),
		Down:     key.NewBinding(key.WithKeys("down"), key.WithHelp("↓", "down")),
		Left:     key.NewBinding(key.WithKeys("left"), key.WithHelp("←", "left")),
		Right:    key.NewBinding(key.WithKeys("right"), key.WithHelp("→", "right")),
		PageUp:   key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup", "scroll up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown"), key.WithHelp("pgdn", "scroll down")),
		Enter:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "continue")),
		Back:     key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:     key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
		Role:     key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "master/node")),
		Delete:   key.NewBinding(key.WithKeys("delete", "backspace", "d"), key.WithHelp("del", "remove host")),
		AuthMode: key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "key file/password")),
		Retry:    key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "run again")),
		Save:     key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "save answers")),
		Secrets:  key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "include secrets")),
		Plan:     key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "plan/answers")),
		Yes:      key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "yes")),
		No:       key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n", "no")),
	}
}
