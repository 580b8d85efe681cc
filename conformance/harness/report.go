package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// splitReport writes the profiles of the report the suite wrote to src
// into two reports: the GATEWAY-* profiles to gatewayPath and the MESH-*
// ones to meshPath. One suite run covers both kinds (the suite runs every
// test whose features are claimed, whatever the profiles), and each kind
// keeps its report file. Every other field of the report (implementation,
// date, channel, version, mode, provisional tests) goes into both. A
// report gets written only when the run had profiles of its kind, so a
// run of the mesh profiles alone leaves the gateway report as it was.
func splitReport(src, gatewayPath, meshPath string) ([]string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("reading report: %w", err)
	}
	var r map[string]any
	if err := yaml.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding report %s: %w", src, err)
	}
	profiles, ok := r["profiles"].([]any)
	if !ok {
		return nil, fmt.Errorf("report %s lists no profiles", src)
	}
	var gw, mesh []any
	for i, p := range profiles {
		m, _ := p.(map[string]any)
		name, _ := m["name"].(string)
		switch {
		case strings.HasPrefix(name, "GATEWAY-"):
			gw = append(gw, p)
		case strings.HasPrefix(name, "MESH-"):
			mesh = append(mesh, p)
		default:
			return nil, fmt.Errorf("report %s: profiles[%d]: unknown profile %q", src, i, name)
		}
	}
	var written []string
	for _, out := range []struct {
		path     string
		profiles []any
	}{{gatewayPath, gw}, {meshPath, mesh}} {
		if len(out.profiles) == 0 {
			continue
		}
		r["profiles"] = out.profiles
		y, err := yaml.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encoding report %s: %w", out.path, err)
		}
		if err := os.MkdirAll(filepath.Dir(out.path), 0o755); err != nil {
			return nil, fmt.Errorf("creating report directory: %w", err)
		}
		if err := os.WriteFile(out.path, y, 0o644); err != nil {
			return nil, fmt.Errorf("writing report: %w", err)
		}
		written = append(written, out.path)
	}
	return written, nil
}
