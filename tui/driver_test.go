package tui

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata/")

// driver is a small, synchronous stand-in for tea.Program: it runs
// commands in goroutines, feeds their messages and the bridge's back into
// Update, and settles when nothing arrives for a moment.
type driver struct {
	t         *testing.T
	goldenDir string // testdata, absolute: tests may change directory
	m         *Model
	msgs      chan tea.Msg
	quit      bool
}

func newDriver(t *testing.T, opts Options) *driver {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if opts.Bundle.Name == "" {
		opts.Bundle = testBundle()
	}
	m := New(ctx, opts)
	m.br.manual = true
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{t: t, m: m, msgs: make(chan tea.Msg, 64), goldenDir: filepath.Join(wd, "testdata")}
	t.Cleanup(m.end)
	d.run(m.Init())
	d.settle()
	return d
}

func testBundle() BundleInfo {
	return BundleInfo{
		Name: "installer.run", KubeVersion: "v1.33.1", Apps: []string{"calico", "metrics-server"},
		Images: 12, Size: 734 << 20, Arch: "linux/amd64", Signature: "not signed (check with verify)",
		Labels: map[string]string{"io.sealpack.ports.master": "6443"},
	}
}

func (d *driver) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		if msg := cmd(); msg != nil {
			d.msgs <- msg
		}
	}()
}

func (d *driver) send(msg tea.Msg) {
	switch msg := msg.(type) {
	case tea.BatchMsg:
		for _, c := range msg {
			d.run(c)
		}
		return
	case tea.QuitMsg:
		d.quit = true
		return
	}
	// tea.Sequence's message is unexported: a slice of commands run in order.
	if v := reflect.ValueOf(msg); v.Kind() == reflect.Slice && v.Type().Elem() == reflect.TypeOf(tea.Cmd(nil)) {
		for i := range v.Len() {
			if c := v.Index(i).Interface().(tea.Cmd); c != nil {
				if r := c(); r != nil {
					d.send(r)
				}
			}
		}
		return
	}
	_, cmd := d.m.Update(msg)
	d.run(cmd)
}

// settle handles messages until none arrive for a while.
func (d *driver) settle() {
	for {
		select {
		case msg := <-d.msgs:
			d.send(msg)
		case msg := <-d.m.br.ch:
			d.send(bridged{msg})
		case <-time.After(60 * time.Millisecond):
			return
		}
	}
}

// until handles messages until cond holds, for commands slower than
// settle's pause, such as deriving a key from a passphrase.
func (d *driver) until(cond func() bool) {
	d.t.Helper()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case msg := <-d.msgs:
			d.send(msg)
		case msg := <-d.m.br.ch:
			d.send(bridged{msg})
		case <-deadline:
			d.t.Fatalf("timed out waiting; screen:\n%s", d.screen())
		}
	}
	d.settle()
}

// keys presses keys: names such as "enter", "tab", "shift+tab", "ctrl+c",
// "space", "up"; anything else is typed as text.
func (d *driver) keys(keys ...string) {
	for _, k := range keys {
		d.send(keyMsg(k))
		d.settle()
	}
}

func (d *driver) typeText(s string) {
	for _, r := range s {
		d.send(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	d.settle()
}

func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "shift+tab":
		return tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "pgup":
		return tea.KeyPressMsg{Code: tea.KeyPgUp}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(k)[0]
	return tea.KeyPressMsg{Code: r, Text: k}
}

// screen is the view as an ASCII terminal shows it: colours and
// attributes dropped, as the program's renderer does for NO_COLOR.
func (d *driver) screen() string {
	var buf bytes.Buffer
	w := &colorprofile.Writer{Forward: &buf, Profile: colorprofile.Ascii}
	w.WriteString(d.m.View().Content)
	return ansi.Strip(buf.String())
}

func (d *driver) wantScreen(subs ...string) {
	d.t.Helper()
	s := d.screen()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			d.t.Fatalf("screen lacks %q:\n%s", sub, s)
		}
	}
}

func (d *driver) rejectScreen(subs ...string) {
	d.t.Helper()
	s := d.screen()
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			d.t.Fatalf("screen shows %q:\n%s", sub, s)
		}
	}
}

// golden compares the screen with testdata/NAME.golden (-update rewrites).
func (d *driver) golden(name string) {
	d.t.Helper()
	got := d.screen()
	checkFrame(d.t, got, d.m.width, d.m.height)
	p := filepath.Join(d.goldenDir, name+".golden")
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			d.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		d.t.Fatalf("%v (run go test ./tui -update)", err)
	}
	if got != string(want) {
		d.t.Errorf("screen %s differs from %s (go test ./tui -update rewrites it)\ngot:\n%s\nwant:\n%s", name, p, got, want)
	}
}

// checkFrame asserts the screen fills the terminal exactly.
func checkFrame(t *testing.T, s string, w, h int) {
	t.Helper()
	lines := strings.Split(s, "\n")
	if len(lines) != h {
		t.Errorf("%d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d cells wide, want at most %d: %q", i+1, n, w, l)
		}
	}
}

// fakeEngine replays what install.Engine reports, without SSH. Hosts in
// unknownKey are asked about through Decide; fail maps a host to its
// connect error.
type fakeEngine struct {
	cfg        EngineConfig
	unknownKey map[string]ssh.PublicKey
	fail       map[string]error

	mu       sync.Mutex
	checks   []install.CheckResult
	checkErr error
	install  func(ctx context.Context, sink install.Sink) error
	actions  []string // join, reset: what the wizard ran besides Install
	closed   bool
}

func (f *fakeEngine) Connect(ctx context.Context) map[string]error {
	out := map[string]error{}
	for _, n := range f.cfg.Cluster.All() {
		f.cfg.Sink.Event(install.Event{Kind: install.StepStart, Host: n.IP, Phase: "connect", Step: "connect"})
		var err error
		if k := f.unknownKey[n.IP]; k != nil && !f.cfg.Decide(n.IP, k) {
			err = &install.HostKeyError{Host: n.IP, Fingerprint: ssh.FingerprintSHA256(k)}
		} else if e := f.fail[n.IP]; e != nil {
			err = e
		}
		kind := install.StepDone
		if err != nil {
			kind = install.StepFailed
		}
		f.cfg.Sink.Event(install.Event{Kind: kind, Host: n.IP, Phase: "connect", Step: "connect", Err: err})
		out[n.IP] = err
	}
	return out
}

func (f *fakeEngine) Preflight(ctx context.Context) ([]install.CheckResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checks, f.checkErr
}

func (f *fakeEngine) Install(ctx context.Context) error {
	if f.install != nil {
		return f.install(ctx, f.cfg.Sink)
	}
	return nil
}

// Join and Reset run the same replay as Install, recording the action.
func (f *fakeEngine) Join(ctx context.Context) error  { f.ran("join"); return f.Install(ctx) }
func (f *fakeEngine) Reset(ctx context.Context) error { f.ran("reset"); return f.Install(ctx) }

func (f *fakeEngine) ran(action string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, action)
}

func (f *fakeEngine) Close() error { f.closed = true; return nil }

// fakes hands out fake engines and remembers the last one.
type fakes struct {
	mu   sync.Mutex
	make func(cfg EngineConfig) *fakeEngine
	last *fakeEngine
	n    int
}

func (fs *fakes) new(cfg EngineConfig) (Engine, EngineInfo, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	e := &fakeEngine{cfg: cfg}
	if fs.make != nil {
		e = fs.make(cfg)
		e.cfg = cfg
	}
	fs.last, fs.n = e, fs.n+1
	return e, EngineInfo{LogDir: "/state/logs/20260101T000000Z-install", StateDir: "/state"}, nil
}

func passChecks(c *cluster.Cluster) []install.CheckResult {
	var out []install.CheckResult
	for _, n := range c.All() {
		for _, ch := range []string{"connect", "os", "arch", "tools", "clock", "disk", "ports", "hostname"} {
			out = append(out, install.CheckResult{Host: n.IP, Check: ch, Status: install.Pass, Reason: ch + " fine"})
		}
	}
	return out
}
