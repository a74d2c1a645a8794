package registry

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestConformance runs the OCI distribution-spec conformance program
// (github.com/opencontainers/distribution-spec/conformance, built by
// scripts/conformance.sh, which sets OCI_CONFORMANCE_BIN) against the
// registry: the pull workflow over preloaded bundle content in read-only
// mode, and the whole suite in writable mode. It is skipped when the binary
// is not given: building it needs the Go module proxy.
func TestConformance(t *testing.T) {
	bin := os.Getenv("OCI_CONFORMANCE_BIN")
	if bin == "" {
		t.Skip("OCI_CONFORMANCE_BIN not set: run scripts/conformance.sh")
	}
	const repo = "conformance/repo1"
	fixtures := defaultFixtures(t, 16<<10)
	for i, f := range fixtures {
		f.repo, f.tag = repo, fmt.Sprintf("tag%d", i)
	}
	path := tempBundle(t, fixtures)

	tests := []struct {
		name     string
		writable bool
	}{
		{"pull (read-only bundle)", false},
		{"push and pull (writable)", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := []string{"OCI_REPO1=" + repo, "OCI_REPO2=conformance/repo2", "OCI_LOG=error", "OCI_API_REFERRER=false"}
			var cfg serverConfig
			if tt.writable {
				dir := t.TempDir()
				htpasswd := filepath.Join(dir, "htpasswd")
				hash := must(bcrypt.GenerateFromPassword([]byte("conformance"), bcrypt.MinCost))
				if err := os.WriteFile(htpasswd, []byte("oci:"+string(hash)+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg.opts = Options{WritableDir: filepath.Join(dir, "store"), HtpasswdFile: htpasswd}
				env = append(env, "OCI_USERNAME=oci", "OCI_PASSWORD=conformance",
					// distribution v3 has no referrers API and keeps sha256 only.
					"OCI_DATA_SHA512=false", "OCI_API_BLOBS_DELETE=false", "OCI_API_MANIFESTS_DELETE=false", "OCI_API_TAGS_DELETE=false")
			} else {
				var tags, manifests, blobs []string
				for _, f := range fixtures {
					tags = append(tags, f.tag)
					manifests = append(manifests, f.digest)
					if f.img != nil {
						for _, l := range must(f.img.Layers()) {
							blobs = append(blobs, must(l.Digest()).String())
						}
						blobs = append(blobs, must(f.img.ConfigName()).String())
					}
				}
				env = append(env, "OCI_API_PUSH=false", "OCI_API_BLOBS_DELETE=false", "OCI_API_MANIFESTS_DELETE=false", "OCI_API_TAGS_DELETE=false",
					"OCI_RO_DATA_TAGS="+strings.Join(tags, " "), "OCI_RO_DATA_MANIFESTS="+strings.Join(manifests, " "), "OCI_RO_DATA_BLOBS="+strings.Join(blobs, " "))
			}
			ts := startServer(t, path, cfg)
			results := t.TempDir()
			cmd := exec.Command(bin)
			cmd.Dir = results
			cmd.Env = append(os.Environ(), env...)
			cmd.Env = append(cmd.Env, "OCI_REGISTRY="+ts.host, "OCI_TLS=enabled", "SSL_CERT_FILE="+ts.caFile, "OCI_RESULTS_DIR="+results)
			// The exit status is not used: this version of the program panics
			// writing results.yaml after it has printed its report.
			out, _ := cmd.CombinedOutput()
			t.Logf("conformance report:\n%s", out)
			counts := map[string]int{}
			for _, m := range regexp.MustCompile(`(?m)^\s*(Disabled|Skip|Pass|FAIL|Error|Total)\.+:\s+(\d+)$`).FindAllStringSubmatch(string(out), -1) {
				counts[m[1]] = must(strconv.Atoi(m[2]))
			}
			t.Logf("conformance: %d pass, %d fail, %d error, %d skip, %d disabled of %d", counts["Pass"], counts["FAIL"], counts["Error"], counts["Skip"], counts["Disabled"], counts["Total"])
			if counts["Total"] == 0 || counts["Pass"] == 0 {
				t.Fatalf("no results in the report")
			}
			if counts["FAIL"]+counts["Error"] > 0 {
				t.Errorf("conformance failures; registry log:\n%s", ts.logs)
			}
		})
	}
}
