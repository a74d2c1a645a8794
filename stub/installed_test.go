package stub

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/install"
)

// The wizard is offered every cluster whose state directory holds its
// record; a record that does not load is named, not offered, and does not
// hide the others.
func TestInstalledClusters(t *testing.T) {
	base := t.TempDir()
	t.Setenv("XDG_STATE_HOME", base)
	write := func(name, body string) string {
		dir := filepath.Join(base, "sealpack", name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if body != "" {
			os.WriteFile(filepath.Join(dir, install.ClusterRecord), []byte("apiVersion: sealer.io/v2\nkind: Cluster\nmetadata:\n  name: "+name+"\nspec:\n"+body), 0o600)
		}
		return dir
	}
	lab := write("lab", "  hosts:\n    - ips: [10.0.0.1]\n      roles: [master]\n")
	broken := write("broken", "  hosts:\n    - ips: [10.0.0.2]\n      roles: [master]\n  ssh:\n    passwdEnv: SEALPACK_TEST_UNSET_PW\n")
	write("reset", "") // a state directory whose cluster was reset
	var warnings []string
	got := installedClusters(&engineFlags{}, func(err error) { warnings = append(warnings, err.Error()) })
	if len(got) != 1 || got[0].Cluster.Name != "lab" || got[0].AnswersPath != filepath.Join(lab, install.ClusterRecord) {
		t.Errorf("installed clusters: %+v", got)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], broken) || !strings.Contains(warnings[0], "SEALPACK_TEST_UNSET_PW") {
		t.Errorf("warnings %q, want one naming %s and the unset variable", warnings, broken)
	}
	// --state-dir looks at that directory only.
	if got := installedClusters(&engineFlags{stateDir: broken}, func(error) {}); len(got) != 0 {
		t.Errorf("with --state-dir %s: %+v", broken, got)
	}
	if got := installedClusters(&engineFlags{stateDir: lab}, func(error) {}); len(got) != 1 {
		t.Errorf("with --state-dir %s: %+v", lab, got)
	}
}
