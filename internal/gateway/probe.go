package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Probing the upstream for /readyz.
const (
	// DefaultProbeEvery is how often ProbeUpstream tries an upstream that
	// has not answered: often enough that a load balancer gated on /readyz
	// starts sending within seconds of the upstream coming up, seldom
	// enough to cost nothing.
	DefaultProbeEvery = 3 * time.Second
	// probeTimeout bounds one probe: an upstream that takes longer to
	// answer a GET of its root is not ready to serve calls either.
	probeTimeout = 5 * time.Second
)

// ProbeUpstream makes /readyz answer 200 once the upstream is reachable,
// so that a load balancer or orchestrator that sends traffic only to a
// ready gateway can start: it sends an unsigned GET to the upstream's base
// URL (the engine's default region) at once and then every ProbeEvery,
// until one gets an HTTP answer of any status (reachable is what counts;
// the answer is most likely a 403 or 404), or a call reaches the upstream
// first, or ctx ends. It returns nil once ready, else ctx's error.
func (s *Server) ProbeUpstream(ctx context.Context) error {
	base, err := s.opts.Engine.BaseURL("")
	if err != nil {
		return fmt.Errorf("gateway: probing the upstream: %w", err)
	}
	client := s.opts.Engine.HTTPClient()
	t := time.NewTicker(s.opts.ProbeEvery)
	defer t.Stop()
	for !s.Ready() {
		if probe(ctx, client, base.String()) {
			s.ready.Store(true)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// probe reports whether url gave an HTTP answer to a GET.
func probe(ctx context.Context, client *http.Client, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // a small answer, read so the connection is reused
	resp.Body.Close()
	return true
}
