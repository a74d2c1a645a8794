package images

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealpack/sealpack/internal/progress"
)

// bars draws one progress bar per image being downloaded on a terminal,
// redrawn at most ten times a second below the lines of finished images.
// Without a terminal only the finished lines are written.
type bars struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	names    []string
	totals   []int64
	got      []atomic.Int64
	active   []bool
	drawn    int // bar lines currently on screen
	stop     chan struct{}
	stopped  sync.WaitGroup
}

func newBars(w io.Writer, terminal bool) *bars {
	return &bars{w: w, terminal: terminal}
}

// start sets up a bar per image (total bytes still to fetch) and starts
// redrawing.
func (b *bars) start(names []string, totals []int64) {
	b.mu.Lock()
	b.names, b.totals = names, totals
	b.got = make([]atomic.Int64, len(names))
	b.active = make([]bool, len(names))
	for i, t := range totals {
		b.active[i] = t > 0
	}
	b.mu.Unlock()
	if !b.terminal {
		return
	}
	b.stop = make(chan struct{})
	b.stopped.Add(1)
	go func() {
		defer b.stopped.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				b.mu.Lock()
				b.clear()
				b.mu.Unlock()
				return
			case <-t.C:
				b.mu.Lock()
				b.clear()
				b.draw()
				b.mu.Unlock()
			}
		}
	}()
}

// add counts n downloaded bytes for image i.
func (b *bars) add(i int, n int64) {
	if i < len(b.got) {
		b.got[i].Add(n)
	}
}

// finish writes image i's final line and drops its bar.
func (b *bars) finish(i int, format string, a ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i < len(b.active) {
		b.active[i] = false
	}
	if b.terminal {
		b.clear()
	}
	fmt.Fprintf(b.w, format+"\n", a...)
	if b.terminal {
		b.draw()
	}
}

// close stops redrawing and removes the bars.
func (b *bars) close() {
	if b.stop != nil {
		close(b.stop)
		b.stopped.Wait()
		b.stop = nil
	}
}

func (b *bars) clear() {
	if b.drawn > 0 {
		fmt.Fprintf(b.w, "\x1b[%dA\x1b[J", b.drawn)
		b.drawn = 0
	}
}

// draw shows up to 10 active bars; the caller holds mu.
func (b *bars) draw() {
	const width, most = 24, 10
	var sb strings.Builder
	n, more := 0, 0
	for i, on := range b.active {
		if !on {
			continue
		}
		if n == most {
			more++
			continue
		}
		got, total := b.got[i].Load(), b.totals[i]
		filled := min(width, int(float64(got)/float64(max(total, 1))*width))
		fmt.Fprintf(&sb, "%-50s [%s%s] %s/%s\n", b.names[i], strings.Repeat("=", filled), strings.Repeat(" ", width-filled), progress.Bytes(got), progress.Bytes(total))
		n++
	}
	if more > 0 {
		fmt.Fprintf(&sb, "… and %d more images\n", more)
		n++
	}
	io.WriteString(b.w, sb.String())
	b.drawn = n
}
