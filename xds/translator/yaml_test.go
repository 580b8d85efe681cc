package translator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	yaml "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// decodeIR reads a test input: an ir.Config in its JSON form written as
// YAML, with two conveniences for people writing cases by hand: "timeout",
// "backendTimeout", "connectTimeout" and "backoff" may be Go duration strings ("30s"), and
// "certificate" and "privateKey" are plain text (PEM) rather than base64.
// Unknown fields are errors, so a typo cannot silently drop part of a case.
func decodeIR(data []byte) (*ir.Config, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decoding YAML: %w", err)
	}
	doc, err := irConveniences(doc, "")
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("converting YAML to JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var cfg ir.Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("decoding IR: %w", err)
	}
	return &cfg, nil
}

func irConveniences(v any, key string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			c, err := irConveniences(e, k)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
	case []any:
		for i, e := range x {
			c, err := irConveniences(e, key)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
	case string:
		switch key {
		case "timeout", "backendTimeout", "connectTimeout", "backoff":
			d, err := time.ParseDuration(x)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", key, err)
			}
			return int64(d), nil
		case "certificate", "privateKey", "trustedCA", "clientCA":
			return base64.StdEncoding.EncodeToString([]byte(x)), nil
		}
	}
	return v, nil
}

// renderResources writes Resources as YAML: each resource in protojson
// form with proto field names, keys sorted, kinds in a fixed order.
func renderResources(res *Resources) ([]byte, error) {
	type doc struct {
		Listeners              []any    `yaml:"listeners,omitempty"`
		RouteConfigurations    []any    `yaml:"routeConfigurations,omitempty"`
		Clusters               []any    `yaml:"clusters,omitempty"`
		ClusterLoadAssignments []any    `yaml:"clusterLoadAssignments,omitempty"`
		Secrets                []any    `yaml:"secrets,omitempty"`
		ExtensionConfigs       []any    `yaml:"extensionConfigs,omitempty"`
		Warnings               []string `yaml:"warnings,omitempty"`
	}
	var d doc
	var err error
	add := func(dst *[]any, m proto.Message) {
		if err != nil {
			return
		}
		var js []byte
		js, err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return
		}
		// Numbers stay json.Number so large integers are not printed as
		// floats.
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		var v any
		err = dec.Decode(&v)
		*dst = append(*dst, plainNumbers(v))
	}
	for _, m := range res.Listeners {
		add(&d.Listeners, m)
	}
	for _, m := range res.RouteConfigurations {
		add(&d.RouteConfigurations, m)
	}
	for _, m := range res.Clusters {
		add(&d.Clusters, m)
	}
	for _, m := range res.ClusterLoadAssignments {
		add(&d.ClusterLoadAssignments, m)
	}
	for _, m := range res.Secrets {
		add(&d.Secrets, m)
	}
	for _, m := range res.ExtensionConfigs {
		add(&d.ExtensionConfigs, m)
	}
	if err != nil {
		return nil, fmt.Errorf("rendering resources: %w", err)
	}
	for _, w := range res.Warnings {
		d.Warnings = append(d.Warnings, w.String())
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("rendering resources: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("rendering resources: %w", err)
	}
	return buf.Bytes(), nil
}

// plainNumbers turns json.Number into int64 (or float64) so YAML prints
// them as numbers, not strings.
func plainNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = plainNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainNumbers(e)
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
	}
	return v
}
