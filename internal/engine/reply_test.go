package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/hostile"
)

// TestTruncatedReplyIsRetried is issue 15's item 4: a non-streaming reply
// whose body is cut short or reset after its 200 is the attempt's failure,
// retried like a reset, not handed to the caller to fail while decoding.
func TestTruncatedReplyIsRetried(t *testing.T) {
	tests := []struct {
		kind fault.MidStreamKind
		code string
	}{
		{fault.Truncate, catalog.CodeResponseTruncated},
		{fault.Reset, catalog.CodeConnectionReset},
	}
	for _, op := range []attempt.Op{attempt.Converse, attempt.Invoke} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%s", op, tt.kind), func(t *testing.T) {
				em := startEmu(t, func(n int) fault.Plan {
					if n == 0 {
						return fault.Plan{MidStream: &fault.MidStream{Kind: tt.kind}}
					}
					return fault.Plan{}
				})
				e, _ := newStreamEngine(t, em.rn.URL, nil)
				body := converseBody(prompt, 40)
				if op == attempt.Invoke {
					body = anthropicBody(prompt, 40)
				}
				resp, rep, err := e.Do(context.Background(), &Call{Op: op, Model: haiku3, Body: body})
				if err != nil {
					t.Fatalf("call failed: %v", err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Contains(b, []byte(`"usage"`)) {
					t.Fatalf("body %q, read error %v: want the whole reply", b, err)
				}
				if rep.Sent() != 2 || rep.Attempts[0].Code != tt.code {
					t.Fatalf("attempts %+v: want the first one %s, retried", rep.Attempts, tt.code)
				}
			})
		}
	}
}

// hugeReply answers every request with a 200 Converse reply of size bytes
// (declared in Content-Length when declare is set), written in chunks until
// the client stops reading; it counts the bytes it managed to write.
type hugeReply struct {
	size    int64
	declare bool
	wrote   atomic.Int64
}

func (h *hugeReply) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	if h.declare {
		w.Header().Set("Content-Length", strconv.FormatInt(h.size, 10))
	}
	chunk := []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"` + strings.Repeat("x", 64<<10))
	for written := int64(0); written < h.size; {
		n, err := w.Write(chunk[:min(int64(len(chunk)), h.size-written)])
		written += int64(n)
		h.wrote.Add(int64(n))
		if err != nil {
			return
		}
		chunk = bytes.Repeat([]byte("x"), 64<<10)
	}
}

// TestReplySizeIsBounded is issue 15's item 5 for non-streaming replies: a
// reply over MaxResponseBytes fails with ResponseTooLarge, unretried, and
// keel stops reading it (an endless body does not run the process out of
// memory).
func TestReplySizeIsBounded(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name    string
		size    int64
		declare bool
	}{
		{name: "declared length over the limit", size: 2 << 20, declare: true},
		{name: "undeclared, a byte over", size: limit + 1},
		{name: "endless", size: 1 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &hugeReply{size: tt.size, declare: tt.declare}
			srv := httptest.NewServer(up)
			defer srv.Close()
			e, _ := newStreamEngine(t, srv.URL, func(o *Options) { o.MaxResponseBytes = limit })
			resp, rep, err := e.Do(context.Background(), &Call{Op: attempt.Converse, Model: haiku3, Body: converseBody(prompt, 40)})
			if resp != nil {
				resp.Body.Close()
			}
			var ke *Error
			var tl *TooLargeError
			if !errors.As(err, &ke) || ke.Entry.Code != catalog.CodeResponseTooLarge || !errors.As(err, &tl) || rep.Sent() != 1 {
				t.Fatalf("err = %v after %d attempts; want ResponseTooLarge after one", err, rep.Sent())
			}
			e.HTTPClient().CloseIdleConnections()
			srv.CloseClientConnections()
			if w := up.wrote.Load(); w > 64<<20 {
				t.Fatalf("upstream wrote %d bytes: keel read far past its limit", w)
			}
		})
	}
	t.Run("at the limit", func(t *testing.T) {
		up := &hugeReply{size: limit, declare: true}
		srv := httptest.NewServer(up)
		defer srv.Close()
		e, _ := newStreamEngine(t, srv.URL, func(o *Options) { o.MaxResponseBytes = limit })
		resp, _, err := e.Do(context.Background(), &Call{Op: attempt.Converse, Model: haiku3, Body: converseBody(prompt, 40)})
		if err != nil {
			t.Fatalf("a reply of exactly the limit failed: %v", err)
		}
		if n, _ := io.Copy(io.Discard, resp.Body); n != limit {
			t.Fatalf("read %d bytes, want %d", n, limit)
		}
		resp.Body.Close()
	})
}

// TestStreamSizeIsBounded is item 5 for streams: one event over
// MaxEventBytes, or more text than MaxResponseBytes, fails the stream with
// ResponseTooLarge instead of growing keel's memory without end.
func TestStreamSizeIsBounded(t *testing.T) {
	big := strings.Repeat("y", 64<<10)
	tests := []struct {
		name   string
		deltas []string
		opts   func(*Options)
		what   string
	}{
		{name: "one event over the limit", deltas: []string{"a", strings.Repeat("z", 200<<10)},
			opts: func(o *Options) { o.MaxEventBytes = 128 << 10 }, what: "stream event"},
		{name: "text over the limit", deltas: append([]string{"a"}, slicesRepeat(big, 40)...),
			opts: func(o *Options) { o.MaxResponseBytes = 1 << 20 }, what: "stream text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fakeConverse(t, tt.deltas...)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
				w.Write(f.continuation(0))
			}))
			defer srv.Close()
			e, _ := newStreamEngine(t, srv.URL, tt.opts)
			resp, rep, err := streamCall(context.Background(), e, attempt.ConverseStream, sonnet, converseBody(prompt, 40))
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			var ke *Error
			if !errors.As(err, &ke) || ke.Entry.Code != catalog.CodeResponseTooLarge || !strings.Contains(err.Error(), tt.what) || rep.Sent() != 1 {
				t.Fatalf("read error %v after %d attempts; want ResponseTooLarge (%s) after one", err, rep.Sent(), tt.what)
			}
		})
	}
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestChargedFailuresSettle: an attempt whose 200 reply broke, was too
// large or timed out was charged by Bedrock: the quota governor settles it
// (at its input estimate, the usage being unknown) instead of handing its
// tokens back as it does for an attempt Bedrock never served.
func TestChargedFailuresSettle(t *testing.T) {
	tests := []struct {
		name string
		o    hostile.Options
	}{
		{name: "truncated", o: hostile.Options{Mode: hostile.Truncate}},
		{name: "reset mid-body", o: hostile.Options{Mode: hostile.Reset}},
		{name: "too large", o: hostile.Options{Mode: hostile.HugeBody, Size: 2 << 20}},
		{name: "timed out", o: hostile.Options{Mode: hostile.Hang}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := hostile.Pipe(hostile.Sequence(tt.o, hostile.Options{}))
				defer srv.Close()
				u, _ := url.Parse(srv.URL)
				target := admission.Target{Model: m1, Region: "us-east-1"}
				gov, err := admission.New(admission.Options{Targets: map[admission.Target]admission.Quota{target: {TokensPerMinute: 60000}}})
				if err != nil {
					t.Fatal(err)
				}
				e, err := New(Options{Endpoints: attempt.FixedEndpoint{URL: u}, Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
					HTTPClient: srv.Client(), Region: "us-east-1", Clock: clock.Real{}, Governor: gov, MaxResponseBytes: 1 << 20, AttemptTimeout: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				resp, rep, _ := e.Do(context.Background(), &Call{Op: attempt.Converse, Model: m1, Body: quotaBody("charged", 100)})
				if resp != nil {
					resp.Body.Close()
				}
				s, _ := gov.Stats(target)
				if rep.Sent() < 1 || s.Cancelled != 0 || s.Settled != int64(rep.Sent()) {
					t.Fatalf("%d attempts sent (%+v); governor settled %d, cancelled %d: want every sent attempt settled",
						rep.Sent(), rep.Attempts, s.Settled, s.Cancelled)
				}
			})
		})
	}
}
