package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// ErrNoNode is returned by CheckHealth when nothing listens on the socket.
var ErrNoNode = errors.New("no node is listening")

// ErrNotReady is returned by CheckHealth when the node answers but is not
// ready; the error text carries the node's reason.
var ErrNotReady = errors.New("node not ready")

// CheckHealth asks the node behind the admin socket at socketPath whether it
// is ready (GET /readyz). It returns nil on 200, an error wrapping
// ErrNotReady on 503, one wrapping ErrNoNode ("no node is listening on
// <path>") when the socket is missing or dead, and a plain error otherwise.
// It backs `chimalli health`.
func CheckHealth(ctx context.Context, socketPath string) error {
	code, err := adminCall(ctx, socketPath, http.MethodGet, "/readyz", nil, nil)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoNode):
		return err
	case code == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	if code != 0 {
		return fmt.Errorf("health: unexpected status %d: %w", code, err)
	}
	return fmt.Errorf("health: %w", err)
}
