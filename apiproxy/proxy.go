// Package apiproxy is the node-local, health-checked TCP proxy that gives
// every host of a cluster an API endpoint surviving the loss of any master
// (as RKE2's agent load balancer, Sealer's lvscare or k0s's node-local load
// balancing do). It forwards whole connections, so TLS goes end to end
// between the client and an API server: the proxy holds no certificate.
//
// A backend is healthy when a TCP connection to it succeeds within the
// check timeout; checks run every interval, and a backend that fails a
// client's dial is marked down at once (the client is tried on the next
// one), so a master that dies stops receiving connections within a dial
// timeout, not a check interval.
package apiproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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
	// Logf reports backends going up and down; nil discards.
	Logf func(format string, args ...any)
}

// Proxy forwards connections to healthy backends.
type Proxy struct {
	opts Options
	ln   net.Listener
	next atomic.Uint64

	mu       sync.Mutex
	backends []*backend
}

type backend struct {
	addr string
	up   atomic.Bool
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
	p := &Proxy{opts: opts}
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
			p.mark(b, false, err)
			continue
		}
		p.mark(b, true, nil)
		pipe(client, server)
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

func (p *Proxy) mark(b *backend, up bool, err error) {
	if b.up.Swap(up) == up {
		return
	}
	if up {
		p.opts.Logf("backend %s up", b.addr)
	} else {
		p.opts.Logf("backend %s down: %v", b.addr, err)
	}
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

// check dials every backend at once and records which answer.
func (p *Proxy) check(ctx context.Context) {
	var wg sync.WaitGroup
	for _, b := range p.snapshot() {
		wg.Go(func() {
			d := net.Dialer{Timeout: p.opts.DialTimeout}
			c, err := d.DialContext(ctx, "tcp", b.addr)
			if err == nil {
				c.Close()
			}
			if ctx.Err() == nil {
				p.mark(b, err == nil, err)
			}
		})
	}
	wg.Wait()
}

func (p *Proxy) snapshot() []*backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.backends)
}

// setBackends replaces the backend list, keeping the health of backends
// that stay. New backends start as up, so the first client can use them
// before their first check.
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
			b = &backend{addr: a}
			b.up.Store(true)
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
