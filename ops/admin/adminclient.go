package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"github.com/chimalli/chimalli/raftstore/cluster"
)

// maxAdminBody bounds how much of an admin response a client reads.
const maxAdminBody = 4 << 20

// adminCall sends method path (with a JSON body when in is not nil) to the
// admin socket at socketPath and decodes a 2xx JSON answer into out. A
// non-2xx answer returns the node's error text; a missing or dead socket
// returns an error wrapping ErrNoNode.
func adminCall(ctx context.Context, socketPath, method, path string, in, out any) (int, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://chimalli-admin"+path, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return 0, fmt.Errorf("%w on %s", ErrNoNode, socketPath)
		}
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var sb statusBody
		if json.Unmarshal(b, &sb) == nil && sb.Error != "" {
			return resp.StatusCode, errors.New(sb.Error)
		}
		return resp.StatusCode, errors.New(http.StatusText(resp.StatusCode))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode response: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// ListBans returns the active bans of the node behind socketPath. With
// consistent, the node first catches up with the leader (a linearizable
// read: every ban committed before the call is listed).
func ListBans(ctx context.Context, socketPath string, consistent bool) ([]BanEntry, error) {
	var out []BanEntry
	if _, err := adminCall(ctx, socketPath, http.MethodGet, "/bans"+readQuery(url.Values{}, consistent), nil, &out); err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return out, nil
}

// AddBan bans a prefix on the node behind socketPath and returns the ban.
func AddBan(ctx context.Context, socketPath string, req BanRequest) (BanEntry, error) {
	var out BanEntry
	if _, err := adminCall(ctx, socketPath, http.MethodPost, "/bans", req, &out); err != nil {
		return BanEntry{}, fmt.Errorf("add ban: %w", err)
	}
	return out, nil
}

// LiftBan lifts a prefix's ban on the node behind socketPath.
func LiftBan(ctx context.Context, socketPath, prefix string) error {
	if _, err := adminCall(ctx, socketPath, http.MethodDelete, "/bans?prefix="+url.QueryEscape(prefix), nil, nil); err != nil {
		return fmt.Errorf("lift ban: %w", err)
	}
	return nil
}

// readQuery returns q, with consistent=1 when asked, as a query string.
func readQuery(q url.Values, consistent bool) string {
	if consistent {
		q.Set("consistent", "1")
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// ListRules returns the replicated access rules of list (allow, deny, or
// "" for both) from the node behind socketPath; consistent as for ListBans.
func ListRules(ctx context.Context, socketPath, list string, consistent bool) ([]RuleEntry, error) {
	q := url.Values{}
	if list != "" {
		q.Set("list", list)
	}
	var out []RuleEntry
	if _, err := adminCall(ctx, socketPath, http.MethodGet, "/rules"+readQuery(q, consistent), nil, &out); err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	return out, nil
}

// AddRule adds an access rule through the node behind socketPath.
func AddRule(ctx context.Context, socketPath string, req RuleRequest) (RuleChange, error) {
	var out RuleChange
	if _, err := adminCall(ctx, socketPath, http.MethodPost, "/rules", req, &out); err != nil {
		return RuleChange{}, fmt.Errorf("add %s rule: %w", req.List, err)
	}
	return out, nil
}

// RemoveRule removes an access rule through the node behind socketPath.
func RemoveRule(ctx context.Context, socketPath, list, prefix string) error {
	q := url.Values{"list": {list}, "prefix": {prefix}}
	if _, err := adminCall(ctx, socketPath, http.MethodDelete, "/rules?"+q.Encode(), nil, nil); err != nil {
		return fmt.Errorf("remove %s rule: %w", list, err)
	}
	return nil
}

// ListPins returns the TOFU pins of kind (claim, upstream, or "" for both)
// from the node behind socketPath; consistent as for ListBans.
func ListPins(ctx context.Context, socketPath, kind string, consistent bool) ([]PinEntry, error) {
	q := url.Values{}
	if kind != "" {
		q.Set("kind", kind)
	}
	var out []PinEntry
	if _, err := adminCall(ctx, socketPath, http.MethodGet, "/trust"+readQuery(q, consistent), nil, &out); err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	return out, nil
}

// ApproveTrust pins a subject to the certificate req names, through the
// node behind socketPath, and returns the pin now in force.
func ApproveTrust(ctx context.Context, socketPath string, req ApproveRequest) (TrustChange, error) {
	var out TrustChange
	if _, err := adminCall(ctx, socketPath, http.MethodPost, "/trust/approve", req, &out); err != nil {
		return TrustChange{}, fmt.Errorf("approve: %w", err)
	}
	return out, nil
}

// RevokeTrust forgets the pin of kind and subject through the node behind
// socketPath.
func RevokeTrust(ctx context.Context, socketPath, kind, subject string) error {
	q := url.Values{"kind": {kind}, "subject": {subject}}
	if _, err := adminCall(ctx, socketPath, http.MethodDelete, "/trust?"+q.Encode(), nil, nil); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	return nil
}

// ClusterStatus returns the cluster as the node behind socketPath sees it.
func ClusterStatus(ctx context.Context, socketPath string) (cluster.Status, error) {
	var out cluster.Status
	if _, err := adminCall(ctx, socketPath, http.MethodGet, "/cluster/status", nil, &out); err != nil {
		return cluster.Status{}, fmt.Errorf("cluster status: %w", err)
	}
	return out, nil
}

// JoinCluster admits a node to the cluster through the node behind
// socketPath.
func JoinCluster(ctx context.Context, socketPath string, req JoinRequest) error {
	if _, err := adminCall(ctx, socketPath, http.MethodPost, "/cluster/join", req, nil); err != nil {
		return fmt.Errorf("cluster join: %w", err)
	}
	return nil
}

// LeaveCluster removes a node from the cluster through the node behind
// socketPath.
func LeaveCluster(ctx context.Context, socketPath, id string) error {
	if _, err := adminCall(ctx, socketPath, http.MethodPost, "/cluster/leave", LeaveRequest{ID: id}, nil); err != nil {
		return fmt.Errorf("cluster leave: %w", err)
	}
	return nil
}
