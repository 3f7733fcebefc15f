package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/stream"
)

func TestStreamReaderClosesEarly(t *testing.T) {
	c := converseCase()
	em := startEmu(t, nil)
	var ends int
	var endErr error
	e, _ := newStreamEngine(t, em.rn.URL, func(o *Options) {
		o.OnStreamEnd = func(_ *Call, _ *Report, err error) { ends, endErr = ends+1, err }
	})
	resp, rep, err := streamCall(context.Background(), e, c.op, c.model, c.body)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(buf); !errors.Is(err, errClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	resp.Body.Close() // twice is fine
	if ends != 1 || endErr != nil || rep.Sent() != 1 || rep.Attempts[0].Usage.OutputTokens == 0 || !rep.Usage.Estimated {
		t.Fatalf("hook ran %d times (%v); report %+v", ends, endErr, rep)
	}
}

// TestStreamCloseWhileReading closes a stream while a Read waits on a
// stalled upstream, as the SDK's stream.Close does: the Read ends at once
// with errClosed, the stream's end is no failure, nothing is left running.
func TestStreamCloseWhileReading(t *testing.T) {
	c := converseCase()
	em := startEmu(t, func(n int) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 5}}
	})
	var ends int
	var endErr error
	e, _ := newStreamEngine(t, em.rn.URL, func(o *Options) {
		o.OnStreamEnd = func(_ *Call, _ *Report, err error) { ends, endErr = ends+1, err }
	})
	resp, rep, err := streamCall(context.Background(), e, c.op, c.model, c.body)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	<-em.settled // the emulator is about to stall
	resp.Body.Close()
	if err := <-done; !errors.Is(err, errClosed) {
		t.Fatalf("the blocked Read ended with %v, want errClosed", err)
	}
	if ends != 1 || endErr != nil || rep.Resumes != 0 || rep.Sent() != 1 {
		t.Fatalf("hook ran %d times (%v); report %+v", ends, endErr, rep)
	}
}

// TestStreamCallerCancels ends a stream with the caller's context: no
// resume, the context's error.
func TestStreamCallerCancels(t *testing.T) {
	c := converseCase()
	em := startEmu(t, func(n int) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 5}}
	})
	e, _ := newStreamEngine(t, em.rn.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	resp, rep, err := streamCall(ctx, e, c.op, c.model, c.body)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-em.settled // the emulator is about to stall
		cancel()
	}()
	_, err = io.ReadAll(resp.Body)
	var ke *Error
	if !errors.As(err, &ke) || ke.Entry.Code != catalog.CodeContextCanceled || rep.Resumes != 0 {
		t.Fatalf("read error %v, resumes %d", err, rep.Resumes)
	}
	resp.Body.Close()
}

// TestStreamStalls declares stalls exactly: the test moves the fake clock
// past the limit only once the stream is stuck (the emulator has stalled and
// keel is waiting on the connection).
func TestStreamStalls(t *testing.T) {
	tests := []struct {
		name    string
		plan    fault.Plan
		resumed bool // the stall comes after the first content
	}{
		{name: "no response headers", plan: fault.Plan{Hang: true}},
		{name: "headers but no event", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 0}}},
		{name: "after the message start", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 1}}},
		{name: "in the middle of the content", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 9}}, resumed: true},
	}
	for _, c := range []streamCase{converseCase(), invokeCase()} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%s", c.op, tt.name), func(t *testing.T) {
				planned := make(chan struct{}, 4)
				em := startEmu(t, func(n int) fault.Plan {
					planned <- struct{}{}
					if n == 0 {
						return tt.plan
					}
					return fault.Plan{}
				})
				pr := newProbe()
				e, clk := newStreamEngine(t, em.rn.URL, func(o *Options) { o.HTTPClient = &http.Client{Transport: pr} })
				// No deadline: the engine compares deadlines with its (fake)
				// clock. The context only stops the helper below.
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				// Once the first request is stuck, fire its watchdog: its
				// first timer (the first-event limit, the only timer then),
				// and, if keel was not waiting at that instant (a frame had
				// just arrived), the idle-limit timers it re-arms, until the
				// next request reaches the emulator. The next attempt's own
				// first-event timer is never fired.
				fired := make(chan bool, 1)
				reached := make(chan struct{}) // the reader has every event sent before the stall
				go func() {
					<-planned
					switch {
					case tt.resumed:
						select {
						case <-reached:
						case <-ctx.Done():
						}
						pr.waitReading(ctx)
					case !tt.plan.Hang:
						// Stuck before the first content: Do is still reading.
						// Whether keel has read the message start or not, it
						// is a stall before the first content.
						select {
						case <-em.settled:
						case <-ctx.Done():
						}
						pr.waitReading(ctx)
					}
					ok := clk.Fire(ctx, nil)
					next, stop := context.WithCancel(ctx)
					go func() {
						select {
						case <-planned:
						case <-ctx.Done():
						}
						stop()
					}()
					for clk.Fire(next, func(d time.Duration) bool { return d == DefaultIdleTimeout }) {
					}
					fired <- ok
				}()
				resp, rep, err := streamCall(ctx, e, c.op, c.model, c.body)
				if err != nil {
					t.Fatal(err)
				}
				// Read frame by frame, telling the helper when every event
				// before the stall has arrived.
				var got []byte
				fr := stream.NewReader(resp.Body)
				for n := 1; ; n++ {
					f, err := fr.Next()
					if err != nil {
						if err != io.EOF {
							t.Fatalf("reading: %v", err)
						}
						break
					}
					got = append(got, f.Raw...)
					if tt.resumed && n == tt.plan.MidStream.After {
						close(reached)
					}
				}
				resp.Body.Close()
				d := readAll(t, bytes.NewReader(got), c.op == attempt.InvokeWithResponseStream)
				if !<-fired {
					t.Fatal("the watchdog's timer never came")
				}
				r := &result{resp: resp, rep: rep, d: d}
				checkClean(t, r, c)
				a := rep.Attempts[0]
				if rep.Sent() != 2 || a.Code != catalog.CodeStreamStalled || (rep.Resumes == 1) != tt.resumed {
					t.Fatalf("report %+v", rep)
				}
				if tt.resumed {
					em.waitSettled(ctx, 2)
					checkUsage(t, r, em)
				}
			})
		}
	}
}

func TestStreamOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    StreamOptions
		want string
	}{
		{"negative first event", StreamOptions{FirstEventTimeout: -1}, "FirstEventTimeout"},
		{"negative idle", StreamOptions{IdleTimeout: -time.Second}, "IdleTimeout"},
		{"too many resumes", StreamOptions{MaxResumes: 11}, "MaxResumes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{Streaming: tt.o})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
