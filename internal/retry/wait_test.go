package retry

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

var errUpstream = errors.New("upstream: ServiceUnavailableException")

func TestWaitRefusesToCrossDeadline(t *testing.T) {
	tests := []struct {
		name     string
		left     time.Duration // deadline - now
		delay    time.Duration
		wantLeft time.Duration
	}{
		{name: "delay longer than time left", left: 2 * time.Second, delay: 3 * time.Second, wantLeft: 2 * time.Second},
		{name: "deadline a nanosecond short", left: time.Second - 1, delay: time.Second, wantLeft: time.Second - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// In the bubble ctx's own timer follows the bubble's clock, which
			// moves only when every goroutine is blocked: the deadline is
			// read, never reached.
			synctest.Test(t, func(t *testing.T) {
				fake := clock.NewFake(time.Now())
				ctx, cancel := context.WithDeadline(context.Background(), fake.Now().Add(tt.left))
				defer cancel()
				err := Wait(ctx, fake, tt.delay, errUpstream)
				if !errors.Is(err, ErrDeadline) || !errors.Is(err, errUpstream) {
					t.Fatalf("Wait = %v, want it to match ErrDeadline and the upstream error", err)
				}
				var we *WaitError
				if !errors.As(err, &we) || we.Delay != tt.delay || we.Left != tt.wantLeft {
					t.Fatalf("Wait error = %#v, want Delay %v and Left %v", we, tt.delay, tt.wantLeft)
				}
				if fake.Pending() != 0 {
					t.Fatalf("Wait left %d timers behind; it must fail without waiting", fake.Pending())
				}
			})
		})
	}
}

func TestWaitFullDelay(t *testing.T) {
	tests := []struct {
		name     string
		deadline time.Duration // 0: no deadline
		delay    time.Duration
	}{
		{name: "no deadline", delay: 20 * time.Second},
		{name: "fits before deadline", deadline: 10 * time.Second, delay: 3 * time.Second},
		{name: "ends exactly at deadline", deadline: 3 * time.Second, delay: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake := clock.NewFake(time.Now())
				ctx := context.Background()
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithDeadline(ctx, fake.Now().Add(tt.deadline))
					defer cancel()
				}
				done := make(chan error, 1)
				go func() { done <- Wait(ctx, fake, tt.delay, errUpstream) }()
				fake.WaitForTimers(1)
				fake.Advance(tt.delay - 1)
				select {
				case err := <-done:
					t.Fatalf("Wait returned %v before the delay had passed", err)
				default:
				}
				fake.Advance(1)
				if err := <-done; err != nil {
					t.Fatalf("Wait = %v, want nil", err)
				}
			})
		})
	}
}

func TestWaitCancelled(t *testing.T) {
	fake := clock.NewFake(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Wait(ctx, fake, time.Minute, errUpstream) }()
	fake.WaitForTimers(1)
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errUpstream) || errors.Is(err, ErrDeadline) {
		t.Fatalf("Wait = %v, want it to match context.Canceled and the upstream error only", err)
	}
	if fake.Pending() != 0 {
		t.Fatalf("Wait left %d timers running after cancellation", fake.Pending())
	}
}

func TestWaitImmediate(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		delay   time.Duration
		last    error
		wantErr error
	}{
		{name: "zero delay", ctx: context.Background(), delay: 0},
		{name: "negative delay", ctx: context.Background(), delay: -time.Second},
		{name: "already cancelled", ctx: cancelled, delay: time.Second, last: errUpstream, wantErr: context.Canceled},
		{name: "already cancelled, zero delay", ctx: cancelled, delay: 0, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := clock.NewFake(time.Now())
			err := Wait(tt.ctx, fake, tt.delay, tt.last)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Wait = %v, want %v", err, tt.wantErr)
			}
			if tt.last != nil && !errors.Is(err, tt.last) {
				t.Fatalf("Wait = %v, want it to wrap %v", err, tt.last)
			}
			if fake.Pending() != 0 {
				t.Fatal("Wait started a timer it did not need")
			}
		})
	}
}

func TestWaitErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *WaitError
		want string
	}{
		{name: "deadline", err: &WaitError{Delay: 3 * time.Second, Left: time.Second, Err: ErrDeadline, Last: errUpstream},
			want: "retry: not waiting 3s for a retry: only 1s left before the context deadline; last error: upstream: ServiceUnavailableException"},
		{name: "cancelled, no last error", err: &WaitError{Delay: time.Second, Err: context.Canceled},
			want: "retry: wait of 1s for a retry interrupted: context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWaitRealClock(t *testing.T) {
	start := time.Now()
	if err := Wait(context.Background(), nil, 2*time.Millisecond, nil); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
	if time.Since(start) < 2*time.Millisecond {
		t.Fatal("Wait with the real clock returned early")
	}
}
