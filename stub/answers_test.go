package stub_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
