package stub

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
	"github.com/sealpack/sealpack/internal/sshsig"
	"github.com/sealpack/sealpack/tui"
)

// engineFlags are shared by install, join, reset and upgrade.
type engineFlags struct {
	answers, knownHosts, stateDir string
	requireSignature              string
	acceptNew, yes, verbose       bool
	parallel                      int
	// upgrade: the worker nodes upgraded at once (its --parallel), and
	// --plan (which reads the cluster's versions first)
	nodeBatch int
	plan      bool
}

func addEngineFlags(fs *pflag.FlagSet) *engineFlags {
	return addVerbFlags(fs, "")
}

// addVerbFlags is addEngineFlags for a verb: upgrade's --parallel is its
// batch of nodes (default 1).
func addVerbFlags(fs *pflag.FlagSet, verb string) *engineFlags {
	f := &engineFlags{}
	fs.StringVarP(&f.answers, "answers", "a", "", "the answers file (Clusterfile); `answers init` writes a template")
	fs.BoolVarP(&f.yes, "yes", "y", false, "do not ask for confirmation")
	fs.BoolVar(&f.acceptNew, "accept-new-host-keys", false, "trust hosts whose SSH key is not in known_hosts yet (fingerprints are printed and recorded)")
	fs.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file to check host keys against (default ~/.ssh/known_hosts)")
	fs.StringVar(&f.stateDir, "state-dir", "", "where this machine keeps the install state and logs (default ~/.local/state/sealpack/NAME)")
	fs.StringVar(&f.requireSignature, "require-signature", "", "refuse to run unless the installer's .sig files are signed by a key in `FILE` (NAME.allowed_signers or NAME.pub); default: the answers file's spec.requireSignature")
	if verb == "upgrade" {
		fs.IntVar(&f.nodeBatch, "parallel", 1, "worker nodes drained and upgraded at once")
	} else {
		fs.IntVar(&f.parallel, "parallel", install.DefaultParallel, "hosts whose scripts run at once (the distribution takes every host at once)")
	}
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "print the output of remote scripts")
	return f
}

func runInstall(ctx context.Context, env *Env, args []string) error {
	return runEngine(ctx, env, args, "install", "Install the bundle's cluster on the hosts of the answers file over SSH.\nA re-run resumes where the last one stopped.")
}

func runJoin(ctx context.Context, env *Env, args []string) error {
	return runEngine(ctx, env, args, "join", "Add the hosts of the answers file that are not in the cluster yet.")
}

func runReset(ctx context.Context, env *Env, args []string) error {
	return runEngine(ctx, env, args, "reset", "Undo the install on every host of the answers file.")
}

func runUpgrade(ctx context.Context, env *Env, args []string) error {
	return runEngine(ctx, env, args, "upgrade", "Upgrade the installed cluster of the answers file to this installer's Kubernetes\nversion and apps, master by master, then node by node (docs/UPGRADE.md). The\nversions are read from the cluster first; a skipped minor version or a downgrade\nis refused. A re-run resumes where the last one stopped.")
}

func runEngine(ctx context.Context, env *Env, args []string, verb, summary string) error {
	usage := "--answers FILE [--yes]"
	if verb == "upgrade" {
		usage = "--answers FILE [--yes] [--plan] [--parallel N]"
	}
	fs := flags(env, verb, usage, summary)
	f := addVerbFlags(fs, verb)
	plan := fs.Bool("plan", false, "print the phases this command runs on the hosts of the answers file, and change nothing")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	// upgrade's plan needs the cluster's versions: it connects (below)
	if *plan && verb != "upgrade" {
		return printPlan(env, f.answers, verb)
	}
	f.plan = *plan
	wizard := verb == "install" && !f.yes && onTerminal(env)
	if f.answers == "" && !wizard {
		return usageError{fmt.Errorf("no answers file, and no terminal for the wizard (stdin and stdout must be a terminal, TERM not dumb).\nTo run unattended:\n  %[1]s answers init > cluster.yaml   # then edit the hosts and SSH settings\n  %[1]s %[2]s --answers cluster.yaml --yes", progName(), verb)}
	}
	var c *cluster.Cluster
	if f.answers != "" {
		var err error
		if c, err = cluster.Load(f.answers); err != nil {
			return err
		}
	}
	b, err := env.Open()
	if err != nil {
		return err
	}
	defer b.Close()
	policy, err := requireSignature(b, f.requireSignature, c)
	if err != nil {
		return err
	}
	if wizard {
		// The wizard edits the answers (opening at Review when a file was
		// given) and runs the same engine as below.
		return runWizard(ctx, env, f, b, c, policy)
	}
	if policy.Trust != nil {
		fmt.Fprintf(env.Stdout, "%s: %s\n", filepath.Base(b.Path), policy.describe())
	}
	if !f.yes && verb != "upgrade" {
		if err := confirm(env, fmt.Sprintf("%s %s on %d hosts (%s)?", verb, filepath.Base(b.Path), len(c.All()), strings.Join(hostIPs(c), ", "))); err != nil {
			return err
		}
	}
	logs, logDir, dir, err := openLogs(f, c, verb)
	if err != nil {
		return err
	}
	defer logs.Close()
	e, err := newEngine(f, c, b, policy.Trust, logs, dir, install.HostKeyPolicy{KnownHosts: f.knownHosts, AcceptNew: f.acceptNew, OnNewKey: func(ip string, key ssh.PublicKey) {
		fmt.Fprintf(env.Stdout, "[%s] new host key accepted and recorded: %s %s\n", ip, key.Type(), ssh.FingerprintSHA256(key))
	}}, &install.PlainSink{W: env.Stdout, Verbose: f.verbose})
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Fprintf(env.Stdout, "logs: %s\n", logDir)
	if verb == "upgrade" && (f.plan || !f.yes) {
		// The plan comes from the cluster itself: shown before the question,
		// and all that --plan does (with --yes, Upgrade shows it).
		plan, err := e.PlanUpgrade(ctx)
		if err != nil {
			return err
		}
		fmt.Fprint(env.Stdout, plan)
		if f.plan {
			return nil
		}
		if !f.yes {
			if err := confirm(env, fmt.Sprintf("upgrade the cluster on %d hosts (%s) to %s?", len(c.All()), strings.Join(hostIPs(c), ", "), plan.To)); err != nil {
				return err
			}
		}
	}
	switch verb {
	case "install":
		err = e.Install(ctx)
	case "join":
		err = e.Join(ctx)
	case "reset":
		err = e.Reset(ctx)
	case "upgrade":
		err = e.Upgrade(ctx)
	}
	if err != nil {
		var pe *install.PreflightError
		var fe *install.InstallerFileError
		var ve *install.VersionError
		if !errors.As(err, &pe) && !errors.As(err, &fe) && !errors.As(err, &ve) && verb != "reset" {
			err = fmt.Errorf("%w\n\nFix the cause, then run the same command again: finished steps are skipped:\n  %s %s --answers %s --yes", err, progName(), verb, f.answers)
		}
		return err
	}
	fmt.Fprintf(env.Stdout, "%s finished on %d hosts. Logs: %s\n", verb, len(c.All()), logDir)
	if verb != "reset" {
		reportKubeconfig(ctx, env, e, b, c, dir)
	}
	return nil
}

// printPlan prints what verb would run, phase by phase, from the list the
// engine runs; it connects to no host.
func printPlan(env *Env, answers, verb string) error {
	if answers == "" {
		return usageError{errors.New("--plan needs --answers FILE: the plan is for its hosts")}
	}
	c, err := cluster.Load(answers)
	if err != nil {
		return err
	}
	phases, err := install.Plan(c, verb)
	if err != nil {
		return err
	}
	w := 0
	for _, p := range phases {
		w = max(w, len(p.Name))
	}
	fmt.Fprintf(env.Stdout, "%s on %d hosts runs, in order:\n", verb, len(c.All()))
	for i, p := range phases {
		fmt.Fprintf(env.Stdout, "  %2d. %-*s  %s\n", i+1, w, p.Name, strings.Join(p.Hosts, ", "))
	}
	if verb != install.ActionReset {
		fmt.Fprintln(env.Stdout, "Steps a host already finished are skipped. Nothing was changed.")
	} else {
		fmt.Fprintln(env.Stdout, "Nothing was changed.")
	}
	return nil
}

// reportKubeconfig copies the cluster's admin kubeconfig next to the state
// when the image says where it is, and says where it is either way.
func reportKubeconfig(ctx context.Context, env *Env, e *install.Engine, b *bundle.Bundle, c *cluster.Cluster, dir string) {
	cfg := b.Index.Config
	if cfg.KubeVersion == "" && cfg.Labels[install.LabelKubeconfig] == "" {
		return
	}
	local := filepath.Join(dir, "kubeconfig")
	ok, err := e.FetchKubeconfig(ctx, local)
	switch {
	case err != nil:
		fmt.Fprintf(env.Stderr, "warning: %v\n", err)
	case ok:
		fmt.Fprintf(env.Stdout, "kubeconfig: %s (copied from %s:%s); or run: %s kubectl --answers FILE get nodes\n", local, c.Master0().IP, cfg.Labels[install.LabelKubeconfig], progName())
		return
	}
	fmt.Fprintf(env.Stdout, "kubeconfig: %s\n", install.KubeconfigHint(cfg.Labels, c.Master0().IP))
}

func runKubectl(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "kubectl", "--answers FILE [kubectl arguments...]", "Run the bundle's kubectl on the first master that answers against the installed cluster, e.g.\n  kubectl --answers cluster.yaml get nodes -o wide")
	fs.SetInterspersed(false) // everything after the first argument is kubectl's
	f := addEngineFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if f.answers == "" {
		return usageError{errors.New("--answers FILE is required: it says where the cluster is")}
	}
	c, err := cluster.Load(f.answers)
	if err != nil {
		return err
	}
	b, err := env.Open()
	if err != nil {
		return err
	}
	defer b.Close()
	// Events go to stderr: kubectl's own output stays clean for pipes, and
	// the user still hears when a master other than the first answered.
	e, err := install.New(install.Options{Cluster: c, Bundle: b, HostKeys: install.HostKeyPolicy{KnownHosts: f.knownHosts, AcceptNew: f.acceptNew},
		Sink: &install.PlainSink{W: env.Stderr}})
	if err != nil {
		return err
	}
	defer e.Close()
	// Piped input goes to kubectl (apply -f -); a terminal does not, or the
	// session would wait for the terminal to close after kubectl exits.
	stdin := env.Stdin
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		stdin = nil
	}
	return e.Kubectl(ctx, fs.Args(), stdin, env.Stdout, env.Stderr)
}

// stateDir is where this machine keeps a cluster's state and logs.
func stateDir(f *engineFlags, c *cluster.Cluster) string {
	if f.stateDir != "" {
		return f.stateDir
	}
	name := c.Name
	if name == "" {
		name = c.Master0().IP
	}
	return filepath.Join(stateBase(), name)
}

// stateBase holds every cluster's state directory, by name.
func stateBase() string {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "sealpack")
}

// installedClusters are the clusters this machine installed and has not
// reset: the records in --state-dir, or in every state directory. A record
// that does not load is reported in warn and left out.
func installedClusters(f *engineFlags, warn func(error)) []tui.InstalledCluster {
	dirs := []string{f.stateDir}
	if f.stateDir == "" {
		dirs, _ = filepath.Glob(filepath.Join(stateBase(), "*"))
	}
	var out []tui.InstalledCluster
	for _, d := range dirs {
		c, err := install.InstalledCluster(d)
		switch {
		case err != nil:
			warn(fmt.Errorf("the installed cluster in %s is not offered: %w", d, err))
		case c != nil:
			out = append(out, tui.InstalledCluster{Cluster: c, AnswersPath: filepath.Join(d, install.ClusterRecord)})
		}
	}
	return out
}

// openLogs creates this run's log directory under the state directory.
func openLogs(f *engineFlags, c *cluster.Cluster, verb string) (logs *install.LogSink, logDir, dir string, err error) {
	dir = stateDir(f, c)
	logDir = filepath.Join(dir, "logs", time.Now().UTC().Format("20060102T150405Z")+"-"+verb)
	logs, err = install.NewLogSink(logDir)
	return logs, logDir, dir, err
}

// newEngine is the one place an engine is configured, for the unattended
// path and the wizard alike.
func newEngine(f *engineFlags, c *cluster.Cluster, b *bundle.Bundle, trust sshsig.Trust, logs *install.LogSink, dir string, keys install.HostKeyPolicy, sink install.Sink) (*install.Engine, error) {
	return install.New(install.Options{
		Cluster:   c,
		Bundle:    b,
		Trust:     trust,
		HostKeys:  keys,
		Sink:      install.MultiSink{sink, logs},
		StateFile: filepath.Join(dir, "state.json"),
		Parallel:  f.parallel,
		NodeBatch: f.nodeBatch,
	})
}

func hostIPs(c *cluster.Cluster) []string {
	var out []string
	for _, n := range c.All() {
		out = append(out, n.IP)
	}
	return out
}

// confirm asks on a terminal; without one, --yes is required.
func confirm(env *Env, question string) error {
	in, ok := env.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return usageError{errors.New("not a terminal and no --yes: pass --yes to run unattended")}
	}
	fmt.Fprintf(env.Stdout, "%s [y/N] ", question)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return errors.New("cancelled")
	}
	return nil
}

func runAnswers(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "answers", "init", "Print a commented answers file (Clusterfile) template: answers init > cluster.yaml")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) != "init" {
		return usageError{errors.New("expected: answers init")}
	}
	_, err := env.Stdout.Write(cluster.Template())
	return err
}
