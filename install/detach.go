package install

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// A step's script runs on its host in a process of its own, detached from
// the SSH session that started it, so that it is never run twice at once:
// when the connection drops (a cut link, the installer killed), the script
// goes on, and the retry or the next run waits for that same process and
// takes its exit status instead of starting it again.
//
// Each script has a directory DATA_ROOT/state/run/KEY on the host:
//
//	cmd   the shell text with its environment (0600; removed when it ends)
//	sum   SHA-256 of cmd: a finished run is taken only for the same text
//	run   the engine run that started it
//	pid   "PID STARTTIME" of the runner, from /proc/PID/stat: a recycled
//	      pid has another start time, so it is never taken for the runner
//	log   the script's output, which the engine follows as Log events
//	rc    its exit status, written (synced, renamed) when it ends
//
// A finished run is taken when it is this engine run's (a retry after a
// lost connection: success or failure) or when it succeeded (a run killed
// before recording the step); a failed run of an earlier engine run is
// started again, which is how a re-run resumes.

// runnerStart starts a runner in the current directory (the key's) unless
// one is running or has a result to take; it prints "started", "running"
// or "finished", then copies the log from byte OFF until the runner ends
// and exits with its status.
//
// The session that starts a runner is its parent, so it waits for it with
// wait, which returns the moment it ends, while a follower process copies
// the log as it grows; nothing is polled on the way out. (Polling for the
// exit status every 0.2 s, after a 0.05 s loop for the pid file, with five
// programs run a poll, cost 0.9-1.1 s a script on a busy machine against
// 0.3-0.45 s now: docs/BENCHMARKS.md.) Only a session that re-attaches to a
// runner it did not start, or whose runner ended without an exit status,
// polls.
//
// The pid file is written by the session right after the fork, before it
// prints anything, so a retry finds it whenever the runner may run: a
// background job of a non-interactive shell is not a process group leader,
// so setsid runs sh in place of itself and $! is the runner (the start
// time in /proc is the fork's, the same before and after exec).
const runnerStart = procShell + `
r_run=; r_rc=; r_sum=; r_pid=
[ -f run ] && { read -r r_run < run || :; }
[ -f rc ] && { read -r r_rc < rc || :; }
[ -f sum ] && { read -r r_sum < sum || :; }
[ -f pid ] && { read -r r_pid < pid || :; }
if [ -f rc ] && { [ "$r_run" = "$RUN" ] || { [ "$r_rc" = 0 ] && [ "$r_sum" = "$SUM" ]; }; }; then
  echo finished; cat > /dev/null
elif [ ! -f rc ] && [ -n "$r_pid" ] && alive $r_pid; then
  echo running; cat > /dev/null
else
  for x in pid rc rc.tmp log cmd; do [ -e $x ] && { rm -f pid rc rc.tmp log cmd; break; }; done
  (umask 077 && cat > cmd) || exit 1
  printf '%s\n' "$SUM" > sum && printf '%s\n' "$RUN" > run || exit 1
  : > log
  # The script runs in a subshell of the runner (no second sh to start),
  # as it did in the session's shell before it was detached.
  setsid sh -c '(. ./cmd) > log 2>&1 < /dev/null
    echo $? > rc.tmp; rm -f cmd; sync rc.tmp; mv rc.tmp rc' > /dev/null 2>&1 < /dev/null &
  r=$!
  pidrecord $r > pid || exit 1
  echo started
  exec 3< log
  # The follower copies what the log gained every 0.2 s; it stops when
  # told (after the copy it is in) or when this shell is gone (a lost
  # connection, a killed session).
  (trap "exit 0" TERM
   while kill -0 $$ 2> /dev/null; do sleep 0.2 > /dev/null 2>&1 & wait $!; cat <&3; done) &
  f=$!
  wait $r
  kill $f 2> /dev/null; wait $f
  cat <&3
  [ -f rc ] && { read -r r_rc < rc; exit "$r_rc"; }
  OFF=-1
fi
# Re-attached (or the runner ended without a status): poll.
if [ "$OFF" -ge 0 ]; then
  [ -f log ] || : > log
  exec 3< log
  [ "$OFF" -gt 0 ] && dd bs="$OFF" count=1 <&3 > /dev/null 2>&1
fi
while :; do
  fin=0; [ -f rc ] && fin=1
  cat <&3
  [ $fin = 1 ] && { read -r r_rc < rc; exit "$r_rc"; }
  read -r r_pid < pid
  if ! alive $r_pid && [ ! -f rc ]; then
    echo "its process ${r_pid%% *} ended without an exit status (killed, or the host restarted)" >&2; exit 125
  fi
  sleep 0.2
done`

// runnerKill stops the runner's process group if the recorded process is
// still the runner. (kill -s TERM -- -PGID: dash, the sh of Debian and
// Ubuntu, takes "kill -TERM -- -PGID" for a pid "--" and kills nothing.)
const runnerKill = procShell + `
[ ! -f rc ] && ours pid "sh -c" && kill -s TERM -- -"$(cut -d' ' -f1 pid)" 2>/dev/null
true`

// stopRunnersScript stops every step script still running on a host (an
// install killed mid-phase), before reset undoes what they do.
func (e *Engine) stopRunnersScript() string {
	return fmt.Sprintf("for d in %s/*/; do [ -d \"$d\" ] && (cd \"$d\" && %s); done", shellQuote(e.remote("state", "run")), runnerKill)
}

var unsafeKey = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func (e *Engine) runnerDir(key string) string {
	return e.remote("state", "run", unsafeKey.ReplaceAllString(key, "_"))
}

// runDetached runs shell text in dir with env on a host as a detached
// runner named key (unique per host), streaming its output as Log events.
// Errors name the label, not the command: it carries env values.
func (e *Engine) runDetached(ctx context.Context, c *Conn, phase, label, key, dir string, env []string, script string) error {
	input, err := scriptInput(dir, env, script)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	sum := sha256.Sum256([]byte(input))

	// The offset of the log already shown survives retries: a reattached
	// runner's output is not shown twice.
	offKey := c.Node.IP + "\x00" + key
	e.mu.Lock()
	off := e.runnerOffsets[offKey]
	e.mu.Unlock()
	out := &lineWriter{emit: func(line string) {
		e.emit(Event{Kind: Log, Host: c.Node.IP, Phase: phase, Step: label, Message: line})
	}}
	var tail tailBuffer
	both := &syncWriter{w: io.MultiWriter(out, &tail)}
	pr, pw := io.Pipe()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		r := bufio.NewReader(pr)
		line, _ := r.ReadString('\n')
		switch strings.TrimSpace(line) {
		case "running":
			e.emit(Event{Kind: Info, Host: c.Node.IP, Phase: phase, Step: label, Message: label + ": still running from an earlier connection: waiting for it instead of starting it again"})
		case "finished":
			e.emit(Event{Kind: Info, Host: c.Node.IP, Phase: phase, Step: label, Message: label + ": finished while the installer was away: taking its result"})
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				both.Write(buf[:n])
				e.mu.Lock()
				e.runnerOffsets[offKey] += int64(n)
				e.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	start := fmt.Sprintf("RUN=%s SUM=%s OFF=%d\nd=%s\nmkdir -p \"$d\" && cd \"$d\" || exit 1\n%s",
		e.runID, hex.EncodeToString(sum[:]), off, shellQuote(e.runnerDir(key)), runnerStart)
	err = c.Exec(ctx, start, strings.NewReader(input+"\n"), pw, both, e.opts.Timeouts.Command)
	pw.Close()
	<-copied
	out.flush()
	var ce *CommandError
	var conn *ConnError
	switch {
	case errors.As(err, &ce):
		ce.Cmd, ce.Stderr = label, tail.String()
	case err != nil && !errors.As(err, &conn):
		// Timed out or cancelled here, not a lost connection: the runner
		// must not outlive the step it belongs to.
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		c.Output(bg, "cd "+shellQuote(e.runnerDir(key))+" 2>/dev/null || exit 0\n"+runnerKill, time.Minute)
	}
	return err
}
