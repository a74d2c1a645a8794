package generator

import (
	"context"
	"path"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// renderChart renders a Helm chart (and its subcharts) with its default
// values, as "helm template" would, so that images chosen by values are
// found. Only gen imports Helm; the installer stub never does.
func renderChart(ctx context.Context, dir string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, err
	}
	vals, err := chartutil.ToRenderValues(ch, ch.Values, chartutil.ReleaseOptions{
		Name: ch.Name(), Namespace: "default", IsInstall: true, Revision: 1,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	out, err := engine.Render(ch, vals)
	if err != nil {
		return nil, err
	}
	for n := range out {
		if ext := path.Ext(n); !strings.EqualFold(ext, ".yaml") && !strings.EqualFold(ext, ".yml") || strings.HasPrefix(path.Base(n), "_") {
			delete(out, n) // NOTES.txt, helpers
		}
	}
	return out, nil
}
