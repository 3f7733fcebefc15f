package breaker

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// harness drives one breaker on a fake clock and records its state changes.
type harness struct {
	t       *testing.T
	fake    *clock.Fake
	b       *Breaker
	changes []string
}

func newHarness(t *testing.T, o Options) *harness {
	t.Helper()
	h := &harness{t: t, fake: clock.NewFake(epoch)}
	o.OnStateChange = func(model, region, tier string, from, to State) {
		if model != "m" || region != "r" {
			t.Errorf("OnStateChange got target %s@%s, want m@r", model, region)
		}
		h.changes = append(h.changes, from.String()+">"+to.String())
	}
	b, err := New("m", "r", o, h.fake)
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	return h
}

// calls lets n calls through and ends each with o; all must be allowed.
func (h *harness) calls(n int, o Outcome) {
	h.t.Helper()
	for i := range n {
		p, err := h.b.Allow()
		if err != nil {
			h.t.Fatalf("call %d of %d (%v): Allow() = %v, want a permit", i+1, n, o, err)
		}
		p.Done(o)
	}
}

func (h *harness) allow() Permit {
	h.t.Helper()
	p, err := h.b.Allow()
	if err != nil {
		h.t.Fatalf("Allow() = %v, want a permit", err)
	}
	return p
}

// refused checks Allow refuses, and returns the *OpenError.
func (h *harness) refused() *OpenError {
	h.t.Helper()
	p, err := h.b.Allow()
	if err == nil {
		p.Cancel()
		h.t.Fatalf("Allow() let a call through in state %v, want it refused", h.b.State())
	}
	if !errors.Is(err, ErrOpen) {
		h.t.Fatalf("Allow() error %v does not match ErrOpen", err)
	}
	var oe *OpenError
	if !errors.As(err, &oe) {
		h.t.Fatalf("Allow() error %T is not an *OpenError", err)
	}
	return oe
}

func (h *harness) want(s State) {
	h.t.Helper()
	if got := h.b.State(); got != s {
		h.t.Fatalf("State() = %v, want %v", got, s)
	}
}

func TestTransitions(t *testing.T) {
	// small checks the failure-rate rule alone; streak adds the
	// consecutive-failures rule's default.
	small := Options{Window: 10 * time.Second, MinCalls: 4, FailureRate: 0.5, Cooldown: 5 * time.Second, Probes: 2, Successes: 2, ConsecutiveFailures: -1}
	streak := small
	streak.ConsecutiveFailures = 0
	tests := []struct {
		name        string
		opts        Options
		steps       func(h *harness)
		wantChanges []string
	}{
		{
			name: "five failures in a row open it, whatever the window holds",
			opts: streak,
			steps: func(h *harness) {
				h.calls(40, Success)
				h.calls(DefaultConsecutiveFailures-1, Failure)
				h.want(Closed)
				h.calls(1, Failure) // 5 of 45, but five in a row
				h.want(Open)
			},
			wantChanges: []string{"closed>open"},
		},
		{
			name: "a success ends the streak",
			opts: streak,
			steps: func(h *harness) {
				h.calls(40, Success)
				h.calls(DefaultConsecutiveFailures-1, Failure)
				h.calls(1, Success)
				h.calls(DefaultConsecutiveFailures-1, Failure)
				h.want(Closed)
			},
		},
		{
			name: "a throttle ends the streak",
			opts: streak,
			steps: func(h *harness) {
				h.calls(40, Success)
				h.calls(DefaultConsecutiveFailures-1, Failure)
				h.calls(1, Responsive)
				h.calls(DefaultConsecutiveFailures-1, Failure)
				h.want(Closed)
			},
		},
		{
			name: "failures scattered among throttles are not in a row, and throttles are not in the window",
			opts: streak,
			steps: func(h *harness) {
				h.calls(10, Success)
				for range 9 {
					h.calls(1, Failure)
					h.calls(50, Responsive)
				}
				h.want(Closed)
				if s := h.b.Snapshot(); s.Successes != 10 || s.Failures != 9 {
					h.t.Fatalf("Snapshot() = %+v, want 10 successes and 9 failures", s)
				}
				h.calls(1, Failure) // 10 of 20: the rate rule still sees them
				h.want(Open)
			},
			wantChanges: []string{"closed>open"},
		},
		{
			name: "throttles do not dilute the failure rate",
			opts: small,
			steps: func(h *harness) {
				h.calls(3, Failure)
				h.calls(100, Responsive)
				h.want(Closed) // 3 outcomes, below MinCalls
				h.calls(1, Failure)
				h.want(Open) // 4 of 4
			},
			wantChanges: []string{"closed>open"},
		},
		{
			name: "a throttled probe frees its slot and neither closes nor reopens",
			opts: Options{MinCalls: 1, FailureRate: 1, Cooldown: time.Second, Probes: 1, Successes: 1},
			steps: func(h *harness) {
				h.calls(1, Failure)
				h.fake.Advance(time.Second)
				p := h.allow()
				h.refused()
				p.Done(Responsive)
				h.want(HalfOpen)
				h.calls(1, Success)
				h.want(Closed)
			},
			wantChanges: []string{"closed>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "stays closed below MinCalls even if all fail",
			opts: small,
			steps: func(h *harness) {
				h.calls(3, Failure)
				h.want(Closed)
			},
		},
		{
			name: "opens at MinCalls when the failure rate is reached",
			opts: small,
			steps: func(h *harness) {
				h.calls(2, Success)
				h.calls(1, Failure)
				h.want(Closed)
				h.calls(1, Failure) // 2 of 4 = 50%
				h.want(Open)
			},
			wantChanges: []string{"closed>open"},
		},
		{
			name: "a failure rate below the threshold keeps it closed",
			opts: small,
			steps: func(h *harness) {
				h.calls(6, Success)
				h.calls(5, Failure) // 5 of 11 < 50%
				h.want(Closed)
				h.calls(1, Failure) // 6 of 12
				h.want(Open)
			},
			wantChanges: []string{"closed>open"},
		},
		{
			name: "ignored outcomes count neither as failure nor as calls",
			opts: small,
			steps: func(h *harness) {
				h.calls(100, Ignored) // e.g. ValidationException
				h.calls(3, Failure)
				h.want(Closed) // 3 calls < MinCalls, however many were ignored
				h.calls(1, Failure)
				h.want(Open)
			},
			wantChanges: []string{"closed>open"},
		},
		{
			name: "old failures slide out of the window",
			opts: small,
			steps: func(h *harness) {
				h.calls(3, Failure)
				h.fake.Advance(10 * time.Second)
				h.calls(1, Failure)
				h.calls(2, Success)
				h.want(Closed) // only 1 failure of 3 calls is in the window
				if s := h.b.Snapshot(); s.Failures != 1 || s.Successes != 2 {
					h.t.Fatalf("Snapshot() = %+v, want 1 failure and 2 successes", s)
				}
			},
		},
		{
			name: "open refuses with the target and the probe time until the cool-down ends",
			opts: small,
			steps: func(h *harness) {
				h.calls(4, Failure)
				openedAt := h.fake.Now()
				oe := h.refused()
				if oe.Target != "m@r" || !oe.ProbeAt.Equal(openedAt.Add(5*time.Second)) || oe.HalfOpen {
					h.t.Fatalf("OpenError = %+v, want target m@r, probe at %v", oe, openedAt.Add(5*time.Second))
				}
				want := "breaker: circuit open for m@r: next probe at 2025-01-02T03:04:10Z"
				if oe.Error() != want {
					h.t.Fatalf("Error() = %q, want %q", oe.Error(), want)
				}
				h.fake.Advance(5*time.Second - 1)
				if again := h.refused(); again != oe {
					h.t.Fatal("a second refusal built a new error, want the same one (no allocation per refusal)")
				}
				if s := h.b.Snapshot(); s.State != Open || !s.ProbeAt.Equal(oe.ProbeAt) {
					h.t.Fatalf("Snapshot() = %+v, want open until %v", s, oe.ProbeAt)
				}
			},
			wantChanges: []string{"closed>open"},
		},
		{
			name: "half-opens after the cool-down and closes after enough successful probes",
			opts: small,
			steps: func(h *harness) {
				h.calls(4, Failure)
				h.fake.Advance(5 * time.Second)
				h.want(Open) // until someone asks
				p := h.allow()
				if !p.Probe() {
					h.t.Fatal("first call after the cool-down is not a probe")
				}
				h.want(HalfOpen)
				p.Done(Success)
				h.want(HalfOpen) // 1 of 2 successes
				h.calls(1, Success)
				h.want(Closed)
				// The window starts afresh: the failures that opened it are gone.
				h.calls(3, Failure)
				h.want(Closed)
			},
			wantChanges: []string{"closed>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "half-open lets at most Probes calls through at once",
			opts: small,
			steps: func(h *harness) {
				h.calls(4, Failure)
				h.fake.Advance(5 * time.Second)
				probeStart := h.fake.Now()
				p1, p2 := h.allow(), h.allow()
				oe := h.refused()
				if !oe.HalfOpen || !oe.ProbeAt.Equal(probeStart) {
					h.t.Fatalf("OpenError = %+v, want half-open since %v", oe, probeStart)
				}
				if !strings.Contains(oe.Error(), "half-open for m@r") {
					h.t.Fatalf("Error() = %q, want it to say half-open and name the target", oe.Error())
				}
				if s := h.b.Snapshot(); s.State != HalfOpen || s.Probes != 2 {
					h.t.Fatalf("Snapshot() = %+v, want 2 probes in flight", s)
				}
				p1.Done(Success) // frees a slot
				p3 := h.allow()
				h.refused()
				p2.Done(Success) // second success closes
				h.want(Closed)
				p3.Done(Failure) // a probe of the earlier spell: dropped
				h.want(Closed)
				if s := h.b.Snapshot(); s.Failures != 0 {
					h.t.Fatalf("Snapshot() = %+v, want the stale probe's failure dropped", s)
				}
			},
			wantChanges: []string{"closed>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "a failed probe opens it again for a fresh cool-down",
			opts: small,
			steps: func(h *harness) {
				h.calls(4, Failure)
				h.fake.Advance(7 * time.Second)
				p1, p2 := h.allow(), h.allow()
				h.fake.Advance(2 * time.Second)
				failedAt := h.fake.Now()
				p1.Done(Failure)
				h.want(Open)
				oe := h.refused()
				if !oe.ProbeAt.Equal(failedAt.Add(5 * time.Second)) {
					h.t.Fatalf("ProbeAt = %v, want a full cool-down after the failed probe: %v", oe.ProbeAt, failedAt.Add(5*time.Second))
				}
				p2.Done(Success) // the other probe's late success counts for nothing
				h.want(Open)
				h.fake.Advance(5 * time.Second)
				h.calls(2, Success)
				h.want(Closed)
			},
			wantChanges: []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "ignored and cancelled probes free their slot and change nothing",
			opts: Options{MinCalls: 1, FailureRate: 1, Cooldown: time.Second, Probes: 1, Successes: 1},
			steps: func(h *harness) {
				h.calls(1, Failure)
				h.want(Open)
				h.fake.Advance(time.Second)
				p := h.allow()
				h.refused()
				p.Done(Ignored) // e.g. the probe hit a ValidationException
				h.want(HalfOpen)
				p = h.allow()
				p.Cancel() // e.g. the retry budget said no
				h.want(HalfOpen)
				h.calls(1, Success)
				h.want(Closed)
			},
			wantChanges: []string{"closed>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "calls let in while closed do not count after it opens",
			opts: small,
			steps: func(h *harness) {
				late := []Permit{h.allow(), h.allow(), h.allow()}
				h.calls(4, Failure)
				h.want(Open)
				h.fake.Advance(5 * time.Second)
				h.allow() // the breaker is half-open with one probe out
				for _, p := range late {
					p.Done(Success) // not probes: must not close it
				}
				h.want(HalfOpen)
				if s := h.b.Snapshot(); s.Probes != 1 {
					h.t.Fatalf("Snapshot() = %+v, want the one real probe still in flight", s)
				}
			},
			wantChanges: []string{"closed>open", "open>half-open"},
		},
		{
			name: "FailureRate 1 needs every call in the window to fail",
			opts: Options{MinCalls: 3, FailureRate: 1, ConsecutiveFailures: -1},
			steps: func(h *harness) {
				h.calls(1, Success)
				h.calls(20, Failure)
				h.want(Closed)
				h.fake.Advance(DefaultWindow)
				h.calls(3, Failure)
				h.want(Open)
			},
			wantChanges: []string{"closed>open"},
		},
		{
			name: "defaults: 10 calls at 50% over 60s, 30s cool-down",
			opts: Options{},
			steps: func(h *harness) {
				h.calls(5, Success)
				h.calls(4, Failure)
				h.want(Closed)
				h.calls(1, Failure)
				h.want(Open)
				h.fake.Advance(30*time.Second - 1)
				h.refused()
				h.fake.Advance(1)
				h.calls(2, Success)
				h.want(Closed)
			},
			wantChanges: []string{"closed>open", "open>half-open", "half-open>closed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts)
			tt.steps(h)
			if fmt.Sprint(h.changes) != fmt.Sprint(tt.wantChanges) {
				t.Fatalf("state changes %v, want %v", h.changes, tt.wantChanges)
			}
		})
	}
}

func TestZeroPermitAndNilBreaker(t *testing.T) {
	var p Permit
	p.Done(Failure)
	p.Cancel()
	var b *Breaker
	got, err := b.Allow()
	if err != nil || got != (Permit{}) {
		t.Fatalf("nil Breaker Allow() = %v, %v; want the zero Permit and nil", got, err)
	}
	got.Done(Failure)
	if b.State() != Closed || b.Snapshot() != (Snapshot{}) {
		t.Fatal("nil Breaker does not report closed")
	}
}

func TestOptionsErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "zero value", opts: Options{}},
		{name: "all set", opts: Options{Window: time.Minute, MinCalls: 5, FailureRate: 0.3, Cooldown: time.Second, Probes: 3, Successes: 5, MaxTargets: 10}},
		{name: "negative window", opts: Options{Window: -time.Second}, wantErr: "breaker: Window must not be negative, got -1s"},
		{name: "window too short", opts: Options{Window: time.Millisecond}, wantErr: "breaker: Window must be at least 10ms, got 1ms"},
		{name: "negative min calls", opts: Options{MinCalls: -1}, wantErr: "breaker: MinCalls must not be negative, got -1"},
		{name: "failure rate above one", opts: Options{FailureRate: 1.5}, wantErr: "breaker: FailureRate must be in (0, 1] (0 = default 0.5), got 1.5"},
		{name: "negative failure rate", opts: Options{FailureRate: -0.5}, wantErr: "got -0.5"},
		{name: "negative cooldown", opts: Options{Cooldown: -time.Second}, wantErr: "breaker: Cooldown must not be negative"},
		{name: "negative probes", opts: Options{Probes: -2}, wantErr: "breaker: Probes must not be negative, got -2"},
		{name: "negative successes", opts: Options{Successes: -1}, wantErr: "breaker: Successes must not be negative"},
		{name: "negative max targets", opts: Options{MaxTargets: -1}, wantErr: "breaker: MaxTargets must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err1 := New("m", "r", tt.opts, nil)
			_, err2 := NewRegistry(tt.opts, nil)
			for _, err := range []error{err1, err2} {
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("error = %v, want nil", err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
			}
		})
	}
}

func TestStateAndOutcomeStrings(t *testing.T) {
	tests := []struct {
		name string
		got  fmt.Stringer
		want string
	}{
		{name: "closed", got: Closed, want: "closed"},
		{name: "half-open", got: HalfOpen, want: "half-open"},
		{name: "open", got: Open, want: "open"},
		{name: "unknown state", got: State(9), want: "State(9)"},
		{name: "success", got: Success, want: "success"},
		{name: "failure", got: Failure, want: "failure"},
		{name: "ignored", got: Ignored, want: "ignored"},
		{name: "responsive", got: Responsive, want: "responsive"},
		{name: "unknown outcome", got: Outcome(7), want: "Outcome(7)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s := tt.got.String(); s != tt.want {
				t.Fatalf("String() = %q, want %q", s, tt.want)
			}
		})
	}
}

// TestProbeLimitUnderConcurrency checks, with many goroutines and -race, that
// a half-open breaker never has more than Probes calls in flight.
func TestProbeLimitUnderConcurrency(t *testing.T) {
	fake := clock.NewFake(epoch)
	const probes = 3
	b, err := New("m", "r", Options{MinCalls: 1, FailureRate: 1, Cooldown: time.Second, Probes: probes, Successes: 1 << 30}, fake)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := b.Allow()
	p.Done(Failure)
	fake.Advance(time.Second)
	var inFlight, peak, admitted atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				p, err := b.Allow()
				if err != nil {
					continue
				}
				admitted.Add(1)
				n := inFlight.Add(1)
				for {
					old := peak.Load()
					if n <= old || peak.CompareAndSwap(old, n) {
						break
					}
				}
				inFlight.Add(-1)
				p.Done(Success)
			}
		}()
	}
	wg.Wait()
	if peak.Load() > probes {
		t.Fatalf("%d probes in flight at once, want at most %d", peak.Load(), probes)
	}
	if admitted.Load() == 0 {
		t.Fatal("no probe admitted")
	}
	if b.State() != HalfOpen {
		t.Fatalf("State() = %v, want half-open (Successes is out of reach)", b.State())
	}
}

func TestAllowDoneDoesNotAllocate(t *testing.T) {
	tests := []struct {
		name  string
		setup func(b *Breaker, fake *clock.Fake)
	}{
		{name: "closed", setup: func(*Breaker, *clock.Fake) {}},
		{name: "open", setup: func(b *Breaker, _ *clock.Fake) {
			for range DefaultMinCalls {
				p, _ := b.Allow()
				p.Done(Failure)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := clock.NewFake(epoch)
			r, err := NewRegistry(Options{}, fake)
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(r.Get("model", "region"), fake)
			allocs := testing.AllocsPerRun(1000, func() {
				p, err := r.Get("model", "region").Allow()
				if err == nil {
					p.Done(Success)
				}
			})
			if allocs != 0 {
				t.Fatalf("Get+Allow+Done allocate %.1f times per call, want 0", allocs)
			}
		})
	}
}

func BenchmarkGetAllowDone(b *testing.B) {
	r, err := NewRegistry(Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	r.Get("anthropic.claude-sonnet-4", "us-east-1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := r.Get("anthropic.claude-sonnet-4", "us-east-1").Allow()
			if err == nil {
				p.Done(Success)
			}
		}
	})
}

func BenchmarkAllowOpen(b *testing.B) {
	br, err := New("m", "r", Options{MinCalls: 1, Cooldown: time.Hour}, nil)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := br.Allow()
	p.Done(Failure)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := br.Allow(); err == nil {
				b.Fatal("open breaker let a call through")
			}
		}
	})
}
