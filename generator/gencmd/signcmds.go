package gencmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/sealpack/sealpack/assets"
	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/internal/progress"
	"github.com/sealpack/sealpack/internal/sshsig"
)

// defaultIdentity is who a new key stands for when --identity is not given:
// user@host, as ssh-keygen's default comment.
func defaultIdentity() string {
	name := "sealpack"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return name + "@" + host
}

// verifyHint is the command a site runs to check an installer with ssh-keygen.
func verifyHint(allowedSigners, identity, installer string) string {
	return fmt.Sprintf("ssh-keygen -Y verify -f %s -I %s -n %s -s %s < %s",
		allowedSigners, identity, bundle.SignatureNamespace, bundle.SignaturePath(installer), installer)
}

func keygen(io *IO, args []string) error {
	fs := newFlags(io, "keygen", `Usage: gen keygen --out NAME [--identity ID]

Makes an ed25519 signing key and writes, never overwriting:
  NAME.key              the private key (OpenSSH format, mode 0600): keep it on the build machine
  NAME.pub              the public key, as ssh-keygen writes it
  NAME.allowed_signers  one line trusting the key as ID to sign installers: give it to the site`)
	out := fs.String("out", "sealpack", "path prefix of the key files")
	identity := fs.String("identity", "", "who the key stands for, e.g. release@example.com (default USER@HOST)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	}
	id := *identity
	if id == "" {
		id = defaultIdentity()
	}
	files := sshsig.Files(*out)
	pub, err := sshsig.GenerateKey(files, id, bundle.SignatureNamespace)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "wrote %s (private, mode 0600), %s and %s\nkey: %s %s (%s)\n\n", files.Private, files.Public, files.AllowedSigners, pub.Type(), ssh.FingerprintSHA256(pub), id)
	fmt.Fprintf(io.Stdout, "Sign:  gen -f Kubefile -o installer.run --sign-key %s\n   or: gen sign --key %s installer.run\n", files.Private, files.Private)
	fmt.Fprintf(io.Stdout, "Check, on any machine with OpenSSH (give it %s):\n  %s\n", filepath.Base(files.AllowedSigners), verifyHint(files.AllowedSigners, id, "installer.run"))
	return nil
}

// askPassphrase asks for an encrypted key's passphrase on the terminal.
func askPassphrase(path string) func() ([]byte, error) {
	return func() ([]byte, error) {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return nil, errors.New("the key is encrypted and there is no terminal to ask for its passphrase")
		}
		defer tty.Close()
		fmt.Fprintf(tty, "Passphrase for %s: ", path)
		pw, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return pw, err
	}
}

// signInstaller writes the detached signatures of a freshly built
// installer, or, unsigned, removes the old ones, which cannot match it.
func signInstaller(ctx context.Context, io *IO, path string, signer ssh.Signer) error {
	if signer == nil {
		return bundle.RemoveSignatures(path, 1)
	}
	b, err := bundle.Open(path)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Sign(ctx, signer); err != nil {
		return err
	}
	for _, f := range b.Files() {
		fmt.Fprintf(io.Stdout, "signed %s: %s\n", f, bundle.SignaturePath(f))
	}
	return nil
}

func signCmd(ctx context.Context, io *IO, args []string) error {
	fs := newFlags(io, "sign", `Usage: gen sign --key NAME.key installer.run

Writes installer.run.sig (and installer.run.partN.sig for each part) in
OpenSSH's signature format, namespace "sealpack"; old signatures are replaced.`)
	key := fs.String("key", "", "the private key (from gen keygen, or an OpenSSH key)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *key == "" || fs.NArg() != 1 {
		return usageError{errors.New("sign: expected --key FILE and one installer")}
	}
	signer, err := sshsig.LoadSigner(*key, askPassphrase(*key))
	if err != nil {
		return err
	}
	return signInstaller(ctx, io, fs.Arg(0), signer)
}

func verifyCmd(ctx context.Context, io *IO, args []string) error {
	fs := newFlags(io, "verify", `Usage: gen verify [--allowed-signers FILE | --public-key FILE] installer.run

Checks an installer with this gen, a program the build machine already trusts
(unlike the installer, which would be checking itself):
  - the detached signature of every file (installer.run.sig, ...) against the
    trusted keys;
  - every byte of the installer and its parts against the digests in its index;
  - that the installer program (stub) and the host agent are exactly those this
    gen embeds for the installer's architecture.`)
	allowed := fs.String("allowed-signers", "", "trusted keys, as ssh-keygen -Y verify -f reads them (NAME.allowed_signers)")
	pubKey := fs.String("public-key", "", "the one trusted public key (NAME.pub)")
	stubPath := fs.String("stub", "", "compare the stub with this file instead of the embedded one (for development)")
	agentPath := fs.String("agent", "", "compare the host agent with this file instead of the embedded one (for development)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("verify: expected one installer")}
	}
	if *allowed != "" && *pubKey != "" {
		return usageError{errors.New("verify: give --allowed-signers or --public-key, not both")}
	}
	var trust sshsig.Trust
	var err error
	if keys := *allowed + *pubKey; keys != "" {
		if trust, err = sshsig.LoadTrust(keys); err != nil {
			return err
		}
	}
	b, err := bundle.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer b.Close()
	arch := b.Index.Platform.Architecture
	checks := []error{
		checkProgram(b, "installer program (stub)", b.Index.Stub.Digest, b.Index.Stub.Size, arch, *stubPath, func() ([]byte, error) { return assets.Stub(arch) }),
	}
	if b.Index.Agent != "" {
		_, bl, _ := b.Blob(b.Index.Agent)
		checks = append(checks, checkProgram(b, "host agent", bl.Digest, bl.Size, arch, *agentPath, func() ([]byte, error) {
			if a := assets.Agent(arch); a != nil {
				return a, nil
			}
			return nil, fmt.Errorf("this gen embeds no host agent for linux/%s: run `make assets` and rebuild gen, or pass --agent FILE", arch)
		}))
	}
	bar := progress.New(io.Stderr, "verify")
	signer, err := b.Check(ctx, trust, bar.Update)
	if err := errors.Join(append([]error{err}, checks...)...); err != nil {
		return fmt.Errorf("%s is NOT good:\n%w", b.Path, err)
	}
	sig := "signature NOT checked: pass --allowed-signers FILE"
	if trust != nil {
		sig = fmt.Sprintf("signed by %s (%s, trusted by %s)", signer.Identity(), ssh.FingerprintSHA256(signer.Key), signer.Where)
	}
	programs := "the stub is"
	if b.Index.Agent != "" {
		programs = "the stub and the host agent are"
	}
	fmt.Fprintf(io.Stdout, "%s: OK: %s; %d blobs in %d file(s), %s, every digest good; %s this gen's for linux/%s\n",
		b.Path, sig, len(b.Index.Blobs), b.Trailer.Parts(), progress.Bytes(b.SingleSize()), programs, arch)
	return nil
}

// checkProgram says whether a program the bundle carries is byte for byte
// the one this gen embeds: a bundle rebuilt around another stub carries
// digests of its own, which all match.
func checkProgram(b *bundle.Bundle, what, digest string, size int64, arch, override string, embedded func() ([]byte, error)) error {
	var want []byte
	var err error
	reference, theirs := "the one this gen embeds for linux/"+arch, "this gen's is"
	if override != "" {
		want, err = os.ReadFile(override)
		reference, theirs = override, filepath.Base(override)+" is"
	} else {
		want, err = embedded()
	}
	if err != nil {
		return fmt.Errorf("cannot check the %s: %w", what, err)
	}
	sum := sha256.Sum256(want)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest || int64(len(want)) != size {
		return fmt.Errorf("the %s differs from %s: the installer carries %s (%d bytes), %s %s (%d bytes). Its index says it was made by %q: another gen version embeds other programs; otherwise it was built with gen --stub/--agent or altered. Do not run it until you know which",
			what, reference, digest, size, theirs, got, len(want), b.Index.CreatedBy)
	}
	return nil
}
