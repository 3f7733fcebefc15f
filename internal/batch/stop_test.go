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
	"time"

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

// TestBatchRunStopsOnlyTheFailingModel: when some records name a model that
// fails every call (a typo in their "model") and others go to a model that
// works, only the failing model is stopped: at most stopAfter calls go to
// it, its records are left pending (not parked, not written), every other
// record is sent and finished, and the run ends with the stop error naming
// the model, resumable. Before, the first stop ended the whole run, on every
// resume, and the records after the bad ones were never sent; and the
// dispatcher waited whenever the first pending record's model was unproven,
// even when the records behind it could go (review of issue 15, item 13).
func TestBatchRunStopsOnlyTheFailingModel(t *testing.T) {
	const (
		bogus   = "anthropic.claude-bogus-v1:0"
		invalid = "The provided model identifier is invalid."
	)
	tests := []struct {
		name              string
		before, bad, good int  // good records, then records to the bogus model, then good ones
		hang              bool // calls to the bogus model are answered only once every good record has been sent
	}{
		{name: "bad records in the middle", before: 20, bad: 6, good: 20},
		{name: "bad records first", bad: 6, good: 40},
		{name: "bad records last", before: 40, bad: 6},
		{name: "bad calls hang until the others are sent", bad: 6, good: 20, hang: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a dispatcher that waits fails, not hangs
			defer cancel()
			var b strings.Builder
			var good []string
			for i := range tt.before + tt.bad + tt.good {
				id := fmt.Sprintf("g%03d", i)
				if i >= tt.before && i < tt.before+tt.bad {
					id = fmt.Sprintf("b%03d", i)
					fmt.Fprintf(&b, "{\"id\":%q,\"prompt\":\"rec %s\",\"model\":%q}\n", id, id, bogus)
					continue
				}
				good = append(good, id)
				fmt.Fprintf(&b, "{\"id\":%q,\"prompt\":\"rec %s\"}\n", id, id)
			}
			var broken atomic.Bool
			broken.Store(true)
			clk := clock.NewAuto(t0)
			fake, failing := failingDoer(clk, catalog.CodeValidation, invalid, func(id string) bool { return broken.Load() && id[0] == 'b' })
			allSent := make(chan struct{})
			var goodSent atomic.Int64
			fake.onSend = func(id string, n int) {
				if id[0] == 'g' && goodSent.Add(1) == int64(len(good)) {
					close(allSent)
				}
			}
			d := doerFunc(func(ctx context.Context, c *engine.Call) (*http.Response, *engine.Report, error) {
				if tt.hang && c.Model == bogus && broken.Load() {
					select {
					case <-allSent:
					case <-ctx.Done():
					}
				}
				return failing.Do(ctx, c)
			})
			store := dlq.NewMemory()
			o := baseOptions(t, writeFile(t, "mix.jsonl", b.String()), d, clk)
			o.Limiter = mustAIMD(t, AIMDOptions{Initial: 16})
			o.DLQ = &dlq.Recorder{Store: store, Source: "batch", Clock: clk}
			badSent := func() int {
				n := 0
				for i := range tt.bad {
					n += fake.count(fmt.Sprintf("b%03d", tt.before+i))
				}
				return n
			}
			for try := 1; try <= 2; try++ { // the first run, then a resume with the model still wrong
				sentBefore := badSent()
				sum, err := Run(ctx, o)
				if !errors.Is(err, ErrTargetFailing) {
					t.Fatalf("run %d: %+v, %v; want ErrTargetFailing", try, sum, err)
				}
				for _, want := range []string{bogus, catalog.CodeValidation, invalid, "resume"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("run %d: error %q does not say %q", try, err, want)
					}
				}
				if n := badSent() - sentBefore; n != stopAfter {
					t.Errorf("run %d: %d calls to %s, want %d", try, n, bogus, stopAfter)
				}
				parked, _ := store.List(ctx, dlq.Filter{})
				if sum.Succeeded != len(good) || sum.Failed != 0 || sum.Pending != tt.bad || len(parked) != 0 {
					t.Errorf("run %d: summary %+v, %d parked; want %d succeeded, the %d bad ones pending, none parked", try, sum, len(parked), len(good), tt.bad)
				}
				if res := readResults(t, o.Out); len(res) != len(good) {
					t.Errorf("run %d: %d result lines, want %d", try, len(res), len(good))
				}
				for _, id := range good {
					if n := fake.count(id); n != 1 {
						t.Errorf("run %d: %s sent %d times", try, id, n)
					}
				}
			}
			broken.Store(false) // the model id fixed (or access granted): the same command finishes the run
			sum, err := Run(ctx, o)
			if err != nil || sum.Succeeded != len(good)+tt.bad || sum.Pending != 0 || sum.Sent != tt.bad {
				t.Errorf("resumed run: %+v, %v", sum, err)
			}
		})
	}
}
