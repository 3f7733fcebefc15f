// Package fallback is the gate a store puts in front of Redis so that,
// while Redis fails, its callers fall back to local state at once instead
// of each paying a round trip's timeout.
//
// After a failed round trip the Gate refuses every round trip for
// RetryEvery; then it lets one through (the others keep being refused
// until it has answered), and a success opens the gate for all again.
package fallback

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/redisx"
)

// RetryEvery is how long a Gate refuses round trips after one failed: a
// second of local state drifts little from the fleet's, and one trial per
// second costs at most one call's Redis timeout per second.
const RetryEvery = time.Second

// ErrSkipped reports a round trip the Gate refused because Redis failed
// less than RetryEvery ago. It matches redisx.ErrUnavailable.
var ErrSkipped = fmt.Errorf("%w: skipped while failing", redisx.ErrUnavailable)

// Gate runs round trips through a redisx.Client while Redis answers, and
// refuses them for RetryEvery after one fails. It is safe for concurrent
// use. Make one with New.
type Gate struct {
	c   *redisx.Client
	clk clock.Clock

	mu        sync.Mutex
	downUntil time.Time // zero while Redis answers
	trying    bool      // one trial round trip is under way
}

// New returns a Gate over c whose retry interval is measured by clk (nil:
// clock.Real{}).
func New(c *redisx.Client, clk clock.Clock) *Gate {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Gate{c: c, clk: clk}
}

// Client returns the Client the Gate runs round trips through.
func (g *Gate) Client() *redisx.Client { return g.c }

// Do runs fn through the Client's Do unless the Gate is shut, in which
// case it returns ErrSkipped without a round trip. A failure
// (redisx.ErrUnavailable) shuts the Gate for RetryEvery, unless it was
// the caller's (redisx.ErrCallerDone), which leaves the Gate as it was;
// any other answer, an error reply (redisx.ErrReply) included, opens it.
func (g *Gate) Do(ctx context.Context, fn func(ctx context.Context, rdb *redis.Client) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	g.mu.Lock()
	trial := !g.downUntil.IsZero()
	if trial {
		if g.trying || g.clk.Now().Before(g.downUntil) {
			g.mu.Unlock()
			return ErrSkipped
		}
		g.trying = true
	}
	g.mu.Unlock()

	err := g.c.Do(ctx, fn)

	g.mu.Lock()
	defer g.mu.Unlock()
	if trial {
		g.trying = false
	}
	switch {
	case !errors.Is(err, redisx.ErrUnavailable) || errors.Is(err, redisx.ErrReply):
		g.downUntil = time.Time{}
	case !errors.Is(err, redisx.ErrCallerDone):
		g.downUntil = g.clk.Now().Add(RetryEvery)
	}
	return err
}

// Down reports whether the Gate is refusing round trips.
func (g *Gate) Down() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.downUntil.IsZero()
}
