package sshsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshKeygen runs the real ssh-keygen, with message on stdin.
func sshKeygen(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed (Debian: openssh-client)")
	}
	cmd := exec.CommandContext(t.Context(), path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// keys returns key files of each type ssh-keygen makes, plus one of ours.
func keys(t *testing.T) map[string]KeyFiles {
	dir := t.TempDir()
	out := map[string]KeyFiles{}
	ours := Files(filepath.Join(dir, "ours"))
	if _, err := GenerateKey(ours, "release@example.com", "sealpack"); err != nil {
		t.Fatal(err)
	}
	out["gen keygen ed25519"] = ours
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		f := Files(filepath.Join(dir, typ))
		args := []string{"-q", "-t", typ, "-N", "", "-C", typ + "@example.com", "-f", f.Private}
		if typ == "rsa" {
			args = append(args, "-b", "2048")
		}
		if out, err := sshKeygen(t, nil, args...); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		if err := os.Rename(f.Private+".pub", f.Public); err != nil {
			t.Fatal(err)
		}
		pub, err := os.ReadFile(f.Public)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.AllowedSigners, []byte(typ+"@example.com "+string(pub)), 0o644); err != nil {
			t.Fatal(err)
		}
		out["ssh-keygen "+typ] = f
	}
	return out
}

func identityOf(t *testing.T, f KeyFiles) string {
	data, err := os.ReadFile(f.AllowedSigners)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))[0]
}

// TestAgainstSSHKeygen: what we sign, ssh-keygen -Y verify accepts; what
// ssh-keygen -Y sign writes, we accept; a flipped byte or another namespace
// fails both.
func TestAgainstSSHKeygen(t *testing.T) {
	msg := make([]byte, 3<<20+17) // more than one read buffer
	rand.Read(msg)
	flipped := bytes.Clone(msg)
	flipped[len(flipped)/2] ^= 1
	for name, f := range keys(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			signer, err := LoadSigner(f.Private, nil)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := Sign(t.Context(), signer, "sealpack", bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			oursPath := filepath.Join(dir, "ours.sig")
			os.WriteFile(oursPath, ours, 0o644)

			msgPath := filepath.Join(dir, "msg")
			os.WriteFile(msgPath, msg, 0o644)
			if out, err := sshKeygen(t, nil, "-Y", "sign", "-f", f.Private, "-n", "sealpack", msgPath); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
			}
			theirs, err := os.ReadFile(msgPath + ".sig")
			if err != nil {
				t.Fatal(err)
			}
			trust, err := LoadTrust(f.AllowedSigners)
			if err != nil {
				t.Fatal(err)
			}
			id := identityOf(t, f)
			for _, c := range []struct {
				name      string
				sig       []byte
				sigPath   string
				message   []byte
				namespace string
				ok        bool
			}{
				{"ours", ours, oursPath, msg, "sealpack", true},
				{"theirs", theirs, msgPath + ".sig", msg, "sealpack", true},
				{"ours, flipped byte", ours, oursPath, flipped, "sealpack", false},
				{"theirs, flipped byte", theirs, msgPath + ".sig", flipped, "sealpack", false},
				{"ours, other namespace", ours, oursPath, msg, "file", false},
				{"theirs, other namespace", theirs, msgPath + ".sig", msg, "file", false},
			} {
				out, err := sshKeygen(t, c.message, "-Y", "verify", "-f", f.AllowedSigners, "-I", id, "-n", c.namespace, "-s", c.sigPath)
				if (err == nil) != c.ok {
					t.Errorf("%s: ssh-keygen -Y verify: ok=%v, want %v\n%s", c.name, err == nil, c.ok, out)
				}
				sig, err := Parse(c.sig)
				if err != nil {
					t.Fatalf("%s: parse: %v", c.name, err)
				}
				err = sig.Verify(t.Context(), c.namespace, bytes.NewReader(c.message))
				if err == nil {
					_, err = trust.Find(sig.PublicKey, c.namespace, time.Now())
				}
				if (err == nil) != c.ok {
					t.Errorf("%s: Verify: %v, want ok=%v", c.name, err, c.ok)
				}
				if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUntrusted) {
					t.Errorf("%s: error %v is neither ErrInvalid nor ErrUntrusted", c.name, err)
				}
			}
		})
	}
}

// TestPublicKeyUsableBySSHKeygen: NAME.pub is a public key ssh-keygen reads.
func TestPublicKeyUsableBySSHKeygen(t *testing.T) {
	f := Files(filepath.Join(t.TempDir(), "k"))
	pub, err := GenerateKey(f, "ops@example.com", "sealpack")
	if err != nil {
		t.Fatal(err)
	}
	out, err := sshKeygen(t, nil, "-l", "-f", f.Public)
	if err != nil || !strings.Contains(out, ssh.FingerprintSHA256(pub)) || !strings.Contains(out, "ops@example.com") {
		t.Fatalf("ssh-keygen -l -f %s: %v\n%s", f.Public, err, out)
	}
	if st, err := os.Stat(f.Private); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	trust, err := LoadTrust(f.Public)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := trust.Find(pub, "sealpack", time.Now()); err != nil || s.Identity() != "ops@example.com" {
		t.Errorf("a .pub as trust: %v, identity %q", err, s.Identity())
	}
}

func TestGenerateKeyRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	f := Files(filepath.Join(dir, "k"))
	if err := os.WriteFile(f.AllowedSigners, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKey(f, "a@b", "sealpack"); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("GenerateKey over an existing file: %v", err)
	}
	for _, p := range []string{f.Private, f.Public} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s written although the set was refused", p)
		}
	}
	if data, _ := os.ReadFile(f.AllowedSigners); string(data) != "keep" {
		t.Errorf("allowed_signers overwritten: %q", data)
	}
}

func TestParseTrust(t *testing.T) {
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, file, ns string
		want           string // identity, or "" for not trusted
		err            string // parse error
	}{
		{"pub", key + " me@x", "sealpack", "me@x", ""},
		{"allowed_signers", "# comment\n\na@x,b@x " + key + "\n", "sealpack", "a@x,b@x", ""},
		{"namespaces allow", `a@x namespaces="file,sealpack" ` + key, "sealpack", "a@x", ""},
		{"namespaces refuse", `a@x namespaces="file" ` + key, "sealpack", "", ""},
		{"valid", `a@x valid-after="20260101",valid-before="20270101Z" ` + key, "sealpack", "a@x", ""},
		{"expired", `a@x valid-before="20260101Z" ` + key, "sealpack", "", ""},
		{"cert-authority", `a@x cert-authority ` + key, "sealpack", "", "f:1: option cert-authority"},
		{"garbage", "a@x ssh-ed25519 notbase64", "sealpack", "", "f:1: want"},
		{"unknown option", `a@x restrict ` + key, "sealpack", "", `f:1: unknown option "restrict"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			trust, err := ParseTrust([]byte(c.file), "f")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err := trust.Find(pub, c.ns, now)
			if c.want == "" {
				if !errors.Is(err, ErrUntrusted) {
					t.Fatalf("trusted (%v), want ErrUntrusted", err)
				}
				return
			}
			if err != nil || s.Identity() != c.want {
				t.Fatalf("identity %q, %v; want %q", s.Identity(), err, c.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":     "",
		"no armor":  "hello",
		"no end":    armorBegin + "\nU1NIU0lH\n",
		"bad b64":   armorBegin + "\n!!!\n" + armorEnd,
		"truncated": armorBegin + "\nU1NIU0lH\n" + armorEnd,
	} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// TestOldPEMKeys: the PEM keys older sealpack releases wrote (PKCS #8
// private, PKIX public) still sign and verify, so existing users keep their key.
func TestOldPEMKeys(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	privPath, pubPath := filepath.Join(dir, "old.key"), filepath.Join(dir, "old.pub")
	os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600)
	os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
	signer, err := LoadSigner(privPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(t.Context(), signer, "sealpack", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Verify(t.Context(), "sealpack", strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	trust, err := LoadTrust(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Find(parsed.PublicKey, "sealpack", time.Now()); err != nil {
		t.Errorf("old PEM public key does not trust its own signature: %v", err)
	}
}

// BenchmarkSign is the streaming hash's speed, what a signature costs per GiB.
func BenchmarkSign(b *testing.B) {
	f := Files(filepath.Join(b.TempDir(), "k"))
	if _, err := GenerateKey(f, "a@b", "sealpack"); err != nil {
		b.Fatal(err)
	}
	signer, err := LoadSigner(f.Private, nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 64<<20)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := Sign(b.Context(), signer, "sealpack", bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}
