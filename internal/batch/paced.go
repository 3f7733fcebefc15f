package batch

import (
	"context"
	"fmt"
	"sync"
)

// DefaultMaxInFlight bounds the calls a Paced limiter lets run at once. It
// is a safety net for a quota the governor does not know yet (it sets no
// limit until the first throttle), not a pace: a known quota of 2,000,000
// tokens per minute spent by 2,000-token calls that take 10 s needs about
// 170 in flight. It matches the idle connections keel's transport keeps
// across hosts (256).
const DefaultMaxInFlight = 256

// An AdmitLimiter is a Limiter that wants to hear when each call's first
// attempt has been admitted by keel's quota governor (engine.Call.OnAdmit).
type AdmitLimiter interface {
	Limiter
	// AcquireAdmit is Acquire for a call that will report its admission:
	// the caller must call admitted at most once, when the call's first
	// attempt has been admitted or refused by the quota governor, and done
	// exactly once, when the call has ended.
	AcquireAdmit(ctx context.Context) (admitted func(), done func(Outcome), err error)
}

// Paced lets keel's quota governor set a run's pace: it starts the next
// call as soon as the governor has admitted the previous one's first
// attempt (or refused it), so that one of the run's calls at a time waits
// in the governor's queue, and as many are in flight as the quota has room
// for. There is no worker count: a call is admitted when the target's
// tokens-per-minute quota can take its tokens (input estimate + max
// tokens), and the governor's queue does the waiting, behind interactive
// traffic (the runner sends Batch calls).
//
// MaxInFlight is only a safety net: a quota the governor does not know yet
// sets no limit until its first throttle (it only opens Batch calls in
// rounds that double every 50 ms), and a run should not open
// thousands of connections meanwhile. A Paced is safe for concurrent use.
type Paced struct {
	max int

	mu       sync.Mutex
	inflight int
	waiting  bool          // a started call has not been admitted yet
	changed  chan struct{} // closed and replaced when either changes
	peak     int
}

// NewPaced returns a Paced limiter letting at most maxInFlight calls run at
// once; zero means DefaultMaxInFlight.
func NewPaced(maxInFlight int) (*Paced, error) {
	if maxInFlight < 0 {
		return nil, fmt.Errorf("batch: paced limiter's MaxInFlight %d is negative", maxInFlight)
	}
	if maxInFlight == 0 {
		maxInFlight = DefaultMaxInFlight
	}
	return &Paced{max: maxInFlight, changed: make(chan struct{})}, nil
}

// InFlight returns the calls started and not ended.
func (p *Paced) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight
}

// Peak returns the most calls that were in flight at once.
func (p *Paced) Peak() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// Acquire implements Limiter for a call that reports no admission: it
// counts as admitted at once, so only MaxInFlight bounds such calls.
func (p *Paced) Acquire(ctx context.Context) (func(Outcome), error) {
	admitted, done, err := p.AcquireAdmit(ctx)
	if err != nil {
		return nil, err
	}
	admitted()
	return done, nil
}

// AcquireAdmit implements AdmitLimiter: it blocks until the previous call
// has been admitted and fewer than MaxInFlight calls run, or ctx ends.
func (p *Paced) AcquireAdmit(ctx context.Context) (func(), func(Outcome), error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		p.mu.Lock()
		if !p.waiting && p.inflight < p.max {
			p.inflight++
			p.peak = max(p.peak, p.inflight)
			p.waiting = true
			p.mu.Unlock()
			return p.permit()
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

func (p *Paced) permit() (func(), func(Outcome), error) {
	var admitOnce, doneOnce sync.Once
	admitted := func() {
		admitOnce.Do(func() {
			p.mu.Lock()
			p.waiting = false
			p.signal()
			p.mu.Unlock()
		})
	}
	done := func(Outcome) {
		doneOnce.Do(func() {
			admitted() // a call that ended before its admission frees the way too
			p.mu.Lock()
			p.inflight--
			p.signal()
			p.mu.Unlock()
		})
	}
	return admitted, done, nil
}

// signal wakes the callers waiting in AcquireAdmit; p.mu is held.
func (p *Paced) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}
