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

// A note for every place this program talks about its own signature: the
// program checking the file is part of the file, so its word is worth
// nothing against someone who replaced both. Only a check by a program the
// site already trusts (ssh-keygen, the build machine's gen) counts.
const selfCheckNote = "a file's check of itself proves nothing: check it with a program you trust, e.g.\n" +
	"  ssh-keygen -Y verify -f NAME.allowed_signers -I IDENTITY -n " + bundle.SignatureNamespace + " -s %s < %s"

func selfCheck(b *bundle.Bundle) string {
	name := filepath.Base(b.Path)
	return fmt.Sprintf(selfCheckNote, bundle.SignaturePath(name), name)
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

// describe says who signed, for the Welcome screen and the plain log.
func (p signaturePolicy) describe() string {
	return fmt.Sprintf("signed by %s (%s), a key %s trusts; the bytes are checked before any host is changed",
		p.Signer.Identity(), ssh.FingerprintSHA256(p.Signer.Key), p.Signer.Where)
}

// signatureClaim describes the installer's signature file without checking
// it: who it names is only a claim.
func signatureClaim(b *bundle.Bundle) (string, bool) {
	sig, err := b.Signature()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("not signed (no %s beside it)", filepath.Base(bundle.SignaturePath(b.Path))), false
	case err != nil:
		return err.Error(), false
	}
	return fmt.Sprintf("%s names key %s %s (not checked here)", filepath.Base(bundle.SignaturePath(b.Path)), sig.PublicKey.Type(), ssh.FingerprintSHA256(sig.PublicKey)), true
}
