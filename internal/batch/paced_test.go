package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/engine"
)

func mustPaced(t *testing.T, n int) *Paced {
	t.Helper()
	p, err := NewPaced(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type acquired struct {
	admitted func()
	done     func(Outcome)
	err      error
}

func acquireAsync(ctx context.Context, p *Paced) chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		a, d, err := p.AcquireAdmit(ctx)
		ch <- acquired{a, d, err}
	}()
	return ch
}

// stillWaiting waits until every other goroutine of the test's synctest
// bubble is blocked, then checks that ch got nothing.
func stillWaiting(t *testing.T, ch chan acquired, why string) {
	t.Helper()
	synctest.Wait()
	select {
	case <-ch:
		t.Fatalf("acquired %s", why)
	default:
	}
}

func TestPaced(t *testing.T) {
	tests := []struct {
		name string
		max  int
		run  func(t *testing.T, p *Paced)
	}{
		{name: "the next call starts when the previous one is admitted", run: func(t *testing.T, p *Paced) {
			admitted, _, err := p.AcquireAdmit(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ch := acquireAsync(context.Background(), p)
			stillWaiting(t, ch, "before the previous call was admitted")
			admitted()
			admitted() // once is enough
			if a := <-ch; a.err != nil || p.InFlight() != 2 {
				t.Fatalf("acquire %v, in flight %d; want 2", a.err, p.InFlight())
			}
		}},
		{name: "max in flight bounds admitted calls", max: 2, run: func(t *testing.T, p *Paced) {
			var dones []func(Outcome)
			for range 2 {
				a, d, err := p.AcquireAdmit(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				a()
				dones = append(dones, d)
			}
			ch := acquireAsync(context.Background(), p)
			stillWaiting(t, ch, "a third call with MaxInFlight 2")
			dones[0](Outcome{})
			dones[0](Outcome{}) // once is enough
			if a := <-ch; a.err != nil || p.InFlight() != 2 || p.Peak() != 2 {
				t.Fatalf("acquire %v, in flight %d, peak %d; want 2, 2", a.err, p.InFlight(), p.Peak())
			}
		}},
		{name: "a call that ends before its admission frees the way", run: func(t *testing.T, p *Paced) {
			_, done, _ := p.AcquireAdmit(context.Background())
			ch := acquireAsync(context.Background(), p)
			stillWaiting(t, ch, "before the previous call ended")
			done(Outcome{Dropped: true})
			if a := <-ch; a.err != nil || p.InFlight() != 1 {
				t.Fatalf("acquire %v, in flight %d; want 1", a.err, p.InFlight())
			}
		}},
		{name: "a cancelled wait takes nothing", run: func(t *testing.T, p *Paced) {
			p.AcquireAdmit(context.Background())
			ctx, cancel := context.WithCancel(context.Background())
			ch := acquireAsync(ctx, p)
			stillWaiting(t, ch, "before the previous call was admitted")
			cancel()
			if a := <-ch; !errors.Is(a.err, context.Canceled) || p.InFlight() != 1 {
				t.Fatalf("acquire %v, in flight %d; want context.Canceled, 1", a.err, p.InFlight())
			}
		}},
		{name: "Acquire counts as admitted at once", max: 3, run: func(t *testing.T, p *Paced) {
			for range 3 {
				if _, err := p.Acquire(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if p.InFlight() != 3 {
				t.Fatalf("in flight %d, want 3", p.InFlight())
			}
		}},
	}
	for _, tt := range tests {
		// In a synctest bubble, so that stillWaiting knows when the
		// waiting goroutine has blocked.
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { tt.run(t, mustPaced(t, tt.max)) })
		})
	}
}

func TestNewPaced(t *testing.T) {
	if _, err := NewPaced(-1); err == nil {
		t.Error("NewPaced(-1) accepted")
	}
	if p := mustPaced(t, 0); p.max != DefaultMaxInFlight {
		t.Errorf("NewPaced(0) allows %d, want %d", p.max, DefaultMaxInFlight)
	}
}

func TestDefaultLimiter(t *testing.T) {
	gov, _ := admission.New(admission.Options{})
	governed, _ := engine.New(engine.Options{Governor: gov})
	plain, _ := engine.New(engine.Options{})
	tests := []struct {
		name  string
		doer  Doer
		paced bool
	}{
		{name: "an engine with a governor: paced", doer: governed, paced: true},
		{name: "an engine without: AIMD", doer: plain},
		{name: "another Doer: AIMD", doer: newFakeDoer(clock.NewAuto(t0))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := defaultLimiter(tt.doer)
			if err != nil {
				t.Fatal(err)
			}
			if _, paced := l.(*Paced); paced != tt.paced {
				t.Errorf("limiter %T", l)
			}
		})
	}
}

// TestRunPacedByTheGovernor runs a batch through the real engine and quota
// governor to the emulator: the governor alone paces it (the default
// limiter), every call is a Batch call, and calls that did not fit waited
// in the governor's queue rather than being throttled.
func TestRunPacedByTheGovernor(t *testing.T) {
	u, oc := startEmulator(t, "rules: []\n")
	clk := clock.NewAuto(t0)
	const model = "amazon.nova-lite-v1:0"
	gov, err := admission.New(admission.Options{Default: admission.Quota{TokensPerMinute: 1000}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Endpoints: attempt.FixedEndpoint{URL: u}, Clock: clk, Governor: gov})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	const n = 60
	for i := range n {
		fmt.Fprintf(&b, "{\"id\":%d,\"prompt\":\"Question %d: why?\",\"maxTokens\":40}\n", i, i)
	}
	o := baseOptions(t, writeFile(t, "in.jsonl", b.String()), eng, clk)
	o.Model = model
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != n || sum.Requeued != 0 || sum.Sent != n {
		t.Fatalf("summary %+v", sum)
	}
	st, _ := gov.Stats(admission.Target{Model: model, Region: "us-east-1"})
	bc := st.Classes[admission.Batch]
	if bc.Admitted != n || st.Classes[admission.Interactive].Admitted != 0 || bc.Waited == 0 || st.Settled != n || st.InFlight != 0 || st.Throttles != 0 {
		t.Fatalf("governor stats %+v", st)
	}
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.n["OK"] != n || len(oc.n) != 1 {
		t.Fatalf("emulator answers %v", oc.n)
	}
}
