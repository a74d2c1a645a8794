package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
)

// The phases a cluster image's scripts implement, in the order the engine
// runs them. A missing script means the phase has nothing to do.
const (
	PhaseInitHost    = "init-host"
	PhaseInitMaster0 = "init-master0"
	PhaseJoinMaster  = "join-master"
	PhaseJoinNode    = "join-node"
	PhaseResetHost   = "reset-host"
	// PhaseRefreshShare runs on the first master, unrecorded, before the
	// share is copied to hosts that have not joined yet.
	PhaseRefreshShare = "refresh-share"
)

// Install checks the hosts and the installer file, then runs every phase on
// every host; steps already done are skipped, so a re-run after any failure
// resumes at the step that failed.
func (e *Engine) Install(ctx context.Context) error {
	release, err := e.begin("install")
	if err != nil {
		return err
	}
	defer release()
	return e.install(ctx)
}

func (e *Engine) install(ctx context.Context) error {
	if err := e.preflightAndCheck(ctx); err != nil {
		return err
	}
	start := time.Now()
	if err := e.runPhases(ctx, e.installPhases()); err != nil {
		return err
	}
	if err := e.recordCluster(); err != nil {
		return err
	}
	e.emit(Event{Kind: Info, Message: fmt.Sprintf("cluster installed on %d hosts in %v", len(e.c.All()), time.Since(start).Round(time.Millisecond))})
	return nil
}

// installPhases is the install, in order: every phase with the hosts it
// works on. Worker nodes that fail a phase are left out of the later ones.
//
// A join while some hosts are absent (a master is down) runs on the others:
// the lead, the first master present, feeds them in the first master's place.
func (e *Engine) installPhases() []phase {
	all, m0, others := e.present(e.c.All()), e.lead(), e.notLead
	masters := e.present(e.c.Masters())
	first := e.present([]cluster.Node{e.c.Master0()})
	joining := slices.DeleteFunc(slices.Clone(masters), func(n cluster.Node) bool { return n.IP == e.c.Master0().IP })
	plugins := func(action string) func(context.Context) error {
		return func(ctx context.Context) error {
			return e.eachHost(ctx, action+" plugins", all, func(ctx context.Context, n cluster.Node) error {
				return e.plugins(ctx, n, action)
			})
		}
	}
	return []phase{
		{"distribute", all, func(ctx context.Context) error { return e.distribute(ctx, all) }},
		{"registry", all, func(ctx context.Context) error {
			return e.serveRegistries(ctx, m0, masters, e.present(e.c.Nodes()))
		}},
		{cluster.ActionPreInstall + " plugins", all, plugins(cluster.ActionPreInstall)},
		{PhaseInitHost, all, func(ctx context.Context) error {
			return e.eachHost(ctx, PhaseInitHost, all, func(ctx context.Context, n cluster.Node) error {
				if err := e.plugins(ctx, n, cluster.ActionPreInitHost); err != nil {
					return err
				}
				if err := e.runPhase(ctx, n, PhaseInitHost); err != nil {
					return err
				}
				return e.plugins(ctx, n, cluster.ActionPostInitHost)
			})
		}},
		{PhaseInitMaster0, first, func(ctx context.Context) error {
			return e.hostDone(ctx, PhaseInitMaster0, first[0], e.runPhase(ctx, first[0], PhaseInitMaster0))
		}},
		{"share", others(all), func(ctx context.Context) error { return e.copyShare(ctx, m0, others(all)) }},
		{PhaseJoinMaster, joining, func(ctx context.Context) error {
			// One at a time: control planes join an etcd quorum one member at a time.
			for _, n := range joining {
				if err := e.hostDone(ctx, PhaseJoinMaster, n, e.runPhase(ctx, n, PhaseJoinMaster)); err != nil {
					return err
				}
			}
			return nil
		}},
		{PhaseJoinNode, e.present(e.c.Nodes()), func(ctx context.Context) error {
			return e.eachHost(ctx, PhaseJoinNode, e.present(e.c.Nodes()), func(ctx context.Context, n cluster.Node) error {
				return e.runPhase(ctx, n, PhaseJoinNode)
			})
		}},
		{"apps", []cluster.Node{m0}, func(ctx context.Context) error {
			// launched once per cluster: when the first master is absent, its
			// record here says whether they were
			if m0.IP != e.c.Master0().IP && e.state.done(e.c.Master0().IP, "apps") {
				e.emit(Event{Kind: StepSkipped, Host: m0.IP, Phase: "apps", Step: "apps", Message: "already done on " + e.c.Master0().IP})
				return e.hostDone(ctx, "apps", m0, nil)
			}
			return e.hostDone(ctx, "apps", m0, e.apps(ctx, m0, ""))
		}},
		{cluster.ActionPostInstall + " plugins", all, plugins(cluster.ActionPostInstall)},
	}
}

// Join adds the hosts of the Clusterfile that are not part of the cluster
// yet. The first master must be installed; everything already done is
// skipped. Hosts installed before that do not answer (a master that is
// down) are left out (findAbsent): the lead master serves the join.
func (e *Engine) Join(ctx context.Context) error {
	release, err := e.begin("join")
	if err != nil {
		return err
	}
	defer release()
	if err := e.findAbsent(ctx, "join"); err != nil {
		return err
	}
	m0 := e.lead()
	c, err := e.conn(ctx, m0)
	if err != nil {
		return err
	}
	// the first master's init, or the lead's join as a control plane
	marker := e.markerPath(PhaseInitMaster0)
	if m0.IP != e.c.Master0().IP {
		marker = e.markerPath(PhaseJoinMaster)
	}
	if out, _ := c.Output(ctx, "cat "+shellQuote(marker)+" 2>/dev/null || true", time.Minute); strings.TrimSpace(out) == "" {
		return fmt.Errorf("join: %s has no cluster yet (init-master0 never finished): run install first", m0.IP)
	}
	return e.install(ctx)
}

// The variables every script gets, as docs/IMAGE-AUTHORS.md documents them.
const (
	envRole       = "SEALPACK_ROLE"
	envHostIP     = "SEALPACK_HOST_IP"
	envMaster0IP  = "SEALPACK_MASTER0_IP"
	envMasters    = "SEALPACK_MASTERS"
	envNodes      = "SEALPACK_NODES"
	envDataRoot   = "SEALPACK_DATA_ROOT"
	envRootfs     = "SEALPACK_ROOTFS"
	envRegistry   = "SEALPACK_REGISTRY"
	envRegistryCA = "SEALPACK_REGISTRY_CA"
	envRegistries = "SEALPACK_REGISTRIES"
	envShare      = "SEALPACK_SHARE"
	envImages     = "SEALPACK_IMAGES"
)

// scriptEnv is the environment of a phase script on a host: the documented
// SEALPACK_ variables, then the Clusterfile's env (the host's winning).
func (e *Engine) scriptEnv(n cluster.Node, extra ...string) []string {
	role := cluster.RoleNode
	if n.IsMaster() {
		role = cluster.RoleMaster
	}
	env := []string{
		envRole + "=" + role,
		envHostIP + "=" + n.IP,
		envMaster0IP + "=" + e.c.Master0().IP,
		envMasters + "=" + ips(e.c.Masters()),
		envNodes + "=" + ips(e.c.Nodes()),
		envDataRoot + "=" + e.dataRoot(),
		envRootfs + "=" + e.rootfsPath(),
		envRegistry + "=" + e.opts.Registry,
		envRegistryCA + "=" + e.registryCAPath(),
		envRegistries + "=" + strings.Join(e.registries(), " "),
		envShare + "=" + e.sharePath(),
	}
	// every host but the first master holds the images as an OCI layout
	if n.IP != e.c.Master0().IP && len(e.opts.Bundle.Index.Images) > 0 {
		env = append(env, envImages+"="+e.imagesPath())
	}
	env = append(env, e.opts.Bundle.Index.Config.Env...)
	env = append(env, n.Env...)
	return append(env, extra...)
}

func (e *Engine) registryCAPath() string { return e.remote("registry", "ca.crt") }

// scriptRunner is the whole command line of every script run: the
// script's working directory, environment and text come on its standard
// input (scriptInput), so no value of the answers file shows in a process
// list, in sudo's SUDO_COMMAND or in sudo's log. The input is read to its
// end before anything runs, so the script's own standard input is empty,
// as before.
const scriptRunner = `s=$(cat) && eval "$s"`

// scriptInput is the shell text scriptRunner runs: cd to dir, export env
// (K=V, later entries win), then script.
func scriptInput(dir string, env []string, script string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "cd %s || exit 1\n", shellQuote(dir))
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !envNameRE.MatchString(k) {
			return "", fmt.Errorf("environment entry %q: want NAME=value with a variable name of letters, digits and _", firstLine(k))
		}
		if strings.IndexByte(v, 0) >= 0 {
			return "", fmt.Errorf("environment variable %s holds a NUL byte", k)
		}
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	b.WriteString(script)
	return b.String(), nil
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// runScript runs shell text on a host, streaming its output as Log events.
// Errors name the label, not the script: it may carry env values.
func (e *Engine) runScript(ctx context.Context, c *Conn, phase, label, dir string, env []string, script string) error {
	input, err := scriptInput(dir, env, script)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	out := &lineWriter{emit: func(line string) {
		e.emit(Event{Kind: Log, Host: c.Node.IP, Phase: phase, Step: label, Message: line})
	}}
	var tail tailBuffer
	both := &syncWriter{w: io.MultiWriter(out, &tail)}
	err = c.Exec(ctx, scriptRunner, strings.NewReader(input), both, both, e.opts.Timeouts.Command)
	out.flush()
	var ce *CommandError
	if errors.As(err, &ce) {
		ce.Cmd, ce.Stderr = label, tail.String()
	}
	return err
}

// runPhase runs scripts/<phase>.sh of the rootfs on a host, if it exists.
func (e *Engine) runPhase(ctx context.Context, n cluster.Node, phase string) error {
	return e.step(ctx, n, phase, phase, func(ctx context.Context, c *Conn) (string, error) {
		return "", e.runDetached(ctx, c, phase, "scripts/"+phase+".sh", phase, e.rootfsPath(), e.scriptEnv(n), phaseScript(phase))
	})
}

// phaseScript runs scripts/PHASE.sh if the image has it: executable scripts
// by their own interpreter line, others with sh.
func phaseScript(phase string) string {
	return fmt.Sprintf(`mkdir -p "$%[2]s" && s=scripts/%[1]s.sh
if [ -x "$s" ]; then exec "./$s"; elif [ -f "$s" ]; then exec sh "$s"; else echo "no $s: nothing to do"; fi`, phase, envShare)
}

// plugins runs the Clusterfile's SHELL plugins for an action on one host,
// those whose scope includes it, in the order the file lists them.
func (e *Engine) plugins(ctx context.Context, n cluster.Node, action string) error {
	for _, p := range e.c.Plugins {
		if p.Action != action || !p.Applies(n.Roles) {
			continue
		}
		step := "plugin-" + action + "-" + p.Name
		err := e.step(ctx, n, "plugin", step, func(ctx context.Context, c *Conn) (string, error) {
			return "", e.runDetached(ctx, c, "plugin", "plugin "+p.Name, step, e.rootfsPath(), e.scriptEnv(n), p.Data)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// controlPlaneShare is the part of the share that only masters receive:
// what joins a control plane (kubeadm's certificate key decrypts the
// cluster's CA keys, uploaded for two hours) never reaches a worker node,
// which needs only its join token.
const controlPlaneShare = "control-plane"

// copyShare copies what init-master0 left in SEALPACK_SHARE to every other
// host before it joins: all of it to masters, all but controlPlaneShare to
// worker nodes (a node holding an older copy of it loses it).
func (e *Engine) copyShare(ctx context.Context, m0 cluster.Node, nodes []cluster.Node) error {
	var (
		mu        sync.Mutex
		refreshed bool
		archives  = map[bool][]byte{} // by "for a master"
	)
	// fetch reads the share once per role, when the first host needs it.
	// Its failure is the first master's, so it stops the run (stopRun)
	// instead of leaving each node behind.
	fetch := func(ctx context.Context, master bool) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if a, ok := archives[master]; ok {
			return a, nil
		}
		c, err := e.conn(ctx, m0)
		if err != nil {
			return nil, stopRun(err)
		}
		// Join data expires (tokens, uploaded certificates): an image may
		// renew it before hosts join, on every run that has hosts to join.
		if !refreshed {
			if err := e.runScript(ctx, c, "share", "scripts/"+PhaseRefreshShare+".sh", e.rootfsPath(), e.scriptEnv(m0), phaseScript(PhaseRefreshShare)); err != nil {
				return nil, stopRun(err)
			}
			refreshed = true
		}
		exclude := ""
		if !master {
			exclude = " --exclude=./" + controlPlaneShare
		}
		var out, errOut bytes.Buffer
		err = c.Exec(ctx, fmt.Sprintf("mkdir -p %[1]s && tar -C %[1]s%[2]s -cf - .", shellQuote(e.sharePath()), exclude), nil, &out, &errOut, 5*time.Minute)
		if err != nil {
			return nil, stopRun(fmt.Errorf("read %s on %s: %w: %s", e.sharePath(), m0.IP, err, errOut.String()))
		}
		archives[master] = out.Bytes()
		return archives[master], nil
	}
	return e.eachHost(ctx, "share", nodes, func(ctx context.Context, n cluster.Node) error {
		return e.step(ctx, n, "share", "share", func(ctx context.Context, c *Conn) (string, error) {
			archive, err := fetch(ctx, n.IsMaster())
			if err != nil {
				return "", err
			}
			clear := ""
			if !n.IsMaster() {
				clear = "rm -rf " + shellQuote(path.Join(e.sharePath(), controlPlaneShare)) + " && "
			}
			cmd := fmt.Sprintf("%[2]smkdir -p %[1]s && tar -C %[1]s -xf -", shellQuote(e.sharePath()), clear)
			err = c.Exec(ctx, cmd, bytes.NewReader(archive), io.Discard, io.Discard, 5*time.Minute)
			return fmt.Sprintf("%d bytes", len(archive)), err
		})
	})
}

// apps runs the cluster image's launch commands on the first master: CMDS,
// or each LAUNCH app by its APPCMDS or, failing those, by its type. Its
// step is recorded under id (an upgrade's bundle: once per bundle; empty:
// once).
func (e *Engine) apps(ctx context.Context, m0 cluster.Node, id string) error {
	cfg := e.opts.Bundle.Index.Config
	type job struct {
		label, dir, script string
		env                []string
	}
	var jobs []job
	for _, cmd := range cfg.Cmds {
		jobs = append(jobs, job{label: "CMDS " + firstLine(cmd), dir: e.rootfsPath(), script: cmd})
	}
	for _, name := range cfg.Launch {
		app := findApp(cfg, name)
		if app == nil {
			return fmt.Errorf("apps: LAUNCH names %q, which the bundle does not carry", name)
		}
		dir := path.Join(e.rootfsPath(), "application", "apps", name)
		cmds := app.Cmds
		if len(cmds) == 0 {
			switch app.Type {
			case "kube":
				cmds = []string{"kubectl apply -f ."}
			case "helm":
				cmds = []string{"helm upgrade --install " + shellQuote(name) + " ."}
			default:
				cmds = []string{"for f in *.sh; do sh \"$f\" || exit 1; done"}
			}
		}
		for _, cmd := range cmds {
			jobs = append(jobs, job{label: "app " + name + ": " + firstLine(cmd), dir: dir, script: cmd, env: app.Env})
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	return e.stepID(ctx, m0, "apps", "apps", id, func(ctx context.Context, c *Conn) (string, error) {
		for i, j := range jobs {
			if err := e.runDetached(ctx, c, "apps", j.label, fmt.Sprintf("apps-%d", i), j.dir, e.scriptEnv(m0, j.env...), j.script); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("%d commands", len(jobs)), nil
	})
}

func findApp(cfg bundle.Config, name string) *bundle.App {
	for _, list := range [][]bundle.App{cfg.Apps, cfg.CNI, cfg.CSI} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// Reset undoes the install on every host of the Clusterfile: it runs the
// image's reset-host.sh, then removes everything under the data root. The
// first master goes last, once every other host is done, in the reverse
// order of the install: a control plane that leaves while the first one still
// runs can take itself out of the cluster (kubeadm removes its etcd member)
// instead of waiting out the timeouts of a cluster that is already gone.
// Every host is reset even when another fails; the errors are joined.
func (e *Engine) Reset(ctx context.Context) error {
	release, err := e.begin("reset")
	if err != nil {
		return err
	}
	defer release()
	// the lead, the master reset last, is one that answers; absent hosts
	// are not dialled again, but named in the error (resetHost)
	if err := e.findAbsent(ctx, "reset"); err != nil {
		return err
	}
	// Unlike install, a failed phase does not stop the reset: every host
	// is reset, and the errors are joined.
	var errs []error
	for _, p := range e.resetPhases() {
		errs = append(errs, p.run(ctx))
	}
	err = errors.Join(errs...)
	if serr := e.state.save(); err == nil {
		err = serr
	}
	if err == nil {
		err = e.forgetCluster()
	}
	return err
}

// resetPhases is the reset, in order: the worker nodes, then the other
// masters one at a time, the last joined first (each leaves etcd while the
// others keep its quorum), then the lead master (the first one, unless it
// is down).
func (e *Engine) resetPhases() []phase {
	lead := []cluster.Node{e.lead()}
	nodes := e.c.Nodes()
	masters := e.notLead(e.c.Masters())
	slices.Reverse(masters)
	return []phase{
		{PhaseResetHost, nodes, func(ctx context.Context) error { return forEach(ctx, nodes, e.opts.Parallel, e.resetHost) }},
		{"reset masters", masters, func(ctx context.Context) error {
			var errs []error
			for _, m := range masters {
				errs = append(errs, e.resetHost(ctx, m))
			}
			return errors.Join(errs...)
		}},
		{"reset first master", lead, func(ctx context.Context) error { return forEach(ctx, lead, 1, e.resetHost) }},
	}
}

// resetHost runs reset-host.sh on one host and removes its data root.
func (e *Engine) resetHost(ctx context.Context, n cluster.Node) error {
	err := e.absentErr(n.IP)
	var c *Conn
	if err != nil {
		err = fmt.Errorf("not reset: %w", err)
	} else {
		c, err = e.conn(ctx, n)
	}
	if err != nil {
		e.emit(Event{Kind: StepFailed, Host: n.IP, Phase: "reset", Step: "connect", Err: err})
		return err
	}
	start := time.Now()
	e.emit(Event{Kind: StepStart, Host: n.IP, Phase: "reset", Step: PhaseResetHost})
	// The registry is stopped even when the image's script fails; the
	// script's failure still fails the reset.
	script := fmt.Sprintf("%[4]s\nrc=0\nif [ -d %[1]s ]; then (cd %[1]s && %[2]s) || rc=$?; fi\n%[3]s\nexit $rc",
		shellQuote(e.rootfsPath()), phaseScript(PhaseResetHost), e.stopRegistryScript(), e.stopRunnersScript())
	if err := e.runScript(ctx, c, "reset", "scripts/reset-host.sh", "/", e.scriptEnv(n), script); err != nil {
		e.emit(Event{Kind: StepFailed, Host: n.IP, Phase: "reset", Step: PhaseResetHost, Err: err})
		return err
	}
	if _, err := c.Output(ctx, "rm -rf "+shellQuote(e.dataRoot()), 10*time.Minute); err != nil {
		e.emit(Event{Kind: StepFailed, Host: n.IP, Phase: "reset", Step: "remove data root", Err: err})
		return err
	}
	e.state.forget(n.IP)
	e.forgetMarkers(n.IP)
	e.emit(Event{Kind: StepDone, Host: n.IP, Phase: "reset", Step: PhaseResetHost, Elapsed: time.Since(start)})
	return nil
}

// tailBuffer keeps the last lines of a command's output for its error.
type tailBuffer struct {
	lines []string
	part  string
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	s := t.part + string(p)
	parts := strings.Split(s, "\n")
	t.part = parts[len(parts)-1]
	t.lines = append(t.lines, parts[:len(parts)-1]...)
	if len(t.lines) > 20 {
		t.lines = t.lines[len(t.lines)-20:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	lines := t.lines
	if t.part != "" {
		lines = append(lines, t.part)
	}
	return strings.Join(lines, "\n")
}

// LabelKubeconfig is the cluster image label that says where its scripts
// leave the admin kubeconfig on the first master, so the installer can tell
// the user (e.g. /etc/kubernetes/admin.conf).
const LabelKubeconfig = "io.sealpack.kubeconfig"

// LabelKubeconfigRemote, when set, says where each master keeps an admin
// kubeconfig for use off the hosts (its server a master's own address, not
// an endpoint only the hosts have, such as a node-local API proxy): the one
// FetchKubeconfig copies. LabelKubeconfig stays the one kubectl uses on a
// master, so a cluster installed by an older image keeps working with it.
const LabelKubeconfigRemote = "io.sealpack.kubeconfig.remote"

// KubeconfigHint says where the kubeconfig is, from the image's label.
func KubeconfigHint(labels map[string]string, master0 string) string {
	if p := labels[LabelKubeconfig]; p != "" {
		return fmt.Sprintf("%s on %s (copy it: scp root@%s:%s .)", p, master0, master0, p)
	}
	return "on the first master, " + master0 + ", where the cluster image puts it"
}

// LabelKubectl names the cluster image's kubectl, relative to the rootfs
// (default bin/kubectl).
const LabelKubectl = "io.sealpack.kubectl"

// Kubectl runs the bundle's kubectl on a master against the cluster (its
// admin kubeconfig, from LabelKubeconfig), streaming its output: it works
// wherever SSH reaches, even when the API port does not. The first master
// is asked first; when it does not answer, the next one (anyMaster).
func (e *Engine) Kubectl(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	labels := e.opts.Bundle.Index.Config.Labels
	kubeconfig := labels[LabelKubeconfig]
	if kubeconfig == "" {
		return fmt.Errorf("kubectl: the cluster image sets no %s label: it does not say where its kubeconfig is", LabelKubeconfig)
	}
	kubectl := labels[LabelKubectl]
	if kubectl == "" {
		kubectl = "bin/kubectl"
	}
	c, err := e.anyMaster(ctx)
	if err != nil {
		return err
	}
	cmd := fmt.Sprintf("cd %s && KUBECONFIG=%s exec ./%s", shellQuote(e.rootfsPath()), shellQuote(kubeconfig), shellQuote(kubectl))
	for _, a := range args {
		cmd += " " + shellQuote(a)
	}
	err = c.Exec(ctx, cmd, stdin, stdout, stderr, e.opts.Timeouts.Command)
	var ce *CommandError
	if errors.As(err, &ce) {
		ce.Cmd = "kubectl " + strings.Join(args, " ")
	}
	return err
}

// anyMaster connects to the first master that answers, in the order of the
// Clusterfile, and says when it is not the first: commands that only need
// a master keep working while the first one is down.
func (e *Engine) anyMaster(ctx context.Context) (*Conn, error) {
	var errs []error
	for _, m := range e.c.Masters() {
		dctx, cancel := context.WithTimeout(ctx, masterDialTimeout)
		c, err := e.conn(dctx, m)
		cancel()
		if err == nil {
			if len(errs) > 0 {
				e.emit(Event{Kind: Warning, Host: m.IP, Message: fmt.Sprintf("using master %s: %v", m.IP, errors.Join(errs...))})
			}
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no master answers: %w", errors.Join(errs...))
}

// FetchKubeconfig copies the admin kubeconfig from a master to dst
// (mode 0600), so the user has it where the installer keeps its state.
// It does nothing when the image does not say where it is.
func (e *Engine) FetchKubeconfig(ctx context.Context, dst string) (bool, error) {
	labels := e.opts.Bundle.Index.Config.Labels
	p := labels[LabelKubeconfigRemote]
	if p == "" {
		p = labels[LabelKubeconfig]
	}
	if p == "" {
		return false, nil
	}
	c, err := e.anyMaster(ctx)
	if err != nil {
		return false, err
	}
	out, err := c.Output(ctx, "cat "+shellQuote(p), time.Minute)
	if err != nil {
		return false, fmt.Errorf("read the kubeconfig %s on %s: %w", p, c.Node.IP, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return false, err
	}
	if err := writeFileDurable(dst, []byte(out), 0o600); err != nil {
		return false, fmt.Errorf("the kubeconfig: %w", err)
	}
	return true, nil
}
