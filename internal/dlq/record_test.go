package dlq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
)

var t0 = time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)

const body = `{"messages":[{"role":"user","content":[{"text":"secret plan"}]}],"system":[{"text":"be brief"}],"inferenceConfig":{"maxTokens":50}}`

func call() *engine.Call {
	return &engine.Call{Op: attempt.Converse, Model: "anthropic.claude-3-haiku-20240307-v1:0", Body: []byte(body)}
}

func report(codes ...string) *engine.Report {
	rep := &engine.Report{}
	for i, c := range codes {
		a := engine.Attempt{Target: attempt.Target{Model: "anthropic.claude-3-haiku-20240307-v1:0", Region: "us-east-1"},
			Status: catalog.Must(c).Status, Code: c, RequestID: fmt.Sprintf("r%d", i), Start: t0.Add(time.Duration(i) * time.Second),
			Delay: time.Duration(i) * time.Second, Duration: 20 * time.Millisecond}
		rep.Attempts = append(rep.Attempts, a)
		rep.Target = a.Target
	}
	return rep
}

func engineErr(code, msg string, rep *engine.Report) *engine.Error {
	e := catalog.Must(code)
	return &engine.Error{Entry: e, Code: code, Status: e.Status, Message: msg, RequestID: "req-last", Report: rep}
}

func TestRecord(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name          string
		ctx           context.Context
		err           error
		parked        bool
		code          string
		status        int
		attempts      int
		notBefore     time.Duration // after t0; 0: none
		messageSubstr string
	}{
		{name: "nil error parks nothing", ctx: context.Background(), err: nil},
		{name: "caller cancelled parks nothing", ctx: cancelled, err: engineErr(catalog.CodeThrottling, "x", report(catalog.CodeThrottling))},
		{name: "non-retryable", ctx: context.Background(), err: engineErr(catalog.CodeValidation, "bad max tokens", report(catalog.CodeValidation)),
			parked: true, code: catalog.CodeValidation, status: 400, attempts: 1, messageSubstr: "bad max tokens"},
		{name: "retries used up", ctx: context.Background(),
			err:    engineErr(catalog.CodeThrottling, "Too many tokens", report(catalog.CodeThrottling, catalog.CodeThrottling, catalog.CodeThrottling)),
			parked: true, code: catalog.CodeThrottling, status: 429, attempts: 3, messageSubstr: "Too many tokens"},
		{name: "long wait gets a not-before", ctx: context.Background(),
			err:    engineErr(catalog.CodeMPAgreementBeingCreated, "still being processed", report(catalog.CodeMPAgreementBeingCreated)),
			parked: true, code: catalog.CodeMPAgreementBeingCreated, status: 403, attempts: 1, notBefore: 15 * time.Minute},
		{name: "breaker open, no fallback", ctx: context.Background(),
			err: &engine.Error{Entry: catalog.Must(catalog.CodeCircuitOpen), Code: catalog.CodeCircuitOpen,
				Message: "circuit breaker open for m@us-east-1", Report: &engine.Report{Attempts: []engine.Attempt{
					{Target: attempt.Target{Model: "m", Region: "us-east-1"}, Skipped: true, Code: catalog.CodeCircuitOpen, Start: t0}}}},
			parked: true, code: catalog.CodeCircuitOpen, attempts: 1, messageSubstr: "circuit breaker open"},
		{name: "gave up before a deadline keeps the reason", ctx: context.Background(),
			err: func() error {
				e := engineErr(catalog.CodeServiceUnavailable, "Service unavailable", report(catalog.CodeServiceUnavailable))
				e.GaveUp = "the next wait would cross the deadline"
				return e
			}(),
			parked: true, code: catalog.CodeServiceUnavailable, status: 503, attempts: 1, messageSubstr: "gave up: the next wait"},
		{name: "wrapped engine error", ctx: context.Background(),
			err:    fmt.Errorf("batch: record 7: %w", engineErr(catalog.CodeModelTimeout, "timed out", report(catalog.CodeModelTimeout))),
			parked: true, code: catalog.CodeModelTimeout, status: 408, attempts: 1, messageSubstr: "timed out"},
		{name: "plain Go error is classified", ctx: context.Background(), err: context.DeadlineExceeded,
			parked: true, code: catalog.CodeDeadlineExceeded, attempts: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := dlq.NewMemory()
			r := &dlq.Recorder{Store: s, Source: "test", Clock: clock.NewFake(t0)}
			e, err := r.Record(tt.ctx, call(), tt.err, "")
			if err != nil {
				t.Fatalf("Record: %v", err)
			}
			stored, _ := s.List(context.Background(), dlq.Filter{})
			if !tt.parked {
				if e != nil || len(stored) != 0 {
					t.Fatalf("parked %v (%d stored); want nothing", e, len(stored))
				}
				return
			}
			if e == nil || len(stored) != 1 || stored[0].ID != e.ID {
				t.Fatalf("Record returned %v and stored %d entries; want one entry", e, len(stored))
			}
			got := stored[0]
			if got.Code != tt.code || got.Status != tt.status || len(got.Attempts) != tt.attempts {
				t.Errorf("code %s status %d attempts %d; want %s %d %d", got.Code, got.Status, len(got.Attempts), tt.code, tt.status, tt.attempts)
			}
			if got.Op != "converse" || got.Model != call().Model || string(got.Body) != body || got.Redacted || got.Source != "test" {
				t.Errorf("request not kept: %+v", got)
			}
			if !got.CreatedAt.Equal(t0) || !got.FailedAt.Equal(t0) {
				t.Errorf("times %v %v; want %v", got.CreatedAt, got.FailedAt, t0)
			}
			wantNB := time.Time{}
			if tt.notBefore > 0 {
				wantNB = t0.Add(tt.notBefore)
			}
			if !got.NotBefore.Equal(wantNB) {
				t.Errorf("not-before %v; want %v", got.NotBefore, wantNB)
			}
			if got.Due(t0) != (tt.notBefore == 0) {
				t.Errorf("Due(now) = %v", got.Due(t0))
			}
			if !strings.Contains(got.Message, tt.messageSubstr) {
				t.Errorf("message %q lacks %q", got.Message, tt.messageSubstr)
			}
			if tt.attempts > 0 && (got.Region != "us-east-1" || (got.Attempts[0].Status != 0 && got.Attempts[0].RequestID == "")) {
				t.Errorf("region %q, first attempt %+v", got.Region, got.Attempts[0])
			}
		})
	}
}

func TestRecordKeyIsIdempotent(t *testing.T) {
	s := dlq.NewMemory()
	r := &dlq.Recorder{Store: s, Clock: clock.NewFake(t0)}
	err := engineErr(catalog.CodeValidation, "bad", report(catalog.CodeValidation))
	a, _ := r.Record(context.Background(), call(), err, "run:rec-1")
	b, _ := r.Record(context.Background(), call(), err, "run:rec-1")
	if a.ID != b.ID {
		t.Errorf("same key parked twice: IDs %d and %d", a.ID, b.ID)
	}
	if l, _ := s.List(context.Background(), dlq.Filter{}); len(l) != 1 {
		t.Errorf("%d entries; want 1", len(l))
	}
}

func TestRecordRedacts(t *testing.T) {
	s := dlq.NewMemory()
	r := &dlq.Recorder{Store: s, Redact: true, Clock: clock.NewFake(t0)}
	e, err := r.Record(context.Background(), call(), engineErr(catalog.CodeValidation, "bad", nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if !e.Redacted || strings.Contains(string(e.Body), "secret") || !strings.Contains(string(e.Body), "[redacted 11 chars]") {
		t.Errorf("body %s, redacted %v", e.Body, e.Redacted)
	}
	if string(call().Body) != body {
		t.Error("the caller's body was changed")
	}
}

func TestEntryFailExtendsHistory(t *testing.T) {
	e, err := dlq.NewEntry(call(), engineErr(catalog.CodeMPAgreementBeingCreated, "pending", report(catalog.CodeMPAgreementBeingCreated)), t0, false)
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(20 * time.Minute)
	e.Redrives++
	e.Fail(engineErr(catalog.CodeThrottling, "slow down", report(catalog.CodeThrottling, catalog.CodeThrottling)), later, e.Redrives)
	if len(e.Attempts) != 3 || e.Attempts[0].Redrive != 0 || e.Attempts[1].Redrive != 1 || e.Attempts[2].Redrive != 1 {
		t.Errorf("attempts %+v; want the first call's one and the redrive's two", e.Attempts)
	}
	if e.Code != catalog.CodeThrottling || !e.FailedAt.Equal(later) || !e.CreatedAt.Equal(t0) || !e.NotBefore.IsZero() {
		t.Errorf("after a throttled redrive: code %s failed %v created %v not-before %v", e.Code, e.FailedAt, e.CreatedAt, e.NotBefore)
	}
}

// TestRecordThroughEngine parks a call that really went through the engine
// to an HTTP server answering ValidationException.
func TestRecordThroughEngine(t *testing.T) {
	var (
		mu   sync.Mutex
		hits int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		hits++
		mu.Unlock()
		w.Header().Set("X-Amzn-ErrorType", "ValidationException")
		w.Header().Set("X-Amzn-RequestId", "req-42")
		w.WriteHeader(400)
		json.NewEncoder(w).Encode(map[string]string{"message": "The maximum tokens you requested exceeds the model limit"})
	}))
	defer srv.Close()
	eps, _ := attempt.EndpointsFor(mustURL(t, srv.URL)).(attempt.FixedEndpoint)
	eng, err := engine.New(engine.Options{Endpoints: eps, Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	c := call()
	_, _, callErr := eng.Do(context.Background(), c)
	if callErr == nil {
		t.Fatal("the call succeeded")
	}
	s := dlq.NewMemory()
	e, err := dlq.Record(context.Background(), s, c, callErr)
	if err != nil || e == nil {
		t.Fatalf("Record: %v, %v", e, err)
	}
	if e.Code != catalog.CodeValidation || e.Status != 400 || e.RequestID != "req-42" || len(e.Attempts) != hits ||
		!strings.Contains(e.Message, "exceeds the model limit") || e.Region != "us-east-1" {
		t.Errorf("entry %+v after %d hits", e, hits)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
