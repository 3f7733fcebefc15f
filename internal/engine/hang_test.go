package engine

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/hostile"
)

// hungEast starts, in the current synctest bubble, an upstream whose
// us-east-1 never answers and whose us-west-2 does, and an engine on the
// real clock (the bubble's) whose route for m1 is us-east-1 then
// us-west-2.
func hungEast(t *testing.T, mod func(*Options)) *Engine {
	srv := hostile.Pipe(hostile.ByRegion(map[string]http.Handler{
		"us-east-1": hostile.Handler(hostile.Options{Mode: hostile.Hang}),
		"us-west-2": hostile.Handler(hostile.Options{}),
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	o := Options{Endpoints: attempt.FixedEndpoint{URL: u}, Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient: srv.Client(), Region: "us-east-1", Clock: clock.Real{}, Rand: rand.New(rand.NewPCG(1, 2)),
		Routes: routeTo(m1, "us-east-1", "us-east-1", "us-west-2")}
	if mod != nil {
		mod(&o)
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// hangInput is the input estimate of hangCall's body.
var hangInput = func() int {
	est, _ := admission.EstimateBody(quotaBody("hang?", 200))
	return est.InputTokens
}()

func hangCall(ctx context.Context, e *Engine, maxTokens int) (*Report, error) {
	resp, rep, err := e.Do(ctx, &Call{Op: attempt.Converse, Model: m1, Body: quotaBody("hang?", maxTokens)})
	if resp != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return rep, err
}

// TestHungRegionIsLeft is issue 15's item 3: a region that hangs is left
// after the attempt's timeout, and the route's next region answers. In a
// synctest bubble the hang takes bubble time only, so each case checks the
// exact time the call took.
func TestHungRegionIsLeft(t *testing.T) {
	tests := []struct {
		name      string
		deadline  time.Duration // 0: none
		maxTokens int
		warm      int // calls answered by us-west-2 alone first (their reply times are learned)
		mod       func(*Options)
		took      time.Duration
	}{
		{name: "deadline: half the time left", deadline: 30 * time.Second, maxTokens: 200, took: 15 * time.Second},
		{name: "no deadline: the prior for 200 max tokens", maxTokens: 200, took: priorBase + 200*priorPerToken + time.Duration(hangInput)*perInputToken},
		{name: "learned from fast replies: the floor", maxTokens: 200, warm: replySamplesMin, took: DefaultAttemptTimeoutFloor},
		{name: "configured", deadline: 30 * time.Second, maxTokens: 200, took: 2 * time.Second,
			mod: func(o *Options) { o.AttemptTimeout = 2 * time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := hungEast(t, tt.mod)
				for range tt.warm {
					// The same model's replies in another region count: a
					// region's hang says nothing of the model's speed.
					resp, _, err := e.Do(context.Background(), &Call{Op: attempt.Converse, Model: m1, Region: "us-west-2", Body: quotaBody("warm", tt.maxTokens)})
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
				}
				ctx := context.Background()
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				start := time.Now()
				rep, err := hangCall(ctx, e, tt.maxTokens)
				took := time.Since(start)
				if err != nil {
					t.Fatalf("call failed after %v: %v", took, err)
				}
				a := rep.Attempts
				if len(a) != 2 || a[0].Code != catalog.CodeAttemptTimeout || a[0].Duration != tt.took || a[1].Target.Region != "us-west-2" {
					t.Fatalf("attempts %+v: want a timeout of %v in us-east-1, then us-west-2", a, tt.took)
				}
				if took != tt.took {
					t.Fatalf("the call took %v, want %v", took, tt.took)
				}
			})
		})
	}
}

// TestHangOpensTheBreaker: hung attempts count against the target's
// breaker, so once enough calls have hung us-east-1 is skipped at once; a
// call with no other target fails with its own deadline.
func TestHangOpensTheBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := hungEast(t, func(o *Options) { o.Rand = nil }) // calls run concurrently: the default Rand
		// Before keel knows this model's reply times, the deadline share
		// cuts a mere prior: hung calls go to us-west-2 but do not count
		// against us-east-1's breaker.
		var wg sync.WaitGroup
		for range 2 * breaker.DefaultConsecutiveFailures {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if rep, err := hangCall(ctx, e, 200); err != nil || rep.Target.Region != "us-west-2" {
					t.Errorf("call: %v via %v", err, rep.Target)
				}
			})
		}
		wg.Wait()
		if st := e.breakers.Get(m1, "us-east-1").State(); st != breaker.Closed {
			t.Fatalf("us-east-1's breaker is %v after timeouts the deadline share cut; want closed", st)
		}
		// us-west-2's replies teach keel how long this model's replies take,
		// so a timeout in us-east-1 is evidence (before, the deadline share
		// cut a mere prior, and a cut says nothing of health).
		for range replySamplesMin {
			resp, _, err := e.Do(context.Background(), &Call{Op: attempt.Converse, Model: m1, Region: "us-west-2", Body: quotaBody("warm", 200)})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		// A burst of calls meets the hang together, as traffic does: more
		// than the retry budget allows fallbacks for (10% of calls, plus 1
		// a second over 10 s), but a fallback after a timeout is not
		// charged to it, so every call is answered by us-west-2.
		for range 30 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := hangCall(ctx, e, 200); err != nil {
					t.Errorf("call failed: %v", err)
				}
			})
		}
		wg.Wait()
		start := time.Now()
		rep, err := hangCall(context.Background(), e, 200)
		if err != nil || time.Since(start) != 0 {
			t.Fatalf("after the burst: %v after %v", err, time.Since(start))
		}
		if a := rep.Attempts; len(a) != 2 || !a[0].Skipped || a[0].Code != catalog.CodeCircuitOpen {
			t.Fatalf("attempts %+v: want us-east-1 skipped (breaker open), then us-west-2", a)
		}
		// Alone on the hung region, a call waits until its own deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _, err = e.Do(ctx, &Call{Op: attempt.Converse, Model: "alone", Body: quotaBody("hang?", 200)})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a call with no other target: %v, want its deadline", err)
		}
	})
}

// TestHostileUpstream runs a call against each misbehaviour of
// internal/hostile in us-east-1, with a healthy us-west-2 behind it: what
// keel records for the first attempt, and whether the call still succeeds.
func TestHostileUpstream(t *testing.T) {
	tests := []struct {
		name   string
		o      hostile.Options
		stream bool
		code   string // the first attempt's catalog code; "" for a success
		ok     bool   // the call succeeds (through us-west-2 when code is set)
	}{
		{name: "truncated body", o: hostile.Options{Mode: hostile.Truncate}, code: catalog.CodeResponseTruncated, ok: true},
		{name: "reset mid-body", o: hostile.Options{Mode: hostile.Reset}, code: catalog.CodeConnectionReset, ok: true},
		{name: "hang", o: hostile.Options{Mode: hostile.Hang}, code: catalog.CodeAttemptTimeout, ok: true},
		{name: "slow drip within the timeout", o: hostile.Options{Mode: hostile.Drip, Chunk: 64, Interval: 100 * time.Millisecond}, ok: true},
		{name: "huge body", o: hostile.Options{Mode: hostile.HugeBody}, code: catalog.CodeResponseTooLarge},
		{name: "huge stream events", o: hostile.Options{Mode: hostile.HugeStream}, stream: true, code: catalog.CodeResponseTooLarge},
		{name: "redirect", o: hostile.Options{Mode: hostile.Redirect, Status: http.StatusTemporaryRedirect}, code: catalog.CodeUnexpectedRedirect, ok: true},
		{name: "HTML 502 from a load balancer", o: hostile.Options{Mode: hostile.HTMLError}, code: catalog.CodeUnknownServerError, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := hostile.Pipe(hostile.ByRegion(map[string]http.Handler{
					"us-east-1": hostile.Handler(tt.o),
					"us-west-2": hostile.Handler(hostile.Options{}),
				}))
				defer srv.Close()
				u, _ := url.Parse(srv.URL)
				e, err := New(Options{Endpoints: attempt.FixedEndpoint{URL: u}, Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
					HTTPClient: srv.Client(), Region: "us-east-1", Clock: clock.Real{}, Rand: rand.New(rand.NewPCG(1, 2)),
					Routes: routeTo(m1, "us-east-1", "us-east-1", "us-west-2")})
				if err != nil {
					t.Fatal(err)
				}
				op := attempt.Converse
				if tt.stream {
					op = attempt.ConverseStream
				}
				resp, rep, err := e.Do(context.Background(), &Call{Op: op, Model: m1, Body: quotaBody("hostile", 200)})
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				} else if resp != nil {
					resp.Body.Close()
				}
				if (err == nil) != tt.ok {
					t.Fatalf("err = %v, want success %v", err, tt.ok)
				}
				if got := rep.Attempts[0].Code; got != tt.code {
					t.Fatalf("first attempt %s, want %q (attempts %+v)", got, tt.code, rep.Attempts)
				}
				if tt.ok && tt.code != "" && rep.Target.Region != "us-west-2" {
					t.Fatalf("answered by %s, want us-west-2", rep.Target)
				}
			})
		})
	}
}

// TestHangAfterHealthyOpensTheBreaker: a region that served well and then
// hangs is left after a few timeouts, although its window still holds far
// more successes than failures (the breaker's consecutive-failures rule).
func TestHangAfterHealthyOpensTheBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		plans := make([]hostile.Options, 41)
		plans[40] = hostile.Options{Mode: hostile.Hang}
		srv := hostile.Pipe(hostile.ByRegion(map[string]http.Handler{
			"us-east-1": hostile.Sequence(plans...),
			"us-west-2": hostile.Handler(hostile.Options{}),
		}))
		defer srv.Close()
		u, _ := url.Parse(srv.URL)
		e, err := New(Options{Endpoints: attempt.FixedEndpoint{URL: u}, Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
			HTTPClient: srv.Client(), Region: "us-east-1", Clock: clock.Real{}, Routes: routeTo(m1, "us-east-1", "us-east-1", "us-west-2")})
		if err != nil {
			t.Fatal(err)
		}
		for range 40 {
			if rep, err := hangCall(context.Background(), e, 200); err != nil || rep.Target.Region != "us-east-1" {
				t.Fatalf("healthy call: %v via %v", err, rep.Target)
			}
		}
		var wg sync.WaitGroup
		for range breaker.DefaultConsecutiveFailures {
			wg.Go(func() {
				if rep, err := hangCall(context.Background(), e, 200); err != nil || rep.Attempts[0].Code != catalog.CodeAttemptTimeout {
					t.Errorf("hung call: %v, attempts %+v", err, rep.Attempts)
				}
			})
		}
		wg.Wait()
		rep, err := hangCall(context.Background(), e, 200)
		if err != nil || !rep.Attempts[0].Skipped || rep.Attempts[0].Code != catalog.CodeCircuitOpen {
			t.Fatalf("after %d hangs: %v, attempts %+v; want us-east-1 skipped", breaker.DefaultConsecutiveFailures, err, rep.Attempts)
		}
	})
}
