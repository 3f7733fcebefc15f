package engine

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/retry"
)

// cancelClock wraps a clock and cancels the caller's context when a timer
// that match selects is made, returning that timer unfired: the caller is
// cancelled exactly while it waits, with no real time involved. Other timers
// go to the wrapped clock.
type cancelClock struct {
	clock.Clock
	match  func(d time.Duration) bool
	mu     sync.Mutex
	cancel context.CancelFunc
	hits   int
}

func (c *cancelClock) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	hit := c.match(d) && c.cancel != nil
	if hit {
		c.hits++
		c.cancel()
	}
	c.mu.Unlock()
	if hit {
		return idleTimer{make(chan time.Time)}
	}
	return c.Clock.NewTimer(d)
}

func (c *cancelClock) cancels() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

// idleTimer never fires.
type idleTimer struct{ c chan time.Time }

func (t idleTimer) C() <-chan time.Time { return t.c }
func (t idleTimer) Stop() bool          { return true }

// checkCancelled is what every cancelled call must give its caller: a typed
// *Error that matches context.Canceled, whose chain errors.Is can walk to
// the end (a cycle in it overflows the stack), and that claims no other
// cause.
func checkCancelled(t *testing.T, err error) {
	t.Helper()
	var ke *Error
	if !errors.As(err, &ke) || ke.Entry == nil {
		t.Fatalf("err = %v (%T), want an *Error with its catalog entry", err, err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want it to match context.Canceled", err)
	}
	for _, other := range []error{context.DeadlineExceeded, retry.ErrDeadline, budget.ErrExhausted, io.ErrUnexpectedEOF} {
		if errors.Is(err, other) {
			t.Fatalf("err = %v matches %v too", err, other)
		}
	}
	if msg := err.Error(); msg == "" {
		t.Fatal("empty error message")
	}
}

// TestCancelWhileWaiting cancels a call at each kind of wait keel makes:
// the backoff before a retry, the quota governor's queue, the continuation
// of a broken stream, and an attempt upstream that does not answer.
func TestCancelWhileWaiting(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T) error
	}{
		{name: "backoff before a retry", run: cancelInBackoff},
		{name: "throttle backoff", run: cancelInThrottleBackoff},
		{name: "quota governor's queue", run: cancelInQuotaQueue},
		{name: "attempt in flight", run: cancelInFlight},
		{name: "stream resume backoff", run: cancelBeforeResume},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCancelled(t, tt.run(t))
		})
	}
}

// cancelInBackoff: every attempt answers 503; the first backoff is cancelled.
func cancelInBackoff(t *testing.T) error {
	return cancelScripted(t, catalog.CodeServiceUnavailable)
}

func cancelInThrottleBackoff(t *testing.T) error {
	return cancelScripted(t, catalog.CodeThrottling)
}

func cancelScripted(t *testing.T, code string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cc := &cancelClock{match: func(time.Duration) bool { return true }, cancel: cancel}
	h := newHarness(t, map[string][]reply{m1 + "@us-east-1": {{code: code}}}, func(o *Options) {
		cc.Clock = o.Clock
		o.Clock = cc
	})
	_, rep, err := h.converse(ctx, m1)
	if cc.cancels() != 1 || rep.Sent() != 1 {
		t.Fatalf("cancelled %d times after %d attempts, want once after 1", cc.cancels(), rep.Sent())
	}
	var ke *Error
	if errors.As(err, &ke) && (ke.Entry.Code != code || ke.GaveUp != "the context ended while waiting to retry") {
		t.Fatalf("error %v: want the last upstream error (%s), given up while waiting", err, code)
	}
	return err
}

// cancelInQuotaQueue: the target's quota is held by another call; the call
// waits in the governor's queue and is cancelled there.
func cancelInQuotaQueue(t *testing.T) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(&upstream{})
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	cc := &cancelClock{Clock: clock.NewFake(time.Now()), match: func(time.Duration) bool { return true }, cancel: cancel}
	target := admission.Target{Model: m1, Region: "us-east-1"}
	gov, err := admission.New(admission.Options{Clock: cc, Targets: map[admission.Target]admission.Quota{target: {TokensPerMinute: 10000}}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := New(Options{Endpoints: attempt.FixedEndpoint{URL: u}, Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient: srv.Client(), Region: "us-east-1", Clock: cc, Governor: gov})
	if err != nil {
		t.Fatal(err)
	}
	held, err := gov.Admit(context.Background(), target, admission.Estimate{MaxTokens: 9000}, Interactive)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Cancel()
	_, rep, err := eng.Do(ctx, &Call{Op: attempt.Converse, Model: m1, Body: quotaBody("wait", 5000)})
	if cc.cancels() != 1 || rep.Sent() != 0 {
		t.Fatalf("cancelled %d times, sent %d: want the call cancelled in the queue, unsent", cc.cancels(), rep.Sent())
	}
	return err
}

// cancelInFlight: upstream holds the request until the caller gives up.
func cancelInFlight(t *testing.T) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrived := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a closed connection only once the body is read.
		io.Copy(io.Discard, r.Body)
		close(arrived)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	eng, err := New(Options{Endpoints: attempt.FixedEndpoint{URL: u}, Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient: srv.Client(), Region: "us-east-1", Clock: clock.NewAuto(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-arrived
		cancel()
	}()
	_, _, err = eng.Do(ctx, &Call{Op: attempt.Converse, Model: m1, Body: quotaBody("hang", 10)})
	return err
}

// cancelBeforeResume: a stream breaks after its first content; the backoff
// before its continuation is cancelled. The reader's error says so.
func cancelBeforeResume(t *testing.T) error {
	c := converseCase()
	em := startEmu(t, func(n int) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Reset, After: c.lead + 7}}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cc *cancelClock
	e, _ := newStreamEngine(t, em.rn.URL, func(o *Options) {
		// Only the resume's backoff is short: the stream watchdog's timers
		// are minutes long.
		cc = &cancelClock{Clock: o.Clock, match: func(d time.Duration) bool { return d < manualFrom }, cancel: cancel}
		o.Clock = cc
	})
	resp, rep, err := streamCall(ctx, e, c.op, c.model, c.body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	if cc.cancels() != 1 || rep.Resumes != 0 {
		t.Fatalf("cancelled %d times, %d resumes: want the resume's backoff cancelled", cc.cancels(), rep.Resumes)
	}
	return err
}

// FuzzCancelAnywhere cancels a call at the n-th time keel reads its clock,
// against an upstream that fails the first attempts in the ways a seed
// picks and then answers. A call either succeeds or fails with an error
// that says it was cancelled; none crashes, hangs or leaks (TestMain checks
// for leaked goroutines).
func FuzzCancelAnywhere(f *testing.F) {
	for n := range 24 {
		f.Add(uint8(n), uint16(n*7919))
	}
	f.Fuzz(func(t *testing.T, at uint8, seed uint16) {
		codes := []string{catalog.CodeServiceUnavailable, catalog.CodeThrottling, "reset", catalog.CodeModelNotReady}
		script := []reply{{code: codes[seed%4]}, {code: codes[seed/4%4]}, {}}[int(seed/16%3):]
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		nc := &nowCancel{at: int(at), cancel: cancel}
		h := newHarness(t, map[string][]reply{m1 + "@us-east-1": script}, func(o *Options) {
			nc.Clock = o.Clock
			o.Clock = nc
			o.DisableBudget = true // a failure is then the context's, or none
		})
		_, _, err := h.converse(ctx, m1)
		if err == nil {
			return
		}
		if ctx.Err() == nil {
			t.Fatalf("the call failed without being cancelled: %v", err)
		}
		checkCancelled(t, err)
	})
}

// nowCancel cancels a context at the at-th call of Now.
type nowCancel struct {
	clock.Clock
	mu     sync.Mutex
	n, at  int
	cancel context.CancelFunc
}

func (c *nowCancel) Now() time.Time {
	c.mu.Lock()
	c.n++
	if c.n == c.at {
		c.cancel()
	}
	c.mu.Unlock()
	return c.Clock.Now()
}
