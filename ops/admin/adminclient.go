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

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/raftstore/cluster"
)

// maxAdminBody bounds how much of an admin response a client reads.
const maxAdminBody = 4 << 20

// adminCall sends method path (with a JSON body when in is not nil) to the
// admin socket at socketPath and decodes a 2xx JSON answer into out. A
// non-2xx answer returns the node's error text; a missing or dead socket
// returns an error wrapping ErrNoNode.
func adminCall(ctx context.Context, socketPath, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	resp, err := adminDo(ctx, socketPath, method, path, body, "application/json")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := answerError(resp); err != nil {
		return resp.StatusCode, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read response: %w", err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode response: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// adminDo sends method path, with body (of contentType) unless it is nil,
// to the admin socket at socketPath and returns the response, whose body
// the caller closes. A missing or dead socket returns an error wrapping
// ErrNoNode.
func adminDo(ctx context.Context, socketPath, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		DisableKeepAlives: true,
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://chimalli-admin"+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w on %s", ErrNoNode, socketPath)
		}
		return nil, err
	}
	return resp, nil
}

// answerError returns the node's error text for a non-2xx answer, nil for
// a 2xx one.
func answerError(resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if err != nil {
		return fmt.Errorf("%s; read response: %w", http.StatusText(resp.StatusCode), err)
	}
	var sb statusBody
	if json.Unmarshal(b, &sb) == nil && sb.Error != "" {
		return errors.New(sb.Error)
	}
	return errors.New(http.StatusText(resp.StatusCode))
}

// callFor sends method path, with the JSON body in unless it is nil, to
// the admin socket at socketPath and returns the answer decoded as T; an
// error says what the call was for.
func callFor[T any](ctx context.Context, socketPath, method, path string, in any, what string) (T, error) {
	var out T
	if _, err := adminCall(ctx, socketPath, method, path, in, &out); err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// callNoAnswer is callFor for a call whose answer the caller does not need.
func callNoAnswer(ctx context.Context, socketPath, method, path string, in any, what string) error {
	if _, err := adminCall(ctx, socketPath, method, path, in, nil); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// ListBans returns the active bans of the node behind socketPath. With
// consistent, the node first catches up with the leader (a linearizable
// read: every ban committed before the call is listed).
func ListBans(ctx context.Context, socketPath string, consistent bool) ([]BanEntry, error) {
	return callFor[[]BanEntry](ctx, socketPath, http.MethodGet, "/bans"+readQuery(url.Values{}, consistent), nil, "list bans")
}

// AddBan bans a prefix on the node behind socketPath and returns the ban.
func AddBan(ctx context.Context, socketPath string, req BanRequest) (BanEntry, error) {
	return callFor[BanEntry](ctx, socketPath, http.MethodPost, "/bans", req, "add ban")
}

// LiftBan lifts a prefix's ban on the node behind socketPath.
func LiftBan(ctx context.Context, socketPath, prefix string) error {
	return callNoAnswer(ctx, socketPath, http.MethodDelete, "/bans?prefix="+url.QueryEscape(prefix), nil, "lift ban")
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
	return callFor[[]RuleEntry](ctx, socketPath, http.MethodGet, "/rules"+readQuery(q, consistent), nil, "list rules")
}

// AddRule adds an access rule through the node behind socketPath.
func AddRule(ctx context.Context, socketPath string, req RuleRequest) (RuleChange, error) {
	return callFor[RuleChange](ctx, socketPath, http.MethodPost, "/rules", req, "add "+req.List+" rule")
}

// RemoveRule removes an access rule through the node behind socketPath.
func RemoveRule(ctx context.Context, socketPath, list, prefix string) error {
	q := url.Values{"list": {list}, "prefix": {prefix}}
	return callNoAnswer(ctx, socketPath, http.MethodDelete, "/rules?"+q.Encode(), nil, "remove "+list+" rule")
}

// ListPins returns the TOFU pins of kind (claim, upstream, or "" for both)
// from the node behind socketPath; consistent as for ListBans.
func ListPins(ctx context.Context, socketPath, kind string, consistent bool) ([]PinEntry, error) {
	q := url.Values{}
	if kind != "" {
		q.Set("kind", kind)
	}
	return callFor[[]PinEntry](ctx, socketPath, http.MethodGet, "/trust"+readQuery(q, consistent), nil, "list pins")
}

// ApproveTrust pins a subject to the certificate req names, through the
// node behind socketPath, and returns the pin now in force.
func ApproveTrust(ctx context.Context, socketPath string, req ApproveRequest) (TrustChange, error) {
	return callFor[TrustChange](ctx, socketPath, http.MethodPost, "/trust/approve", req, "approve")
}

// RevokeTrust forgets the pin of kind and subject through the node behind
// socketPath.
func RevokeTrust(ctx context.Context, socketPath, kind, subject string) error {
	q := url.Values{"kind": {kind}, "subject": {subject}}
	return callNoAnswer(ctx, socketPath, http.MethodDelete, "/trust?"+q.Encode(), nil, "revoke")
}

// ClusterStatus returns the cluster as the node behind socketPath sees it.
func ClusterStatus(ctx context.Context, socketPath string) (cluster.Status, error) {
	return callFor[cluster.Status](ctx, socketPath, http.MethodGet, "/cluster/status", nil, "cluster status")
}

// JoinCluster admits a node to the cluster through the node behind
// socketPath.
func JoinCluster(ctx context.Context, socketPath string, req JoinRequest) error {
	return callNoAnswer(ctx, socketPath, http.MethodPost, "/cluster/join", req, "cluster join")
}

// LeaveCluster removes a node from the cluster through the node behind
// socketPath.
func LeaveCluster(ctx context.Context, socketPath, id string) error {
	return callNoAnswer(ctx, socketPath, http.MethodPost, "/cluster/leave", LeaveRequest{ID: id}, "cluster leave")
}

// SaveSnapshot writes a backup of the cluster's state, from the node
// behind socketPath, to w and returns its header. It checks the backup's
// length and checksum as it comes: an error means w holds no usable
// backup.
func SaveSnapshot(ctx context.Context, socketPath string, w io.Writer) (raftstore.BackupHeader, error) {
	resp, err := adminDo(ctx, socketPath, http.MethodGet, "/cluster/snapshot", nil, "")
	if err != nil {
		return raftstore.BackupHeader{}, fmt.Errorf("snapshot save: %w", err)
	}
	defer resp.Body.Close()
	if err := answerError(resp); err != nil {
		return raftstore.BackupHeader{}, fmt.Errorf("snapshot save: %w", err)
	}
	h, err := raftstore.VerifyBackup(io.TeeReader(resp.Body, w))
	if err != nil {
		return h, fmt.Errorf("snapshot save: %w", err)
	}
	return h, nil
}

// RestoreSnapshot replaces the cluster's state with the backup r holds,
// through the node behind socketPath (which checks the whole backup
// first: a bad one changes nothing).
func RestoreSnapshot(ctx context.Context, socketPath string, r io.Reader) (cluster.RestoreResult, error) {
	resp, err := adminDo(ctx, socketPath, http.MethodPost, "/cluster/snapshot/restore", r, backupContentType)
	if err != nil {
		return cluster.RestoreResult{}, fmt.Errorf("snapshot restore: %w", err)
	}
	defer resp.Body.Close()
	if err := answerError(resp); err != nil {
		return cluster.RestoreResult{}, fmt.Errorf("snapshot restore: %w", err)
	}
	var res cluster.RestoreResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAdminBody)).Decode(&res); err != nil {
		return res, fmt.Errorf("snapshot restore: decode response: %w", err)
	}
	return res, nil
}
