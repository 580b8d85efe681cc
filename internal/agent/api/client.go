package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/nodemesh/nodemesh/mesh/flow"
)

// client talks HTTP to the agent's Unix socket at path; the URL's host is
// ignored.
func client(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// FetchStatus asks the agent listening on the Unix socket at path for its
// status.
func FetchStatus(ctx context.Context, path string) (*Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/status", nil)
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
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("decoding agent status: %w", err)
	}
	return &st, nil
}

// FetchFlows asks the agent listening on the Unix socket at path for
// flows and calls fn for each, in order, until the response ends (with
// q.Follow, until ctx ends). fn's error stops the stream.
func FetchFlows(ctx context.Context, path string, q FlowQuery, fn func(flow.Flow) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/flows?"+q.Values().Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := client(path).Do(req)
	if err != nil {
		return fmt.Errorf("asking the agent at %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("asking the agent at %s: %s: %s", path, resp.Status, msg)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var f flow.Flow
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			return fmt.Errorf("decoding flow: %w", err)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading flows: %w", err)
	}
	return nil
}
