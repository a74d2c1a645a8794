package stub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"
	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/agent"
	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/internal/progress"
	"github.com/sealpack/sealpack/internal/sshsig"
	"github.com/sealpack/sealpack/rootfs"
)

// parseAndOpen adds --bundle to a command's flags (it points the command at
// a bundle file other than the running program: the engine verifies the
// copy it placed on a host), parses them and opens the bundle.
func (env *Env) parseAndOpen(fs *pflag.FlagSet, args []string) (*bundle.Bundle, error) {
	from := fs.String("bundle", "", "use this bundle file instead of the running installer")
	if err := parse(fs, args, 0); err != nil {
		return nil, err
	}
	if *from != "" {
		return bundle.Open(*from)
	}
	return env.Open()
}

// inspectOutput is the JSON shape of `inspect --json`: the trailer facts a
// person asks about, then the index as stored.
type inspectOutput struct {
	Path          string `json:"path"`
	FormatVersion uint32 `json:"formatVersion"`
	Parts         int    `json:"parts"`
	// Signature describes the detached signature file, unchecked.
	Signature *signatureJSON `json:"signature,omitempty"`
	Index     *bundle.Index  `json:"index"`
}

type signatureJSON struct {
	File        string `json:"file"`
	KeyType     string `json:"keyType"`
	Fingerprint string `json:"fingerprint"`
	Checked     bool   `json:"checked"` // always false: see verify --allowed-signers, gen verify, ssh-keygen -Y verify
}

func runInspect(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "inspect", "[--json]", "Show what the bundle contains. Reads only the trailer and the index.")
	asJSON := fs.Bool("json", false, "print JSON")
	b, err := env.parseAndOpen(fs, args)
	if err != nil {
		return err
	}
	defer b.Close()
	t, idx := b.Trailer, b.Index
	out := inspectOutput{Path: b.Path, FormatVersion: t.Version, Parts: t.Parts(), Index: idx}
	if sig, err := b.Signature(); err == nil {
		out.Signature = &signatureJSON{File: bundle.SignaturePath(b.Path), KeyType: sig.PublicKey.Type(), Fingerprint: ssh.FingerprintSHA256(sig.PublicKey)}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Bundle:\t%s\n", b.Path)
	fmt.Fprintf(w, "Format version:\t%d\n", t.Version)
	fmt.Fprintf(w, "Platform:\t%s\n", idx.Platform)
	fmt.Fprintf(w, "Created by:\t%s\n", idx.CreatedBy)
	if idx.Created != "" {
		fmt.Fprintf(w, "Created:\t%s\n", idx.Created)
	}
	fmt.Fprintf(w, "Size:\t%s in %d file(s)\n", progress.Bytes(t.LogicalSize+bundle.TrailerSize), t.Parts())
	fmt.Fprintf(w, "Stub:\t%s %s\n", idx.Stub.Digest, progress.Bytes(idx.Stub.Size))
	if _, bl, err := b.Blob(idx.Agent); err == nil {
		fmt.Fprintf(w, "Host agent:\t%s %s\n", bl.Digest, progress.Bytes(bl.Size))
	}
	fmt.Fprintf(w, "Signature:\t%s\n", strings.ReplaceAll(signatureClaim(b), "\n", ", "))
	if c := idx.Config; c.KubeVersion != "" {
		fmt.Fprintf(w, "Kubernetes:\t%s\n", c.KubeVersion)
	}
	w.Flush()

	fmt.Fprintf(env.Stdout, "\nLayers (%d):\n", len(idx.Layers))
	w = tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  #\tDIGEST\tCOMPRESSED\tSIZE\tCREATED BY")
	for i, l := range idx.Layers {
		_, bl, _ := b.Blob(l.Digest)
		fmt.Fprintf(w, "  %d\t%s\t%s\t%s\t%s\n", i+1, l.Digest, progress.Bytes(bl.Size), progress.Bytes(l.Size), l.CreatedBy)
	}
	w.Flush()
	fmt.Fprintf(env.Stdout, "\nEnv (%d):\n", len(idx.Config.Env))
	for _, e := range idx.Config.Env {
		fmt.Fprintf(env.Stdout, "  %s\n", e)
	}
	fmt.Fprintf(env.Stdout, "\nLabels (%d):\n", len(idx.Config.Labels))
	for _, k := range sortedKeys(idx.Config.Labels) {
		fmt.Fprintf(env.Stdout, "  %s=%s\n", k, idx.Config.Labels[k])
	}
	if len(idx.Config.Apps) > 0 {
		fmt.Fprintf(env.Stdout, "\nApps (%d):\n", len(idx.Config.Apps))
		for _, a := range idx.Config.Apps {
			fmt.Fprintf(env.Stdout, "  %s (%s) %v\n", a.Name, a.Type, a.Paths)
		}
	}
	fmt.Fprintf(env.Stdout, "\nImages (%d):\n", len(idx.Images))
	for _, im := range idx.Images {
		fmt.Fprintf(env.Stdout, "  %s@%s\n", im.Name, im.Digest)
	}
	return nil
}

func runImages(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "images", "", "List the container images the bundle's registry serves.")
	b, err := env.parseAndOpen(fs, args)
	if err != nil {
		return err
	}
	defer b.Close()
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tDIGEST\tSIZE")
	for _, im := range b.Index.Images {
		fmt.Fprintf(w, "%s\t%s\t%s\n", im.Name, im.Digest, progress.Bytes(im.Size))
	}
	return w.Flush()
}

func runVerify(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "verify", "[--allowed-signers FILE | --public-key FILE]", "Check every byte of the bundle against its SHA-256, in one read of the file, and\nwith a trusted key its detached signature (installer.run.sig, ...).\n\nThis program is part of the file it checks: for a check that counts, use\nssh-keygen -Y verify or gen verify on a machine you trust.")
	allowed := fs.String("allowed-signers", "", "also check the signature against these trusted keys (NAME.allowed_signers)")
	pubKey := fs.String("public-key", "", "also check the signature against this public key (NAME.pub)")
	quiet := fs.BoolP("quiet", "q", false, "print nothing when the bundle is good")
	b, err := env.parseAndOpen(fs, args)
	if err != nil {
		return err
	}
	defer b.Close()
	if *allowed != "" && *pubKey != "" {
		return usageError{errors.New("give --allowed-signers or --public-key, not both")}
	}
	var trust sshsig.Trust
	if keys := *allowed + *pubKey; keys != "" {
		if trust, err = sshsig.LoadTrust(keys); err != nil {
			return err
		}
	}
	bar := progress.New(env.Stderr, "verify")
	if *quiet {
		bar = progress.New(nil, "")
	}
	signer, err := b.Check(ctx, trust, bar.Update)
	if err != nil {
		return fmt.Errorf("%s: %w", b.Path, err)
	}
	if *quiet {
		return nil
	}
	msg, _, _ := strings.Cut(signatureClaim(b), "\n") // selfCheck says the rest
	if trust != nil {
		msg = fmt.Sprintf("signature good, by %s (%s)", signer.Identity(), ssh.FingerprintSHA256(signer.Key))
	}
	fmt.Fprintf(env.Stdout, "%s: OK: %d blobs, %s, %s\n%s\n", b.Path, len(b.Index.Blobs), progress.Bytes(b.SingleSize()), msg, selfCheck(b))
	return nil
}

func runExtract(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "extract", "--to DIR", "Unpack the merged rootfs (every layer in order, whiteouts applied) into DIR, atomically:\nDIR appears complete or not at all.")
	to := fs.String("to", "", "directory to create (must not exist, or be empty)")
	keepSetID := fs.Bool("keep-setid", false, "keep setuid and setgid bits (default: cleared, so a program unpacked to look at is not one anybody can run as its owner)")
	b, err := env.parseAndOpen(fs, args)
	if err != nil {
		return err
	}
	if *to == "" {
		b.Close()
		return usageError{fmt.Errorf("--to DIR is required")}
	}
	defer b.Close()
	var opts []rootfs.Option
	if !*keepSetID {
		opts = append(opts, rootfs.StripSetID())
	}
	err = rootfs.ExtractAtomic(*to, func(root *os.Root) error { return agent.ApplyBundleLayers(ctx, b, root, opts...) })
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "extracted %d layers to %s\n", len(b.Index.Layers), *to)
	return nil
}

// runAgent runs the commands the install engine starts on hosts (see package agent).
func runAgent(ctx context.Context, env *Env, args []string) error {
	if code := agent.Main(ctx, &agent.Env{Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr}, args); code != 0 {
		return errAgentFailed
	}
	return nil
}

// errAgentFailed: the agent has printed its own error.
var errAgentFailed = errors.New("failed")
