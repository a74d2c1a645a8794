package stub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/install"
	"github.com/sealpack/sealpack/tui"
)

// onTerminal reports whether the wizard can run: stdin and stdout are a
// terminal that can address the cursor. TERM=dumb (an Emacs shell, some CI
// consoles) cannot draw screens, so it gets the unattended path's advice.
func onTerminal(env *Env) bool {
	in, ok1 := env.Stdin.(*os.File)
	out, ok2 := env.Stdout.(*os.File)
	return ok1 && ok2 && term.IsTerminal(int(in.Fd())) && term.IsTerminal(int(out.Fd())) && os.Getenv("TERM") != "dumb"
}

// runWizard opens the wizard (prefilled at Review when c is not nil; at
// Start when this machine installed a cluster), then reports on the normal
// screen what the alternate screen showed last.
func runWizard(ctx context.Context, env *Env, f *engineFlags, b *bundle.Bundle, c *cluster.Cluster, policy signaturePolicy) error {
	var installed []tui.InstalledCluster
	if c == nil {
		installed = installedClusters(f, func(err error) { fmt.Fprintf(env.Stderr, "warning: %v\n", err) })
	}
	opts := tui.Options{
		Installed:   installed,
		Bundle:      bundleInfo(b, policy),
		Cluster:     c,
		AnswersPath: f.answers,
		DefaultKey:  defaultKey(),
		NewEngine:   wizardEngine(f, b, policy),
		Command:     func(verb, answers string) string { return unattended(f, verb, answers) },
	}
	res, err := tui.Run(ctx, opts, env.Stdin, env.Stdout, os.Environ())
	if err != nil {
		return err
	}
	answers := res.Saved
	if answers == "" {
		answers = res.Answers
	}
	switch {
	case res.Installed:
		fmt.Fprintf(env.Stdout, "%s finished on %d hosts. Answers: %s\n", res.Action, len(res.Cluster.All()), answers)
		return nil
	case res.Err != nil:
		return fmt.Errorf("%w\n\nFix the cause, then run the same command again: finished steps are skipped:\n  %s", res.Err, unattended(f, res.Action, answers))
	case res.Saved != "":
		fmt.Fprintf(env.Stdout, "answers saved to %s; %s later with:\n  %s\n", res.Saved, res.Action, unattended(f, res.Action, res.Saved))
	}
	return errors.New("cancelled")
}

// unattended is the command line that repeats what the wizard did without
// it, keeping the flags that change where state and keys are.
func unattended(f *engineFlags, verb, answers string) string {
	args := []string{progName(), verb, "--answers", answers, "--yes"}
	if f.knownHosts != "" {
		args = append(args, "--known-hosts", f.knownHosts)
	}
	if f.stateDir != "" {
		args = append(args, "--state-dir", f.stateDir)
	}
	return strings.Join(args, " ")
}

// wizardEngine builds, for each Connect, the engine runEngine would, with
// the wizard asking about unknown host keys instead of --accept-new-host-keys.
func wizardEngine(f *engineFlags, b *bundle.Bundle, policy signaturePolicy) tui.NewEngine {
	return func(cfg tui.EngineConfig) (tui.Engine, tui.EngineInfo, error) {
		if policy.Trust == nil {
			// The wizard's answers may require a signature the command line did not.
			var err error
			if policy, err = requireSignature(b, f.requireSignature, cfg.Cluster); err != nil {
				return nil, tui.EngineInfo{}, err
			}
		}
		logs, logDir, dir, err := openLogs(f, cfg.Cluster, cfg.Action)
		if err != nil {
			return nil, tui.EngineInfo{}, err
		}
		keys := install.HostKeyPolicy{KnownHosts: f.knownHosts, AcceptNew: f.acceptNew, Decide: cfg.Decide}
		e, err := newEngine(f, cfg.Cluster, b, policy.Trust, logs, dir, keys, cfg.Sink)
		if err != nil {
			logs.Close()
			return nil, tui.EngineInfo{}, err
		}
		return engineWithLogs{e, logs}, tui.EngineInfo{LogDir: logDir, StateDir: dir}, nil
	}
}

// engineWithLogs closes the engine's log files with it.
type engineWithLogs struct {
	*install.Engine
	logs *install.LogSink
}

func (e engineWithLogs) Close() error {
	return errors.Join(e.Engine.Close(), e.logs.Close())
}

// bundleInfo is what the Welcome screen shows, from the index and trailer.
func bundleInfo(b *bundle.Bundle, policy signaturePolicy) tui.BundleInfo {
	idx := b.Index
	var apps []string
	for _, a := range idx.Config.Apps {
		apps = append(apps, a.Name)
	}
	sig := signatureClaim(b)
	if policy.Trust != nil {
		sig = policy.welcome()
	}
	return tui.BundleInfo{
		Name:        filepath.Base(b.Path),
		Labels:      idx.Config.Labels,
		KubeVersion: idx.Config.KubeVersion,
		Apps:        apps,
		Images:      len(idx.Images),
		Size:        b.Trailer.LogicalSize + bundle.TrailerSize,
		Arch:        idx.Platform.String(),
		Signature:   sig,
		Trusted:     policy.Trust != nil,
	}
}

// defaultKey is the first key the engine would try when none is named.
func defaultKey() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		p := filepath.Join(home, ".ssh", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
