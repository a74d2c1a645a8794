package tlsgen

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateCAReusesExisting(t *testing.T) {
	dir := t.TempDir()
	ca1, err := GenerateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	pem1, _ := os.ReadFile(ca1.CertFile)
	ca2, err := GenerateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	pem2, _ := os.ReadFile(ca2.CertFile)
	if !bytes.Equal(pem1, pem2) || !ca1.Cert.Equal(ca2.Cert) {
		t.Error("second GenerateCA replaced the CA")
	}
	if st, err := os.Stat(filepath.Join(dir, CAKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
}

func TestIssueServerCert(t *testing.T) {
	dir := t.TempDir()
	ca, err := GenerateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.IssueServerCert(dir, []string{"registry.local", "10.1.2.3", "[fd00::1]", "registry.local"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tests := []struct {
		name string
		ok   bool
	}{
		{"registry.local", true},
		{"10.1.2.3", true},
		{"fd00::1", true},
		{"other.local", false},
		{"10.1.2.4", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{DNSName: tt.name, Roots: roots})
			if (err == nil) != tt.ok {
				t.Errorf("verify for %s: %v, want ok=%v", tt.name, err, tt.ok)
			}
		})
	}
	if _, err := ca.IssueServerCert(dir, nil); err == nil {
		t.Error("a certificate without names was issued")
	}
}

func TestLoadCAErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"certificate without key", func(dir string) {
			other := t.TempDir()
			if _, err := GenerateCA(other); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(other, CACertFile))
			os.WriteFile(filepath.Join(dir, CACertFile), b, 0o644)
		}, "exists without it"},
		{"key of another CA", func(dir string) {
			a, b := t.TempDir(), t.TempDir()
			GenerateCA(a)
			GenerateCA(b)
			cert, _ := os.ReadFile(filepath.Join(a, CACertFile))
			key, _ := os.ReadFile(filepath.Join(b, CAKeyFile))
			os.WriteFile(filepath.Join(dir, CACertFile), cert, 0o644)
			os.WriteFile(filepath.Join(dir, CAKeyFile), key, 0o600)
		}, "not a matching"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(dir)
			if _, err := GenerateCA(dir); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
