package install

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// One run per cluster at a time: a run that changes a cluster (install,
// join, reset) holds a lock on the installing machine's state directory and
// one on every host it works on, for as long as it runs. Read-only commands
// (kubectl, preflight alone) take none. A run that finds a lock taken stops
// and names the run holding it.

// Holder says which run holds a lock.
type Holder struct {
	Run      string    `json:"run"` // random, one per engine: a run knows its own locks
	PID      int       `json:"pid"`
	PIDStart string    `json:"pidStart"` // field 22 of /proc/PID/stat: tells the process from a recycled pid
	Host     string    `json:"host"`     // the installing machine's hostname
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "another run (it has not said which yet)"
	}
	return fmt.Sprintf("%s, pid %d on %s, started %s", h.Command, h.PID, h.Host, h.Started.Local().Format(time.RFC3339))
}

// LockedError is a lock another run holds.
type LockedError struct {
	What   string // "the state directory DIR" or "host IP"
	Holder Holder
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is in use by %s: wait for it to finish or stop it, then run again", e.What, e.Holder)
}

func newRunID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a run id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// procStart returns the start time of a process (field 22 of
// /proc/PID/stat, in clock ticks since boot), or "" when it does not run.
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name, field 2, may hold spaces and parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 || f[0] == "Z" {
		return ""
	}
	return f[19]
}

// gone says whether h is a run of this machine whose process has ended.
func (h Holder) gone(self Holder) bool {
	return h.Run != "" && h.Host == self.Host && (h.PIDStart == "" || procStart(h.PID) != h.PIDStart)
}

// lockDir takes the lock of a state directory: flock on DIR/lock, which the
// kernel releases when this process ends however it ends (kill -9
// included), so a lock is never left behind by a dead run. The file then
// says who holds it, for the run that finds it taken.
func lockDir(dir string, h Holder) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock the state directory: %w", err)
	}
	p := filepath.Join(dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			var other Holder
			b, _ := io.ReadAll(f)
			json.Unmarshal(b, &other) // a holder that has not written yet shows as "another run"
			return nil, &LockedError{What: "the state directory " + dir, Holder: other}
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	b, _ := json.Marshal(h)
	if err = f.Truncate(0); err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return f, nil
}

// hostLockHeartbeat is how often the installer tells a host's lock holder
// that it still runs; hostLockLease is how long the holder waits for it.
const (
	hostLockHeartbeat = 5 * time.Second
	hostLockLease     = 30 // seconds
)

// hostLockPath is the host's run lock. It lives in /run, a tmpfs: taking it
// leaves nothing behind on disk (a failed preflight changes no host), and
// reset, which removes the data root, does not remove it under its holder.
const hostLockPath = "/run/lock/sealpack.lock"

// lockHost takes the host's run lock over c, for as long as c lives. The
// lock is a flock held by a shell in a session of its own, which the kernel
// releases when that shell ends. The shell ends when the session does (its
// stdin closes: the installer closed the connection or was killed, and the
// host's TCP stack saw it), and also when the installer's heartbeat on its
// stdin stops for hostLockLease seconds: a cut link that sshd has not
// noticed yet (it may take hours) still frees the host within the lease. A
// lock held by this same run through a connection it lost is waited for,
// since it ends with its lease.
func (e *Engine) lockHost(ctx context.Context, c *Conn) error {
	err := e.tryLockHost(ctx, c, "")
	// A run of this machine that ended (kill -9) while the link was cut
	// holds the host until its lease ends: wait for it.
	var le *LockedError
	if errors.As(err, &le) && le.Holder.gone(*e.holder) {
		e.emit(Event{Kind: Info, Host: c.Node.IP, Message: fmt.Sprintf("waiting up to %ds for the lock of an ended run (%s)", 2*hostLockLease, le.Holder)})
		err = e.tryLockHost(ctx, c, le.Holder.Run)
	}
	return err
}

// tryLockHost takes the host's lock, waiting for it only when it is held by
// this run or by the run waitFor.
func (e *Engine) tryLockHost(ctx context.Context, c *Conn, waitFor string) error {
	info, err := json.Marshal(e.holder)
	if err != nil {
		return err
	}
	script := fmt.Sprintf(`l=%[1]s
mkdir -p "$(dirname "$l")" || exit 1
command -v flock >/dev/null || { echo "flock (util-linux) is missing" >&2; exit 127; }
exec 9>>"$l"
if ! flock -n 9; then
  if ! grep -qF -e %[2]s -e %[6]s "$l.holder" 2>/dev/null || ! flock -w %[4]d 9; then
    echo busy; cat "$l.holder" 2>/dev/null; echo; exit 0
  fi
fi
printf '%%s\n' %[3]s > "$l.holder"
echo locked
while [ -n "$(timeout %[5]d head -c 1 9>&-)" ]; do :; done`,
		shellQuote(hostLockPath), shellQuote(`"run":"`+e.holder.Run+`"`), shellQuote(string(info)), 2*hostLockLease, hostLockLease, shellQuote(`"run":"`+waitFor+`"`))
	stdin, beat := io.Pipe()
	out, outW := io.Pipe()
	var errOut strings.Builder
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		err := c.Exec(context.WithoutCancel(ctx), script, stdin, outW, &syncWriter{w: &errOut}, 0)
		outW.CloseWithError(err)
		stdin.CloseWithError(io.ErrClosedPipe)
	}()
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	switch strings.TrimSpace(line) {
	case "locked":
		go io.Copy(io.Discard, r)
		go func() {
			t := time.NewTicker(hostLockHeartbeat)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					if _, err := beat.Write([]byte{'.'}); err != nil {
						return
					}
				case <-ended:
					return
				}
			}
		}()
		return nil
	case "busy":
		rest, _ := io.ReadAll(r)
		var other Holder
		json.Unmarshal([]byte(strings.TrimSpace(string(rest))), &other)
		return &LockedError{What: "host " + c.Node.IP, Holder: other}
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = errors.New("the lock holder ended")
	}
	if s := strings.TrimSpace(errOut.String()); s != "" {
		err = fmt.Errorf("%w: %s", err, s)
	}
	return fmt.Errorf("lock host %s: %w", c.Node.IP, err)
}

// begin takes this run's locks: the state directory's now, every host's on
// its first connection (and on every new connection). It returns the
// function that releases the local lock.
func (e *Engine) begin(command string) (func(), error) {
	host, _ := os.Hostname()
	h := Holder{Run: e.runID, PID: os.Getpid(), PIDStart: procStart(os.Getpid()), Host: host, Command: command + " " + e.c.Name, Started: time.Now().UTC().Truncate(time.Second)}
	var f *os.File
	var err error
	if e.opts.StateFile != "" {
		if f, err = lockDir(filepath.Dir(e.opts.StateFile), h); err != nil {
			return nil, err
		}
	}
	e.mu.Lock()
	e.holder = &h
	e.mu.Unlock()
	return func() {
		if f != nil {
			f.Close()
		}
	}, nil
}
