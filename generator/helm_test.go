package generator_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealpack/sealpack/generator"
	"github.com/sealpack/sealpack/generator/internal/testreg"
)

func TestHelmChartImagesFollowValues(t *testing.T) {
	dir := testreg.CopyContext(t, "../testdata/build/helm", "reg.example:5000")
	found, err := generator.Discover(context.Background(), generator.Options{Kubefile: filepath.Join(dir, "Kubefile")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range found {
		got = append(got, f.Ref.Name+" @ "+f.Sources[0].String())
	}
	want := "reg.example:5000/web/metrics:0.3 @ application/apps/web/templates/deployment.yaml:12:18 (rendered chart Deployment/web container metrics)\n" +
		"reg.example:5000/web/server:1.0 @ application/apps/web/templates/deployment.yaml:10:18 (rendered chart Deployment/web container web)"
	if s := strings.Join(got, "\n"); s != want {
		t.Errorf("got\n%s\nwant\n%s", s, want)
	}
}
