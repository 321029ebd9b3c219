package virgil

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// pingPath is the resource Ping asks for: the card search, which every
// Virgil deployment serves.
const pingPath = "/card/v5/actions/search"

// Ping checks that the Virgil services answer, for readiness probes. It
// sends one unauthenticated request, so it needs no token: any answer below
// 500 (Virgil refuses the request) means the service is up. It returns an
// error wrapping ErrUnavailable when the service cannot be reached or
// answers with a server error. Without a deadline in ctx it applies the
// client's timeout.
func (c *Client) Ping(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+pingPath, nil)
	if err != nil {
		return fmt.Errorf("virgil: ping: %w", err)
	}
	req.Header.Set(headerAgent, c.agent)
	req.Header.Set("User-Agent", c.agent)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("virgil: ping: %w: %w", ErrUnavailable, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseSize))
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("virgil: ping: %w: status %d", ErrUnavailable, resp.StatusCode)
	}
	return nil
}
