package bench

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// A trace records the HTTP requests one call sent, whoever sent them (keel's
// engine or the SDK's retry loop): how many, and when the last one was sent
// and when its response body was read to the end or closed. The last
// request of a completed call is the one that brought its reply, so its
// round trip is the reply time, what the call took with no client around
// it; the rest of the call's latency was spent in the client (queueing,
// backoff, throttled attempts).
type trace struct {
	mu       sync.Mutex
	attempts int
	sent     time.Time // the last request's
	done     time.Time // the last request's response read; zero: not yet
}

type traceKey struct{}

func withTrace(ctx context.Context, t *trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// reply returns the last request's round trip, and false when no request
// was sent or its response was not read.
func (t *trace) reply() (time.Duration, int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.attempts == 0 || t.done.IsZero() {
		return 0, t.attempts, false
	}
	return t.done.Sub(t.sent), t.attempts, true
}

// sendFunc sends an HTTP request. It is both an http.RoundTripper (for
// keel's *http.Client) and an aws.HTTPClient (for the SDK's).
type sendFunc func(*http.Request) (*http.Response, error)

func (f sendFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
func (f sendFunc) Do(r *http.Request) (*http.Response, error)        { return f(r) }

// traced wraps send so that every request whose context carries a trace
// is recorded in it. It changes nothing else: the request goes through
// send as it came, and the response comes back as send returned it, its
// body wrapped only to see when it has been read.
func traced(send sendFunc) sendFunc {
	return func(r *http.Request) (*http.Response, error) {
		t, _ := r.Context().Value(traceKey{}).(*trace)
		if t == nil {
			return send(r)
		}
		t.mu.Lock()
		t.attempts++
		n := t.attempts
		t.sent, t.done = time.Now(), time.Time{}
		t.mu.Unlock()
		resp, err := send(r)
		if err != nil || resp.Body == nil {
			return resp, err
		}
		resp.Body = &tracedBody{ReadCloser: resp.Body, t: t, n: n}
		return resp, nil
	}
}

// tracedBody marks its trace's request done at the body's end or close,
// whichever comes first.
type tracedBody struct {
	io.ReadCloser
	t    *trace
	n    int // the request's number in t: a later request's body must not mark an earlier one
	once sync.Once
}

func (b *tracedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.mark()
	}
	return n, err
}

func (b *tracedBody) Close() error {
	b.mark()
	return b.ReadCloser.Close()
}

func (b *tracedBody) mark() {
	b.once.Do(func() {
		b.t.mu.Lock()
		if b.t.attempts == b.n {
			b.t.done = time.Now()
		}
		b.t.mu.Unlock()
	})
}
