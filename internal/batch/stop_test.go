package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
)

// failingDoer fails the records fail(id) says with code and message, and
// answers the others as fakeDoer does.
func failingDoer(clk clock.Clock, code, message string, fail func(id string) bool) (*fakeDoer, Doer) {
	ok := newFakeDoer(clk)
	return ok, doerFunc(func(ctx context.Context, c *engine.Call) (_ *http.Response, rep *engine.Report, err error) {
		id := promptID(c.Body)
		if !fail(id) {
			return ok.Do(ctx, c)
		}
		ok.mu.Lock()
		ok.sends[id]++
		ok.mu.Unlock()
		e := catalog.Must(code)
		t := attempt.Target{Model: c.Model, Region: "us-east-1"}
		rep = &engine.Report{Target: t, Attempts: []engine.Attempt{{Target: t, Code: code, Status: e.Status}}}
		return nil, rep, &engine.Error{Entry: e, Code: code, Status: e.Status, Message: message, Report: rep}
	})
}

// TestBatchRunStopsOnTargetErrors: when a few records in a row fail with
// the same error about the target (no such model, no access), which every
// record sent to it would meet, the run stops and leaves the others unsent
// and resumable, instead of parking all of them (issue 15, item 13).
func TestBatchRunStopsOnTargetErrors(t *testing.T) {
	const notFound = "Could not resolve the foundation model from the provided model identifier."
	tests := []struct {
		name    string
		code    string
		message string
		fail    func(id string) bool
		records int
		stop    bool
		failed  int // records failed (and parked) when the run does not stop
	}{
		{name: "typo'd model id", code: catalog.CodeResourceNotFound, message: notFound, fail: func(string) bool { return true }, records: 300, stop: true},
		{name: "no access to the model", code: catalog.CodeAccessDenied, message: "You don't have access to the model with the specified model ID.",
			fail: func(string) bool { return true }, records: 300, stop: true},
		{name: "invalid model id", code: catalog.CodeValidation, message: "The provided model identifier is invalid.",
			fail: func(string) bool { return true }, records: 300, stop: true},
		{name: "a bad prompt in every record is each record's own", code: catalog.CodeValidation, message: "messages: text content blocks must be non-empty",
			fail: func(string) bool { return true }, records: 30, failed: 30},
		{name: "a few records fail, the model answers the others", code: catalog.CodeResourceNotFound, message: notFound,
			fail: func(id string) bool { return id < "r004" }, records: 40, failed: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewAuto(t0)
			var broken atomic.Bool
			broken.Store(true)
			fake, d := failingDoer(clk, tt.code, tt.message, func(id string) bool { return broken.Load() && tt.fail(id) })
			store := dlq.NewMemory()
			o := baseOptions(t, simpleInput(t, ids("r", tt.records)...), d, clk)
			o.DLQ = &dlq.Recorder{Store: store, Source: "batch", Clock: clk}
			sum, err := Run(context.Background(), o)
			parked, _ := store.List(context.Background(), dlq.Filter{})
			if !tt.stop {
				if err != nil || sum.Failed != tt.failed || sum.Pending != 0 || len(parked) != tt.failed {
					t.Fatalf("run: %+v, %v, %d parked; want %d failed and parked", sum, err, len(parked), tt.failed)
				}
				return
			}
			if !errors.Is(err, ErrTargetFailing) {
				t.Fatalf("run: %+v, %v; want ErrTargetFailing", sum, err)
			}
			for _, want := range []string{tt.code, o.Model, tt.message, fmt.Sprintf("%d records were not sent", tt.records-fake.total()), "resume"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if sent := fake.total(); sent != stopAfter {
				t.Errorf("%d calls sent, want %d", sent, stopAfter)
			}
			if sum.Failed != 0 || sum.Pending != tt.records || len(parked) != 0 {
				t.Errorf("summary %+v, %d parked; want every record pending and none parked", sum, len(parked))
			}
			// Once access is granted (or the model exists), the same
			// command resumes and sends each record once.
			broken.Store(false)
			sum = run(t, o)
			if !sum.Resumed || sum.Succeeded != tt.records || sum.Failed != 0 {
				t.Errorf("resumed run: %+v", sum)
			}
			for _, id := range ids("r", tt.records) {
				if n := fake.count(id); n < 1 || n > 2 {
					t.Errorf("%s sent %d times", id, n)
				}
			}
		})
	}
}

// promptID is the id in a simple record's prompt "rec ID".
func promptID(body []byte) string {
	var b struct {
		Messages []struct {
			Content []struct{ Text string } `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &b) != nil || len(b.Messages) == 0 || len(b.Messages[0].Content) == 0 {
		return ""
	}
	return strings.TrimPrefix(b.Messages[0].Content[0].Text, "rec ")
}
