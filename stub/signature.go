package stub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/internal/sshsig"
)

// selfCheck is said wherever this program talks about its own signature:
// the program checking the file is part of the file, so its word is worth
// nothing against someone who replaced both. Only a check by a program the
// site already trusts (ssh-keygen, the build machine's gen) counts. Lines
// fit an 80-column terminal.
func selfCheck(b *bundle.Bundle) string {
	name := filepath.Base(b.Path)
	return fmt.Sprintf("A file's check of itself proves nothing. Check it with a program you trust:\n"+
		"  ssh-keygen -Y verify -f NAME.allowed_signers -I IDENTITY -n %s \\\n"+
		"      -s %s < %s", bundle.SignatureNamespace, bundle.SignaturePath(name), name)
}

// signaturePolicy is the signature a run requires: the keys of
// --require-signature, else of the answers file's spec.requireSignature.
type signaturePolicy struct {
	Trust  sshsig.Trust // nil: no signature required
	Source string       // where the requirement comes from, for messages
	Signer sshsig.Signer
}

// requireSignature reads the keys a run requires and refuses, from the
// signature files alone, an installer not signed by one of them: before
// the wizard starts or any host is reached. The signed bytes are checked
// later, with every digest, beside preflight (install.Options.Trust).
func requireSignature(b *bundle.Bundle, flag string, c *cluster.Cluster) (signaturePolicy, error) {
	var p signaturePolicy
	path := flag
	switch {
	case flag != "":
		p.Source = "--require-signature " + flag
	case c != nil && c.RequireSignature != "":
		path = c.RequireSignature
		p.Source = "spec.requireSignature of the answers file (" + path + ")"
	default:
		return p, nil
	}
	trust, err := sshsig.LoadTrust(path)
	if err != nil {
		return p, fmt.Errorf("%s: %w", p.Source, err)
	}
	signer, err := b.CheckSigner(trust)
	if err != nil {
		return p, fmt.Errorf("refusing to run %s: %w\n(%s requires a signature by one of its keys; nothing was done on any host)", filepath.Base(b.Path), err, p.Source)
	}
	p.Trust, p.Signer = trust, signer
	return p, nil
}

// describe says who signed, for the plain log.
func (p signaturePolicy) describe() string {
	return fmt.Sprintf("signed by %s (%s), a key %s trusts; the bytes are checked before any host is changed",
		p.Signer.Identity(), ssh.FingerprintSHA256(p.Signer.Key), p.Signer.Where)
}

// welcome says who signed in short lines, for the wizard's Welcome screen.
func (p signaturePolicy) welcome() string {
	return fmt.Sprintf("%s, trusted by %s\nkey %s",
		p.Signer.Identity(), filepath.Base(p.Signer.Where), ssh.FingerprintSHA256(p.Signer.Key))
}

// signatureClaim describes the installer's signature file without checking
// it: who it names is only a claim. Lines fit the Welcome screen's 80 columns.
func signatureClaim(b *bundle.Bundle) string {
	sigName := filepath.Base(bundle.SignaturePath(b.Path))
	sig, err := b.Signature()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("not signed (no %s beside it)", sigName)
	case err != nil:
		return fmt.Sprintf("%s is unreadable", sigName)
	}
	return fmt.Sprintf("key %s, unchecked\na file's check of itself proves nothing: use ssh-keygen -Y verify", ssh.FingerprintSHA256(sig.PublicKey))
}
