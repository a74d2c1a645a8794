// Package install is the install engine: it connects to every host of a
// Clusterfile over SSH, checks them, distributes the bundle's rootfs, and
// runs the cluster image's phase scripts in order, recording each step so a
// re-run resumes where the last one stopped. It emits typed events and knows
// nothing of terminals: the plain log and the TUI both render them.
package install

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// EventKind says what happened.
type EventKind int

const (
	StepStart EventKind = iota
	StepDone
	StepSkipped
	StepFailed
	Progress // Bytes of Total transferred
	Log      // a line of a remote command's output
	Info     // a message for the user (host key accepted, phase begins, ...)
	Warning  // something the user should know that did not stop the run
	// PhaseStart, PhaseProgress and PhaseDone follow one phase of a run
	// across its hosts (Hosts): started, after each host finished it, and
	// at its end (Elapsed; Err when it stopped the run).
	PhaseStart
	PhaseProgress
	PhaseDone
)

func (k EventKind) String() string {
	return [...]string{"start", "done", "skipped", "FAILED", "progress", "log", "info", "warning", "phase", "phase-progress", "phase-done"}[k]
}

// HostCount is how far a phase is across its hosts.
type HostCount struct {
	Done, Failed, Total int
}

func (c HostCount) String() string {
	s := fmt.Sprintf("%d/%d", c.Done, c.Total)
	if c.Failed > 0 {
		s += fmt.Sprintf(", %d failed", c.Failed)
	}
	return s
}

// Event is one thing the engine reports. Host is empty for cluster-wide events.
type Event struct {
	Time         time.Time
	Kind         EventKind
	Host         string
	Phase        string
	Step         string
	Message      string
	Bytes, Total int64
	Err          error
	Elapsed      time.Duration
	Hosts        HostCount // phase events
}

// Sink receives events; it must be safe for concurrent use.
type Sink interface {
	Event(Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

// Event calls f.
func (f SinkFunc) Event(e Event) { f(e) }

// PlainSink renders events as plain lines: one per step end or failure,
// and per info message. Log lines go only to the per-host logs. A phase on
// more than PerHostLines hosts prints its progress across them instead of a
// line per host and step (`join-node 37/40, 2 failed`, at most every
// plainProgressEvery), so 200 hosts stay readable; failures always print.
type PlainSink struct {
	mu sync.Mutex
	W  io.Writer
	// Verbose also prints remote output lines.
	Verbose bool
	// PerHostLines is the most hosts a phase may have and still print a
	// line per host and step (default 8).
	PerHostLines int

	phases map[string]*plainPhase
}

type plainPhase struct {
	total   int
	printed time.Time
}

// plainProgressEvery spaces a big phase's progress lines.
const plainProgressEvery = 5 * time.Second

// Event prints e.
func (p *PlainSink) Event(e Event) {
	if e.Kind == Progress || (e.Kind == Log && !p.Verbose) || e.Kind == StepStart {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phases == nil {
		p.phases = map[string]*plainPhase{}
	}
	limit := p.PerHostLines
	if limit <= 0 {
		limit = 8
	}
	ph := p.phases[e.Phase]
	big := ph != nil && ph.total > limit
	switch e.Kind {
	case PhaseStart:
		p.phases[e.Phase] = &plainPhase{total: e.Hosts.Total, printed: e.Time}
		if e.Hosts.Total > limit {
			fmt.Fprintf(p.W, "[cluster] %s on %d hosts\n", e.Phase, e.Hosts.Total)
		}
		return
	case PhaseProgress:
		if big && (e.Time.Sub(ph.printed) >= plainProgressEvery || e.Hosts.Done+e.Hosts.Failed == e.Hosts.Total) {
			ph.printed = e.Time
			fmt.Fprintf(p.W, "[cluster] %s %s\n", e.Phase, e.Hosts)
		}
		return
	case PhaseDone:
		counts := ""
		if e.Hosts.Total > 1 || e.Hosts.Failed > 0 {
			counts = " (" + e.Hosts.String() + " hosts)"
		}
		if e.Err != nil {
			fmt.Fprintf(p.W, "[cluster] %s stopped after %v%s\n", e.Phase, e.Elapsed.Round(time.Millisecond), counts)
			return
		}
		fmt.Fprintf(p.W, "[cluster] %s finished in %v%s\n", e.Phase, e.Elapsed.Round(time.Millisecond), counts)
		return
	case StepDone, StepSkipped:
		if big && e.Host != "" {
			return
		}
	}
	who := "cluster"
	if e.Host != "" {
		who = e.Host
	}
	what := e.Phase
	if e.Step != "" && e.Step != e.Phase {
		what += "/" + e.Step
	}
	switch e.Kind {
	case Info:
		fmt.Fprintf(p.W, "[%s] %s\n", who, e.Message)
	case Warning:
		fmt.Fprintf(p.W, "[%s] warning: %s\n", who, e.Message)
	case Log:
		fmt.Fprintf(p.W, "[%s] %s: %s\n", who, what, e.Message)
	case StepFailed:
		fmt.Fprintf(p.W, "[%s] %s: FAILED: %v\n", who, what, e.Err)
	case StepDone:
		msg := ""
		if e.Message != "" {
			msg = " (" + e.Message + ")"
		}
		fmt.Fprintf(p.W, "[%s] %s: done in %s%s\n", who, what, e.Elapsed.Round(10*time.Millisecond), msg)
	case StepSkipped:
		fmt.Fprintf(p.W, "[%s] %s: already done\n", who, what)
	}
}

// LogSink writes every event of a host to DIR/<host>.log, and cluster-wide
// events to DIR/cluster.log: the full record of an install.
type LogSink struct {
	mu    sync.Mutex
	dir   string
	files map[string]*os.File
}

// NewLogSink creates dir and returns a sink writing into it.
func NewLogSink(dir string) (*LogSink, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	return &LogSink{dir: dir, files: map[string]*os.File{}}, nil
}

// Event appends e to its host's log.
func (l *LogSink) Event(e Event) {
	if e.Kind == Progress {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	name := e.Host
	if name == "" {
		name = "cluster"
	}
	f := l.files[name]
	if f == nil {
		var err error
		f, err = os.OpenFile(filepath.Join(l.dir, strings.ReplaceAll(name, ":", "_")+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return
		}
		l.files[name] = f
	}
	msg := e.Message
	if e.Err != nil {
		msg = strings.TrimSpace(msg + " " + e.Err.Error())
	}
	fmt.Fprintf(f, "%s %-8s %s/%s %s\n", e.Time.Format(time.RFC3339Nano), e.Kind, e.Phase, e.Step, msg)
}

// Close closes the log files.
func (l *LogSink) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		f.Close()
	}
	l.files = map[string]*os.File{}
	return nil
}

// MultiSink sends every event to each sink.
type MultiSink []Sink

// Event fans e out.
func (m MultiSink) Event(e Event) {
	for _, s := range m {
		s.Event(e)
	}
}

// lineWriter turns a command's output into Log events, one per line.
type lineWriter struct {
	emit func(line string)
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.emit(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}

// syncWriter serialises writes: a session's stdout and stderr are copied by
// two goroutines, and the writers behind them keep state.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
