package breaker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// fakeShared answers every call with view, or fails with err, and records
// the calls.
type fakeShared struct {
	view  View
	err   error
	calls []string
	ttl   time.Duration   // the last lease's
	ctx   context.Context // the last call's
}

func (f *fakeShared) Allow(_ context.Context, target string, lease uint64, probes int, ttl time.Duration) (View, error) {
	f.calls, f.ttl = append(f.calls, "allow"), ttl
	v := f.view
	v.Granted = v.State == HalfOpen
	return v, f.err
}

func (f *fakeShared) Open(ctx context.Context, _ string, _, _ time.Duration) (View, error) {
	f.calls, f.ctx = append(f.calls, "open"), ctx
	return f.view, f.err
}

func (f *fakeShared) EndProbe(ctx context.Context, _ string, _ uint64, _ Outcome, _ int, _ time.Duration) (View, error) {
	f.calls, f.ctx = append(f.calls, "end"), ctx
	return f.view, f.err
}

var errDown = errors.New("store down")

func TestSharedSeam(t *testing.T) {
	probeAt := epoch.Add(time.Hour)
	tests := []struct {
		name        string
		steps       func(t *testing.T, h *harness, f *fakeShared)
		wantCalls   int
		wantChanges []string
	}{
		{
			name: "the store's open state refuses, with its probe time",
			steps: func(t *testing.T, h *harness, f *fakeShared) {
				f.view = View{State: Open, Gen: 1, Since: epoch, ProbeAt: probeAt}
				if oe := h.refused(); !oe.ProbeAt.Equal(probeAt) || oe != h.refused() {
					t.Errorf("OpenError %v, want probe at %v, the same error each time", oe, probeAt)
				}
			},
			wantCalls:   2,
			wantChanges: []string{"closed>open"},
		},
		{
			name: "a failure that opens asks the store to open",
			steps: func(t *testing.T, h *harness, f *fakeShared) {
				p := h.allow()
				f.view = View{State: Open, Gen: 1, Since: epoch, ProbeAt: probeAt}
				p.Done(Failure)
				h.want(Open)
			},
			wantCalls:   2,
			wantChanges: []string{"closed>open"},
		},
		{
			name: "DoneContext's context goes to the store",
			steps: func(t *testing.T, h *harness, f *fakeShared) {
				type key struct{}
				ctx := context.WithValue(context.Background(), key{}, "call")
				p := h.allow()
				f.view = View{State: Open, Gen: 1, Since: epoch, ProbeAt: probeAt}
				p.DoneContext(ctx, Failure)
				if f.ctx != ctx {
					t.Errorf("the store got %v, want the call's context", f.ctx)
				}
			},
			wantCalls:   2,
			wantChanges: []string{"closed>open"},
		},
		{
			name: "the store failing, the local state decides",
			steps: func(t *testing.T, h *harness, f *fakeShared) {
				f.err = errDown
				h.allow().Done(Failure)
				h.want(Open)
				h.refused()
				h.fake.Advance(time.Minute)
				p := h.allow()
				if !p.Probe() {
					t.Fatal("want a local probe")
				}
				p.Done(Success)
				h.want(Closed)
			},
			wantCalls:   4, // allow, open, allow, allow
			wantChanges: []string{"closed>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "a probe the store fails to end is judged locally",
			steps: func(t *testing.T, h *harness, f *fakeShared) {
				f.view = View{State: HalfOpen, Gen: 2, Since: epoch}
				p := h.allow()
				f.err = errDown
				p.Done(Failure)
				h.want(Open)
			},
			wantCalls:   2,
			wantChanges: []string{"closed>half-open", "half-open>open"},
		},
		{
			name: "too few processes failing: open alone, probe alone, a failed probe asks again",
			steps: func(t *testing.T, h *harness, f *fakeShared) {
				f.view = View{Local: true}
				h.allow().Done(Failure)
				h.want(Open)
				h.refused() // no round trip while open alone
				h.fake.Advance(time.Minute)
				p := h.allow()
				if !p.Probe() {
					t.Fatal("want a local probe")
				}
				p.Done(Failure) // asks the store, which answers Local again
				h.want(Open)
				h.fake.Advance(time.Minute)
				h.allow().Done(Success)
				h.want(Closed)
				f.view = View{}
				h.allow() // closed: the store is asked again
			},
			wantCalls:   4, // allow, open, open, allow
			wantChanges: []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"},
		},
		{
			name: "a closed state the store forgot is no change",
			steps: func(t *testing.T, h *harness, f *fakeShared) {
				f.view = View{State: Closed, Gen: 4, Since: epoch}
				p := h.allow()
				f.view = View{}
				h.allow()
				p.Done(Failure) // still counts: MinCalls 1
				if len(f.calls) != 3 || f.calls[2] != "open" {
					t.Errorf("calls %v, want the failure to ask the store to open", f.calls)
				}
			},
			wantCalls: 3,
		},
		{
			name: "a whole cycle unseen starts the window afresh, with no state change",
			steps: func(t *testing.T, h *harness, f *fakeShared) {
				f.view = View{State: Closed, Gen: 4, Since: epoch}
				p := h.allow()
				f.view = View{State: Closed, Gen: 7, Since: epoch}
				h.allow()
				p.Done(Failure) // issued before the cycle: dropped
				if s := h.b.Snapshot(); s.Failures != 0 {
					t.Errorf("window holds %d failures, want 0", s.Failures)
				}
			},
			wantCalls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeShared{}
			h := newHarness(t, Options{MinCalls: 1, Cooldown: time.Minute, Successes: 1, Shared: f})
			tt.steps(t, h, f)
			if len(f.calls) != tt.wantCalls {
				t.Errorf("store calls %v, want %d", f.calls, tt.wantCalls)
			}
			if !slices.Equal(h.changes, tt.wantChanges) {
				t.Errorf("state changes %v, want %v", h.changes, tt.wantChanges)
			}
		})
	}
}

func TestOnlyJudgementVotes(t *testing.T) {
	tests := []struct {
		name      string
		o         Options
		outcomes  []Outcome
		wantCalls []string
	}{
		{"stray failures among successes are no vote", Options{MinCalls: 10, ConsecutiveFailures: 3},
			[]Outcome{Success, Failure, Success, Success, Failure, Success, Success, Failure, Success, Success}, []string{}},
		{"a streak votes once it opens", Options{MinCalls: 100, ConsecutiveFailures: 3},
			[]Outcome{Failure, Failure, Failure}, []string{"open"}},
		{"a failure rate over MinCalls votes", Options{MinCalls: 4, FailureRate: 0.5, ConsecutiveFailures: -1},
			[]Outcome{Success, Failure, Success, Failure}, []string{"open"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeShared{view: View{Local: true}}
			tt.o.Shared = f
			h := newHarness(t, tt.o)
			for _, o := range tt.outcomes {
				h.allow().Done(o)
			}
			calls := slices.DeleteFunc(slices.Clone(f.calls), func(c string) bool { return c == "allow" })
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("store calls besides allow: %v, want %v", calls, tt.wantCalls)
			}
		})
	}
}

func TestProbeLease(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline time.Duration // 0: none
		lease    time.Duration // Options.ProbeLease
		ahead    time.Duration // the breaker's clock ahead of the context's
		want     time.Duration
	}{
		{"no deadline: the default", 0, 0, 0, DefaultProbeLease},
		{"no deadline: ProbeLease", 0, 5 * time.Second, 0, 5 * time.Second},
		{"a deadline: it and the margin", 3 * time.Minute, 5 * time.Second, 0, 3*time.Minute + leaseMargin},
		{"a deadline by the breaker's clock", 3 * time.Minute, 5 * time.Second, time.Minute, 2*time.Minute + leaseMargin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeShared{view: View{State: HalfOpen, Gen: 1}}
				clk := clock.NewFake(time.Now())
				clk.Advance(tc.ahead)
				b, err := New("m", "r", Options{Shared: f, ProbeLease: tc.lease}, clk)
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				if tc.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.deadline)
					defer cancel()
				}
				if _, err := b.AllowContext(ctx); err != nil {
					t.Fatal(err)
				}
				if f.ttl != tc.want {
					t.Errorf("lease %v, want %v", f.ttl, tc.want)
				}
			})
		})
	}
}

// blockingShared holds Allow until release, then answers it with view;
// Open answers Local.
type blockingShared struct {
	fakeShared
	view    View
	entered chan struct{}
	release chan struct{}
}

func (s *blockingShared) Allow(context.Context, string, uint64, int, time.Duration) (View, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.view, nil
}

func (s *blockingShared) Open(context.Context, string, time.Duration, time.Duration) (View, error) {
	return View{Local: true}, nil
}

func TestLocalOpenAcrossAllowInFlight(t *testing.T) {
	probeAt := epoch.Add(time.Hour)
	tests := []struct {
		name        string
		inFlight    View // the answer of the Allow asked before the failure
		wantState   State
		wantAllowed bool
		wantChanges []string
		wantAlone   bool // Snapshot.Alone at the end
	}{
		{"a forgotten closed state keeps it open alone", View{}, Open, false, []string{"closed>open"}, true},
		{"a closed state keeps it open alone", View{State: Closed, Gen: 3, Since: epoch}, Open, false, []string{"closed>open"}, true},
		{"the fleet's open state rules", View{State: Open, Gen: 4, Since: epoch, ProbeAt: probeAt}, Open, false, []string{"closed>open"}, false},
		{"the fleet's half-open state rules", View{State: HalfOpen, Gen: 5, Since: epoch}, HalfOpen, false, []string{"closed>open", "open>half-open"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &blockingShared{view: tt.inFlight, entered: make(chan struct{}), release: make(chan struct{})}
			h := newHarness(t, Options{MinCalls: 100, ConsecutiveFailures: 1, Cooldown: time.Hour, Shared: s})
			p := Permit{b: h.b, gen: h.b.gen} // a call let in while closed
			allowed := make(chan bool)
			go func() {
				_, err := h.b.Allow()
				allowed <- err == nil
			}()
			<-s.entered
			p.Done(Failure) // trips the breaker: Open answers Local
			h.want(Open)
			close(s.release)
			if got := <-allowed; got != tt.wantAllowed {
				t.Errorf("the call in flight allowed %v, want %v", got, tt.wantAllowed)
			}
			h.want(tt.wantState)
			if !slices.Equal(h.changes, tt.wantChanges) {
				t.Errorf("state changes %v, want %v", h.changes, tt.wantChanges)
			}
			if got := h.b.Snapshot().Alone; got != tt.wantAlone {
				t.Errorf("Snapshot().Alone = %v, want %v", got, tt.wantAlone)
			}
		})
	}
}
