package stub_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/cluster"
	"github.com/sealpack/sealpack/stub"
)

// answers init prints a template that, once its example addresses are
// real, is a valid answers file; a bad field in it is reported with its line.
func TestAnswersInit(t *testing.T) {
	var out, errOut bytes.Buffer
	env := &stub.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}
	if code := stub.Main(context.Background(), env, []string{"answers", "init"}); code != 0 {
		t.Fatalf("answers init: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "kind: Cluster") || !strings.Contains(out.String(), "#") {
		t.Fatalf("template is not a commented Clusterfile:\n%s", out.String())
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "cluster.yaml")
	// As printed, the placeholders are refused with the line they are on.
	os.WriteFile(p, out.Bytes(), 0o600)
	if _, err := cluster.Load(p); err == nil || !strings.Contains(err.Error(), "replace the placeholder") {
		t.Errorf("template with placeholders: %v", err)
	}
	filled := strings.NewReplacer("<master-ip-1>", "10.0.0.1", "<master-ip-2>", "10.0.0.2", "<master-ip-3>", "10.0.0.3",
		"<worker-ip-1>", "10.0.0.11", "<worker-ip-2>", "10.0.0.12").Replace(out.String())
	os.WriteFile(p, []byte(filled), 0o600)
	if _, err := cluster.Load(p); err != nil {
		t.Errorf("the filled-in template does not load: %v", err)
	}
	bad := strings.Replace(filled, "roles:", "rolez:", 1)
	os.WriteFile(p, []byte(bad), 0o600)
	code := stub.Main(context.Background(), &stub.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}, []string{"install", "--answers", p, "--yes"})
	if code == 0 || !strings.Contains(errOut.String(), "cluster.yaml:") || !strings.Contains(errOut.String(), "rolez") {
		t.Errorf("install with a misspelt field: exit %d, %q; want the file, line and field", code, errOut.String())
	}
	if code := stub.Main(context.Background(), env, []string{"answers", "bogus"}); code != 2 {
		t.Errorf("answers bogus: exit %d, want 2", code)
	}
}

// --plan prints the engine's phases for the answers and touches nothing:
// not even the bundle is opened.
func TestPlanFlag(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	os.WriteFile(p, []byte("apiVersion: sealer.io/v2\nkind: Cluster\nmetadata:\n  name: lab\nspec:\n  hosts:\n    - ips: [10.0.0.1]\n      roles: [master]\n    - ips: [10.0.0.2]\n      roles: [node]\n"), 0o600)
	noBundle := func() (*bundle.Bundle, error) { t.Fatal("--plan opened the bundle"); return nil, nil }
	for _, tt := range []struct {
		verb string
		want []string
	}{
		{"install", []string{"install on 2 hosts runs, in order:", " 1. distribute            10.0.0.1, 10.0.0.2\n", " 5. init-master0          10.0.0.1\n", " 6. share                 10.0.0.2\n", " 7. join-node             10.0.0.2\n", "Nothing was changed."}},
		{"join", []string{"join on 2 hosts runs", " 7. join-node             10.0.0.2\n"}},
		{"reset", []string{" 1. reset-host          10.0.0.2\n", " 2. reset first master  10.0.0.1\n"}},
	} {
		t.Run(tt.verb, func(t *testing.T) {
			var out, errOut bytes.Buffer
			env := &stub.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Open: noBundle}
			if code := stub.Main(t.Context(), env, []string{tt.verb, "--answers", p, "--plan"}); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), "join-master") {
				t.Errorf("a phase without hosts is listed:\n%s", out.String())
			}
		})
	}
	var errOut bytes.Buffer
	if code := stub.Main(t.Context(), &stub.Env{Stdout: &bytes.Buffer{}, Stderr: &errOut, Open: noBundle}, []string{"install", "--plan"}); code != 2 || !strings.Contains(errOut.String(), "--plan needs --answers") {
		t.Errorf("--plan without answers: exit %d, %q", code, errOut.String())
	}
}
