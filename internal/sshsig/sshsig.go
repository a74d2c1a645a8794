// Package sshsig reads and writes OpenSSH's detached signatures (the format
// of `ssh-keygen -Y sign`, described in OpenSSH's PROTOCOL.sshsig), so that a
// file signed here is checked with ssh-keygen, a program the site already
// trusts, and a file signed with ssh-keygen is checked here.
//
// The message is hashed as a stream: a signature over a file of many GiB
// reads it once and never holds it.
package sshsig

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/sealpack/sealpack/internal/ctxio"
)

const (
	magic   = "SSHSIG"
	version = 1
	// HashSHA512 is the hash Sign uses, as ssh-keygen does by default.
	HashSHA512 = "sha512"
	// HashSHA256 is the other hash PROTOCOL.sshsig allows; Verify accepts it.
	HashSHA256 = "sha256"

	armorBegin = "-----BEGIN SSH SIGNATURE-----"
	armorEnd   = "-----END SSH SIGNATURE-----"
	// armorWidth is the base64 line length ssh-keygen writes.
	armorWidth = 70
)

// ErrInvalid means a signature does not match the message, or is not one.
var ErrInvalid = errors.New("invalid signature")

// Signature is a parsed detached signature. Its PublicKey says who claims to
// have signed; only Verify and a trusted key make that claim worth anything.
type Signature struct {
	PublicKey     ssh.PublicKey
	Namespace     string
	HashAlgorithm string
	Signature     *ssh.Signature
}

// wireSignature is the signature blob, between the armor lines.
type wireSignature struct {
	Magic         [6]byte
	Version       uint32
	PublicKey     []byte
	Namespace     string
	Reserved      string
	HashAlgorithm string
	Signature     []byte
}

// signedData is what the key actually signs: never the message itself, so a
// signature over a file cannot be replayed as an SSH login or for another
// namespace.
type signedData struct {
	Magic         [6]byte
	Namespace     string
	Reserved      string
	HashAlgorithm string
	Hash          []byte
}

func newHash(alg string) (hash.Hash, error) {
	switch alg {
	case HashSHA512:
		return sha512.New(), nil
	case HashSHA256:
		return sha256.New(), nil
	}
	return nil, fmt.Errorf("%w: hash algorithm %q (want sha512 or sha256)", ErrInvalid, alg)
}

// digest hashes the message as a stream, checking ctx between reads.
func digest(ctx context.Context, alg string, message io.Reader) ([]byte, error) {
	h, err := newHash(alg)
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyBuffer(h, ctxio.Reader(ctx, message), make([]byte, 1<<20)); err != nil {
		return nil, fmt.Errorf("read the signed file: %w", err)
	}
	return h.Sum(nil), nil
}

func toSign(namespace, alg string, sum []byte) []byte {
	return ssh.Marshal(signedData{Magic: [6]byte([]byte(magic)), Namespace: namespace, HashAlgorithm: alg, Hash: sum})
}

// Sign reads message to its end and returns the armored signature, as
// `ssh-keygen -Y sign -n namespace` would write it.
func Sign(ctx context.Context, signer ssh.Signer, namespace string, message io.Reader) ([]byte, error) {
	if namespace == "" {
		return nil, errors.New("sign: the namespace is empty")
	}
	sum, err := digest(ctx, HashSHA512, message)
	if err != nil {
		return nil, err
	}
	data := toSign(namespace, HashSHA512, sum)
	var sig *ssh.Signature
	// RSA keys must not sign with SHA-1: ssh-keygen refuses ssh-rsa signatures.
	if as, ok := signer.(ssh.AlgorithmSigner); ok && signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	blob := ssh.Marshal(wireSignature{
		Magic: [6]byte([]byte(magic)), Version: version,
		PublicKey: signer.PublicKey().Marshal(), Namespace: namespace,
		HashAlgorithm: HashSHA512, Signature: ssh.Marshal(sig),
	})
	return armor(blob), nil
}

func armor(blob []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString(armorBegin + "\n")
	for len(enc) > armorWidth {
		b.WriteString(enc[:armorWidth] + "\n")
		enc = enc[armorWidth:]
	}
	b.WriteString(enc + "\n" + armorEnd + "\n")
	return b.Bytes()
}

// Parse reads an armored signature. It checks the form, not the signature:
// that takes the message (Verify).
func Parse(armored []byte) (*Signature, error) {
	text := strings.TrimSpace(string(armored))
	body, ok := strings.CutPrefix(text, armorBegin)
	if !ok {
		return nil, fmt.Errorf("%w: no %q line at the start", ErrInvalid, armorBegin)
	}
	body, ok = strings.CutSuffix(body, armorEnd)
	if !ok {
		return nil, fmt.Errorf("%w: no %q line at the end", ErrInvalid, armorEnd)
	}
	blob, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrInvalid, err)
	}
	var w wireSignature
	if err := ssh.Unmarshal(blob, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if string(w.Magic[:]) != magic {
		return nil, fmt.Errorf("%w: no SSHSIG magic", ErrInvalid)
	}
	if w.Version != version {
		return nil, fmt.Errorf("%w: SSHSIG version %d (want %d)", ErrInvalid, w.Version, version)
	}
	pub, err := ssh.ParsePublicKey(w.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrInvalid, err)
	}
	if _, err := newHash(w.HashAlgorithm); err != nil {
		return nil, err
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(w.Signature, sig); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrInvalid, err)
	}
	if _, isCert := pub.(*ssh.Certificate); isCert {
		return nil, fmt.Errorf("%w: signed with a certificate: check it with ssh-keygen -Y verify", ErrInvalid)
	}
	return &Signature{PublicKey: pub, Namespace: w.Namespace, HashAlgorithm: w.HashAlgorithm, Signature: sig}, nil
}

// Verify reads message to its end and checks that the signature covers it,
// in namespace, made by s.PublicKey. Whether that key is one to trust is the
// caller's question (AllowedSigners).
func (s *Signature) Verify(ctx context.Context, namespace string, message io.Reader) error {
	if s.Namespace != namespace {
		return fmt.Errorf("%w: made for namespace %q, not %q", ErrInvalid, s.Namespace, namespace)
	}
	if s.PublicKey.Type() == ssh.KeyAlgoRSA && s.Signature.Format == ssh.KeyAlgoRSA {
		return fmt.Errorf("%w: an RSA signature with SHA-1 (ssh-rsa), which ssh-keygen refuses too", ErrInvalid)
	}
	sum, err := digest(ctx, s.HashAlgorithm, message)
	if err != nil {
		return err
	}
	if err := s.PublicKey.Verify(toSign(s.Namespace, s.HashAlgorithm, sum), s.Signature); err != nil {
		return fmt.Errorf("%w: the file is not the one %s signed (%v)", ErrInvalid, ssh.FingerprintSHA256(s.PublicKey), err)
	}
	return nil
}
