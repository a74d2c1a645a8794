package install

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
)

// A user who needs a password for sudo gets it typed in by the engine, but
// only when sudo asks. sudo -S reads the password from the command's own
// standard input, and does not read it at all when it needs none: a cached
// timestamp, NOPASSWD or !authenticate for the command, an exempt group, a
// PAM stack that does not prompt. A password written blindly ahead of the
// command's input would then be read by the command. "sudo -k" narrows that
// to the sudoers cases but still writes the line blindly; an askpass helper
// needs the password on the host. So the engine waits: sudo prints its
// prompt (sudoPrompt) on standard error when, and only when, it reads a
// password; the command itself first prints sudoStarted there. The password
// is sent after the prompt, the caller's input only after the start line,
// and a second prompt (a wrong password) ends the command instead of
// sending it again.
const (
	sudoPrompt  = "sealpack-sudo-password:"
	sudoStarted = "sealpack-sudo-started"
)

// sudoGate is the standard input of one command run through sudo -S, and
// the watcher of its standard error.
type sudoGate struct {
	password string
	stdin    io.Reader

	prompted chan struct{} // one value per prompt seen
	started  chan struct{} // closed when the command starts
	ended    chan struct{} // closed when standard error ends or sudo is refused
	endOnce  sync.Once
	watched  chan struct{} // closed when watch returns
	rejected atomic.Bool
	pending  []byte
}

func newSudoGate(password string, stdin io.Reader) *sudoGate {
	return &sudoGate{password: password, stdin: stdin, prompted: make(chan struct{}, 1),
		started: make(chan struct{}), ended: make(chan struct{}), watched: make(chan struct{})}
}

// Read gives sudo the password when it asked, then the command its input
// once it started; EOF when the command ended without starting.
func (g *sudoGate) Read(p []byte) (int, error) {
	for {
		if len(g.pending) > 0 {
			n := copy(p, g.pending)
			g.pending = g.pending[n:]
			return n, nil
		}
		select {
		case <-g.started:
			if g.stdin == nil {
				return 0, io.EOF
			}
			return g.stdin.Read(p)
		default:
		}
		select {
		case <-g.prompted:
			g.pending = []byte(g.password + "\n")
		case <-g.started:
		case <-g.ended:
			return 0, io.EOF
		}
	}
}

func (g *sudoGate) end() { g.endOnce.Do(func() { close(g.ended) }) }

// watch reads the command's standard error: sudo's prompts and messages
// until the start line, then the command's own, which go to w. sudo's
// messages (the prompt removed) go to w as well, once it is known whether
// the command started.
func (g *sudoGate) watch(r io.Reader, w io.Writer) {
	defer close(g.watched)
	defer g.end()
	if w == nil {
		w = io.Discard
	}
	var head []byte
	prompts := 0
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		select {
		case <-g.started:
			w.Write(buf[:n])
		default:
			head = append(head, buf[:n]...)
			if n := bytes.Count(head, []byte(sudoPrompt)); n > prompts {
				if prompts == 0 {
					g.prompted <- struct{}{}
				}
				if n > 1 {
					// Asked again: the password was wrong. Sending
					// nothing more makes sudo fail.
					g.rejected.Store(true)
					g.end()
				}
				prompts = n
			}
			if i := bytes.Index(head, []byte(sudoStarted+"\n")); i >= 0 {
				w.Write(bytes.ReplaceAll(head[:i], []byte(sudoPrompt), nil))
				w.Write(head[i+len(sudoStarted)+1:])
				head = nil
				close(g.started)
			}
		}
		if err != nil {
			break
		}
	}
	if head != nil {
		w.Write(bytes.ReplaceAll(head, []byte(sudoPrompt), nil))
	}
}
