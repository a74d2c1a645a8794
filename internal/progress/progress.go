// Package progress draws a one-line progress bar on a terminal and stays
// silent otherwise, so logs and pipes never fill with carriage returns.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Bar is a progress bar for a byte count. The zero of its output is a no-op.
type Bar struct {
	mu      sync.Mutex
	w       io.Writer
	label   string
	start   time.Time
	last    time.Time
	enabled bool
}

// New returns a bar drawing on w when w is a terminal and TERM is not "dumb".
func New(w io.Writer, label string) *Bar {
	enabled := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb" {
		enabled = true
	}
	return &Bar{w: w, label: label, start: time.Now(), enabled: enabled}
}

// Update redraws the bar, at most ten times a second and always at the end.
func (b *Bar) Update(done, total int64) {
	if !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if done < total && now.Sub(b.last) < 100*time.Millisecond {
		return
	}
	b.last = now
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	filled := int(frac * width)
	rate := float64(done) / max(now.Sub(b.start).Seconds(), 1e-3)
	fmt.Fprintf(b.w, "\r%s [%s%s] %3.0f%% %s/%s %s/s ", b.label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		frac*100, Bytes(done), Bytes(total), Bytes(int64(rate)))
	if done >= total {
		fmt.Fprintln(b.w)
	}
}

// Bytes renders a byte count in binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
