package images

import (
	"bytes"
	"strings"
	"testing"
)

func TestBars(t *testing.T) {
	cases := []struct {
		name     string
		terminal bool
		escapes  bool
	}{
		{"plain lines without a terminal", false, false},
		{"bars on a terminal", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			b := newBars(&out, c.terminal)
			b.start([]string{"a:1", "b:1"}, []int64{100, 50})
			b.add(0, 40)
			b.mu.Lock()
			if c.terminal {
				b.draw()
			}
			b.mu.Unlock()
			b.finish(1, "b:1 done")
			b.add(0, 60)
			b.finish(0, "a:1 done")
			b.close()
			s := out.String()
			if !strings.Contains(s, "a:1 done\n") || !strings.Contains(s, "b:1 done\n") {
				t.Errorf("final lines missing: %q", s)
			}
			if got := strings.Contains(s, "\x1b["); got != c.escapes {
				t.Errorf("escape codes: %v, want %v: %q", got, c.escapes, s)
			}
			if c.terminal && !strings.Contains(s, "a:1") || c.terminal && !strings.Contains(s, "40 B/100 B") {
				t.Errorf("bar for a:1 not drawn: %q", s)
			}
		})
	}
}
