package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// summarize prints each profile's result from the report the suite wrote.
func summarize(path string, w io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading report: %w", err)
	}
	var r struct {
		Profiles []struct {
			Name string `json:"name"`
			Core struct {
				Result     string `json:"result"`
				Statistics struct {
					Passed  int `json:"Passed"`
					Failed  int `json:"Failed"`
					Skipped int `json:"Skipped"`
				} `json:"statistics"`
				FailedTests []string `json:"failedTests"`
			} `json:"core"`
			Extended struct {
				Result     string `json:"result"`
				Statistics struct {
					Passed  int `json:"Passed"`
					Failed  int `json:"Failed"`
					Skipped int `json:"Skipped"`
				} `json:"statistics"`
				FailedTests       []string `json:"failedTests"`
				SupportedFeatures []string `json:"supportedFeatures"`
			} `json:"extended"`
		} `json:"profiles"`
	}
	if err := yaml.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("decoding report: %w", err)
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(w, "%s core: %s (%d passed, %d failed, %d skipped)\n", p.Name, p.Core.Result,
			p.Core.Statistics.Passed, p.Core.Statistics.Failed, p.Core.Statistics.Skipped)
		if len(p.Core.FailedTests) > 0 {
			fmt.Fprintf(w, "  failed: %s\n", strings.Join(p.Core.FailedTests, ", "))
		}
		fmt.Fprintf(w, "%s extended: %s (%d passed, %d failed, %d skipped)\n", p.Name, p.Extended.Result,
			p.Extended.Statistics.Passed, p.Extended.Statistics.Failed, p.Extended.Statistics.Skipped)
		sort.Strings(p.Extended.SupportedFeatures)
		fmt.Fprintf(w, "  claimed: %s\n", strings.Join(p.Extended.SupportedFeatures, ", "))
		if len(p.Extended.FailedTests) > 0 {
			fmt.Fprintf(w, "  failed: %s\n", strings.Join(p.Extended.FailedTests, ", "))
		}
	}
	fmt.Fprintf(w, "report: %s\n", path)
	return nil
}
