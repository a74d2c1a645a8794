package apiproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is a backend that answers every line with its name and the line.
type server struct {
	name string
	ln   net.Listener
	mu   sync.Mutex
	cs   []net.Conn
}

func newServer(t *testing.T, name, addr string) *server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{name: name, ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.cs = append(s.cs, c)
			s.mu.Unlock()
			go func() {
				defer c.Close()
				r := bufio.NewScanner(c)
				for r.Scan() {
					if _, err := c.Write([]byte(s.name + ":" + r.Text() + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(s.kill)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// kill stops listening and cuts every open connection, as a master that
// loses power does (its peers see resets or silence).
func (s *server) kill() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cs {
		c.Close()
	}
	s.cs = nil
}

func startProxy(t *testing.T, opts Options) *Proxy {
	t.Helper()
	opts.Listen = "127.0.0.1:0"
	if opts.Interval == 0 {
		opts.Interval = 50 * time.Millisecond
	}
	opts.DialTimeout = 200 * time.Millisecond
	opts.Logf = t.Logf
	p, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return p
}

// ask opens a connection through the proxy and returns which backend
// answered a line.
func ask(t *testing.T, p *Proxy) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	name, rest, _ := strings.Cut(strings.TrimSpace(line), ":")
	if rest != "hello" {
		t.Fatalf("backend %s echoed %q", name, rest)
	}
	return name
}

func TestSpreadsAndSurvivesABackendDying(t *testing.T) {
	a, b, c := newServer(t, "a", ""), newServer(t, "b", ""), newServer(t, "c", "")
	p := startProxy(t, Options{Backends: []string{a.addr(), b.addr(), c.addr()}, Interval: time.Hour})
	seen := map[string]int{}
	for range 30 {
		seen[ask(t, p)]++
	}
	if len(seen) != 3 {
		t.Fatalf("connections went to %v, want all three backends", seen)
	}
	// Kill a before any health check can notice (the interval is an hour):
	// every client must still get an answer, from b or c.
	a.kill()
	for i := range 30 {
		if got := ask(t, p); got != "b" && got != "c" {
			t.Fatalf("connection %d after a died: answered by %q", i, got)
		}
	}
	if up := p.Backends(); up[a.addr()] || !up[b.addr()] || !up[c.addr()] {
		t.Errorf("backends after a died: %v", up)
	}
}

func TestBackendComesBack(t *testing.T) {
	a, b := newServer(t, "a", ""), newServer(t, "b", "")
	addrA := a.addr()
	p := startProxy(t, Options{Backends: []string{addrA, b.addr()}})
	a.kill()
	waitFor(t, func() bool { return !p.Backends()[addrA] }, "a marked down by the checks")
	newServer(t, "a", addrA)
	waitFor(t, func() bool { return p.Backends()[addrA] }, "a marked up again")
	seen := map[string]bool{}
	for range 20 {
		seen[ask(t, p)] = true
	}
	if !seen["a"] {
		t.Errorf("a came back but got no connection: %v", seen)
	}
}

// A backend that stops answering its checks but leaves its connections
// open (a powered-off host sends no reset) must not keep its clients: the
// proxy closes them when it marks the backend down, and they reconnect to
// a live one.
func TestConnectionsToADeadBackendAreClosed(t *testing.T) {
	servers := map[string]*server{"a": newServer(t, "a", ""), "b": newServer(t, "b", "")}
	p := startProxy(t, Options{Backends: []string{servers["a"].addr(), servers["b"].addr()}})
	c, err := net.DialTimeout("tcp", p.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	name, _, _ := strings.Cut(line, ":")
	dead := servers[name]
	// Checks now fail (nothing listens), while the backend's side of the
	// connection stays open and silent.
	dead.ln.Close()
	// A few check intervals (50ms) and the dial timeout, with room for a
	// loaded machine; without the proxy closing it the read waits forever.
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection to %s still open after it was marked down (%v)", name, p.Backends())
	} else if err == nil {
		t.Fatal("read a line nobody sent")
	}
	if got := ask(t, p); got == name || strings.HasPrefix(got, "error") {
		t.Errorf("reconnected client answered by %q, want the live backend", got)
	}
}

// readyServer is an API server stand-in over TLS: /readyz answers 200 when
// ready is set and 500 otherwise; any other path answers its name.
func readyServer(t *testing.T, name string, ready bool) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	var r atomic.Bool
	r.Store(ready)
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/readyz" {
			io.WriteString(w, name)
		} else if !r.Load() {
			http.Error(w, "etcd not ready", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(s.Close)
	return s, &r
}

func TestHealthPathKeepsClientsFromAServerNotReady(t *testing.T) {
	a, readyA := readyServer(t, "a", false)
	b, _ := readyServer(t, "b", true)
	addrA := a.Listener.Addr().String()
	p := startProxy(t, Options{Backends: []string{addrA, b.Listener.Addr().String()}, HealthPath: "/readyz"})
	// A client that trusts the servers' certificate (both have httptest's)
	// and whose every request is a new connection through the proxy.
	tr := a.Client().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", p.Addr().String())
	}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func() string {
		t.Helper()
		resp, err := client.Get("https://127.0.0.1/name")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	for i := range 20 {
		if got := get(); got != "b" {
			t.Fatalf("request %d answered by %q while a is not ready (backends %v)", i, got, p.Backends())
		}
	}
	readyA.Store(true)
	waitFor(t, func() bool { return p.Backends()[addrA] }, "a marked up once ready")
	seen := map[string]bool{}
	for range 20 {
		seen[get()] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("after a turned ready, requests went to %v", seen)
	}
}

// One failed check does not take down a backend seen healthy; a second in
// a row does, and one good check brings it back.
func TestHealthChecksNeedTwoFailuresInARow(t *testing.T) {
	s, ready := readyServer(t, "a", true)
	addr := s.Listener.Addr().String()
	p, err := Listen(Options{Listen: "127.0.0.1:0", Backends: []string{addr}, HealthPath: "/readyz", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer p.ln.Close()
	for i, step := range []struct {
		ready, wantUp bool
	}{
		{true, true},
		{false, true},
		{true, true},
		{false, true},
		{false, false},
		{false, false},
		{true, true},
	} {
		ready.Store(step.ready)
		p.check(t.Context())
		if up := p.Backends()[addr]; up != step.wantUp {
			t.Fatalf("after check %d (ready %v): up %v, want %v", i, step.ready, up, step.wantUp)
		}
	}
}

func TestBackendsFileIsFollowed(t *testing.T) {
	a, b := newServer(t, "a", ""), newServer(t, "b", "")
	file := filepath.Join(t.TempDir(), "backends")
	if err := os.WriteFile(file, []byte("# masters\n"+a.addr()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, Options{BackendsFile: file})
	for range 5 {
		if got := ask(t, p); got != "a" {
			t.Fatalf("answered by %q, want a (the only backend listed)", got)
		}
	}
	// A master joins: the file lists it, the proxy follows without a restart.
	if err := os.WriteFile(file, []byte(a.addr()+"\n"+b.addr()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, ok := p.Backends()[b.addr()]; return ok }, "b added from the file")
	seen := map[string]bool{}
	for range 20 {
		seen[ask(t, p)] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("after b joined, connections went to %v", seen)
	}
	// A broken file keeps the last good list.
	if err := os.WriteFile(file, []byte("not an address\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(p.Backends()); n != 2 {
		t.Errorf("a broken backends file changed the list to %d backends", n)
	}
}

func TestReadBackendsErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body, want string
		addrs            []string
	}{
		{name: "ok", body: "10.0.0.1:6443\n\n# c\n10.0.0.2:6443 # second\n10.0.0.1:6443\n", addrs: []string{"10.0.0.1:6443", "10.0.0.2:6443"}},
		{name: "ipv6", body: "[fd00::1]:6443\n", addrs: []string{"[fd00::1]:6443"}},
		{name: "no port", body: "10.0.0.1:6443\n10.0.0.2\n", want: "backends:2: \"10.0.0.2\" is not host:port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, "backends")
			os.WriteFile(f, []byte(tc.body), 0o644)
			got, err := readBackends(f)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != strings.Join(tc.addrs, ",") {
				t.Fatalf("got %v, %v; want %v", got, err, tc.addrs)
			}
		})
	}
	if _, err := Listen(Options{Listen: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "no backends") {
		t.Errorf("no backends: %v", err)
	}
	if _, err := Listen(Options{Listen: "127.0.0.1:0", Backends: []string{"10.0.0.1:6443"}, HealthPath: "readyz"}); err == nil || !strings.Contains(err.Error(), "does not start with /") {
		t.Errorf("health path without /: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
