package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/retry"
)

// wire is a fake Bedrock Runtime under the real engine, answering Converse
// by the record id in the prompt ("rec ID"): ids starting "slow" take a
// second on the wire, ids starting "flaky" get 503 while flaky is set, and
// every reply uses all of the call's max tokens.
type wire struct {
	mu      sync.Mutex
	flaky   bool
	replies map[string]int // by id: replies sent
}

func (w *wire) RoundTrip(req *http.Request) (*http.Response, error) {
	var body struct {
		Messages []struct {
			Content []struct{ Text string } `json:"content"`
		} `json:"messages"`
		InferenceConfig struct{ MaxTokens int } `json:"inferenceConfig"`
	}
	b, _ := io.ReadAll(req.Body)
	if err := json.Unmarshal(b, &body); err != nil || len(body.Messages) == 0 {
		return nil, fmt.Errorf("wire: unreadable body %s", b)
	}
	id := strings.TrimPrefix(body.Messages[0].Content[0].Text, "rec ")
	if strings.HasPrefix(id, "slow") {
		time.Sleep(time.Second)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.flaky && strings.HasPrefix(id, "flaky") {
		return &http.Response{StatusCode: 503, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"message":"Service unavailable"}`)), Request: req}, nil
	}
	w.replies[id]++
	out := fmt.Sprintf(`{"output":{"message":{"role":"assistant","content":[{"text":"answer to %s"}]}},"stopReason":"end_turn",`+
		`"usage":{"inputTokens":10,"outputTokens":%d,"totalTokens":%d}}`, id, body.InferenceConfig.MaxTokens, 10+body.InferenceConfig.MaxTokens)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(out)), Request: req}, nil
}

// longest draws the longest backoff every time, so that a retry's wait is
// known.
type longest struct{}

func (longest) Int64N(n int64) int64 { return n - 1 }

// TestStopDoesNotWaitForQueuedCalls closes Stop (the first Ctrl-C) while a
// run has calls waiting for quota in the governor's queue, waiting in a
// retry backoff, or on the wire. The run must end within 2 s (of the
// bubble's clock): calls not on the wire are given up at once and their
// records left pending, neither failed nor parked; a call on the wire
// finishes and its reply is committed. A resume then finishes every record,
// each answered and written once.
func TestStopDoesNotWaitForQueuedCalls(t *testing.T) {
	const model = "amazon.nova-lite-v1:0"
	tests := []struct {
		name string
		ids  []string
		// quota, when set, governs the calls with a tokens-per-minute
		// quota; each call reserves about 110 tokens.
		quota int
		flaky bool
		// wantOnWire: records whose call is on the wire at the stop, and
		// must be committed by the stopped run.
		wantOnWire int
	}{
		{name: "calls waiting for quota", ids: ids("r", 40), quota: 600},
		{name: "a call waiting in a retry backoff", ids: append([]string{"flaky"}, ids("r", 10)...), flaky: true},
		{name: "calls on the wire finish", ids: ids("slow", 12), wantOnWire: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &wire{flaky: tt.flaky, replies: map[string]int{}}
				u, _ := url.Parse("http://bedrock.test")
				eo := engine.Options{Endpoints: attempt.FixedEndpoint{URL: u}, HTTPClient: &http.Client{Transport: w},
					Clock: clock.Real{}, Rand: longest{}, DisableBudget: true, DisableBreaker: true,
					Retry: retry.Policy{MaxAttempts: 3, Base: 10 * time.Second, Cap: 10 * time.Second}}
				if tt.quota > 0 {
					gov, err := admission.New(admission.Options{Default: admission.Quota{TokensPerMinute: tt.quota}})
					if err != nil {
						t.Fatal(err)
					}
					eo.Governor = gov
				}
				eng, err := engine.New(eo)
				if err != nil {
					t.Fatal(err)
				}
				store := dlq.NewMemory()
				o := baseOptions(t, simpleInput(t, tt.ids...), eng, nil)
				o.Model, o.MaxTokens = model, 100
				o.DLQ = &dlq.Recorder{Store: store, Source: "batch"}
				if tt.quota == 0 {
					o.Limiter = mustAIMD(t, AIMDOptions{Initial: 4, Max: 4})
				}
				stop := make(chan struct{})
				o.Stop = stop
				type ran struct {
					sum *Summary
					err error
				}
				done := make(chan ran, 1)
				go func() {
					sum, err := Run(context.Background(), o)
					done <- ran{sum, err}
				}()
				synctest.Wait() // every call is waiting: for quota, a backoff, the wire or a slot
				stopped := time.Now()
				close(stop)
				r := <-done
				if took := time.Since(stopped); took > 2*time.Second {
					t.Errorf("the run took %v to stop, want at most 2s", took)
				}
				if r.err != nil {
					t.Fatalf("stopped run: %v", r.err)
				}
				if r.sum.Pending == 0 || r.sum.Failed != 0 || r.sum.Succeeded+r.sum.Pending != len(tt.ids) {
					t.Errorf("stopped run: %+v; want records pending, none failed", r.sum)
				}
				if tt.wantOnWire > 0 && r.sum.Succeeded != tt.wantOnWire {
					t.Errorf("stopped run: %d succeeded, want the %d on the wire committed", r.sum.Succeeded, tt.wantOnWire)
				}
				if parked, _ := store.List(context.Background(), dlq.Filter{}); len(parked) != 0 {
					t.Errorf("%d records parked in the dead-letter queue, want none", len(parked))
				}

				w.mu.Lock()
				w.flaky = false
				w.mu.Unlock()
				o.Stop = nil
				sum, err := Run(context.Background(), o)
				if err != nil || sum.Succeeded != len(tt.ids) || sum.Failed != 0 {
					t.Fatalf("resumed run: %+v, %v; want every record succeeded", sum, err)
				}
				res := readResults(t, o.Out) // fails on a record written twice
				w.mu.Lock()
				defer w.mu.Unlock()
				for _, id := range tt.ids {
					if _, ok := res[id]; !ok || w.replies[id] != 1 {
						t.Errorf("%s: result %v, answered %d times; want once", id, ok, w.replies[id])
					}
				}
			})
		})
	}
}
