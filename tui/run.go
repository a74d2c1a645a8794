package tui

import (
	"context"
	"io"

	tea "charm.land/bubbletea/v2"
)

// Run runs the wizard on a terminal (in, out) until the user leaves it, and
// returns what it did. The caller acts on the Result, as gum's prompts do.
func Run(ctx context.Context, opts Options, in io.Reader, out io.Writer, environ []string) (Result, error) {
	m := New(ctx, opts)
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithEnvironment(environ))
	final, err := p.Run()
	fm, ok := final.(*Model)
	if !ok {
		fm = m
	}
	fm.end()
	return fm.Result(), err
}

// end releases engine goroutines still waiting on the wizard, however the
// program ended.
func (m *Model) end() {
	select {
	case <-m.br.done:
	default:
		close(m.br.done)
	}
	m.run.stop()
}
