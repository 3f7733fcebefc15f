package batch

import (
	"context"
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)

func mustAIMD(t *testing.T, o AIMDOptions) *AIMD {
	t.Helper()
	a, err := NewAIMD(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// call acquires a permit and ends the call at once with o.
func call(t *testing.T, a *AIMD, o Outcome) {
	t.Helper()
	done, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done(o)
}

func ok(start time.Time) Outcome { return Outcome{Start: start, Latency: time.Second} }

func TestAIMD(t *testing.T) {
	tests := []struct {
		name string
		opts AIMDOptions
		run  func(t *testing.T, a *AIMD)
		want int // limit after run
		cuts int
	}{
		{name: "starts at Initial", opts: AIMDOptions{Initial: 5}, run: func(*testing.T, *AIMD) {}, want: 5},
		{name: "slow start adds one per success", opts: AIMDOptions{Initial: 4}, run: func(t *testing.T, a *AIMD) {
			for i := range 8 {
				call(t, a, ok(t0.Add(time.Duration(i)*time.Second)))
			}
		}, want: 12},
		{name: "a throttle cuts by Decrease and ends slow start", opts: AIMDOptions{Initial: 20}, run: func(t *testing.T, a *AIMD) {
			call(t, a, Outcome{Start: t0, Latency: time.Second, Throttled: true})
			// 14 now; additive increase: +1/limit per success, so 14 successes add about one.
			for i := range 14 {
				call(t, a, ok(t0.Add(time.Duration(10+i)*time.Second)))
			}
		}, want: 14, cuts: 1},
		{name: "one cut per round trip", opts: AIMDOptions{Initial: 20}, run: func(t *testing.T, a *AIMD) {
			// Calls that started before the first cut ended do not cut again.
			call(t, a, Outcome{Start: t0, Latency: 2 * time.Second, Throttled: true})
			call(t, a, Outcome{Start: t0.Add(time.Second), Latency: 2 * time.Second, Throttled: true})
			call(t, a, Outcome{Start: t0.Add(2 * time.Second), Latency: 2 * time.Second, Throttled: true})
			// This one started after the cut's call ended: a new congestion event.
			call(t, a, Outcome{Start: t0.Add(3 * time.Second), Latency: time.Second, Throttled: true})
		}, want: 9, cuts: 2},
		{name: "never below Min", opts: AIMDOptions{Initial: 3, Min: 2}, run: func(t *testing.T, a *AIMD) {
			for i := range 10 {
				call(t, a, Outcome{Start: t0.Add(time.Duration(i) * time.Hour), Latency: time.Second, Throttled: true})
			}
		}, want: 2, cuts: 10},
		{name: "never above Max", opts: AIMDOptions{Initial: 4, Max: 6}, run: func(t *testing.T, a *AIMD) {
			for i := range 50 {
				call(t, a, ok(t0.Add(time.Duration(i)*time.Second)))
			}
		}, want: 6},
		{name: "dropped calls change nothing", opts: AIMDOptions{Initial: 4}, run: func(t *testing.T, a *AIMD) {
			for range 5 {
				call(t, a, Outcome{Dropped: true, Throttled: true})
			}
		}, want: 4},
		{name: "latency far above the long-run average is congestion", opts: AIMDOptions{Initial: 10, Max: 10}, run: func(t *testing.T, a *AIMD) {
			for i := range 30 {
				call(t, a, ok(t0.Add(time.Duration(i)*time.Second)))
			}
			for i := range 10 {
				call(t, a, Outcome{Start: t0.Add(time.Duration(100+10*i) * time.Second), Latency: 20 * time.Second})
			}
		}, want: 2, cuts: 4},
		{name: "latency signal off", opts: AIMDOptions{Initial: 10, Max: 10, LatencyFactor: -1}, run: func(t *testing.T, a *AIMD) {
			for i := range 30 {
				call(t, a, ok(t0.Add(time.Duration(i)*time.Second)))
			}
			for i := range 10 {
				call(t, a, Outcome{Start: t0.Add(time.Duration(100+10*i) * time.Second), Latency: 20 * time.Second})
			}
		}, want: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustAIMD(t, tt.opts)
			tt.run(t, a)
			if a.Limit() != tt.want || a.Cuts() != tt.cuts {
				t.Errorf("limit %d after %d cuts; want %d after %d", a.Limit(), a.Cuts(), tt.want, tt.cuts)
			}
			if a.InFlight() != 0 {
				t.Errorf("%d permits still held", a.InFlight())
			}
		})
	}
}

func TestAIMDOptions(t *testing.T) {
	tests := []struct {
		name string
		opts AIMDOptions
	}{
		{name: "min above max", opts: AIMDOptions{Min: 5, Max: 4}},
		{name: "initial outside bounds", opts: AIMDOptions{Initial: 100, Max: 10}},
		{name: "decrease of one", opts: AIMDOptions{Decrease: 1}},
		{name: "negative decrease", opts: AIMDOptions{Decrease: -0.5}},
		{name: "latency factor of one", opts: AIMDOptions{LatencyFactor: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewAIMD(tt.opts); err == nil {
				t.Errorf("NewAIMD(%+v) accepted", tt.opts)
			}
		})
	}
}

func TestAIMDBlocksAtTheLimit(t *testing.T) {
	a := mustAIMD(t, AIMDOptions{Initial: 2})
	d1, _ := a.Acquire(context.Background())
	d2, _ := a.Acquire(context.Background())
	got := make(chan func(Outcome))
	go func() {
		d, err := a.Acquire(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- d
	}()
	select {
	case <-got:
		t.Fatal("a third permit was granted at limit 2")
	case <-time.After(20 * time.Millisecond):
		// Not a policy timing: only a check that the goroutine is still blocked.
	}
	d1(Outcome{Dropped: true})
	d3 := <-got
	if a.InFlight() != 2 {
		t.Errorf("in flight %d, want 2", a.InFlight())
	}
	// A done func called twice counts once.
	d2(Outcome{Dropped: true})
	d2(Outcome{Dropped: true})
	d3(Outcome{Dropped: true})
	if a.InFlight() != 0 {
		t.Errorf("in flight %d, want 0", a.InFlight())
	}
}

func TestAIMDAcquireCancelled(t *testing.T) {
	a := mustAIMD(t, AIMDOptions{Initial: 1, Max: 1})
	d, _ := a.Acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := a.Acquire(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire after cancel: %v", err)
	}
	d(ok(t0))
	if a.InFlight() != 0 {
		t.Errorf("a cancelled waiter holds a permit: in flight %d", a.InFlight())
	}
	if _, err := a.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with an ended context: %v", err)
	}
}
