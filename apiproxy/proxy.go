// Package apiproxy is the node-local, health-checked TCP proxy that gives
// every host of a cluster an API endpoint surviving the loss of any master
// (as RKE2's agent load balancer, Sealer's lvscare or k0s's node-local load
// balancing do). It forwards whole connections, so TLS goes end to end
// between the client and an API server: the proxy holds no certificate.
//
// A backend is healthy when a TCP connection to it succeeds within the
// check timeout or, with Options.HealthPath set, when an HTTPS GET of that
// path answers 200 within it: a kube-apiserver that has just started
// accepts connections before it can serve them (etcd not joined yet), and
// /readyz says so. Checks run every interval. A backend is marked down by
// two failed checks in a row (one slow answer on a loaded host should not
// take it out) and up again by one good check; a backend never yet seen
// healthy goes down at its first failed check. A backend that fails a
// client's dial is marked down at once (the client is tried on the next
// one), so a master that dies stops receiving connections within a dial
// timeout, not a check interval.
//
// Marking a backend down closes every client connection forwarded to it: a
// master that loses power sends no reset, and long-lived clients (kubelet
// watches, kube-proxy) would otherwise wait minutes on a dead connection
// instead of reconnecting at once to a healthy backend.
package apiproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a proxy.
type Options struct {
	// Listen is the address clients connect to (e.g. 127.0.0.1:6443).
	Listen string
	// Backends are the API servers, host:port.
	Backends []string
	// BackendsFile, when set, lists the backends one per line (# comments);
	// it is read again every Interval, so a joined or removed master is
	// followed without a restart. It wins over Backends once it exists.
	BackendsFile string
	// Interval between health checks (default 2s); DialTimeout bounds one
	// check or one client's dial to a backend (default 1s).
	Interval, DialTimeout time.Duration
	// HealthPath, when set (e.g. "/readyz"), makes a check an HTTPS GET of
	// that path, passed by a 200 answer; otherwise a check is a TCP connect.
	HealthPath string
	// Logf reports backends going up and down; nil discards.
	Logf func(format string, args ...any)
}

// Proxy forwards connections to healthy backends.
type Proxy struct {
	opts Options
	ln   net.Listener
	next atomic.Uint64
	// health makes the HTTPS checks when Options.HealthPath is set.
	health *http.Client

	mu       sync.Mutex
	backends []*backend
}

// failsToMarkDown is how many checks in a row must fail to mark a backend
// down: a single slow answer from a loaded host should not flap it.
const failsToMarkDown = 2

type backend struct {
	addr string
	up   atomic.Bool // written under mu, read without it

	mu sync.Mutex
	// fails counts the checks failed in a row.
	fails int
	// conns maps each client connection forwarded to this backend to the
	// proxy's connection to it, so marking the backend down can close both.
	conns map[net.Conn]net.Conn
}

// newBackend is up, so the first client can use it before its first
// check, but on probation: one failed check marks it down, as it was never
// seen healthy.
func newBackend(addr string) *backend {
	b := &backend{addr: addr, fails: failsToMarkDown - 1, conns: map[net.Conn]net.Conn{}}
	b.up.Store(true)
	return b
}

// track records a forwarded connection until the returned func is called.
func (b *backend) track(client, server net.Conn) (untrack func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conns[client] = server
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.conns, client)
	}
}

// Listen opens the listening socket; Serve then forwards.
func Listen(opts Options) (*Proxy, error) {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = time.Second
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.HealthPath != "" && !strings.HasPrefix(opts.HealthPath, "/") {
		return nil, fmt.Errorf("apiproxy: health path %q does not start with /", opts.HealthPath)
	}
	p := &Proxy{opts: opts, health: healthClient()}
	addrs := opts.Backends
	if opts.BackendsFile != "" {
		if fromFile, err := readBackends(opts.BackendsFile); err == nil {
			addrs = fromFile
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if len(addrs) == 0 {
		return nil, errors.New("apiproxy: no backends (give --backend or a backends file)")
	}
	p.setBackends(addrs)
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("apiproxy: %w", err)
	}
	p.ln = ln
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Serve forwards connections until ctx ends.
func (p *Proxy) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		p.ln.Close()
	}()
	// The first checks run before the first client is served, so a proxy
	// started beside a dead master does not try it first.
	p.check(ctx)
	go p.checkLoop(ctx)
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("apiproxy: accept: %w", err)
		}
		go p.forward(ctx, c)
	}
}

// forward connects a client to the first healthy backend that accepts,
// starting from the next in turn, then copies both ways until either side
// closes.
func (p *Proxy) forward(ctx context.Context, client net.Conn) {
	defer client.Close()
	up, down := p.candidates()
	// Backends believed down are tried last: when every check failed (a
	// partition just healed), a client should still get through.
	for _, b := range append(up, down...) {
		d := net.Dialer{Timeout: p.opts.DialTimeout, KeepAlive: 15 * time.Second}
		server, err := d.DialContext(ctx, "tcp", b.addr)
		if err != nil {
			// A refused or timed-out dial is proof enough: no second try.
			p.markFailed(b, err, 1)
			continue
		}
		if p.opts.HealthPath == "" {
			// The dial passed the health check itself; with a health path
			// an accepted connection says nothing of readiness.
			p.markUp(b)
		}
		untrack := b.track(client, server)
		pipe(client, server)
		untrack()
		return
	}
}

// candidates is the healthy backends starting at the next in turn, then
// the others.
func (p *Proxy) candidates() (up, down []*backend) {
	p.mu.Lock()
	all := slices.Clone(p.backends)
	p.mu.Unlock()
	if len(all) == 0 {
		return nil, nil
	}
	start := int(p.next.Add(1) % uint64(len(all)))
	for i := range all {
		b := all[(start+i)%len(all)]
		if b.up.Load() {
			up = append(up, b)
		} else {
			down = append(down, b)
		}
	}
	return up, down
}

// pipe copies both ways; when one direction ends, the other side's write
// half is closed so the peer sees EOF, and both end when both are done.
func pipe(a, b net.Conn) {
	defer b.Close()
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}

// markUp records a passed check.
func (p *Proxy) markUp(b *backend) {
	b.mu.Lock()
	b.fails = 0
	was := b.up.Swap(true)
	b.mu.Unlock()
	if !was {
		p.opts.Logf("backend %s up", b.addr)
	}
}

// markFailed records a failure; the need-th in a row marks the backend down
// and closes the connections forwarded to it, so their clients reconnect
// to a healthy backend rather than wait on a dead one.
func (p *Proxy) markFailed(b *backend, err error, need int) {
	b.mu.Lock()
	b.fails++
	if b.fails < need || !b.up.Load() {
		b.mu.Unlock()
		return
	}
	b.up.Store(false)
	n := len(b.conns)
	for client, server := range b.conns {
		client.Close()
		server.Close()
	}
	clear(b.conns)
	b.mu.Unlock()
	p.opts.Logf("backend %s down: %v (closed %d connections)", b.addr, err, n)
}

func (p *Proxy) checkLoop(ctx context.Context) {
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p.opts.BackendsFile != "" {
			addrs, err := readBackends(p.opts.BackendsFile)
			switch {
			case err == nil && len(addrs) > 0:
				p.setBackends(addrs)
			case err != nil && !errors.Is(err, os.ErrNotExist):
				p.opts.Logf("backends file: %v (keeping %d backends)", err, len(p.snapshot()))
			}
		}
		p.check(ctx)
	}
}

// check probes every backend at once and records which pass.
func (p *Proxy) check(ctx context.Context) {
	var wg sync.WaitGroup
	for _, b := range p.snapshot() {
		wg.Go(func() {
			err := p.probe(ctx, b.addr)
			switch {
			case ctx.Err() != nil:
				// Shutting down: the failure is ours, not the backend's.
			case err == nil:
				p.markUp(b)
			default:
				p.markFailed(b, err, failsToMarkDown)
			}
		})
	}
	wg.Wait()
}

// probe is one health check of addr, bounded by the dial timeout.
func (p *Proxy) probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout)
	defer cancel()
	if p.opts.HealthPath == "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+p.opts.HealthPath, nil)
	if err != nil {
		return fmt.Errorf("health check of %s: %w", addr, err)
	}
	resp, err := p.health.Do(req)
	if err != nil {
		return err // names the URL already
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	return nil
}

// healthClient makes the HTTPS health checks. It does not verify the
// server's certificate: the proxy holds no CA (TLS of the forwarded
// connections goes end to end), and nothing needs protecting here, as the
// check sends no credential and carries no data, only reads a status that
// kube-apiserver serves anonymously (/readyz). Each check opens a fresh
// connection (a kept one could outlive the server it proves), goes direct
// (no HTTPS_PROXY from the environment) and takes a redirect as an answer,
// not a 200.
func healthClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (p *Proxy) snapshot() []*backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.backends)
}

// setBackends replaces the backend list, keeping the health of backends
// that stay (see newBackend for those that come).
func (p *Proxy) setBackends(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := map[string]*backend{}
	for _, b := range p.backends {
		old[b.addr] = b
	}
	var next []*backend
	for _, a := range addrs {
		b := old[a]
		if b == nil {
			b = newBackend(a)
			if p.backends != nil {
				p.opts.Logf("backend %s added", a)
			}
		}
		next = append(next, b)
	}
	p.backends = next
}

// Backends lists the backends and whether each is up, for status output.
func (p *Proxy) Backends() map[string]bool {
	out := map[string]bool{}
	for _, b := range p.snapshot() {
		out[b.addr] = b.up.Load()
	}
	return out
}

// readBackends parses a backends file: one host:port per line, blank lines
// and # comments ignored. A line that is not host:port is an error naming
// the file and line.
func readBackends(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if c, _, ok := strings.Cut(line, "#"); ok {
			line = strings.TrimSpace(c)
		}
		if line == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %q is not host:port: %w", path, i+1, line, err)
		}
		if !slices.Contains(addrs, line) {
			addrs = append(addrs, line)
		}
	}
	return addrs, nil
}
