package install

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpack/sealpack/internal/testbed"
)

// The session that starts a detached script waits for it and copies its
// log as it grows: every line arrives, in order, including what the script
// wrote just before it ended; lines arrive while it still runs; its exit
// status is the step's; the recorded pid is the runner's own (the process
// group leader the script runs under, so a later run or reset finds and
// stops the right process); and once the step returns, nothing of the
// session (no log follower) is left running on the host, also when the
// step is cancelled.
func TestDetachedScriptSession(t *testing.T) {
	bed := testbed.New(t, 1)
	e := bedEngine(t, bed)
	var mu sync.Mutex
	var lines []string
	e.opts.Sink = SinkFunc(func(ev Event) {
		if ev.Kind == Log {
			mu.Lock()
			lines = append(lines, ev.Message)
			mu.Unlock()
		}
	})
	logged := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
	c, err := e.conn(t.Context(), e.c.Master0())
	if err != nil {
		t.Fatal(err)
	}
	host := func(cmd string) string {
		t.Helper()
		out, err := c.Output(t.Context(), cmd, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	tmp := host("mktemp -d")
	// left lists the host's processes whose command line names the
	// runner's directory: the session's shell and its follower. The
	// directory is given in two halves, so that this command's own shell
	// does not name it.
	left := func(key string) string {
		d := e.runnerDir(key)
		return host(fmt.Sprintf("a=%s; b=%s; set -- /proc/[0-9]*/cmdline; grep -lF -- \"$a$b\" \"$@\" 2>/dev/null | cut -d/ -f3; true",
			shellQuote(d[:len(d)/2]), shellQuote(d[len(d)/2:])))
	}

	var many strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&many, "line %d\n", i)
	}
	for _, tc := range []struct {
		name    string
		script  string
		timeout time.Duration
		// during runs while the script waits for tmp/go, which it
		// creates; "" when the script does not wait.
		during func(t *testing.T, key string)
		want   []string // every Log line, in order
		status int      // the CommandError's status; 0: no error
		cut    bool     // the step is cancelled: want a timeout error
	}{
		{
			name:   "every line, the last ones written as it ends",
			script: "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; printf 'no newline' >&2",
			want:   append(strings.Split(strings.TrimSuffix(many.String(), "\n"), "\n"), "no newline"),
		},
		{
			name:   "its exit status",
			script: "echo failing; exit 7",
			want:   []string{"failing"},
			status: 7,
		},
		{
			name:   "lines arrive while it runs; the pid file names the runner",
			script: "echo first; echo $$ > " + tmp + "/runner; until [ -f " + tmp + "/go ]; do sleep 0.05; done; echo second",
			during: func(t *testing.T, key string) {
				deadline := time.Now().Add(time.Minute)
				for !strings.Contains(strings.Join(logged(), "\n"), "first") {
					if time.Now().After(deadline) {
						t.Fatal("the first line never arrived while the script ran")
					}
					time.Sleep(20 * time.Millisecond)
				}
				runner := host("cat " + tmp + "/runner")
				recorded := host("cut -d' ' -f1 " + shellQuote(e.runnerDir(key)+"/pid"))
				if recorded != runner {
					t.Errorf("the pid file names %s, the script runs under %s", recorded, runner)
				}
				if pgrp := host("cut -d' ' -f5 /proc/" + runner + "/stat"); pgrp != runner {
					t.Errorf("the runner %s is in process group %s, not its own: a kill of its group misses the script", runner, pgrp)
				}
				host("touch " + tmp + "/go")
			},
			want: []string{"first", "second"},
		},
		{
			name:    "cancelled",
			script:  "echo waiting; sleep 600",
			timeout: 2 * time.Second,
			want:    []string{"waiting"},
			cut:     true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			lines = nil
			mu.Unlock()
			host("rm -f " + tmp + "/go " + tmp + "/runner")
			key := "detach-test-" + strings.ReplaceAll(tc.name, " ", "-")
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			done := make(chan error, 1)
			go func() { done <- e.runDetached(ctx, c, "test", "test script", key, "/", nil, tc.script) }()
			if tc.during != nil {
				tc.during(t, key)
			}
			err := <-done
			var ce *CommandError
			switch {
			case tc.cut:
				if err == nil || errors.As(err, &ce) {
					t.Errorf("cancelled step: %v, want a timeout", err)
				}
			case tc.status != 0:
				if !errors.As(err, &ce) || ce.Status != tc.status {
					t.Errorf("error %v, want exit status %d", err, tc.status)
				}
			case err != nil:
				t.Fatal(err)
			}
			if got := logged(); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("logged %d lines, want %d:\n%.600s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			// The follower notices its session is gone within its 0.2 s sleep.
			deadline := time.Now().Add(10 * time.Second)
			for p := left(key); p != ""; p = left(key) {
				if time.Now().After(deadline) {
					t.Fatalf("processes of the step still run after it returned: %s\n%s", p, host("ps -o pid,stat,args -p "+strings.Join(strings.Fields(p), ",")+" | cut -c1-150; true"))
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// A session that loses its connection leaves its script running; the retry
// on a new connection re-attaches to the same process (still running, or
// finished meanwhile), takes its exit status and shows only the lines not
// shown yet; the script started once.
func TestDetachedScriptReattach(t *testing.T) {
	bed := testbed.New(t, 1)
	e := bedEngine(t, bed)
	var mu sync.Mutex
	var lines, infos []string
	e.opts.Sink = SinkFunc(func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Kind {
		case Log:
			lines = append(lines, ev.Message)
		case Info:
			infos = append(infos, ev.Message)
		}
	})
	logged := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(lines, "\n")
	}
	m0 := e.c.Master0()
	host := func(cmd string) string {
		t.Helper()
		c, err := e.conn(t.Context(), m0)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.Output(t.Context(), cmd, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	tmp := host("mktemp -d")
	for _, tc := range []struct {
		name     string
		finished bool // the script ends before the retry
		want     string
	}{
		{"still running", false, "still running from an earlier connection"},
		{"finished meanwhile", true, "finished while the installer was away"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			lines, infos = nil, nil
			mu.Unlock()
			host("rm -f " + tmp + "/go " + tmp + "/starts")
			key := "reattach-" + strings.ReplaceAll(tc.name, " ", "-")
			script := "echo started >> " + tmp + "/starts; echo before; echo more; until [ -f " + tmp + "/go ]; do sleep 0.05; done; echo after; exit 3"
			c, err := e.conn(t.Context(), m0)
			if err != nil {
				t.Fatal(err)
			}
			first := make(chan error, 1)
			go func() { first <- e.runDetached(t.Context(), c, "test", "test script", key, "/", nil, script) }()
			deadline := time.Now().Add(time.Minute)
			for !strings.Contains(logged(), "more") {
				if time.Now().After(deadline) {
					t.Fatal("the script's first lines never arrived")
				}
				time.Sleep(20 * time.Millisecond)
			}
			e.dropConn(m0.IP)
			var conn *ConnError
			if err := <-first; !errors.As(err, &conn) {
				t.Fatalf("the cut session returned %v, want a lost connection", err)
			}
			if tc.finished {
				host("touch " + tmp + "/go")
				for host("cat "+shellQuote(e.runnerDir(key)+"/rc")+" 2>/dev/null || true") == "" {
					if time.Now().After(deadline) {
						t.Fatal("the script never ended")
					}
					time.Sleep(50 * time.Millisecond)
				}
			} else {
				go func() { time.Sleep(500 * time.Millisecond); host("touch " + tmp + "/go") }()
			}
			c, err = e.conn(t.Context(), m0)
			if err != nil {
				t.Fatal(err)
			}
			err = e.runDetached(t.Context(), c, "test", "test script", key, "/", nil, script)
			var ce *CommandError
			if !errors.As(err, &ce) || ce.Status != 3 {
				t.Errorf("the retry returned %v, want the script's exit status 3", err)
			}
			if got := logged(); got != "before\nmore\nafter" {
				t.Errorf("logged:\n%s\nwant each line once: before, more, after", got)
			}
			mu.Lock()
			if got := strings.Join(infos, "\n"); !strings.Contains(got, tc.want) {
				t.Errorf("events %q, want one saying %q", got, tc.want)
			}
			mu.Unlock()
			if starts := host("cat " + tmp + "/starts"); starts != "started" {
				t.Errorf("the script started %d times, want once", strings.Count(starts, "started"))
			}
		})
	}
}
