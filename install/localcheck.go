package install

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/internal/progress"
)

// InstallerFileError says the installer file on this machine failed its
// check: the file itself is bad, not a host and not a transfer. It is
// returned before any host is changed.
type InstallerFileError struct {
	Files []string // the bundle's files, part 1 first
	Err   error    // every problem: *bundle.DigestError, bundle.ErrSignature, ...
}

func (e *InstallerFileError) Error() string {
	var b strings.Builder
	name := filepath.Base(e.Files[0])
	if errors.Is(e.Err, bundle.ErrCorrupt) {
		fmt.Fprintf(&b, "the installer file itself is damaged (%s on this machine; no host was changed):", name)
	} else {
		fmt.Fprintf(&b, "the installer file does not match its signature (%s on this machine; no host was changed):", name)
	}
	for _, line := range strings.Split(e.Err.Error(), "\n") {
		b.WriteString("\n  " + line)
	}
	var names []string
	for _, f := range e.Files {
		names = append(names, filepath.Base(f))
	}
	fmt.Fprintf(&b, "\nGet a good copy: copy %s again from where it was built (with the .sig files beside it), then check the copy before running it, on this machine or another you trust:\n"+
		"  ssh-keygen -Y verify -f NAME.allowed_signers -I IDENTITY -n %s -s %s < %s\n"+
		"or compare `sha256sum %s` with the same command run at the source.",
		strings.Join(names, ", "), bundle.SignatureNamespace, bundle.SignaturePath(name), name, strings.Join(names, " "))
	return b.String()
}

func (e *InstallerFileError) Unwrap() error { return e.Err }

// checkInstaller checks every byte of the local installer file against its
// digests, and its signature when Options.Trust is set.
func (e *Engine) checkInstaller(ctx context.Context) error {
	b := e.opts.Bundle
	start := time.Now()
	e.emit(Event{Kind: Info, Phase: "preflight", Message: fmt.Sprintf("checking %s (%s) against its digests", filepath.Base(b.Path), progress.Bytes(b.SingleSize()))})
	signer, err := b.Check(ctx, e.opts.Trust, nil)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &InstallerFileError{Files: b.Files(), Err: err}
	}
	msg := fmt.Sprintf("%s is intact (checked in %v)", filepath.Base(b.Path), time.Since(start).Round(time.Millisecond))
	if e.opts.Trust != nil {
		msg += "; signed by " + signer.Identity()
	}
	e.emit(Event{Kind: Info, Phase: "preflight", Message: msg})
	return nil
}

// preflightAndCheck runs Preflight, which only reads the hosts, and the
// check of the local installer file at the same time: the check reads the
// whole file (about 0.5 s/GiB) while preflight waits on the network. Either
// failing stops the run before any host is changed; the file's problem
// comes first, since a re-run cannot fix it.
func (e *Engine) preflightAndCheck(ctx context.Context) error {
	checked := make(chan error, 1)
	go func() { checked <- e.checkInstaller(ctx) }()
	_, perr := e.Preflight(ctx)
	if cerr := <-checked; cerr != nil {
		if perr != nil {
			return errors.Join(cerr, perr)
		}
		return cerr
	}
	return perr
}
