package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// ErrNoNode is returned by CheckHealth when nothing listens on the socket.
var ErrNoNode = errors.New("no node is listening")

// ErrNotReady is returned by CheckHealth when the node answers but is not
// ready; the error text carries the node's reason.
var ErrNotReady = errors.New("node not ready")

// maxHealthBody bounds how much of a health response CheckHealth reads.
const maxHealthBody = 64 << 10

// CheckHealth asks the node behind the admin socket at socketPath whether it
// is ready (GET /readyz). It returns nil on 200, an error wrapping
// ErrNotReady on 503, one wrapping ErrNoNode ("no node is listening on
// <path>") when the socket is missing or dead, and a plain error otherwise.
// It backs `chimalli health`.
func CheckHealth(ctx context.Context, socketPath string) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://chimalli-admin/readyz", nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w on %s", ErrNoNode, socketPath)
		}
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	if err != nil {
		return fmt.Errorf("health: read response: %w", err)
	}
	var sb statusBody
	_ = json.Unmarshal(body, &sb) // a malformed body only loses the reason
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusServiceUnavailable:
		if sb.Error == "" {
			return ErrNotReady
		}
		return fmt.Errorf("%w: %s", ErrNotReady, sb.Error)
	}
	if sb.Error != "" {
		return fmt.Errorf("health: unexpected status %s: %s", resp.Status, sb.Error)
	}
	return fmt.Errorf("health: unexpected status %s", resp.Status)
}
