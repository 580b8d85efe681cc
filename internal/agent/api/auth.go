package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// AuthStatus is the agent's mutual-authentication state, served on
// /v1/auth and shown by `nodemesh auth list`.
type AuthStatus struct {
	// Source names the identity source (builtin or spire).
	Source string `json:"source"`
	// Ready is true while the source can provide SVIDs; Error says why
	// not. Policies needing authentication are Pending while it is false.
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
	// Pairs counts the relations policy requires authenticated.
	Pairs int `json:"pairs"`
	// Entries are the rows of the datapath's auth map.
	Entries []AuthEntry `json:"entries"`
	// Manager counts the auth manager's outcomes; Client and Server the
	// handshakes this node initiated and answered, by reason.
	Manager map[string]uint64 `json:"manager,omitempty"`
	Client  map[string]uint64 `json:"client,omitempty"`
	Server  map[string]uint64 `json:"server,omitempty"`
	// AuthRequiredDrops counts packets the datapath dropped for lack of
	// an auth entry (both directions).
	AuthRequiredDrops uint64 `json:"authRequiredDrops"`
}

// AuthEntry is one authenticated relation: a local identity, a remote
// identity and the node it lives on (0: this node).
type AuthEntry struct {
	Local      uint32    `json:"local"`
	Remote     uint32    `json:"remote"`
	RemoteNode uint16    `json:"remoteNode"`
	NodeName   string    `json:"nodeName,omitempty"`
	Expiry     time.Time `json:"expiry"`
}

// FetchAuth asks the agent listening on the Unix socket at path for its
// mutual-authentication state.
func FetchAuth(ctx context.Context, path string) (*AuthStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/auth", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client(path).Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the agent at %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("asking the agent at %s: status %s", path, resp.Status)
	}
	var st AuthStatus
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("decoding agent auth state: %w", err)
	}
	return &st, nil
}
