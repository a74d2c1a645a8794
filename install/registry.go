package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/shell"
)

// The cluster's registry runs on the first master from the copied program
// and the copied bundle, so images stay available after the installer leaves:
// a systemd unit where systemd runs, otherwise a supervised background process.
const registryUnit = "sealpack-registry.service"

func (e *Engine) registryDir() string { return e.remote("registry") }

// registryCommand is the command line of the lasting registry.
func (e *Engine) registryCommand(m0 cluster.Node) string {
	args := []string{
		e.stubPath(), "registry", "serve",
		"--bundle", e.bundleCopyPath(),
		"--addr", e.opts.Registry,
		"--tls-generate", e.registryDir(),
		"--tls-san", m0.IP,
	}
	e.mu.Lock()
	if e.serveOlder {
		args = append(args, "--bundle", e.previousBundlePath())
	}
	e.mu.Unlock()
	if d := e.c.Registry.Domain; d != "" {
		args = append(args, "--tls-san", d)
	}
	return shell.Join(args...)
}

// startRegistry (re)starts the registry on the first master and waits until
// it listens and its CA exists. The step's id is the bundle's, so a newer
// bundle restarts it.
func (e *Engine) startRegistry(ctx context.Context, m0 cluster.Node) error {
	return e.stepID(ctx, m0, "registry", "registry", e.bundleID(), func(ctx context.Context, c *Conn) (string, error) {
		_, port, _ := strings.Cut(e.opts.Registry, ":")
		p, _ := strconv.Atoi(port)
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
done`, shellQuote(e.registryDir()), registryUnit, e.registryCommand(m0), strings.ReplaceAll(e.registryCommand(m0), "'", `'\''`), fmt.Sprintf("%04X", p))
		var tail tailBuffer
		both := &syncWriter{w: &tail}
		err := c.Exec(ctx, script, nil, both, both, 2*time.Minute)
		if ce, ok := err.(*CommandError); ok {
			ce.Cmd, ce.Stderr = "start the registry", tail.String()
		}
		return "serving " + e.opts.Registry, err
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

// shareRegistryCA gives every other host the registry's CA certificate at
// SEALPACK_REGISTRY_CA.
func (e *Engine) shareRegistryCA(ctx context.Context, m0 cluster.Node, nodes []cluster.Node) error {
	c, err := e.conn(ctx, m0)
	if err != nil {
		return err
	}
	ca, err := c.Output(ctx, "cat "+shellQuote(e.registryCAPath()), time.Minute)
	if err != nil {
		return fmt.Errorf("read the registry CA on %s: %w", m0.IP, err)
	}
	sum := sha256.Sum256([]byte(ca))
	id := "sha256:" + hex.EncodeToString(sum[:])
	return e.eachHost(ctx, "registry", nodes, func(ctx context.Context, n cluster.Node) error {
		return e.stepID(ctx, n, "registry", "registry-ca", id, func(ctx context.Context, c *Conn) (string, error) {
			cmd := fmt.Sprintf("mkdir -p %s && cat > %s.tmp && mv %s.tmp %s", shellQuote(e.registryDir()), shellQuote(e.registryCAPath()), shellQuote(e.registryCAPath()), shellQuote(e.registryCAPath()))
			return "", c.Exec(ctx, cmd, strings.NewReader(ca), nil, nil, time.Minute)
		})
	})
}
