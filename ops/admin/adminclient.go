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

// ListBans returns the active bans of the node behind socketPath.
func ListBans(ctx context.Context, socketPath string) ([]BanEntry, error) {
	var out []BanEntry
	if _, err := adminCall(ctx, socketPath, http.MethodGet, "/bans", nil, &out); err != nil {
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
