package retry

import (
	"context"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// Wait blocks for d on clk, or until ctx is done, whichever comes first. It
// returns nil after a full wait.
//
// Wait fails at once, without waiting, when ctx is already done or when
// clk.Now()+d would cross ctx's deadline: a retry that cannot start in time
// is not worth the wait, and the caller can report the last upstream error
// straight away. The returned *WaitError wraps last (the error of the attempt
// that failed) and ErrDeadline or the context's error.
//
// The deadline is compared with clk.Now(), while the context's own timer
// runs on the wall clock: a test that pairs a fake clk with a real deadline
// must run in a testing/synctest bubble (where time.Now, timers and context
// deadlines all follow the bubble's clock) and start the fake clock at
// time.Now(). A deadline set from a fake clock fixed at some date expires
// for real once that date has passed. A nil clk means clock.Real{}.
// d <= 0 returns nil unless ctx is done.
func Wait(ctx context.Context, clk clock.Clock, d time.Duration, last error) error {
	if err := ctx.Err(); err != nil {
		return &WaitError{Delay: d, Err: err, Last: last}
	}
	if d <= 0 {
		return nil
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if deadline, ok := ctx.Deadline(); ok {
		if left := deadline.Sub(clk.Now()); d > left {
			return &WaitError{Delay: d, Left: max(left, 0), Err: ErrDeadline, Last: last}
		}
	}
	t := clk.NewTimer(d)
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		t.Stop()
		return &WaitError{Delay: d, Err: ctx.Err(), Last: last}
	}
}
