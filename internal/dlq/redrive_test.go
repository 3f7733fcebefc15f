package dlq_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/lockfile"
)

// sender answers calls: models named "fail..." with a ValidationException,
// the others with a reply naming the model; it records every call.
type sender struct {
	calls []*engine.Call
	hook  func(ctx context.Context, call *engine.Call) // runs first, when set
}

func (s *sender) Do(ctx context.Context, call *engine.Call) (*http.Response, *engine.Report, error) {
	s.calls = append(s.calls, call)
	if s.hook != nil {
		s.hook(ctx, call)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	tgt := attempt.Target{Model: call.Model, Region: call.Region}
	if strings.HasPrefix(call.Model, "fail") {
		rep := &engine.Report{Target: tgt, Attempts: []engine.Attempt{{Target: tgt, Status: 400, Code: catalog.CodeValidation, Start: t0}}}
		return nil, rep, &engine.Error{Entry: catalog.Must(catalog.CodeValidation), Code: catalog.CodeValidation, Status: 400,
			Message: "still bad", Report: rep}
	}
	rep := &engine.Report{Target: tgt, Attempts: []engine.Attempt{{Target: tgt, Status: 200, Start: t0}}}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"X-Model": {call.Model}},
		Body: io.NopCloser(strings.NewReader(`{"reply":"` + call.Model + `"}`))}
	return resp, rep, nil
}

// park puts entries into a new Memory store, parked an hour before t0.
func park(t *testing.T, es ...*dlq.Entry) dlq.Store {
	t.Helper()
	s := dlq.NewMemory()
	for _, e := range es {
		e.CreatedAt, e.FailedAt = t0.Add(-time.Hour), t0.Add(-time.Hour)
		if e.Code == "" {
			e.Code, e.Status = catalog.CodeValidation, 400
		}
		if e.Body == nil {
			e.Body = []byte(`{"messages":[]}`)
		}
		if _, err := s.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func models(es []*dlq.Entry) []string {
	var ms []string
	for _, e := range es {
		ms = append(ms, e.Model)
	}
	return ms
}

func left(t *testing.T, s dlq.Store) []*dlq.Entry {
	t.Helper()
	es, err := s.List(context.Background(), dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestRedrive(t *testing.T) {
	s := park(t,
		&dlq.Entry{Op: "converse-stream", Model: "ok-stream", Region: "us-west-2"},
		&dlq.Entry{Op: "converse", Model: "ok-later", Code: catalog.CodeMPAgreementBeingCreated, Status: 403, NotBefore: t0.Add(time.Minute)},
		&dlq.Entry{Op: "converse", Model: "ok-redacted", Redacted: true},
		&dlq.Entry{Op: "invoke", Model: "fail-again", Region: "eu-west-1",
			Attempts: []dlq.Attempt{{Model: "fail-again", Region: "eu-west-1", Status: 400, Start: t0.Add(-time.Hour)}}},
	)
	var saved, done []dlq.Result
	snd := &sender{}
	sum, err := dlq.Redrive(context.Background(), s, snd, dlq.RedriveOptions{Clock: clock.NewFake(t0),
		Save: func(r dlq.Result) error { saved = append(saved, r); return nil },
		Done: func(r dlq.Result) { done = append(done, r) }})
	if err != nil {
		t.Fatal(err)
	}
	want := dlq.Summary{Selected: 4, NotDue: 1, Redacted: 1, Succeeded: 1, Failed: 1}
	if sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}

	// A streaming call goes as its non-streaming twin, to the entry's region, as JSON.
	if len(snd.calls) != 2 {
		t.Fatalf("%d calls sent, want 2 (the due, unredacted entries)", len(snd.calls))
	}
	c := snd.calls[0]
	if c.Op != attempt.Converse || c.Model != "ok-stream" || c.Region != "us-west-2" || string(c.Body) != `{"messages":[]}` ||
		c.Header.Get("Content-Type") != "application/json" || c.Header.Get("Accept") != "application/json" {
		t.Errorf("first call %+v", c)
	}

	// The reply is saved, then the entry removed; the failure is recorded on its entry.
	if len(saved) != 1 || saved[0].Op != attempt.Converse || string(saved[0].Body) != `{"reply":"ok-stream"}` ||
		saved[0].Header.Get("X-Model") != "ok-stream" || saved[0].Report.Sent() != 1 || saved[0].Err != nil {
		t.Errorf("saved %+v", saved)
	}
	if len(done) != 2 || done[0].Entry.Model != "ok-stream" || done[1].Entry.Model != "fail-again" || done[1].Err == nil {
		t.Errorf("done %+v", done)
	}
	es := left(t, s)
	if got := models(es); !slices.Equal(got, []string{"ok-later", "ok-redacted", "fail-again"}) {
		t.Fatalf("left %v", got)
	}
	f := es[2]
	if f.Redrives != 1 || f.Code != catalog.CodeValidation || f.Message != "still bad" || !f.FailedAt.Equal(t0) ||
		len(f.Attempts) != 2 || f.Attempts[1].Redrive != 1 || f.Attempts[0].Redrive != 0 {
		t.Errorf("entry that failed again: %+v", f)
	}
	if !f.CreatedAt.Equal(t0.Add(-time.Hour)) {
		t.Errorf("CreatedAt changed to %v", f.CreatedAt)
	}
}

func TestRedriveOptions(t *testing.T) {
	tests := []struct {
		name       string
		opts       dlq.RedriveOptions
		wantSent   []string
		wantRegion string
	}{
		{name: "defaults: due entries only", wantSent: []string{"ok-now"}, wantRegion: "us-east-1"},
		{name: "force sends entries not yet due", opts: dlq.RedriveOptions{Force: true}, wantSent: []string{"ok-now", "ok-later"}, wantRegion: "us-east-1"},
		{name: "region overrides the entry's", opts: dlq.RedriveOptions{Region: "ap-south-1"}, wantSent: []string{"ok-now"}, wantRegion: "ap-south-1"},
		{name: "filter", opts: dlq.RedriveOptions{Force: true, Filter: dlq.Filter{Models: []string{"ok-later"}}}, wantSent: []string{"ok-later"},
			wantRegion: "us-east-1"},
		{name: "limit", opts: dlq.RedriveOptions{Force: true, Filter: dlq.Filter{Limit: 1}}, wantSent: []string{"ok-now"}, wantRegion: "us-east-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := park(t, &dlq.Entry{Op: "converse", Model: "ok-now", Region: "us-east-1"},
				&dlq.Entry{Op: "converse", Model: "ok-later", Region: "us-east-1", NotBefore: t0.Add(time.Second)})
			snd := &sender{}
			o := tt.opts
			o.Clock = clock.NewFake(t0)
			o.Save = func(dlq.Result) error { return nil }
			sum, err := dlq.Redrive(context.Background(), s, snd, o)
			if err != nil {
				t.Fatal(err)
			}
			var sent []string
			for _, c := range snd.calls {
				sent = append(sent, c.Model)
				if c.Region != tt.wantRegion {
					t.Errorf("%s sent to %q, want %q", c.Model, c.Region, tt.wantRegion)
				}
			}
			if !slices.Equal(sent, tt.wantSent) || sum.Succeeded != len(tt.wantSent) {
				t.Errorf("sent %v (summary %+v), want %v", sent, sum, tt.wantSent)
			}
		})
	}
}

// TestRedriveStops: closing Stop ends the redrive after the call in flight,
// whose entry is removed; cancelling the context abandons the call in
// flight, and its entry stays as it was. Either way the rest are not tried.
func TestRedriveStops(t *testing.T) {
	tests := []struct {
		name     string
		cancel   bool
		wantLeft []string
	}{
		{name: "stop", wantLeft: []string{"ok-2", "ok-3"}},
		{name: "cancel", cancel: true, wantLeft: []string{"ok-1", "ok-2", "ok-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := park(t, &dlq.Entry{Op: "converse", Model: "ok-1"}, &dlq.Entry{Op: "converse", Model: "ok-2"},
				&dlq.Entry{Op: "converse", Model: "ok-3"})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stop := make(chan struct{})
			snd := &sender{hook: func(context.Context, *engine.Call) {
				if tt.cancel {
					cancel()
				} else {
					close(stop)
				}
			}}
			sum, err := dlq.Redrive(ctx, s, snd, dlq.RedriveOptions{Stop: stop, Save: func(dlq.Result) error { return nil }})
			if err != nil {
				t.Fatal(err)
			}
			if len(snd.calls) != 1 {
				t.Errorf("%d calls sent, want 1", len(snd.calls))
			}
			if sum.NotTried != len(tt.wantLeft) || sum.Failed != 0 {
				t.Errorf("summary %+v, want %d not tried", sum, len(tt.wantLeft))
			}
			es := left(t, s)
			if got := models(es); !slices.Equal(got, tt.wantLeft) {
				t.Errorf("left %v, want %v", got, tt.wantLeft)
			}
			for _, e := range es {
				if e.Redrives != 0 || len(e.Attempts) != 0 {
					t.Errorf("entry changed: %+v", e)
				}
			}
		})
	}
}

// TestRedriveSaveFailureKeepsEntry: a reply that cannot be saved keeps its
// entry and ends the redrive with a *RedriveError.
func TestRedriveSaveFailureKeepsEntry(t *testing.T) {
	s := park(t, &dlq.Entry{Op: "converse", Model: "ok-1"}, &dlq.Entry{Op: "converse", Model: "ok-2"})
	disk := errors.New("disk full")
	snd := &sender{}
	sum, err := dlq.Redrive(context.Background(), s, snd, dlq.RedriveOptions{Save: func(dlq.Result) error { return disk }})
	var re *dlq.RedriveError
	if !errors.As(err, &re) || re.Step != dlq.StepSave || re.ID != 1 || !errors.Is(err, disk) {
		t.Fatalf("err = %v, want a StepSave *RedriveError for entry 1 wrapping %v", err, disk)
	}
	if !strings.Contains(err.Error(), "dlq: saving the reply of entry 1: disk full") {
		t.Errorf("err = %q", err)
	}
	if len(snd.calls) != 1 || sum.Succeeded != 0 || sum.NotTried != 2 {
		t.Errorf("%d calls, summary %+v", len(snd.calls), sum)
	}
	if got := models(left(t, s)); !slices.Equal(got, []string{"ok-1", "ok-2"}) {
		t.Errorf("left %v", got)
	}
}

// TestRedriveStoreFailures: an entry the store can no longer remove or
// update ends the redrive with the step that failed.
func TestRedriveStoreFailures(t *testing.T) {
	for _, tt := range []struct {
		name  string
		model string
		step  dlq.RedriveStep
		text  string
	}{
		{"remove", "ok", dlq.StepRemove, "succeeded but could not be removed"},
		{"update", "fail", dlq.StepUpdate, "failed again and its history could not be saved"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := park(t, &dlq.Entry{Op: "converse", Model: tt.model})
			// The entry goes behind the redrive's back, after it was listed.
			snd := &sender{hook: func(context.Context, *engine.Call) { s.Delete(context.Background(), 1) }}
			_, err := dlq.Redrive(context.Background(), s, snd, dlq.RedriveOptions{Save: func(dlq.Result) error { return nil }})
			var re *dlq.RedriveError
			if !errors.As(err, &re) || re.Step != tt.step || !errors.Is(err, dlq.ErrNotFound) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %v, want step %d wrapping ErrNotFound", err, tt.step)
			}
		})
	}
}

// TestRedriveLock: while one plan holds the lock, a second is refused at
// once, naming the holder; once the first is closed, a redrive runs again.
func TestRedriveLock(t *testing.T) {
	if !lockfile.Supported {
		t.Skip("no file locks on this system")
	}
	s := park(t, &dlq.Entry{Op: "converse", Model: "ok-1"})
	o := dlq.RedriveOptions{Lock: filepath.Join(t.TempDir(), "dlq.db.redrive.lock"), LockOwner: "keel test", Save: func(dlq.Result) error { return nil }}
	p, err := dlq.PlanRedrive(context.Background(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	snd := &sender{}
	if _, err := dlq.Redrive(context.Background(), s, snd, o); !errors.Is(err, lockfile.ErrLocked) || !strings.Contains(err.Error(), "keel test") {
		t.Errorf("second redrive: err = %v, want one matching lockfile.ErrLocked naming keel test", err)
	}
	if len(snd.calls) != 0 {
		t.Errorf("the refused redrive sent %d calls", len(snd.calls))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if sum, err := dlq.Redrive(context.Background(), s, snd, o); err != nil || sum.Succeeded != 1 {
		t.Errorf("after Close: %+v, %v", sum, err)
	}
}

func TestPlanRunsOnce(t *testing.T) {
	s := park(t, &dlq.Entry{Op: "converse", Model: "ok-1"})
	p, err := dlq.PlanRedrive(context.Background(), s, dlq.RedriveOptions{Save: func(dlq.Result) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	snd := &sender{}
	if sum, err := p.Run(context.Background(), snd); err != nil || sum.Succeeded != 1 {
		t.Fatalf("first Run: %+v, %v", sum, err)
	}
	if _, err := p.Run(context.Background(), snd); err == nil || len(snd.calls) != 1 {
		t.Errorf("second Run: err = %v after %d calls; want an error and no call", err, len(snd.calls))
	}
}

// TestPlanRunAfterClose: a closed Plan's lock is released, so it sends
// nothing.
func TestPlanRunAfterClose(t *testing.T) {
	s := park(t, &dlq.Entry{Op: "converse", Model: "ok-1"})
	p, err := dlq.PlanRedrive(context.Background(), s, dlq.RedriveOptions{Save: func(dlq.Result) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	snd := &sender{}
	if _, err := p.Run(context.Background(), snd); err == nil || len(snd.calls) != 0 {
		t.Errorf("Run after Close: err = %v after %d calls; want an error and no call", err, len(snd.calls))
	}
}

func TestRedriveNeedsSave(t *testing.T) {
	_, err := dlq.Redrive(context.Background(), dlq.NewMemory(), &sender{}, dlq.RedriveOptions{})
	if err == nil || !strings.Contains(err.Error(), "Save") {
		t.Errorf("err = %v, want one asking for Save", err)
	}
}

func TestRedriveOp(t *testing.T) {
	for _, tt := range []struct {
		op   string
		want attempt.Op
	}{
		{"converse", attempt.Converse},
		{"converse-stream", attempt.Converse},
		{"invoke", attempt.Invoke},
		{"invoke-with-response-stream", attempt.Invoke},
	} {
		if got := dlq.RedriveOp(tt.op); got != tt.want {
			t.Errorf("RedriveOp(%q) = %q, want %q", tt.op, got, tt.want)
		}
	}
}
