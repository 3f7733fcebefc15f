// Package clock is the time seam for every keel policy that waits or measures:
// production code uses Real, tests use a Fake that only moves when told (or,
// made by NewAuto or with AutoFire, by the waits it is asked for), so a
// backoff or a breaker cool-down is checked exactly and without sleeping. A
// test that needs real context deadlines as well runs Real in a
// testing/synctest bubble instead.
package clock

import (
	"context"
	"math"
	"sync"
	"time"
)

// Clock tells the time and makes timers. Implementations are safe for concurrent use.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer keel uses.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped it.
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Fake is a manual clock for tests: its time moves only when Advance or Fire
// is called, and its timers fire only then, unless AutoFire says otherwise. It is safe for concurrent use. Its
// zero value is not usable; call NewFake.
//
// The usual pattern for a goroutine that waits on a Fake timer is: start the
// goroutine, call WaitForTimers(1) so the timer surely exists, then Advance.
//
// With AutoFire, short timers fire as they are made and only the long ones
// wait for the test (Advance or Fire).
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	// changed is closed (and replaced) whenever a timer is added, so any
	// number of WaitForTimers and Fire callers wake up and look again.
	changed chan struct{}
	auto    time.Duration   // timers for less fire as made (AutoFire)
	waits   []time.Duration // the durations of those timers, in order
}

// NewFake returns a Fake clock set to t.
func NewFake(t time.Time) *Fake {
	return &Fake{now: t, changed: make(chan struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewAuto returns a Fake set to t whose every timer fires as it is made
// (AutoFire with no limit): a policy's waits are exact, take no real time,
// and need no goroutine to advance the clock; Waits records them. Use
// NewFake when a test must control when timers fire.
func NewAuto(t time.Time) *Fake { return NewFake(t).AutoFire(math.MaxInt64) }

// AutoFire makes every timer for less than d fire as it is made, after
// moving the time forward by its duration (Waits records it): a policy's
// short waits, such as backoffs, then take no real time and need no
// goroutine to advance the clock. Longer timers wait for Advance or Fire, so
// a long one (a watchdog's) fires exactly when the test says. Moving the
// time this way fires no pending timer. AutoFire returns f; call it before f
// is shared.
func (f *Fake) AutoFire(d time.Duration) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auto = d
	return f
}

// NewTimer returns a timer that fires when the fake time reaches Now()+d. A
// timer for d <= 0, or for less than AutoFire's duration, has already fired
// when NewTimer returns.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, d: d, at: f.now.Add(d), c: make(chan time.Time, 1)}
	// NewAuto's limit, the longest duration, fires every timer.
	auto := f.auto > 0 && (d < f.auto || f.auto == math.MaxInt64)
	if auto {
		f.now = f.now.Add(max(d, 0))
		f.waits = append(f.waits, d)
	}
	if d <= 0 || auto {
		t.fired = true
		t.c <- f.now
		return t
	}
	f.timers = append(f.timers, t)
	close(f.changed)
	f.changed = make(chan struct{})
	return t
}

// Advance moves the fake time forward by d and fires every timer that is due,
// earliest first. A negative d is treated as zero: fake time never goes back.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		d = 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	now := f.now
	// Fire in deadline order so a test that advances past several timers
	// sees them fire in the order real time would.
	for {
		var next *fakeTimer
		for _, t := range f.timers {
			if !t.at.After(now) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			return
		}
		next.fired = true
		next.c <- now
		f.remove(next)
	}
}

// Fire waits until a timer that match accepts is pending (any timer, when
// match is nil), moves the time to its deadline unless the time is past it
// already, and fires that timer alone: others due by then stay pending until
// Advance. Of several that match it fires the earliest. It reports false,
// having fired nothing, when ctx ends first.
func (f *Fake) Fire(ctx context.Context, match func(d time.Duration) bool) bool {
	for {
		f.mu.Lock()
		var next *fakeTimer
		for _, t := range f.timers {
			if (match == nil || match(t.d)) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next != nil {
			if next.at.After(f.now) {
				f.now = next.at
			}
			next.fired = true
			next.c <- f.now
			f.remove(next)
			f.mu.Unlock()
			return true
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// Waits returns the durations of the timers that fired as they were made
// because of AutoFire, in order.
func (f *Fake) Waits() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.waits...)
}

// Pending returns the number of timers that have not fired or been stopped.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// WaitForTimers blocks until at least n timers are pending. Tests call it
// before Advance so a goroutine that is about to wait is not skipped over.
func (f *Fake) WaitForTimers(n int) {
	for {
		f.mu.Lock()
		if len(f.timers) >= n {
			f.mu.Unlock()
			return
		}
		ch := f.changed
		f.mu.Unlock()
		<-ch
	}
}

// remove drops t from the pending list; f.mu must be held.
func (f *Fake) remove(t *fakeTimer) {
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return
		}
	}
}

type fakeTimer struct {
	f     *Fake
	d     time.Duration // what NewTimer was asked for, for Fire's match
	at    time.Time
	c     chan time.Time
	fired bool // fired or stopped; guarded by f.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	if t.fired {
		return false
	}
	t.fired = true
	t.f.remove(t)
	return true
}
