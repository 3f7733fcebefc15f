package budget

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/window"
)

// Defaults for zero Options fields.
const (
	// DefaultRatio lets retries add at most 10% to the first attempts.
	DefaultRatio = 0.1
	// DefaultMinPerSecond lets one retry a second through even when there is
	// almost no traffic to earn a share from.
	DefaultMinPerSecond = 1.0
	// DefaultWindow is how far back first attempts and retries are counted.
	DefaultWindow = 10 * time.Second
)

// slots is the number of buckets the window is divided into: the window
// slides by Window/slots at a time.
const slots = 10

// MinWindow is the shortest Window New accepts: one millisecond per slot.
const MinWindow = slots * time.Millisecond

// ErrExhausted reports that the retry budget allows no more retries for now.
// Errors returned by Acquire match it with errors.Is.
var ErrExhausted = errors.New("budget: retry budget exhausted")

// Options configures a Budget. The zero value means all defaults.
type Options struct {
	// Ratio is the share of first attempts that may be retried, in [0, 1]:
	// 0.1 lets 100 first attempts earn 10 retries. Zero means DefaultRatio.
	Ratio float64
	// MinPerSecond is a rate of retries allowed whatever the traffic,
	// counted over the window (1/s with a 10 s window allows 10 retries per
	// window). Zero means DefaultMinPerSecond.
	MinPerSecond float64
	// Window is how far back first attempts and retries are counted; it
	// slides in steps of Window/10. Zero means DefaultWindow; a non-zero
	// Window must be at least MinWindow.
	Window time.Duration
	// Clock measures the window; nil means clock.Real{}.
	Clock clock.Clock
	// Shared, if not nil, keeps the counts where other processes spending
	// the same budget see them: Request and TryAcquire each make one round
	// trip, and a retry is granted against the counts of all of them.
	// While Shared fails, the Budget decides with this process's own
	// counts (kept all along) and Shared.Share() of the MinPerSecond
	// reserve, and returns to Shared when it answers. Nil keeps the
	// counts in this process.
	Shared Shared
}

// Budget is a retry budget shared by every call that goes through it. It is
// safe for concurrent use. A nil *Budget is a disabled budget: it allows
// every retry.
//
// Whenever TryAcquire grants a retry, the retries in the window, that one
// included, number at most Ratio×(first attempts in the window) +
// MinPerSecond×Window. The bound over a whole run follows: take the last
// grant, its window, then the last grant before that window began, and so
// on; these windows do not overlap and hold every grant, and at most
// T/Window+1 of them fit in a run of length T. Hence retries ≤ Ratio×N +
// MinPerSecond×(T+Window) for N calls over T, whatever the timing.
type Budget struct {
	ratio   float64
	reserve float64 // MinPerSecond × Window: retries allowed per window whatever the traffic
	opts    Options // as resolved, for errors and Stats
	clk     clock.Clock

	mu                sync.Mutex
	requests, retries window.Ring[int64]
	denied            uint64 // since New
}

// New returns a Budget with the given options. It returns an error naming
// the field when one is out of range.
func New(o Options) (*Budget, error) {
	switch {
	case o.Ratio < 0 || o.Ratio > 1:
		return nil, fmt.Errorf("budget: Ratio must be between 0 and 1 (0 = default %g), got %g", DefaultRatio, o.Ratio)
	case o.MinPerSecond < 0:
		return nil, fmt.Errorf("budget: MinPerSecond must not be negative, got %g", o.MinPerSecond)
	case o.Window < 0:
		return nil, fmt.Errorf("budget: Window must not be negative, got %v", o.Window)
	case o.Window > 0 && o.Window < MinWindow:
		return nil, fmt.Errorf("budget: Window must be at least %v, got %v", MinWindow, o.Window)
	}
	o.Ratio = cmp.Or(o.Ratio, DefaultRatio)
	o.MinPerSecond = cmp.Or(o.MinPerSecond, DefaultMinPerSecond)
	o.Window = cmp.Or(o.Window, DefaultWindow)
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	now := o.Clock.Now()
	return &Budget{
		ratio:    o.Ratio,
		reserve:  o.MinPerSecond * o.Window.Seconds(),
		opts:     o,
		clk:      o.Clock,
		requests: window.New[int64](slots, o.Window/slots, now),
		retries:  window.New[int64](slots, o.Window/slots, now),
	}, nil
}

// Request records a call's first attempt: it earns the budget Ratio of a
// retry. Call it once per call, before any TryAcquire for that call.
func (b *Budget) Request() { b.RequestContext(context.Background()) }

// TryAcquire reports whether one retry may be sent now, and counts it if
// so. It never blocks. Most callers want TryAcquire; Acquire is the same with
// an error that says why a retry was refused.
func (b *Budget) TryAcquire() bool { return b.TryAcquireContext(context.Background()) }

// tryLocal is TryAcquire on the local counts, with reserve retries allowed
// whatever the traffic.
func (b *Budget) tryLocal(reserve float64) bool {
	now := b.clk.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if float64(b.retries.Sum(now)+1) > b.ratio*float64(b.requests.Sum(now))+reserve {
		b.denied++
		return false
	}
	b.retries.Add(now, 1)
	return true
}

// Acquire is TryAcquire returning nil when the retry may be sent and an
// *ExhaustedError, which matches ErrExhausted, when it may not; with
// Options.Shared, the error's counts are those of every process.
func (b *Budget) Acquire() error { return b.AcquireContext(context.Background()) }

// Stats is a snapshot of a Budget, for metrics and error messages.
type Stats struct {
	// Requests and Retries are the first attempts and granted retries in
	// the current window.
	Requests, Retries int64
	// Allowed is the number of retries the window allows in all:
	// Ratio×Requests + MinPerSecond×Window.
	Allowed float64
	// Denied counts the retries refused since the Budget was made.
	Denied uint64
}

// Stats returns the budget's counts as of now. A nil Budget returns zero
// Stats. With Options.Shared, the counts are this process's own.
func (b *Budget) Stats() Stats {
	if b == nil {
		return Stats{}
	}
	now := b.clk.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	requests := b.requests.Sum(now)
	return Stats{Requests: requests, Retries: b.retries.Sum(now),
		Allowed: b.ratio*float64(requests) + b.reserve, Denied: b.denied}
}

// ExhaustedError is the error Acquire returns when the budget refuses a
// retry. It matches ErrExhausted with errors.Is.
type ExhaustedError struct {
	// Requests and Retries are the window's counts when the retry was refused.
	Requests, Retries int64
	// Ratio, MinPerSecond and Window are the budget's settings.
	Ratio, MinPerSecond float64
	Window              time.Duration
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("budget: retry budget exhausted: %d retries already sent for %d first attempts in the last %v (ratio %g, minimum %g/s)",
		e.Retries, e.Requests, e.Window, e.Ratio, e.MinPerSecond)
}

// Is reports whether target is ErrExhausted.
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }
