package generator

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/generator/kubefile"
)

// configOf gathers the cluster image metadata of a resolved Kubefile.
func configOf(res *kubefile.Resolved, appTypes map[string]string) bundle.Config {
	c := bundle.Config{
		Maintainer:  res.Maintainer,
		KubeVersion: res.KubeVersion,
		Launch:      res.Launch,
		Cmds:        res.Cmds,
	}
	for _, kv := range res.Env {
		c.Env = append(c.Env, kv.Key+"="+kv.Value)
	}
	if len(res.Labels) > 0 {
		c.Labels = map[string]string{}
		for _, kv := range res.Labels {
			c.Labels[kv.Key] = kv.Value
		}
	}
	for _, a := range res.Apps {
		app := bundle.App{Name: a.Name, Type: appTypes[a.Name], Paths: a.Paths, Cmds: a.Cmds}
		for _, kv := range a.Env {
			app.Env = append(app.Env, kv.Key+"="+kv.Value)
		}
		switch a.Kind {
		case kubefile.KindCNI:
			c.CNI = append(c.CNI, app)
		case kubefile.KindCSI:
			c.CSI = append(c.CSI, app)
		default:
			c.Apps = append(c.Apps, app)
		}
	}
	return c
}

// detectAppType tells, as Sealer does, how an app is launched: a Helm chart
// (a directory with Chart.yaml), Kubernetes manifests (YAML files) or shell
// scripts (.sh files).
func detectAppType(paths []string) (string, error) {
	var kinds []string
	for _, p := range paths {
		k, err := appTypeOf(p)
		if err != nil {
			return "", err
		}
		kinds = append(kinds, k)
	}
	for _, k := range kinds[1:] {
		if k != kinds[0] {
			return "", fmt.Errorf("app sources mix %s and %s", kinds[0], k)
		}
	}
	return kinds[0], nil
}

func appTypeOf(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return fileType(p)
	}
	if _, err := os.Stat(filepath.Join(p, "Chart.yaml")); err == nil {
		return "helm", nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return "", err
	}
	found := ""
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		t, err := fileType(filepath.Join(p, e.Name()))
		if err != nil {
			continue
		}
		if found != "" && found != t {
			return "", fmt.Errorf("%s mixes %s and %s files", p, found, t)
		}
		found = t
	}
	if found == "" {
		return "", fmt.Errorf("%s holds no Chart.yaml, YAML manifest or .sh script", p)
	}
	return found, nil
}

func fileType(p string) (string, error) {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".yaml", ".yml":
		return "kube", nil
	case ".sh":
		return "shell", nil
	}
	return "", fmt.Errorf("%s: cannot tell the app type (want a Helm chart, .yaml/.yml manifests or .sh scripts)", p)
}
