package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// watchdog detects a stalled stream: no response headers or first event
// within the first-event limit of sending, or no later event within the
// idle limit of keel starting to wait for it. It runs one goroutine per
// attempt, which sleeps a whole limit at a time and looks at how long the
// current wait has lasted, so the reader's hot path only stores a
// timestamp per frame. When a limit passes it cancels the attempt's
// context, which ends the wait; fired then tells a stall from other
// failures.
type watchdog struct {
	clk         clock.Clock
	first, idle time.Duration
	since       atomic.Int64 // UnixNano when the current wait began; 0 while not waiting
	gotEvent    atomic.Bool
	fired       atomic.Bool
	cancel      context.CancelFunc
	quit        chan struct{}
	done        chan struct{}
	once        sync.Once
}

// startWatchdog starts watching an attempt that is about to be sent: the
// wait for its first event begins now.
func startWatchdog(clk clock.Clock, first, idle time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{clk: clk, first: first, idle: idle, cancel: cancel, quit: make(chan struct{}), done: make(chan struct{})}
	w.since.Store(clk.Now().UnixNano())
	go w.run()
	return w
}

// limit is the limit the current wait is held to.
func (w *watchdog) limit() time.Duration {
	if w.gotEvent.Load() {
		return w.idle
	}
	return w.first
}

func (w *watchdog) run() {
	defer close(w.done)
	for {
		limit := w.limit()
		d := limit
		if s := w.since.Load(); s != 0 {
			d = time.Duration(s + int64(limit) - w.clk.Now().UnixNano())
			if d <= 0 {
				w.fired.Store(true)
				w.cancel()
				return
			}
		}
		t := w.clk.NewTimer(d)
		select {
		case <-t.C():
		case <-w.quit:
			t.Stop()
			return
		}
	}
}

// waiting marks the start of a wait for the next frame.
func (w *watchdog) waiting() {
	if w.since.Load() == 0 {
		w.since.Store(w.clk.Now().UnixNano())
	}
}

// event marks a frame's arrival: the wait is over, and later waits are
// held to the idle limit.
func (w *watchdog) event() {
	if !w.gotEvent.Load() {
		w.gotEvent.Store(true)
	}
	w.since.Store(0)
}

// stop ends the watchdog and reports whether it had fired.
func (w *watchdog) stop() bool {
	w.once.Do(func() { close(w.quit) })
	<-w.done
	return w.fired.Load()
}
