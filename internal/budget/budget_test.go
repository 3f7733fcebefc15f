package budget

import (
	"container/heap"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// event is one attempt of one call in the simulation.
type event struct {
	at      time.Time
	call    int
	attempt int // 1 for the first attempt
}

type queue []event

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)        { *q = append(*q, x.(event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// simResult is what a simulated run sent.
type simResult struct {
	calls, attempts, retries, refused int
	span                              time.Duration // first to last attempt
}

// simulate runs calls against an upstream where fails(call, attempt) says
// whether that attempt fails. Calls arrive at the given offsets from epoch;
// a failed attempt is retried, if the budget allows, after a full-jitter
// backoff (base 250 ms, doubling), with at most maxAttempts attempts per
// call: the engine's loop, reduced to what the budget sees.
func simulate(t *testing.T, b *Budget, fake *clock.Fake, arrivals []time.Duration, maxAttempts int, fails func(call, attempt int) bool, rnd *rand.Rand) simResult {
	t.Helper()
	q := &queue{}
	for i, off := range arrivals {
		heap.Push(q, event{at: epoch.Add(off), call: i, attempt: 1})
	}
	var r simResult
	r.calls = len(arrivals)
	for q.Len() > 0 {
		ev := heap.Pop(q).(event)
		if d := ev.at.Sub(fake.Now()); d > 0 {
			fake.Advance(d)
		}
		r.span = fake.Now().Sub(epoch)
		if ev.attempt == 1 {
			b.Request()
		}
		r.attempts++
		if !fails(ev.call, ev.attempt) || ev.attempt >= maxAttempts {
			continue
		}
		if !b.TryAcquire() {
			r.refused++
			continue
		}
		r.retries++
		ceiling := 250 * time.Millisecond << (ev.attempt - 1)
		delay := time.Duration(rnd.Int64N(int64(ceiling) + 1))
		heap.Push(q, event{at: fake.Now().Add(delay), call: ev.call, attempt: ev.attempt + 1})
	}
	return r
}

// steady spreads n arrivals evenly over d.
func steady(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d * time.Duration(i) / time.Duration(n)
	}
	return out
}

// bursty puts n arrivals in bursts of random size at random times within d.
func bursty(n int, d time.Duration, rnd *rand.Rand) []time.Duration {
	out := make([]time.Duration, 0, n)
	for len(out) < n {
		at := time.Duration(rnd.Int64N(int64(d)))
		for k := 1 + rnd.IntN(200); k > 0 && len(out) < n; k-- {
			out = append(out, at)
		}
	}
	return out
}

// TestOutageBoundsAttempts is the budget's reason to exist: against an
// upstream that fails every attempt, with up to 3 attempts per call, the
// attempts sent stay within (1+Ratio)×N + MinPerSecond×(T+Window), not 3×N.
func TestOutageBoundsAttempts(t *testing.T) {
	alwaysFails := func(int, int) bool { return true }
	tests := []struct {
		name     string
		opts     Options
		arrivals func(rnd *rand.Rand) []time.Duration
	}{
		{name: "steady 10000 calls over 100s, defaults", arrivals: func(*rand.Rand) []time.Duration { return steady(10000, 100*time.Second) }},
		{name: "steady 1000 calls over 10s, defaults", arrivals: func(*rand.Rand) []time.Duration { return steady(1000, 10*time.Second) }},
		{name: "bursts of up to 200 calls, 20000 calls over 60s", arrivals: func(r *rand.Rand) []time.Duration { return bursty(20000, 60*time.Second, r) }},
		{name: "all 5000 calls at once", arrivals: func(*rand.Rand) []time.Duration { return make([]time.Duration, 5000) }},
		{name: "slow trickle, 100 calls over 100s", arrivals: func(*rand.Rand) []time.Duration { return steady(100, 100*time.Second) }},
		{name: "ratio 0.05, 1s window", opts: Options{Ratio: 0.05, Window: time.Second},
			arrivals: func(*rand.Rand) []time.Duration { return steady(10000, 50*time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(7, 11))
			fake := clock.NewFake(epoch)
			o := tt.opts
			o.Clock = fake
			b, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			r := simulate(t, b, fake, tt.arrivals(rnd), 3, alwaysFails, rnd)
			ratio, minRate, window := b.opts.Ratio, b.opts.MinPerSecond, b.opts.Window
			bound := (1+ratio)*float64(r.calls) + minRate*(r.span+window).Seconds()
			t.Logf("calls %d, attempts %d (%.3f× calls), retries %d, refused %d, span %v, bound %.0f",
				r.calls, r.attempts, float64(r.attempts)/float64(r.calls), r.retries, r.refused, r.span, bound)
			if float64(r.attempts) > bound {
				t.Fatalf("sent %d attempts for %d calls, want at most %.0f", r.attempts, r.calls, bound)
			}
			if r.attempts <= r.calls {
				t.Fatalf("sent no retries at all (%d attempts for %d calls); the budget should allow some", r.attempts, r.calls)
			}
		})
	}
}

// TestHealthyRetriesFlow shows the budget does not get in the way when most
// calls succeed: every retry the policy wants is sent.
func TestHealthyRetriesFlow(t *testing.T) {
	tests := []struct {
		name        string
		failEvery   int // every failEvery-th call fails its first attempt
		failTwice   bool
		wantRefused bool
	}{
		{name: "1 in 20 calls fails once", failEvery: 20},
		{name: "1 in 50 calls fails twice", failEvery: 50, failTwice: true},
		{name: "1 in 12 calls fails once", failEvery: 12},
		// A third of calls failing wants 33% retries, far over the 10%
		// budget: most retries are refused.
		{name: "1 in 3 calls fails once", failEvery: 3, wantRefused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(5, 6))
			fake := clock.NewFake(epoch)
			b, err := New(Options{Clock: fake})
			if err != nil {
				t.Fatal(err)
			}
			fails := func(call, attempt int) bool {
				if call%tt.failEvery != 0 {
					return false
				}
				return attempt == 1 || (tt.failTwice && attempt == 2)
			}
			r := simulate(t, b, fake, steady(5000, 50*time.Second), 3, fails, rnd)
			t.Logf("calls %d, attempts %d, retries %d, refused %d", r.calls, r.attempts, r.retries, r.refused)
			if tt.wantRefused {
				if r.refused == 0 {
					t.Fatal("no retry refused, want the budget to refuse retries beyond 10%")
				}
				return
			}
			if r.refused != 0 {
				t.Fatalf("%d retries refused, want none when most calls succeed", r.refused)
			}
			if got := b.Stats().Denied; got != 0 {
				t.Fatalf("Stats().Denied = %d, want 0", got)
			}
		})
	}
}

func TestWindowSlides(t *testing.T) {
	fake := clock.NewFake(epoch)
	b, err := New(Options{Clock: fake, Ratio: 0.1, MinPerSecond: 0.5, Window: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Reserve: 0.5/s × 10 s = 5 retries with no traffic at all.
	for i := range 5 {
		if !b.TryAcquire() {
			t.Fatalf("retry %d refused, want the 5-retry reserve to allow it", i+1)
		}
	}
	if b.TryAcquire() {
		t.Fatal("6th retry allowed with no traffic, want it refused")
	}
	// 20 first attempts earn 2 more.
	for range 20 {
		b.Request()
	}
	if !b.TryAcquire() || !b.TryAcquire() {
		t.Fatal("retries earned by 20 first attempts refused")
	}
	if b.TryAcquire() {
		t.Fatal("retry beyond the earned share allowed")
	}
	s := b.Stats()
	if s.Requests != 20 || s.Retries != 7 || s.Allowed != 7 || s.Denied != 2 {
		t.Fatalf("Stats() = %+v, want 20 requests, 7 retries, 7 allowed, 2 denied", s)
	}
	// Nine seconds on, everything is still in the window.
	fake.Advance(9 * time.Second)
	if b.TryAcquire() {
		t.Fatal("retry allowed before the window moved on")
	}
	// One more second: the first slot, holding all of it, falls out.
	fake.Advance(time.Second)
	if s := b.Stats(); s.Requests != 0 || s.Retries != 0 {
		t.Fatalf("Stats() after a full window = %+v, want an empty window", s)
	}
	if !b.TryAcquire() {
		t.Fatal("retry refused after the window slid past the old retries")
	}
	// A long silence forgets everything, without looping once per slot missed.
	fake.Advance(1000 * time.Hour)
	if s := b.Stats(); s.Requests != 0 || s.Retries != 0 {
		t.Fatalf("Stats() after a long silence = %+v, want an empty window", s)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "zero value", opts: Options{}},
		{name: "ratio one", opts: Options{Ratio: 1}},
		{name: "minimum window", opts: Options{Window: MinWindow}},
		{name: "negative ratio", opts: Options{Ratio: -0.1}, wantErr: "budget: Ratio must be between 0 and 1 (0 = default 0.1), got -0.1"},
		{name: "ratio above one", opts: Options{Ratio: 1.5}, wantErr: "got 1.5"},
		{name: "negative minimum", opts: Options{MinPerSecond: -1}, wantErr: "budget: MinPerSecond must not be negative, got -1"},
		{name: "negative window", opts: Options{Window: -time.Second}, wantErr: "budget: Window must not be negative, got -1s"},
		{name: "window too short", opts: Options{Window: time.Millisecond}, wantErr: "budget: Window must be at least 10ms, got 1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.opts)
			if tt.wantErr == "" {
				if err != nil || b == nil {
					t.Fatalf("New(%+v) = %v, %v; want a budget", tt.opts, b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New(%+v) error = %v, want it to contain %q", tt.opts, err, tt.wantErr)
			}
		})
	}
}

func TestAcquireError(t *testing.T) {
	fake := clock.NewFake(epoch)
	b, err := New(Options{Clock: fake, MinPerSecond: 0.1, Window: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		b.Request()
	}
	// 0.1 × 30 + 0.1 × 10 = 4 retries.
	for range 4 {
		if err := b.Acquire(); err != nil {
			t.Fatalf("Acquire() = %v, want nil", err)
		}
	}
	err = b.Acquire()
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("Acquire() = %v, want ErrExhausted", err)
	}
	var ee *ExhaustedError
	if !errors.As(err, &ee) || ee.Requests != 30 || ee.Retries != 4 {
		t.Fatalf("Acquire() error = %#v, want 30 requests and 4 retries", ee)
	}
	const want = "budget: retry budget exhausted: 4 retries already sent for 30 first attempts in the last 10s (ratio 0.1, minimum 0.1/s)"
	if err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err, want)
	}
}

func TestNilBudgetAllowsEverything(t *testing.T) {
	var b *Budget
	b.Request()
	for range 100 {
		if !b.TryAcquire() || b.Acquire() != nil {
			t.Fatal("nil budget refused a retry")
		}
	}
	if s := b.Stats(); s != (Stats{}) {
		t.Fatalf("nil budget Stats() = %+v, want zero", s)
	}
}

// TestConcurrentUseKeepsTheBound hammers one budget from many goroutines
// (run with -race) and checks the grants stay within the window's allowance.
func TestConcurrentUseKeepsTheBound(t *testing.T) {
	fake := clock.NewFake(epoch)
	b, err := New(Options{Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 1000 {
				b.Request()
				for range 2 {
					if b.TryAcquire() {
						n++
					}
				}
			}
			mu.Lock()
			granted += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	// The fake clock never moved: one window holds all 8000 first attempts.
	if max := int(0.1*8000 + 1*10); granted > max || granted < max-1 {
		t.Fatalf("granted %d retries, want %d (the whole allowance, no more)", granted, max)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		b.Request()
		b.TryAcquire()
	})
	if allocs != 0 {
		t.Fatalf("Request+TryAcquire allocate %.1f times per run, want 0", allocs)
	}
}

func BenchmarkRequestTryAcquire(b *testing.B) {
	bud, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bud.Request()
			bud.TryAcquire()
		}
	})
}
