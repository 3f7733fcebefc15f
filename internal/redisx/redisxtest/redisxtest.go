// Package redisxtest opens redisx Clients for the tests of the stores that
// keep their state in Redis.
package redisxtest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// Timeout bounds the round trips of a Client from Open: far above
// redisx.DefaultTimeout, so that a pause of a loaded machine does not turn
// a test of the shared state, or a benchmark of it, into one of the local
// fallback.
const Timeout = 10 * time.Second

// Open returns a Client of srv named id, with Timeout and no logs, closed
// when the test ends.
func Open(t testing.TB, srv *redistest.Server, id string) *redisx.Client {
	t.Helper()
	c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, ID: id, Timeout: Timeout,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("redisx.Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// NoFailures fails a benchmark (or test) in which a round trip of c
// failed from now until the func it returns is called: a benchmark's
// figure would be the local fallback's.
func NoFailures(t testing.TB, c *redisx.Client) func() {
	before := c.Stats().Failures
	return func() {
		t.Helper()
		if s := c.Stats(); s.Failures != before {
			t.Fatalf("%d round trips failed (last: %s): the figure is not Redis's", s.Failures-before, s.LastError)
		}
	}
}

// Ended is a caller context that has ended before a round trip, and how.
type Ended struct {
	Name string
	Ctx  func() (context.Context, context.CancelFunc)
}

// EndedContexts returns the ways a caller's context can have ended before
// a store asks Redis: its deadline past, or cancelled.
func EndedContexts() []Ended {
	return []Ended{
		{"a deadline already past", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
		}},
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}},
	}
}
