package datapathv1

import (
	"errors"
	"path/filepath"
)

// FilterName is the listener filter name of the datapath identity filter.
const FilterName = "nodemesh.filters.listener.datapath_identity"

// TypeURL is the type URL of DatapathIdentity in an Any.
const TypeURL = "type.googleapis.com/nodemesh.filters.listener.datapath_identity.v1.DatapathIdentity"

// SourceIdentityKey is the filter state key under which a connection's
// datapath source identity is matched (the decimal identity).
const SourceIdentityKey = "nodemesh.source_identity"

// ValidateAll is Validate, under the name protoc-gen-validate gives it.
func (d *DatapathIdentity) ValidateAll() error { return d.Validate() }

// Validate rejects a configuration the proxy would NACK.
func (d *DatapathIdentity) Validate() error {
	p := d.GetConntrackMap()
	if p == "" {
		return errors.New("conntrack_map: must not be empty")
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return errors.New("conntrack_map: must be a clean absolute path")
	}
	return nil
}
