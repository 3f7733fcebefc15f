package engine

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/retry"
)

// stopWire answers every attempt after a second on the wire: 503 while
// fail is set, else a Converse reply.
type stopWire struct {
	fail atomic.Bool
	sent atomic.Int32
}

func (w *stopWire) RoundTrip(req *http.Request) (*http.Response, error) {
	w.sent.Add(1)
	time.Sleep(time.Second)
	if w.fail.Load() {
		return &http.Response{StatusCode: 503, Header: http.Header{"Content-Type": {"application/json"},
			"X-Amzn-Errortype": {"ServiceUnavailableException"}},
			Body: io.NopCloser(strings.NewReader(`{"message":"unavailable"}`)), Request: req}, nil
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
		Body: io.NopCloser(strings.NewReader(`{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},` +
			`"stopReason":"end_turn","usage":{"inputTokens":5,"outputTokens":5,"totalTokens":10}}`))}, nil
}

// maxJitter draws the longest backoff, so that a retry's wait is known.
type maxJitter struct{}

func (maxJitter) Int64N(n int64) int64 { return n - 1 }

// TestCallStop closes a call's Stop at each of its wait points, and while
// an attempt is on the wire: a call that waits is given up at once with an
// error wrapping ErrStopped, one on the wire finishes, and a context
// cancelled meanwhile is reported as before.
func TestCallStop(t *testing.T) {
	tests := []struct {
		name string
		// fillQuota spends the target's whole quota first, so the call
		// waits for it.
		fillQuota bool
		fail      bool          // the wire answers 503
		stopAt    time.Duration // after the call starts; 0: before it
		cancel    bool          // cancel the context as well
		wantSent  int32
		wantCode  string // the error's entry; "" for success
		wantGave  string
		wantTook  time.Duration
	}{
		{name: "stopped before it starts", wantCode: catalog.CodeContextCanceled},
		{name: "waiting for quota", fillQuota: true, stopAt: 5 * time.Second, wantCode: catalog.CodeContextCanceled, wantTook: 5 * time.Second},
		{name: "waiting to retry", fail: true, stopAt: 3 * time.Second, wantSent: 1, wantCode: catalog.CodeServiceUnavailable,
			wantGave: "the call was stopped while it waited to retry", wantTook: 3 * time.Second},
		{name: "on the wire", stopAt: 500 * time.Millisecond, wantSent: 1, wantTook: time.Second},
		{name: "a failure on the wire is not retried", fail: true, stopAt: 500 * time.Millisecond, wantSent: 1,
			wantCode: catalog.CodeServiceUnavailable, wantGave: "the call was stopped while it waited to retry", wantTook: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &stopWire{}
				w.fail.Store(tt.fail)
				// 600 tokens a minute: a call of ~110 waits 11 s behind a full reservation.
				gov, err := admission.New(admission.Options{Default: admission.Quota{TokensPerMinute: 600}})
				if err != nil {
					t.Fatal(err)
				}
				u, _ := url.Parse("http://bedrock.test")
				eng, err := New(Options{Endpoints: attempt.FixedEndpoint{URL: u}, HTTPClient: &http.Client{Transport: w},
					Clock: clock.Real{}, Governor: gov, Rand: maxJitter{}, DisableBudget: true, DisableBreaker: true,
					Retry: retry.Policy{MaxAttempts: 3, Base: 10 * time.Second, Cap: 10 * time.Second}})
				if err != nil {
					t.Fatal(err)
				}
				if tt.fillQuota {
					fill, err := gov.Admit(context.Background(), admission.Target{Model: m1, Region: "us-east-1"},
						admission.Estimate{MaxTokens: 600}, Interactive)
					if err != nil {
						t.Fatal(err)
					}
					defer fill.Cancel()
				}
				stop := make(chan struct{})
				if tt.stopAt == 0 {
					close(stop)
				} else {
					time.AfterFunc(tt.stopAt, func() { close(stop) })
				}
				start := time.Now()
				resp, _, err := eng.Do(context.Background(), &Call{Op: attempt.Converse, Model: m1, Body: quotaBody("x", 100), Stop: stop})
				took := time.Since(start)
				if resp != nil {
					resp.Body.Close()
				}
				if got := w.sent.Load(); got != tt.wantSent {
					t.Errorf("%d attempts sent, want %d", got, tt.wantSent)
				}
				if took != tt.wantTook {
					t.Errorf("the call took %v, want %v", took, tt.wantTook)
				}
				if tt.wantCode == "" {
					if err != nil {
						t.Fatalf("err %v, want the reply of the attempt on the wire", err)
					}
					return
				}
				var ke *Error
				if !errors.As(err, &ke) {
					t.Fatalf("err %v, want an *Error", err)
				}
				if ke.Entry.Code != tt.wantCode || !errors.Is(err, ErrStopped) || ke.GaveUp != tt.wantGave {
					t.Fatalf("err %v (gave up %q); want %s wrapping ErrStopped, gave up %q", err, ke.GaveUp, tt.wantCode, tt.wantGave)
				}
			})
		})
	}
}

// TestCallStopLeavesCancelAlone cancels the context of a call waiting for
// quota whose Stop is closed too: the cancellation is reported as before,
// not as a stop.
func TestCallStopLeavesCancelAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gov, err := admission.New(admission.Options{Default: admission.Quota{TokensPerMinute: 6000}})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse("http://bedrock.test")
		eng, err := New(Options{Endpoints: attempt.FixedEndpoint{URL: u}, HTTPClient: &http.Client{Transport: &stopWire{}},
			Clock: clock.Real{}, Governor: gov})
		if err != nil {
			t.Fatal(err)
		}
		fill, err := gov.Admit(context.Background(), admission.Target{Model: m1, Region: "us-east-1"}, admission.Estimate{MaxTokens: 6000}, Interactive)
		if err != nil {
			t.Fatal(err)
		}
		defer fill.Cancel()
		ctx, cancel := context.WithCancel(context.Background())
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, _, err := eng.Do(ctx, &Call{Op: attempt.Converse, Model: m1, Body: quotaBody("x", 100), Stop: stop})
			done <- err
		}()
		synctest.Wait() // waiting for quota
		cancel()
		close(stop)
		err = <-done
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrStopped) {
			t.Fatalf("err %v: want the cancellation, not a stop", err)
		}
	})
}
