// Package stub is the installer program: the executable at the front of every
// bundle. It finds its payload from its own end and offers the commands a
// user runs on the air-gapped site.
package stub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/internal/version"
)

// Env is what a command sees of the world: its streams and how to open the bundle.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Open opens the bundle this program carries; tests point it elsewhere.
	Open func() (*bundle.Bundle, error)
}

type command struct {
	name, summary string
	run           func(ctx context.Context, env *Env, args []string) error
}

func commands() []command {
	return []command{
		{"install", "install the cluster on the hosts (the default)", runInstall},
		{"join", "add the new hosts of the answers file to the cluster", runJoin},
		{"upgrade", "upgrade the installed cluster to this installer's versions", runUpgrade},
		{"reset", "undo the install on every host", runReset},
		{"answers", "print an answers file template: answers init", runAnswers},
		{"kubectl", "run the bundle's kubectl against the installed cluster", runKubectl},
		{"inspect", "show what the bundle contains", runInspect},
		{"verify", "check every byte of the bundle against its digest", runVerify},
		{"extract", "unpack the merged rootfs into a directory", runExtract},
		{"images", "list the container images in the bundle", runImages},
		{"registry", "serve the bundle's images as an OCI registry (registry serve)", runRegistry},
		{"version", "print the version", runVersion},
		{"agent", "", runAgent}, // run on hosts by the install engine; not listed
	}
}

// usageError marks errors in how the program was called (exit status 2).
type usageError struct{ error }

// Main runs the installer with args (without the program name) and returns
// the exit status.
func Main(ctx context.Context, env *Env, args []string) int {
	name := "install"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		printUsage(env.Stdout)
		return 0
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		name, args = args[0], args[1:]
	}
	for _, c := range commands() {
		if c.name == name {
			err := c.run(ctx, env, args)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, pflag.ErrHelp):
				return 0
			}
			fmt.Fprintf(env.Stderr, "installer: %s: %v\n", name, err)
			var ue usageError
			if errors.As(err, &ue) {
				return 2
			}
			return 1
		}
	}
	fmt.Fprintf(env.Stderr, "installer: unknown command %q\n\n", name)
	printUsage(env.Stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "sealpack installer %s\n\nUsage: %s [command] [flags]\n\nCommands:\n", version.Version, progName())
	for _, c := range commands() {
		if c.summary != "" {
			fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", progName())
}

func progName() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		return os.Args[0]
	}
	return "installer.run"
}

// flags makes a command's flag set with a usage line that lists its flags.
func flags(env *Env, name, args, summary string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: %s %s %s\n\n%s\n\nFlags:\n%s", progName(), name, args, summary, fs.FlagUsages())
	}
	return fs
}

func parse(fs *pflag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > maxArgs {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args()[maxArgs:], " "))}
	}
	return nil
}

func runVersion(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "version", "", "Print the installer's version and the bundle's format version.")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "sealpack installer %s (bundle format %d)\n", version.Version, bundle.FormatVersion)
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
