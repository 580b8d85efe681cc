package server

import (
	"fmt"
	"sort"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// Extension configurations (ECDS) are served like secrets: listeners name
// them (a filter configured through config_discovery is named after its
// TypedExtensionConfig), state-of-the-world proxies are served exactly the
// ones their listeners use, and a change of one reaches the proxies
// without touching the listener. In a rollout they belong to the "make"
// step: a new listener's filter configuration is delivered, and answered,
// before the listener.

// extensionRefs lists the extension configurations a listener's network
// filters and HTTP filters are configured from.
func extensionRefs(l *listenerv3.Listener) ([]string, error) {
	seen := map[string]bool{}
	for i, fc := range l.GetFilterChains() {
		for j, f := range fc.GetFilters() {
			if f.GetConfigDiscovery() != nil {
				seen[f.GetName()] = true
				continue
			}
			tc := f.GetTypedConfig()
			hcm := &hcmv3.HttpConnectionManager{}
			if tc == nil || !tc.MessageIs(hcm) {
				continue
			}
			if err := tc.UnmarshalTo(hcm); err != nil {
				return nil, fmt.Errorf("filter_chains[%d].filters[%d]: %w", i, j, err)
			}
			for _, hf := range hcm.GetHttpFilters() {
				if hf.GetConfigDiscovery() != nil {
					seen[hf.GetName()] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// extensionsDefined checks that every extension configuration a listener
// names exists: a proxy would otherwise wait for it forever.
func (s state) extensionsDefined() error {
	for name, e := range s[kindListener].items {
		for _, x := range e.exts {
			if _, ok := s[kindExtension].items[x]; !ok {
				return fmt.Errorf("listener %q: extension config %q is referenced but not defined", name, x)
			}
		}
	}
	return nil
}
