package install

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/shell"
)

// HostKeyPolicy says which host keys the engine trusts.
type HostKeyPolicy struct {
	// KnownHosts is the known_hosts file checked, and appended to when a new
	// key is accepted. Default ~/.ssh/known_hosts.
	KnownHosts string
	// AcceptNew accepts a host whose key is not known (trust on first use);
	// its fingerprint is reported and recorded. A changed key is never accepted.
	AcceptNew bool
	// OnNewKey is told of each key accepted on first use.
	OnNewKey func(ip string, key ssh.PublicKey)
	// Decide, when set and AcceptNew is false, is asked about each unknown
	// key (the wizard shows the fingerprint and asks the user); true accepts
	// and records it. It may block; it is called for one host at a time.
	Decide func(ip string, key ssh.PublicKey) bool
}

// HostKeyError reports a host key that is not trusted.
type HostKeyError struct {
	Host        string
	Fingerprint string
	KeyType     string // of the key the host presented
	Changed     bool
	Pinned      bool
}

func (e *HostKeyError) Error() string {
	switch {
	case e.Pinned:
		return fmt.Sprintf("host key of %s is %s, not the one pinned in the answers file: refusing to connect", e.Host, e.Fingerprint)
	case e.Changed:
		return fmt.Sprintf("host key of %s CHANGED (now %s) since it was recorded in known_hosts: refusing to connect (possible man-in-the-middle; if the host was reinstalled, remove its old line)", e.Host, e.Fingerprint)
	}
	return fmt.Sprintf("host key of %s is not known (%s): check the fingerprint, then pass --accept-new-host-keys or pin it as hostKey in the answers file", e.Host, e.Fingerprint)
}

// hostKeyCallback checks a host's key against its pinned key, if any, else
// against known_hosts; unknown keys are accepted only when the policy says so.
func (p *HostKeyPolicy) hostKeyCallback(node cluster.Node, mu *sync.Mutex) (ssh.HostKeyCallback, error) {
	if node.HostKey != "" {
		return func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if pinnedMatches(node.HostKey, key) {
				return nil
			}
			return &HostKeyError{Host: node.IP, Fingerprint: ssh.FingerprintSHA256(key), KeyType: key.Type(), Pinned: true}
		}, nil
	}
	path := p.knownHostsPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	if f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600); err == nil {
		f.Close()
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		mu.Lock()
		defer mu.Unlock()
		check, err := knownhosts.New(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		err = check(hostname, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) > 0:
			return &HostKeyError{Host: node.IP, Fingerprint: ssh.FingerprintSHA256(key), Changed: true}
		case errors.As(err, &ke) && (p.AcceptNew || (p.Decide != nil && p.Decide(node.IP, key))):
			line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
			if err != nil {
				return fmt.Errorf("record host key in %s: %w", path, err)
			}
			_, err = fmt.Fprintln(f, line)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("record host key in %s: %w", path, err)
			}
			if p.OnNewKey != nil {
				p.OnNewKey(node.IP, key)
			}
			return nil
		case errors.As(err, &ke):
			return &HostKeyError{Host: node.IP, Fingerprint: ssh.FingerprintSHA256(key)}
		}
		return err
	}, nil
}

func (p *HostKeyPolicy) knownHostsPath() string {
	if p.KnownHosts != "" {
		return p.KnownHosts
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".ssh", "known_hosts")
}

// pinnedMatches compares a key with a pinned "type base64 [comment]" line or
// a "SHA256:..." fingerprint.
func pinnedMatches(pinned string, key ssh.PublicKey) bool {
	if strings.HasPrefix(pinned, "SHA256:") {
		return subtle.ConstantTimeCompare([]byte(pinned), []byte(ssh.FingerprintSHA256(key))) == 1
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pinned))
	return err == nil && bytes.Equal(want.Marshal(), key.Marshal())
}

// authMethods returns the ways to log in, in the order tried: the given key
// (decrypted with its passphrase), the agent, default keys, the password.
func authMethods(s cluster.SSH) ([]ssh.AuthMethod, func(), error) {
	var methods []ssh.AuthMethod
	cleanup := func() {}
	var signers []ssh.Signer
	if s.PrivateKey != "" {
		signer, err := loadKey(s.PrivateKey, s.PrivateKeyPassword.Reveal())
		if err != nil {
			return nil, cleanup, err
		}
		signers = append(signers, signer)
	} else {
		home, _ := os.UserHomeDir()
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if signer, err := loadKey(filepath.Join(home, ".ssh", name), s.PrivateKeyPassword.Reveal()); err == nil {
				signers = append(signers, signer)
			}
		}
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && s.PrivateKey == "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			cleanup = func() { conn.Close() }
			if agentSigners, err := agent.NewClient(conn).Signers(); err == nil {
				signers = append(signers, agentSigners...)
			}
		}
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if pw := s.Password.Reveal(); pw != "" {
		methods = append(methods, ssh.Password(pw), ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
			answers := make([]string, len(qs))
			for i := range answers {
				answers[i] = pw
			}
			return answers, nil
		}))
	}
	if len(methods) == 0 {
		return nil, cleanup, errors.New("no SSH credentials: set ssh.pk or ssh.passwd in the answers file, or load a key into ssh-agent")
	}
	return methods, cleanup, nil
}

func loadKey(path, passphrase string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read SSH key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == "" {
			return nil, fmt.Errorf("SSH key %s is encrypted: set ssh.pkPasswd (or pkPasswdEnv/pkPasswdFile)", path)
		}
		signer, err = ssh.ParsePrivateKeyWithPassphrase(data, []byte(passphrase))
	}
	if err != nil {
		return nil, fmt.Errorf("parse SSH key %s: %w", path, err)
	}
	return signer, nil
}

// Conn is one SSH connection to a host; commands run as sessions over it.
type Conn struct {
	Node   cluster.Node
	client *ssh.Client
	// sudo is the prefix that makes a command run as root: empty for root.
	sudo string
	// sudoPassword is fed to sudo -S when passwordless sudo is not allowed.
	sudoPassword string
	closeAgent   func()
	// sessions bounds the sessions open at once on the connection below
	// OpenSSH's default MaxSessions (10), so a busy host is never refused one.
	sessions chan struct{}
}

// maxSessions is how many sessions the engine opens at once on one
// connection: below sshd's default MaxSessions of 10, leaving room for a
// user's own multiplexed sessions.
const maxSessions = 8

// Timeouts bound the network and every remote command.
type Timeouts struct {
	Dial time.Duration // one connection and its handshake; default 10s
	// DialRetry is how long transient dial failures (refused, reset, a
	// connection sshd drops beyond MaxStartups, timeouts) are retried;
	// default 3×Dial.
	DialRetry time.Duration
	Command   time.Duration // default for commands without their own; default 10m
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Dial == 0 {
		t.Dial = 10 * time.Second
	}
	if t.DialRetry == 0 {
		t.DialRetry = 3 * t.Dial
	}
	if t.Command == 0 {
		t.Command = 10 * time.Minute
	}
	return t
}

// Dial connects and logs in to node, retrying transient network errors
// (see dialRetrying); authentication and host key failures are final.
func Dial(ctx context.Context, node cluster.Node, policy *HostKeyPolicy, mu *sync.Mutex, t Timeouts) (*Conn, error) {
	return dial(ctx, node, policy, mu, t, nil)
}

// dial is Dial with gate, when not nil, held during each attempt (not
// while waiting to retry): it bounds the handshakes in flight across hosts.
func dial(ctx context.Context, node cluster.Node, policy *HostKeyPolicy, mu *sync.Mutex, t Timeouts, gate chan struct{}) (*Conn, error) {
	t = t.withDefaults()
	methods, closeAgent, err := authMethods(node.SSH)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", node.IP, err)
	}
	cb, err := policy.hostKeyCallback(node, mu)
	if err != nil {
		closeAgent()
		return nil, err
	}
	algos, err := policy.hostKeyAlgorithms(node, mu)
	if err != nil {
		closeAgent()
		return nil, err
	}
	cfg := &ssh.ClientConfig{User: node.SSH.User, Auth: methods, HostKeyCallback: cb, HostKeyAlgorithms: algos, Timeout: t.Dial}
	client, err := dialRetrying(ctx, t.DialRetry, gate, func() (*ssh.Client, error) { return dialHostKey(ctx, node, cfg) })
	if err != nil {
		closeAgent()
		return nil, fmt.Errorf("connect to %s as %s: %w", node.Addr(), node.SSH.User, err)
	}
	c := &Conn{Node: node, client: client, closeAgent: closeAgent, sessions: make(chan struct{}, maxSessions)}
	if node.SSH.User != "root" {
		c.sudo = "sudo -n "
		if _, err := c.Output(ctx, "true", 30*time.Second); err != nil {
			if node.SSH.Password.Reveal() == "" {
				c.Close()
				return nil, fmt.Errorf("%s: user %s cannot sudo without a password, and no password is set", node.IP, node.SSH.User)
			}
			c.sudo, c.sudoPassword = "sudo -S -p "+sudoPrompt+" ", node.SSH.Password.Reveal()
			if _, err := c.Output(ctx, "true", 30*time.Second); err != nil {
				c.Close()
				return nil, fmt.Errorf("%s: sudo as %s: %w", node.IP, node.SSH.User, err)
			}
		}
	}
	return c, nil
}

func dialContext(ctx context.Context, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	d := net.Dialer{Timeout: cfg.Timeout, KeepAlive: 15 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake gets the dial timeout too: a host that accepts TCP but
	// never speaks SSH must not hang the install.
	nc.SetDeadline(time.Now().Add(cfg.Timeout))
	conn, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(conn, chans, reqs), nil
}

// dialRetrying calls attempt until it succeeds, fails for good, window has
// passed since the first try or ctx ends. Waits grow exponentially with
// full jitter: many dials refused at once (an sshd past MaxStartups drops
// the connections beyond its limit) come back spread out, not in step.
// gate, when not nil, is held during each attempt.
func dialRetrying(ctx context.Context, window time.Duration, gate chan struct{}, attempt func() (*ssh.Client, error)) (*ssh.Client, error) {
	const first, most = 100 * time.Millisecond, 5 * time.Second
	deadline := time.Now().Add(window)
	backoff := first
	for {
		if gate != nil {
			select {
			case gate <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		client, err := attempt()
		if gate != nil {
			<-gate
		}
		if err == nil || !transient(err) || ctx.Err() != nil {
			return client, err
		}
		wait := time.Duration(mrand.Int64N(int64(backoff))) + time.Millisecond
		if time.Now().Add(wait).After(deadline) {
			return nil, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, err
		}
		backoff = min(2*backoff, most)
	}
}

// transient reports network errors worth retrying.
func transient(err error) bool {
	var hk *HostKeyError
	if errors.As(err, &hk) || strings.Contains(err.Error(), "unable to authenticate") {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "connection reset") || errors.Is(err, io.EOF)
}

// Close ends the connection.
func (c *Conn) Close() error {
	c.closeAgent()
	return c.client.Close()
}

// newSession opens a session, waiting a little when sshd refuses one: it
// frees a finished session's slot only once it has reaped its process, so a
// busy connection can briefly count more sessions than it has open.
func (c *Conn) newSession(ctx context.Context) (*ssh.Session, error) {
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		s, err := c.client.NewSession()
		var oce *ssh.OpenChannelError
		if err == nil || !errors.As(err, &oce) || attempt == 12 {
			if err != nil {
				return nil, &ConnError{Host: c.Node.IP, Err: err}
			}
			return s, nil
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: no SSH session: %w (%v)", c.Node.IP, ctx.Err(), err)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Exec runs cmd as root through sh, with stdin, stdout and stderr as given,
// and kills it when ctx ends or timeout passes.
func (c *Conn) Exec(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	select {
	case c.sessions <- struct{}{}:
		defer func() { <-c.sessions }()
	case <-ctx.Done():
		// Not a ConnError: the connection is fine, only busy.
		return fmt.Errorf("%s: no free SSH session for %q: %w", c.Node.IP, firstLine(cmd), ctx.Err())
	}
	s, err := c.newSession(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	script := cmd
	var gate *sudoGate
	if c.sudoPassword == "" {
		s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr
	} else {
		gate = newSudoGate(c.sudoPassword, stdin)
		errPipe, err := s.StderrPipe()
		if err != nil {
			return &ConnError{Host: c.Node.IP, Err: err}
		}
		s.Stdin, s.Stdout = gate, stdout
		go gate.watch(errPipe, stderr)
		script = "printf '%s\\n' " + sudoStarted + " >&2\n" + cmd
	}
	if err := s.Start(c.sudo + "sh -c " + shellQuote(script)); err != nil {
		return &ConnError{Host: c.Node.IP, Err: err}
	}
	done := make(chan error, 1)
	go func() {
		err := s.Wait()
		if gate != nil {
			<-gate.watched
		}
		done <- err
	}()
	select {
	case err := <-done:
		var exit *ssh.ExitError
		var missing *ssh.ExitMissingError
		switch {
		case err == nil:
			return nil
		case gate != nil && gate.rejected.Load():
			return fmt.Errorf("%s: sudo rejected the password of %s", c.Node.IP, c.Node.SSH.User)
		case errors.As(err, &exit):
			return &CommandError{Host: c.Node.IP, Cmd: cmd, Status: exit.ExitStatus()}
		case errors.As(err, &missing), errors.Is(err, io.EOF):
			return &ConnError{Host: c.Node.IP, Err: fmt.Errorf("connection lost while running %q", firstLine(cmd))}
		}
		return &ConnError{Host: c.Node.IP, Err: err}
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		// Wait returns once the output copies have stopped: the caller's
		// buffers must not be written after Exec returns.
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s: %q timed out after %v", c.Node.IP, firstLine(cmd), timeout)
		}
		return ctx.Err()
	}
}

// Output runs cmd and returns its standard output; on failure the error
// carries the command's standard error.
func (c *Conn) Output(ctx context.Context, cmd string, timeout time.Duration) (string, error) {
	var out, errOut bytes.Buffer
	err := c.Exec(ctx, cmd, nil, &out, &errOut, timeout)
	var ce *CommandError
	if errors.As(err, &ce) {
		ce.Stderr = strings.TrimSpace(errOut.String())
	}
	return out.String(), err
}

// CommandError is a remote command that ran and failed.
type CommandError struct {
	Host   string
	Cmd    string
	Status int
	Stderr string
}

func (e *CommandError) Error() string {
	s := fmt.Sprintf("%s: %q exited with status %d", e.Host, firstLine(e.Cmd), e.Status)
	if e.Stderr != "" {
		s += ": " + lastLines(e.Stderr, 5)
	}
	return s
}

// ConnError is a lost or failed connection: the step may be retried on a new one.
type ConnError struct {
	Host string
	Err  error
}

func (e *ConnError) Error() string { return fmt.Sprintf("%s: %v", e.Host, e.Err) }
func (e *ConnError) Unwrap() error { return e.Err }

// shellQuote is shell.Quote, under the name the engine's many uses know.
func shellQuote(s string) string { return shell.Quote(s) }

func firstLine(s string) string {
	s, _, cut := strings.Cut(strings.TrimSpace(s), "\n")
	if cut || len(s) > 80 {
		return s[:min(len(s), 80)] + "…"
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
