package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/xds/bootstrap"
)

// bootstrapCmd writes the Envoy v3 bootstrap that connects Envoy to the
// node's agent (package xds/bootstrap) to stdout or, atomically, to a file.
func bootstrapCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	var o bootstrap.Options
	fs.StringVar(&o.NodeID, "node-id", os.Getenv("NODE_NAME"), "node id Envoy reports (default: $NODE_NAME)")
	fs.StringVar(&o.Cluster, "cluster", bootstrap.DefaultCluster, "Envoy's service cluster")
	fs.StringVar(&o.XDSSocket, "xds-socket", bootstrap.DefaultXDSSocket, "the agent's xDS Unix socket")
	fs.StringVar(&o.AdminAddress, "admin-address", bootstrap.DefaultAdminAddress, "Envoy's admin endpoint (a loopback host:port)")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 0, "timeout of connecting to the agent (default 1s)")
	format := fs.String("o", "yaml", "output format: yaml or json")
	out := fs.String("output-file", "", "write to this file instead of standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bootstrap: unexpected arguments %q", fs.Args())
	}
	b, err := bootstrap.New(o)
	if err != nil {
		return err
	}
	// protojson's spacing is deliberately unstable; re-encoding through
	// YAML (or compact JSON) makes the output byte-stable.
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return fmt.Errorf("encoding bootstrap: %w", err)
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return fmt.Errorf("encoding bootstrap: %w", err)
	}
	switch *format {
	case "yaml":
		js = y
	case "json":
		if js, err = yaml.YAMLToJSON(y); err != nil {
			return fmt.Errorf("encoding bootstrap: %w", err)
		}
		js = append(js, '\n')
	default:
		return fmt.Errorf("unknown output format %q (yaml or json)", *format)
	}
	if *out == "" {
		_, err = stdout.Write(js)
		return err
	}
	return writeFileAtomic(*out, js)
}

// writeFileAtomic writes b next to path and renames it into place, so an
// Envoy starting concurrently never reads half a bootstrap.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".bootstrap-*")
	if err != nil {
		return fmt.Errorf("writing bootstrap: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing bootstrap: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("writing bootstrap: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing bootstrap: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing bootstrap: %w", err)
	}
	return nil
}
