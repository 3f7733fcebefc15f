package batch

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// Limiter decides how many of a batch's calls run at once. The batch runner
// asks it before each call and tells it how each call went.
//
// Paced hands the decision to keel's quota governor, which knows the
// tokens-per-minute quota and each call's size, where AIMD only sees
// throttles and latency. Implementations must be safe for concurrent use.
type Limiter interface {
	// Acquire blocks until a call may start, or ctx ends (then it returns
	// ctx's error and nothing is held). The caller must call done exactly
	// once, when the call has ended.
	Acquire(ctx context.Context) (done func(Outcome), err error)
}

// Outcome is how one call went, as a Limiter needs to know it.
type Outcome struct {
	// Start is when the call started (after Acquire); Latency is how long it
	// took, retries and their waits included.
	Start   time.Time
	Latency time.Duration
	// Throttled reports that at least one attempt was throttled
	// (ThrottlingException): the quota is spent, slow down.
	Throttled bool
	// Dropped reports a call that says nothing about the load (the run was
	// cancelled, the request was invalid): the limit stays as it is.
	Dropped bool
}

// AIMDOptions configure an AIMD limiter. The zero value means all defaults.
type AIMDOptions struct {
	// Initial is the starting limit; zero means 4.
	Initial int
	// Min and Max bound the limit; zero means 1 and 64 (keel's transport
	// keeps at most 64 idle connections per host).
	Min, Max int
	// Decrease multiplies the limit on congestion; zero means 0.7.
	Decrease float64
	// LatencyFactor: a call counts as congestion when the recent average
	// latency exceeds this many times the long-run average; zero means 3,
	// negative turns the latency signal off.
	LatencyFactor float64
}

// AIMD is an additive-increase, multiplicative-decrease concurrency limit,
// as TCP does for its window, with nothing to tune per workload.
//
// It starts in slow start: each successful call raises the limit by one, so
// it doubles every round trip, until the first congestion. After that each
// success raises it by 1/limit (about one per round trip). Congestion — a
// throttled call, or a recent latency average above LatencyFactor times the
// long-run one — multiplies it by Decrease, at most once per round trip: a
// call that started before the last decrease does not cut again, since it
// saw the load from before the cut.
//
// It takes no clock: every decision is made from the Outcome alone, so it is
// exact under test. It is safe for concurrent use.
type AIMD struct {
	opts AIMDOptions

	mu        sync.Mutex
	limit     float64
	inflight  int
	waiters   []chan struct{}
	slowStart bool
	lastCut   time.Time
	fast      float64 // latency EWMAs in seconds
	slow      float64
	samples   int
	cuts      int
}

// NewAIMD returns an AIMD limiter.
func NewAIMD(o AIMDOptions) (*AIMD, error) {
	if o.Initial == 0 {
		o.Initial = 4
	}
	if o.Min == 0 {
		o.Min = 1
	}
	if o.Max == 0 {
		o.Max = 64
	}
	if o.Decrease == 0 {
		o.Decrease = 0.7
	}
	if o.LatencyFactor == 0 {
		o.LatencyFactor = 3
	}
	switch {
	case o.Min < 1 || o.Max < o.Min:
		return nil, fmt.Errorf("batch: AIMD bounds %d..%d are not 1 <= min <= max", o.Min, o.Max)
	case o.Initial < o.Min || o.Initial > o.Max:
		return nil, fmt.Errorf("batch: AIMD initial limit %d is outside %d..%d", o.Initial, o.Min, o.Max)
	case !(o.Decrease > 0 && o.Decrease < 1):
		return nil, fmt.Errorf("batch: AIMD decrease %v is not between 0 and 1", o.Decrease)
	case o.LatencyFactor > 0 && o.LatencyFactor <= 1:
		return nil, fmt.Errorf("batch: AIMD latency factor %v must be above 1 (or negative to turn it off)", o.LatencyFactor)
	}
	return &AIMD{opts: o, limit: float64(o.Initial), slowStart: true}, nil
}

// Limit returns the current limit on calls in flight.
func (a *AIMD) Limit() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int(a.limit)
}

// InFlight returns the calls holding a permit.
func (a *AIMD) InFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inflight
}

// Cuts returns how many times the limit was decreased.
func (a *AIMD) Cuts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cuts
}

// Acquire implements Limiter.
func (a *AIMD) Acquire(ctx context.Context) (func(Outcome), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	if len(a.waiters) == 0 && a.inflight < int(a.limit) {
		a.inflight++
		a.mu.Unlock()
		return a.doneFunc(), nil
	}
	w := make(chan struct{})
	a.waiters = append(a.waiters, w)
	a.mu.Unlock()
	select {
	case <-w:
		return a.doneFunc(), nil
	case <-ctx.Done():
		a.mu.Lock()
		defer a.mu.Unlock()
		for i, x := range a.waiters {
			if x == w {
				a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
				return nil, ctx.Err()
			}
		}
		// Granted just as ctx ended: give the permit back.
		a.inflight--
		a.wake()
		return nil, ctx.Err()
	}
}

func (a *AIMD) doneFunc() func(Outcome) {
	var once sync.Once
	return func(o Outcome) { once.Do(func() { a.done(o) }) }
}

// wake grants permits to waiters, first come first served; a.mu is held.
func (a *AIMD) wake() {
	for len(a.waiters) > 0 && a.inflight < int(a.limit) {
		w := a.waiters[0]
		a.waiters = a.waiters[1:]
		a.inflight++
		close(w)
	}
}

func (a *AIMD) done(o Outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	if !o.Dropped {
		a.adjust(o)
	}
	a.wake()
}

// adjust moves the limit after one call; a.mu is held.
func (a *AIMD) adjust(o Outcome) {
	congested := o.Throttled || a.slowCall(o.Latency)
	if congested {
		if o.Start.After(a.lastCut) {
			a.limit = math.Max(float64(a.opts.Min), a.limit*a.opts.Decrease)
			a.lastCut = o.Start.Add(o.Latency)
			a.cuts++
		}
		a.slowStart = false
		return
	}
	if a.slowStart {
		a.limit++
	} else {
		a.limit += 1 / a.limit
	}
	a.limit = math.Min(a.limit, float64(a.opts.Max))
}

// slowCall feeds the latency averages and reports whether the recent
// average stands out from the long-run one. A throttled call's latency is
// not fed in: its backoff says nothing about the service's speed.
func (a *AIMD) slowCall(lat time.Duration) bool {
	if a.opts.LatencyFactor < 0 {
		return false
	}
	s := lat.Seconds()
	a.samples++
	if a.samples == 1 {
		a.fast, a.slow = s, s
		return false
	}
	a.fast += 0.2 * (s - a.fast)
	a.slow += 0.02 * (s - a.slow)
	return a.samples >= 20 && a.fast > a.opts.LatencyFactor*a.slow
}
