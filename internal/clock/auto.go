package clock

import (
	"sync"
	"time"
)

// Auto is a fake clock for tests whose timers fire at once, after moving the
// time forward by their duration: a policy's waits are exact and take no real
// time, with no goroutine needed to advance the clock. It records every wait.
// It is safe for concurrent use. Use Fake instead when a test must control
// when timers fire.
type Auto struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

// NewAuto returns an Auto clock set to t.
func NewAuto(t time.Time) *Auto { return &Auto{now: t} }

// Now returns the clock's time.
func (c *Auto) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer moves the time forward by d (when positive), records the wait and
// returns a timer that has already fired.
func (c *Auto) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	c.waits = append(c.waits, d)
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return firedTimer(ch)
}

// Advance moves the time forward by d without recording a wait.
func (c *Auto) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Waits returns a copy of the durations timers were made for, in order.
func (c *Auto) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

type firedTimer chan time.Time

func (t firedTimer) C() <-chan time.Time { return t }
func (t firedTimer) Stop() bool          { return false }
