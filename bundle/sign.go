package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
)

// signedMessage is what a bundle signature covers: the index digest, which in
// turn covers the stub and every blob. The prefix keeps the signature from
// being valid for anything else signed with the same key.
func signedMessage(indexSHA [32]byte) []byte {
	return append([]byte("sealpack bundle index v1\x00"), indexSHA[:]...)
}

// KeyID names a public key by the first 8 bytes of its SHA-256.
func KeyID(pub ed25519.PublicKey) [8]byte {
	sum := sha256.Sum256(pub)
	var id [8]byte
	copy(id[:], sum[:8])
	return id
}

// FormatKeyID renders a key id for people.
func FormatKeyID(id [8]byte) string { return hex.EncodeToString(id[:]) }

// GenerateKey writes a new ed25519 key pair as PEM files (PKCS #8 private key
// readable only by the owner, PKIX public key).
func GenerateKey(privPath, pubPath string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		os.Remove(privPath)
		return nil, err
	}
	return pub, nil
}

// writeNew refuses to overwrite: losing a signing key by accident is not undoable.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return f.Close()
}

// LoadPrivateKey reads a PEM PKCS #8 ed25519 private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse private key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key %s is a %T, want ed25519", path, k)
	}
	return priv, nil
}

// LoadPublicKey reads a PEM PKIX ed25519 public key.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse public key %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key %s is a %T, want ed25519", path, k)
	}
	return pub, nil
}

func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("key %s: no PEM block of type %q", path, typ)
	}
	return block.Bytes, nil
}

// VerifySignature checks the bundle's signature against pub.
func (t *Trailer) VerifySignature(pub ed25519.PublicKey) error {
	if !t.Signed() {
		return fmt.Errorf("%w: the bundle is not signed", ErrSignature)
	}
	if id := KeyID(pub); id != t.KeyID {
		return fmt.Errorf("%w: signed by key %s, not by the given key %s", ErrSignature, FormatKeyID(t.KeyID), FormatKeyID(id))
	}
	if !ed25519.Verify(pub, signedMessage(t.IndexSHA256), t.Signature[:]) {
		return fmt.Errorf("%w: the signature does not match the index", ErrSignature)
	}
	return nil
}
