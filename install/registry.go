package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sealpack/sealpack/agent"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/progress"
	"github.com/sealpack/sealpack/internal/shell"
)

// The cluster's registry runs on every master, each from its own verified
// copy of the bundle and under one CA, so images stay available after the
// installer leaves and while any master is down (containerd on every host
// lists them all): a systemd unit where systemd runs, otherwise a supervised
// background process. The first master's copy comes from this machine; the
// other masters fetch theirs from it, so this machine sends the bundle once.
const registryUnit = "sealpack-registry.service"

func (e *Engine) registryDir() string { return e.remote("registry") }

// registryAddr is where a master's registry listens: the first master's at
// the address scripts get as SEALPACK_REGISTRY, the others' at their own
// address and the same port.
func (e *Engine) registryAddr(n cluster.Node) string {
	if n.IP == e.c.Master0().IP {
		return e.opts.Registry
	}
	_, port, _ := strings.Cut(e.opts.Registry, ":")
	return netJoin(n.IP, port)
}

// registries is every master's registry, the first master's first: what
// containerd on every host tries, in order (SEALPACK_REGISTRIES).
func (e *Engine) registries() []string {
	var out []string
	for _, m := range e.c.Masters() {
		out = append(out, e.registryAddr(m))
	}
	return out
}

// registryCommand is the command line of a master's lasting registry. The
// first master runs it from its program (the whole stub); the others from
// their bundle copy, which is a whole installer too. older: also serve the
// bundle an upgrade replaced.
func (e *Engine) registryCommand(n cluster.Node, older bool) string {
	prog := e.bundleCopyPath()
	if n.IP == e.c.Master0().IP {
		prog = e.stubPath()
	}
	args := []string{
		prog, "registry", "serve",
		"--bundle", e.bundleCopyPath(),
		"--addr", e.registryAddr(n),
		"--tls-generate", e.registryDir(),
		"--tls-san", n.IP,
		// info: a line per blob served (digest, bytes, client), the bytes
		// each master sends to nodes that pull rather than preload
		"--log-level", "info",
	}
	if older {
		args = append(args, "--bundle", e.previousBundlePath())
	}
	if d := e.c.Registry.Domain; d != "" {
		args = append(args, "--tls-san", d)
	}
	return shell.Join(args...)
}

// serveRegistries starts the registry on the first master, then on every
// other master of masters (each fetching the bundle from the first and
// taking its CA), and gives the CA to the hosts of others. A master that
// fails stops the run, as in every phase.
func (e *Engine) serveRegistries(ctx context.Context, m0 cluster.Node, masters, others []cluster.Node) error {
	if err := e.hostDone(ctx, "registry", m0, e.startRegistry(ctx, m0)); err != nil {
		return err
	}
	c, err := e.conn(ctx, m0)
	if err != nil {
		return err
	}
	ca, err := c.Output(ctx, "cat "+shellQuote(e.registryCAPath()), time.Minute)
	if err != nil {
		return fmt.Errorf("read the registry CA on %s: %w", m0.IP, err)
	}
	replicas := slices.DeleteFunc(slices.Clone(masters), func(n cluster.Node) bool { return n.IP == m0.IP })
	if len(replicas) > 0 {
		if err := e.replicateRegistry(ctx, m0, replicas, ca); err != nil {
			return err
		}
	}
	return e.shareRegistryCA(ctx, ca, others)
}

// replicateRegistry gives each replica the first master's CA (certificate
// and key, 0600), its own copy of the bundle fetched from the first master
// and checked against the digest of this machine's verified bundle, and
// starts its registry.
func (e *Engine) replicateRegistry(ctx context.Context, m0 cluster.Node, replicas []cluster.Node, ca string) error {
	c0, err := e.conn(ctx, m0)
	if err != nil {
		return err
	}
	b := e.opts.Bundle
	// Read and computed once, and only when a replica lacks them: a re-run
	// whose replicas are done reads no key and hashes no bundle.
	key := sync.OnceValues(func() (string, error) {
		k, err := c0.Output(ctx, "cat "+shellQuote(e.remote("registry", "ca.key")), time.Minute)
		if err != nil {
			return "", fmt.Errorf("read the registry CA key on %s: %w", m0.IP, err)
		}
		return k, nil
	})
	// The bundle as one file, as the first master holds it: its digest is
	// computed here, from the bundle this installer verified.
	single := sync.OnceValues(func() (string, error) {
		h := sha256.New()
		if _, err := b.WriteSingleFrom(h, 0); err != nil {
			return "", fmt.Errorf("hash the bundle: %w", err)
		}
		return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
	})
	var (
		once        sync.Once
		addr, token string
		serveErr    error
	)
	// The first master serves its copy once the first replica needs it,
	// for as long as the replication lasts.
	serve := func(ctx context.Context) (string, string, error) {
		once.Do(func() {
			if token, serveErr = randomToken(); serveErr == nil {
				addr, serveErr = e.startBlobServer(ctx, m0, agent.ServeBlobs{File: e.bundleCopyPath()}, token)
			}
		})
		return addr, token, serveErr
	}
	defer func() {
		if addr != "" {
			c0.Output(context.WithoutCancel(ctx), e.stopBlobServerScript(), time.Minute)
		}
	}()
	return e.eachHost(ctx, "registry", replicas, func(ctx context.Context, n cluster.Node) error {
		err := e.stepID(ctx, n, "registry", "registry-ca", digestOf(ca), func(ctx context.Context, c *Conn) (string, error) {
			k, err := key()
			if err != nil {
				return "", stopRun(err)
			}
			// The key first: a ca.crt without its key would make the registry
			// generate a CA of its own.
			if err := e.uploadText(ctx, c, k, path.Join(e.registryDir(), "ca.key"), "0600"); err != nil {
				return "", err
			}
			return "from " + m0.IP, e.uploadText(ctx, c, ca, e.registryCAPath(), "0644")
		})
		if err != nil {
			return err
		}
		// Step "bundle" with the bundle's id, as the first master's copy:
		// a replica holds the same file, so it can serve in its place.
		err = e.stepID(ctx, n, "registry", "bundle", e.bundleID(), func(ctx context.Context, c *Conn) (string, error) {
			digest, err := single()
			if err != nil {
				return "", stopRun(err)
			}
			from, token, err := serve(ctx)
			if err != nil {
				return "", stopRun(fmt.Errorf("serve the bundle from %s: %w", m0.IP, err))
			}
			dir := e.remote("bundle", "fetch")
			fetch := agent.FetchBlob{From: from, Bundle: true, Blobs: []agent.BlobRef{{Digest: digest, Size: b.SingleSize()}}, Dir: dir}
			got := path.Join(dir, "sha256", strings.TrimPrefix(digest, "sha256:"))
			cmd := fmt.Sprintf("%s && %s && chmod 0700 %s && mv -f %s %s && rm -rf %s", readToken, agent.Line(e.stubPath(), fetch),
				shellQuote(got), shellQuote(got), shellQuote(e.bundleCopyPath()), shellQuote(dir))
			var errOut strings.Builder
			err = c.Exec(ctx, "umask 077 && mkdir -p "+shellQuote(path.Dir(e.bundleCopyPath()))+" && "+cmd, strings.NewReader(token+"\n"), io.Discard, &errOut, uploadTimeout)
			if ce, ok := err.(*CommandError); ok {
				ce.Stderr, ce.Cmd = strings.TrimSpace(errOut.String()), "fetch the bundle from "+m0.IP
			}
			return progress.Bytes(b.SingleSize()) + " from " + m0.IP, err
		})
		if err != nil {
			return err
		}
		return e.startRegistry(ctx, n)
	})
}

// startRegistry (re)starts the registry on a master and waits until it
// listens and its CA exists. The step's id is the bundle's, so a newer
// bundle restarts it.
func (e *Engine) startRegistry(ctx context.Context, n cluster.Node) error {
	return e.stepID(ctx, n, "registry", "registry", e.bundleID(), func(ctx context.Context, c *Conn) (string, error) {
		older, err := e.hasPreviousBundle(ctx, c)
		if err != nil {
			return "", err
		}
		_, port, _ := strings.Cut(e.opts.Registry, ":")
		p, _ := strconv.Atoi(port)
		cmdLine := e.registryCommand(n, older)
		script := e.stopRegistryScript() + fmt.Sprintf(`
mkdir -p %[1]s
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  cat > /etc/systemd/system/%[2]s <<'UNIT'
[Unit]
Description=sealpack cluster registry (serves the bundle's images)
After=network-online.target
[Service]
ExecStart=%[3]s
Restart=always
RestartSec=1
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload && systemctl enable --now %[2]s
else
  setsid sh -c 'while :; do %[4]s; sleep 1; done' >> %[1]s/registry.log 2>&1 < /dev/null &
  pidrecord $! > %[1]s/supervisor.pid
fi
i=0
until [ -s %[1]s/ca.crt ] && grep -qi ':%[5]s [0-9A-F:]* 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; do
  i=$((i+1)); [ $i -gt 300 ] && { echo 'registry did not start:' >&2; tail -5 %[1]s/registry.log >&2; exit 1; }
  sleep 0.1
done`, shellQuote(e.registryDir()), registryUnit, cmdLine, strings.ReplaceAll(cmdLine, "'", `'\''`), fmt.Sprintf("%04X", p))
		var tail tailBuffer
		both := &syncWriter{w: &tail}
		err = c.Exec(ctx, script, nil, both, both, 2*time.Minute)
		if ce, ok := err.(*CommandError); ok {
			ce.Cmd, ce.Stderr = "start the registry", tail.String()
		}
		return "serving " + e.registryAddr(n), err
	})
}

// stopRegistryScript stops a registry started by an earlier run, if its
// pid file still names its supervisor (whose command line quotes the
// registry's arguments).
func (e *Engine) stopRegistryScript() string {
	return procShell + fmt.Sprintf(`
if [ -f /etc/systemd/system/%[2]s ]; then
  systemctl disable --now %[2]s >/dev/null 2>&1; rm -f /etc/systemd/system/%[2]s; systemctl daemon-reload >/dev/null 2>&1
fi
if ours %[1]s/supervisor.pid %[3]s; then
  kill -TERM -"$(cut -d' ' -f1 %[1]s/supervisor.pid)" 2>/dev/null; sleep 0.2
fi
rm -f %[1]s/supervisor.pid
true`, shellQuote(e.registryDir()), registryUnit, shellQuote(shell.Join("registry", "serve")))
}

// shareRegistryCA gives the hosts the registries' CA certificate at
// SEALPACK_REGISTRY_CA.
func (e *Engine) shareRegistryCA(ctx context.Context, ca string, nodes []cluster.Node) error {
	return e.eachHost(ctx, "registry", nodes, func(ctx context.Context, n cluster.Node) error {
		return e.stepID(ctx, n, "registry", "registry-ca", digestOf(ca), func(ctx context.Context, c *Conn) (string, error) {
			return "", e.uploadText(ctx, c, ca, e.registryCAPath(), "0644")
		})
	})
}

// uploadText writes a small text file on the host (upload: checked, moved
// into place, private until its mode is set).
func (e *Engine) uploadText(ctx context.Context, c *Conn, text, dst, mode string) error {
	return e.upload(ctx, c, "registry", path.Base(dst), strings.NewReader(text), int64(len(text)), digestOf(text), dst, mode)
}

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}
