package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/internal/sshsig"
)

// A bundle is signed by detached signatures, one beside each of its files
// (installer.run.sig, installer.run.part2.sig, ...), in OpenSSH's SSHSIG
// format over the file's bytes, so that ssh-keygen, a program the site
// already trusts, checks them:
//
//	ssh-keygen -Y verify -f release.allowed_signers -I release@example.com \
//	    -n sealpack -s installer.run.sig < installer.run
//
// A signature inside the file would be checked by the program in that same
// file, which an attacker replaces along with it.

// SignatureNamespace is the SSHSIG namespace of bundle signatures: a key
// that also signs other things (git commits, files) cannot have those
// signatures taken for an installer's.
const SignatureNamespace = "sealpack"

// SignaturePath is where the detached signature of one file of a bundle lives.
func SignaturePath(file string) string { return file + ".sig" }

// Files returns the paths of the bundle's files, part 1 (the installer) first.
func (b *Bundle) Files() []string {
	out := make([]string, b.Trailer.Parts())
	for k := range out {
		out[k] = PartPath(b.Path, k+1)
	}
	return out
}

// fileReader reads the whole of an open part file: what its signature covers.
func (b *Bundle) fileReader(k int) (io.Reader, error) {
	st, err := b.parts[k].Stat()
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(b.parts[k], 0, st.Size()), nil
}

// Sign writes a detached signature beside every file of the bundle. The
// signatures appear together or not at all: each is written to a temporary
// file and renamed into place once all are made. Signatures of parts the
// bundle no longer has (an earlier, larger build) are removed.
func (b *Bundle) Sign(ctx context.Context, signer ssh.Signer) error {
	files := b.Files()
	var temps []string
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}()
	for k, f := range files {
		r, err := b.fileReader(k)
		if err != nil {
			return fmt.Errorf("sign %s: %w", f, err)
		}
		sig, err := sshsig.Sign(ctx, signer, SignatureNamespace, r)
		if err != nil {
			return fmt.Errorf("sign %s: %w", f, err)
		}
		tmp, err := writeTemp(SignaturePath(f), sig)
		if err != nil {
			return err
		}
		temps = append(temps, tmp)
	}
	for k := len(files) - 1; k >= 0; k-- { // part 1's last, as the bundle's own files
		if err := os.Rename(temps[k], SignaturePath(files[k])); err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		temps = temps[:k]
	}
	syncDir(filepath.Dir(b.Path))
	return RemoveSignatures(b.Path, len(files)+1)
}

// RemoveSignatures removes the signatures of the bundle at path from part
// from on (from 1: all of them). A rebuilt installer removes its old
// signatures, which cannot match it.
func RemoveSignatures(path string, from int) error {
	for k := from; ; k++ {
		err := os.Remove(SignaturePath(PartPath(path, k)))
		if errors.Is(err, os.ErrNotExist) {
			// Part 1's signature may be gone while part 2's is not.
			if k > 1 {
				return nil
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("remove old signature: %w", err)
		}
	}
}

// writeTemp writes data to a synced temporary file beside path.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return f.Name(), nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Signature reads the detached signature of part 1 without checking it:
// whom it names is a claim until CheckSignatures checks it against a trusted
// key. A bundle without one returns an error wrapping ErrSignature and
// os.ErrNotExist.
func (b *Bundle) Signature() (*sshsig.Signature, error) {
	return readSignature(b.Path)
}

// unsignedError is a file without its signature: it is both ErrSignature
// and os.ErrNotExist, and says so once.
type unsignedError struct{ file, sig string }

func (e unsignedError) Error() string {
	return fmt.Sprintf("%v: %s is not signed: no %s beside it", ErrSignature, e.file, e.sig)
}

func (e unsignedError) Is(target error) bool {
	return target == ErrSignature || target == os.ErrNotExist
}

func readSignature(file string) (*sshsig.Signature, error) {
	p := SignaturePath(file)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, unsignedError{file: filepath.Base(file), sig: filepath.Base(p)}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	sig, err := sshsig.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSignature, p, err)
	}
	return sig, nil
}

// CheckSignatures checks the detached signature of every file of the bundle
// against the trusted keys and returns who signed. Every file must be signed
// by a trusted key, and all by the same one.
func (b *Bundle) CheckSignatures(ctx context.Context, trust sshsig.Trust) (sshsig.Signer, error) {
	sigs, signer, err := b.trustedSignatures(trust)
	if err != nil {
		return sshsig.Signer{}, err
	}
	for k, f := range b.Files() {
		r, err := b.fileReader(k)
		if err != nil {
			return sshsig.Signer{}, fmt.Errorf("check the signature of %s: %w", f, err)
		}
		if err := sigs[k].Verify(ctx, SignatureNamespace, r); err != nil {
			if ctx.Err() != nil {
				return sshsig.Signer{}, ctx.Err()
			}
			return sshsig.Signer{}, fmt.Errorf("%w: %s: %v", ErrSignature, filepath.Base(f), err)
		}
	}
	return signer, nil
}

// CheckSigner is the quick half of CheckSignatures: every file has a
// signature, made by a key trust names, for bundles. It reads the signature
// files only, so it can refuse a bundle before anything else starts; the
// bytes are checked by CheckSignatures.
func (b *Bundle) CheckSigner(trust sshsig.Trust) (sshsig.Signer, error) {
	_, s, err := b.trustedSignatures(trust)
	return s, err
}

func (b *Bundle) trustedSignatures(trust sshsig.Trust) ([]*sshsig.Signature, sshsig.Signer, error) {
	var sigs []*sshsig.Signature
	for _, f := range b.Files() {
		sig, err := readSignature(f)
		if err != nil {
			return nil, sshsig.Signer{}, err
		}
		if sig.Namespace != SignatureNamespace {
			return nil, sshsig.Signer{}, fmt.Errorf("%w: %s was made for namespace %q, not %q", ErrSignature, SignaturePath(f), sig.Namespace, SignatureNamespace)
		}
		if len(sigs) > 0 && string(sig.PublicKey.Marshal()) != string(sigs[0].PublicKey.Marshal()) {
			return nil, sshsig.Signer{}, fmt.Errorf("%w: %s and %s are signed by different keys", ErrSignature, filepath.Base(b.Path), filepath.Base(f))
		}
		sigs = append(sigs, sig)
	}
	s, err := trust.Find(sigs[0].PublicKey, SignatureNamespace, time.Now())
	if err != nil {
		return nil, sshsig.Signer{}, fmt.Errorf("%w: %s: %v", ErrSignature, SignaturePath(b.Path), err)
	}
	return sigs, s, nil
}

// Check is the one full check of a bundle: every byte against the index's
// digests (Verify) and, when trust is not nil, the detached signature of
// every file against the trusted keys (CheckSignatures), the two reading
// the files at the same time so the page cache serves the second. It
// returns who signed (zero when trust is nil) and every problem found.
func (b *Bundle) Check(ctx context.Context, trust sshsig.Trust, progress Progress) (sshsig.Signer, error) {
	var signer sshsig.Signer
	sigErr := make(chan error, 1)
	if trust != nil {
		// Refuse an unsigned or untrusted bundle before reading gigabytes.
		if _, err := b.CheckSigner(trust); err != nil {
			return signer, err
		}
		go func() {
			var err error
			signer, err = b.CheckSignatures(ctx, trust)
			sigErr <- err
		}()
	} else {
		sigErr <- nil
	}
	verr := b.Verify(ctx, progress)
	serr := <-sigErr // signer is set once this arrives
	return signer, errors.Join(serr, verr)
}
