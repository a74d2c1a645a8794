package sshsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// KeyFiles are the files GenerateKey writes for a prefix.
type KeyFiles struct {
	Private, Public, AllowedSigners string
}

// Files names the key files of prefix NAME: NAME.key, NAME.pub and
// NAME.allowed_signers.
func Files(prefix string) KeyFiles {
	return KeyFiles{Private: prefix + ".key", Public: prefix + ".pub", AllowedSigners: prefix + ".allowed_signers"}
}

// GenerateKey makes an ed25519 key and writes the private key in OpenSSH's
// format (mode 0600), the public key as ssh-keygen writes it, and an
// allowed_signers line trusting it as identity for namespace. It never
// overwrites: losing a signing key by accident cannot be undone.
func GenerateKey(files KeyFiles, identity, namespace string) (ssh.PublicKey, error) {
	if identity == "" || strings.ContainsAny(identity, " \t\n\",") {
		return nil, fmt.Errorf("identity %q: want one word such as release@example.com (no blanks, quotes or commas)", identity)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, identity)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	writes := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{files.Private, pem.EncodeToMemory(block), 0o600},
		{files.Public, []byte(line + " " + identity + "\n"), 0o644},
		{files.AllowedSigners, fmt.Appendf(nil, "%s namespaces=%q %s\n", identity, namespace, line), 0o644},
	}
	// Refuse before writing anything, so no half set is left behind.
	for _, w := range writes {
		if _, err := os.Lstat(w.path); err == nil {
			return nil, fmt.Errorf("%s exists: refusing to overwrite a key file", w.path)
		}
	}
	for i, w := range writes {
		if err := writeNew(w.path, w.data, w.mode); err != nil {
			for _, done := range writes[:i] {
				os.Remove(done.path)
			}
			return nil, err
		}
	}
	return sshPub, nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return nil
}

// LoadSigner reads a private key: OpenSSH's format (gen keygen, ssh-keygen)
// or the PEM PKCS #8 keys older sealpack releases wrote. An encrypted key
// asks passphrase for its passphrase; nil passphrase refuses encrypted keys.
func LoadSigner(path string, passphrase func() ([]byte, error)) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == nil {
			return nil, fmt.Errorf("signing key %s is encrypted and no passphrase can be asked for here", path)
		}
		pw, perr := passphrase()
		if perr != nil {
			return nil, fmt.Errorf("signing key %s: %w", path, perr)
		}
		s, err = ssh.ParsePrivateKeyWithPassphrase(data, pw)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return s, nil
}
