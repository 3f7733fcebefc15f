package admission

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestFailsAtOnceWhenTheWaitWouldCrossTheDeadline(t *testing.T) {
	// 60,000 tokens a minute: 1,000 a second. The bucket is emptied first.
	tests := []struct {
		name     string
		opts     Options
		setup    func(t *testing.T, g *Governor) (cleanup func())
		est      Estimate
		class    Class
		deadline time.Duration // the context's, from now; 0: none (MaxWait)
		by       time.Duration // AdmitBy's deadline from now; 0: Admit
		wait     time.Duration
		ahead    int
	}{
		{name: "refill alone is too slow", est: Estimate{MaxTokens: 10000}, deadline: 5 * time.Second, wait: 10 * time.Second},
		{name: "max wait", opts: Options{MaxWait: 5 * time.Second}, est: Estimate{MaxTokens: 10000}, wait: 10 * time.Second},
		{name: "the caller's own deadline", est: Estimate{MaxTokens: 10000}, by: 5 * time.Second, wait: 10 * time.Second},
		{name: "the caller's deadline before the context's", est: Estimate{MaxTokens: 10000}, deadline: time.Minute, by: 5 * time.Second, wait: 10 * time.Second},
		{name: "the context's deadline before the caller's", est: Estimate{MaxTokens: 10000}, deadline: 5 * time.Second, by: time.Minute, wait: 10 * time.Second},
		{name: "the queue ahead counts", est: Estimate{MaxTokens: 10000}, deadline: 25 * time.Second, wait: 30 * time.Second, ahead: 1,
			setup: queue(Estimate{MaxTokens: 20000}, Interactive)},
		// While interactive calls wait, a batch call counts BatchEvery (4) of
		// them, at their mean size, ahead of it: 4 × 20,000 + 10,000.
		{name: "batch counts the interactive calls the rule lets go first", est: Estimate{MaxTokens: 10000}, class: Batch,
			deadline: 85 * time.Second, wait: 90 * time.Second, ahead: 1, setup: queue(Estimate{MaxTokens: 20000}, Interactive)},
		// An interactive call counts one batch call per BatchEvery interactive calls ahead: none here.
		{name: "interactive passes queued batch calls", est: Estimate{MaxTokens: 10000}, class: Interactive,
			deadline: 9 * time.Second, wait: 10 * time.Second, ahead: 1, setup: queue(Estimate{MaxTokens: 20000}, Batch)},
		// The second confirmed throttle in a row pauses (the first only
		// empties the bucket).
		{name: "the pause after a throttle counts", est: Estimate{MaxTokens: 1}, deadline: 500 * time.Millisecond, wait: time.Second,
			setup: func(t *testing.T, g *Governor) func() { g.Throttled(haiku); g.Throttled(haiku); return func() {} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			o := tt.opts
			o.Default = Quota{TokensPerMinute: 60000}
			g, clk := newBubbleGov(t, o)
			fill := mustTry(t, g, haiku, Estimate{MaxTokens: 60000})
			defer fill.Cancel()
			if tt.setup != nil {
				defer tt.setup(t, g)()
			}
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			start := clk.Now()
			queued := stats(t, g, haiku).Classes[tt.class].Queued
			var by time.Time
			if tt.by > 0 {
				by = start.Add(tt.by)
			}
			_, err := g.AdmitBy(ctx, haiku, tt.est, tt.class, by)
			var e *Error
			if !errors.Is(err, ErrWouldExceedDeadline) || !errors.As(err, &e) {
				t.Fatalf("Admit = %v, want ErrWouldExceedDeadline", err)
			}
			left := tt.deadline
			if left == 0 || (tt.by > 0 && tt.by < left) {
				left = tt.by
			}
			if left == 0 {
				left = o.MaxWait
			}
			if e.Wait != tt.wait || e.Left != left || e.Ahead != tt.ahead || e.Waited != 0 || e.Err != nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error fields: wait %v, left %v, ahead %d, waited %v, err %v; want %v, %v, %d, 0, nil",
					e.Wait, e.Left, e.Ahead, e.Waited, e.Err, tt.wait, left, tt.ahead)
			}
			if !strings.Contains(err.Error(), "admission: anthropic.claude-3-haiku-20240307-v1:0@us-east-1: ") ||
				!strings.Contains(err.Error(), "would fit in about "+tt.wait.String()) {
				t.Errorf("message %q", err)
			}
			// Had it waited for a timer, the bubble's clock would have moved.
			if waited := clk.Now().Sub(start); waited != 0 {
				t.Errorf("refused after %v, want at once: it must not wait", waited)
			}
			if s := stats(t, g, haiku); s.Classes[tt.class].Expired != 1 || s.Classes[tt.class].Queued != queued {
				t.Errorf("class stats %+v, want 1 expired and %d queued, as before", s.Classes[tt.class], queued)
			}
		}))
	}
}

// queue returns a setup that queues a call (without deadline) and a cleanup
// that cancels it.
func queue(est Estimate, c Class) func(t *testing.T, g *Governor) func() {
	return func(t *testing.T, g *Governor) func() {
		ctx, cancel := context.WithCancel(context.Background())
		ch := make(chan result, 1)
		admitAsync(ctx, g, haiku, est, c, "queued", ch)
		i, b := 1, 0
		if c == Batch {
			i, b = 0, 1
		}
		waitQueued(t, g, haiku, i, b)
		return func() {
			cancel()
			<-ch
		}
	}
}

func TestAdmitWaitsForRoom(t *testing.T) {
	synctest.Test(t, testAdmitWaitsForRoom)
}

func testAdmitWaitsForRoom(t *testing.T) {
	g, clk := newBubbleGov(t, known(60000))
	spend(t, g, haiku, 60000)
	ch := make(chan result, 1)
	// Until a reply has come back, half the time to the deadline is kept
	// for the reply: 30 s leaves 15 s to wait.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admitAsync(ctx, g, haiku, Estimate{MaxTokens: 10000}, Interactive, "w", ch)
	waitQueued(t, g, haiku, 1, 0)
	clk.Advance(9 * time.Second)
	select {
	case r := <-ch:
		t.Fatalf("admitted after 9s (%v); 10,000 tokens at 1,000/s take 10s", r.err)
	default:
	}
	clk.Advance(time.Second)
	r := recv(t, ch)
	if r.err != nil || !near(r.tk.Waited(), 10*time.Second) {
		t.Fatalf("Admit = %v after %v, want admitted after 10s", r.err, r.tk.Waited())
	}
	cs := stats(t, g, haiku).Classes[Interactive]
	if cs.Admitted != 2 || cs.Waited != 1 || !near(cs.WaitTotal, 10*time.Second) || !near(cs.WaitMax, 10*time.Second) {
		t.Errorf("class stats %+v", cs)
	}
}

func TestDeadlineComesWhileWaiting(t *testing.T) {
	const target = "admission: anthropic.claude-3-haiku-20240307-v1:0@us-east-1: "
	tests := []struct {
		name    string
		maxWait time.Duration
		by      bool          // AdmitBy with a deadline 10s away
		waited  time.Duration // when the call is refused
		want    string        // the error, after target
	}{
		// The context's deadline keeps time for the reply before it: 1 s
		// at first, 2 s once the call in flight has taken that long (see
		// slowReply), so the call is refused when it wakes at 9 s.
		{name: "context deadline", waited: 9 * time.Second,
			want: "no quota at once for 30000 tokens (waited 9s, 0 requests ahead) and replies take up to about 2s: past the deadline in 1s"},
		{name: "max wait", maxWait: 10 * time.Second, waited: 10 * time.Second,
			want: "no quota for 30000 tokens before the deadline (waited 10s, 0 requests ahead)"},
		{name: "the caller's own deadline", by: true, waited: 10 * time.Second,
			want: "no quota for 30000 tokens before the deadline (waited 10s, 0 requests ahead)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			g, clk := newBubbleGov(t, Options{Default: Quota{TokensPerMinute: 60000}, MaxWait: tt.maxWait})
			// Teach the governor that calls settle at a tenth of their hold,
			// so it expects the big call in flight to give back most of its
			// tokens, which it then never does; and that replies take 1 s.
			teach(t, g, clk, warmValues, 500, 49, time.Second)
			big := mustTry(t, g, haiku, Estimate{MaxTokens: 59000})
			defer big.Cancel()
			ctx := context.Background()
			var by time.Time
			switch {
			case tt.by:
				by = clk.Now().Add(10 * time.Second)
			case tt.maxWait == 0:
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
			}
			ch := make(chan result, 1)
			go func() {
				tk, err := g.AdmitBy(ctx, haiku, Estimate{MaxTokens: 30000}, Interactive, by)
				ch <- result{name: "w", tk: tk, err: err}
			}()
			waitQueued(t, g, haiku, 1, 0)
			clk.Advance(10 * time.Second)
			r := recv(t, ch)
			var e *Error
			if !errors.Is(r.err, ErrWouldExceedDeadline) || !errors.As(r.err, &e) || errors.Is(r.err, context.DeadlineExceeded) {
				t.Fatalf("Admit = %v, want ErrWouldExceedDeadline (not the context's error: refused before it)", r.err)
			}
			if r.err.Error() != target+tt.want || e.Waited != tt.waited || e.Wait != 0 {
				t.Errorf("error %q (waited %v, wait %v), want %q", r.err, e.Waited, e.Wait, target+tt.want)
			}
			if s := stats(t, g, haiku); s.Classes[Interactive].Queued != 0 || s.Classes[Interactive].Expired != 1 {
				t.Errorf("class stats %+v", s.Classes[Interactive])
			}
		}))
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, testCancelWhileWaiting)
}

func testCancelWhileWaiting(t *testing.T) {
	g, clk := newBubbleGov(t, known(60000))
	mustTry(t, g, haiku, Estimate{MaxTokens: 60000})
	ctx1, cancel1 := context.WithCancel(context.Background())
	ch1, ch2 := make(chan result, 1), make(chan result, 1)
	admitAsync(ctx1, g, haiku, Estimate{MaxTokens: 10000}, Interactive, "w1", ch1)
	waitQueued(t, g, haiku, 1, 0)
	admitAsync(context.Background(), g, haiku, Estimate{MaxTokens: 5000}, Interactive, "w2", ch2)
	waitQueued(t, g, haiku, 2, 0)
	cancel1()
	r := recv(t, ch1)
	if !errors.Is(r.err, context.Canceled) || errors.Is(r.err, ErrWouldExceedDeadline) ||
		r.err.Error() != "admission: anthropic.claude-3-haiku-20240307-v1:0@us-east-1: gave up after waiting 0s for quota: context canceled" {
		t.Fatalf("cancelled Admit = %v", r.err)
	}
	waitQueued(t, g, haiku, 1, 0)
	if cs := stats(t, g, haiku).Classes[Interactive]; cs.Cancelled != 1 {
		t.Errorf("Cancelled = %d, want 1", cs.Cancelled)
	}
	// w2 no longer waits behind w1's 10,000 tokens: 5 s, not 15 s.
	clk.Advance(5 * time.Second)
	if r := recv(t, ch2); r.err != nil || !near(r.tk.Waited(), 5*time.Second) {
		t.Fatalf("w2: %v after %v, want admitted after 5s", r.err, r.tk.Waited())
	}
}

// expiringCtx is a context that a test ends with context.DeadlineExceeded
// when it likes, as a real deadline would end it.
type expiringCtx struct {
	context.Context
	done chan struct{}
}

func (c expiringCtx) Done() <-chan struct{} { return c.done }

func (c expiringCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func TestContextDeadlineWhileWaiting(t *testing.T) {
	synctest.Test(t, testContextDeadlineWhileWaiting)
}

func testContextDeadlineWhileWaiting(t *testing.T) {
	g, _ := newBubbleGov(t, known(60000))
	mustTry(t, g, haiku, Estimate{MaxTokens: 60000})
	ctx := expiringCtx{Context: context.Background(), done: make(chan struct{})}
	ch := make(chan result, 1)
	admitAsync(ctx, g, haiku, Estimate{MaxTokens: 10000}, Batch, "w", ch)
	waitQueued(t, g, haiku, 0, 1)
	close(ctx.done)
	r := recv(t, ch)
	if !errors.Is(r.err, ErrWouldExceedDeadline) || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("Admit = %v, want ErrWouldExceedDeadline and context.DeadlineExceeded", r.err)
	}
	if cs := stats(t, g, haiku).Classes[Batch]; cs.Queued != 0 || cs.Expired != 1 || cs.Cancelled != 0 {
		t.Errorf("class stats %+v, want none queued, 1 expired, 0 cancelled", cs)
	}
}
