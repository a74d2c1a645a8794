// httpd is the e2e test app: it answers every request on :8080 with its pod's hostname (and its
// version, when built with -ldflags "-X main.version=v2").
// `httpd get URL` is its client (the image has no shell or curl): it prints URL's body, so one pod
// can ask another across nodes (kubectl exec POD -- /httpd get http://OTHER-POD-IP:8080/).
// `httpd watch URL` asks URL ten times a second until it is stopped and prints, every 10 s and at
// the end, "ok=N failed=M": the client that counts an upgrade's failed requests.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var version string

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		if err := get(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 3 && os.Args[1] == "watch" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		watch(ctx, os.Args[2])
		return
	}
	if err := serve(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// serve answers on :8080 until SIGTERM, then finishes the requests in flight and closes idle
// connections (a client's next request opens a new one, to a pod that still serves) instead of
// dropping them: with the pod's preStop sleep, which lets the Service stop sending new
// connections first, a drained pod fails no request.
func serve() error {
	name, _ := os.Hostname()
	if version != "" {
		name += " " + version
	}
	srv := &http.Server{Addr: ":8080", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", name)
	})}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

func get(url string) error {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

// watch requests url every 100 ms, each with a 2 s timeout, counting answers and failures.
func watch(ctx context.Context, url string) {
	c := &http.Client{Timeout: 2 * time.Second}
	var ok, failed int
	report := time.NewTicker(10 * time.Second)
	defer report.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Printf("ok=%d failed=%d\n", ok, failed)
			return
		case <-report.C:
			fmt.Printf("ok=%d failed=%d\n", ok, failed)
		case <-tick.C:
			resp, err := c.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s", resp.Status)
				}
			}
			if err != nil {
				failed++
				fmt.Printf("%s failed: %v\n", time.Now().UTC().Format(time.RFC3339Nano), err)
			} else {
				ok++
			}
		}
	}
}
