package admission

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestConcurrentUse runs many callers through one Governor at once, on two
// targets, with every way a call can end (settled, cancelled, throttled,
// refused, its context cancelled while it waits). Run with -race. At the
// end nothing may be in flight or queued, and the counts must add up.
//
// It runs in a synctest bubble: the callers run in parallel as anywhere
// else, and the bubble's clock moves whenever all of them wait.
func TestConcurrentUse(t *testing.T) {
	synctest.Test(t, testConcurrentUse)
}

func testConcurrentUse(t *testing.T) {
	g, _ := newBubbleGov(t, Options{
		Default:  Quota{TokensPerMinute: 3_000_000, RequestsPerMinute: 6000},
		Targets:  map[Target]Quota{sonnet: {}}, // unknown: learned
		MaxWait:  2 * time.Second,
		CoolDown: 100 * time.Millisecond,
		Recovery: 2 * time.Second,
	})
	const workers, calls = 8, 150
	var ok, expired, cancelled, tooLarge atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for range calls {
				tg := haiku
				if rng.IntN(2) == 0 {
					tg = sonnet
				}
				est := Estimate{InputTokens: rng.IntN(5000), MaxTokens: rng.IntN(8000)}
				ctx, cancel := context.WithCancel(context.Background())
				if rng.IntN(10) == 0 {
					// Cancelled while it waits, or after it is granted:
					// the bubble's clock moves only when every caller is
					// blocked, in Admit or done.
					time.AfterFunc(time.Duration(1+rng.IntN(300))*time.Millisecond, cancel)
				}
				tk, err := g.Admit(ctx, tg, est, Class(rng.IntN(2)))
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrWouldExceedDeadline), errors.Is(err, ErrOverloaded):
					expired.Add(1)
					continue
				case errors.Is(err, context.Canceled):
					cancelled.Add(1)
					continue
				case errors.Is(err, ErrTooLarge):
					tooLarge.Add(1)
					continue
				default:
					t.Errorf("Admit: %v", err)
					continue
				}
				switch rng.IntN(20) {
				case 0, 1, 2:
					tk.Cancel()
				case 3:
					tk.Throttled()
				default:
					tk.Settle(Usage{InputTokens: est.InputTokens, OutputTokens: rng.IntN(est.MaxTokens + 1)})
				}
			}
		}()
	}
	wg.Wait()

	if total := ok.Load() + expired.Load() + cancelled.Load() + tooLarge.Load(); total != workers*calls {
		t.Fatalf("%d outcomes for %d calls", total, workers*calls)
	}
	var admitted, ended, exp, canc, waited int64
	for _, tg := range []Target{haiku, sonnet} {
		s := stats(t, g, tg)
		if s.InFlight != 0 || s.InFlightTokens != 0 || s.Classes[0].Queued != 0 || s.Classes[1].Queued != 0 {
			t.Errorf("%s: %d in flight holding %d, queued %d+%d; want nothing left", tg, s.InFlight, s.InFlightTokens,
				s.Classes[0].Queued, s.Classes[1].Queued)
		}
		for _, c := range s.Classes {
			admitted += c.Admitted
			exp += c.Expired + c.Shed
			canc += c.Cancelled
			waited += c.Waited
		}
		ended += s.Settled + s.Cancelled + s.Throttles
	}
	// A call granted just as its context ended is admitted and then
	// cancelled by Admit itself: it counts in admitted and ended, not in ok.
	if admitted != ended || exp != expired.Load() || canc != cancelled.Load() {
		t.Errorf("admitted %d, ended %d; expired %d (callers saw %d); cancelled %d (callers saw %d)",
			admitted, ended, exp, expired.Load(), canc, cancelled.Load())
	}
	t.Logf("%d admitted (%d after waiting), %d refused for the deadline or as overloaded, %d cancelled while waiting, %d too large",
		ok.Load(), waited, expired.Load(), cancelled.Load(), tooLarge.Load())
}
