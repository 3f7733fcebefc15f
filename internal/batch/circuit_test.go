package batch

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/engine"
)

// How a circuitDoer's refusal looks.
const (
	refusedOpen     = iota // CircuitOpen, wrapping the breaker's *OpenError
	refusedHalfOpen        // CircuitOpen, half-open with no probe slot free
	refusedLate            // a throttle, then the breaker refused the retry: only the report shows it
)

// circuitDoer refuses every call as an open breaker would until openUntil,
// reopening every cool-down (as failed probes would), then answers as
// fakeDoer does. It runs on the real clock: use it in a synctest bubble.
func circuitDoer(openUntil time.Time, refusal int) (*fakeDoer, Doer) {
	const cooldown = 30 * time.Second
	ok := newFakeDoer(clock.Real{})
	start := time.Now()
	return ok, doerFunc(func(ctx context.Context, c *engine.Call) (*http.Response, *engine.Report, error) {
		now := time.Now()
		if !now.Before(openUntil) {
			return ok.Do(ctx, c)
		}
		ok.mu.Lock()
		ok.sends[promptID(c.Body)]++
		ok.mu.Unlock()
		t := attempt.Target{Model: c.Model, Region: "us-east-1"}
		skipped := engine.Attempt{Target: t, Start: now, Skipped: true, Code: catalog.CodeCircuitOpen}
		rep := &engine.Report{Target: t, Attempts: []engine.Attempt{skipped}}
		probeAt := start.Add(now.Sub(start).Truncate(cooldown) + cooldown)
		oe := &breaker.OpenError{Target: t.String(), ProbeAt: minTime(probeAt, openUntil)}
		switch refusal {
		case refusedHalfOpen:
			oe = &breaker.OpenError{Target: t.String(), ProbeAt: start, HalfOpen: true}
		case refusedLate:
			rep.Attempts = append([]engine.Attempt{{Target: t, Start: now, Code: catalog.CodeThrottling, Status: 429}}, skipped)
			e := catalog.Must(catalog.CodeThrottling)
			return nil, rep, &engine.Error{Entry: e, Code: e.Code, Status: e.Status, Message: "Too many tokens", Report: rep}
		}
		return nil, rep, &engine.Error{Entry: catalog.Must(catalog.CodeCircuitOpen), Code: catalog.CodeCircuitOpen, Report: rep, Err: oe}
	})
}

// TestRunWaitsForOpenCircuit: a record whose call an open breaker refused
// waits until the breaker lets calls through, without spending its requeue
// allowance, instead of being sent again and again while it is open.
func TestRunWaitsForOpenCircuit(t *testing.T) {
	const records = 20
	tests := []struct {
		name        string
		open        time.Duration
		refusal     int
		maxRequeues int
		maxSends    int           // per record
		took        time.Duration // the run's time on the clock, at least
		slack       time.Duration // and at most this longer
		failed      int
	}{
		{name: "open for 30 s: one wait", open: 30 * time.Second, refusal: refusedOpen, maxSends: 2, took: 30 * time.Second, slack: time.Second},
		{name: "half-open, no probe slot: short waits", open: 3 * time.Second, refusal: refusedHalfOpen,
			maxSends: int(3*time.Second/circuitProbeWait) + 2, took: 3 * time.Second, slack: circuitProbeWait},
		{name: "refused after a throttle: short waits, no requeue", open: 30 * time.Second, refusal: refusedLate,
			maxSends: int(30*time.Second/circuitProbeWait) + 2, took: 30 * time.Second, slack: circuitProbeWait},
		{name: "open past maxCircuitWait: then fails like any failure", open: 2 * time.Hour, refusal: refusedOpen, maxRequeues: -1,
			maxSends: int(maxCircuitWait/(30*time.Second)) + 2, took: maxCircuitWait, slack: time.Second, failed: records},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				d, doer := circuitDoer(start.Add(tt.open), tt.refusal)
				o := baseOptions(t, simpleInput(t, ids("r", records)...), doer, nil)
				o.MaxRequeues = tt.maxRequeues
				sum, err := Run(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				took := time.Since(start)
				if took < tt.took || took > tt.took+tt.slack {
					t.Errorf("the run took %v, want %v..%v", took, tt.took, tt.took+tt.slack)
				}
				if sum.Failed != tt.failed || sum.Succeeded != records-tt.failed || sum.Requeued != 0 {
					t.Errorf("summary %+v: want %d failed, no requeue", sum, tt.failed)
				}
				if sum.CircuitWaits == 0 {
					t.Error("no circuit waits counted")
				}
				for _, id := range ids("r", records) {
					if n := d.count(id); n > tt.maxSends {
						t.Errorf("%s sent %d times, want at most %d", id, n, tt.maxSends)
					}
				}
				if tt.failed > 0 {
					for id, l := range readResults(t, o.Out) {
						if l.Error == nil || l.Error.Code != catalog.CodeCircuitOpen {
							t.Errorf("%s: %+v, want failed with CircuitOpen", id, l.Error)
						}
					}
				}
			})
		})
	}
}

// TestStopEndsCircuitWait: Stop ends a wait for an open breaker at once, and
// the waiting records stay pending.
func TestStopEndsCircuitWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const records = 10
		start := time.Now()
		d, doer := circuitDoer(start.Add(30*time.Second), refusedOpen)
		o := baseOptions(t, simpleInput(t, ids("r", records)...), doer, nil)
		stop := make(chan struct{})
		o.Stop = stop
		var (
			wg  sync.WaitGroup
			sum *Summary
			err error
		)
		wg.Go(func() { sum, err = Run(context.Background(), o) })
		synctest.Wait() // every record refused, and waiting for the breaker
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("the run took %v to stop, want no time", took)
		}
		if sum.Pending != records || sum.Failed != 0 || sum.Requeued != 0 {
			t.Errorf("summary %+v: want every record pending", sum)
		}
		// The first refusal holds the model's other records back.
		if n := d.total(); n == 0 || n > records {
			t.Errorf("%d calls, want at most one per record", n)
		}
	})
}
