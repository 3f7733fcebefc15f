package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/keelx"
)

// Recorder parks terminal failures in a Store. Store must be set; the other
// fields' zero values are the defaults. A Recorder is safe for concurrent
// use when its Store is.
type Recorder struct {
	// Store receives the entries.
	Store Store
	// Redact replaces the text of messages and system prompts in stored
	// bodies with "[redacted N chars]" (see Redact). Off by default: a
	// redacted entry cannot be redriven.
	Redact bool
	// Source is copied into every entry (e.g. "batch").
	Source string
	// Clock stamps entries; nil is the wall clock.
	Clock clock.Clock
}

// Record parks call, which failed with err, when the failure is terminal
// (see Terminal), and returns the stored entry. It returns nil and no error
// when there is nothing to park: err is nil, or ctx (the caller's context
// for the call) has ended, so the caller gave up rather than the call. key,
// when not empty, makes the parking idempotent (see Entry.Key).
func (r *Recorder) Record(ctx context.Context, call *engine.Call, err error, key string) (*Entry, error) {
	if !Terminal(ctx, err) {
		return nil, nil
	}
	if call == nil {
		return nil, errors.New("dlq: Record needs the call that failed")
	}
	clk := r.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	e, rerr := NewEntry(call, err, clk.Now(), r.Redact)
	if rerr != nil {
		return nil, rerr
	}
	e.Key, e.Source = key, r.Source
	// Park even when the caller's context ends now: losing the entry is worse.
	id, perr := r.Store.Put(context.WithoutCancel(ctx), e)
	if perr != nil {
		return nil, perr
	}
	e.ID = id
	return e, nil
}

// Record parks a terminal failure of call in s with the default Recorder
// settings (no redaction). See Recorder.Record.
func Record(ctx context.Context, s Store, call *engine.Call, err error) (*Entry, error) {
	return (&Recorder{Store: s}).Record(ctx, call, err, "")
}

// Terminal reports whether err, returned by a call made with ctx, is a
// terminal failure worth parking: any failure the engine returned, unless
// the caller's own context ended (a cancelled batch, a client that went
// away), which leaves the request to be sent again by whoever resumes it.
func Terminal(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	return ctx == nil || ctx.Err() == nil
}

// failure is what an error says about a failed call.
type failure struct {
	entry                    *catalog.Entry
	code, message, requestID string
	status                   int
	report                   *engine.Report
}

func describe(err error) failure {
	var ee *engine.Error
	if errors.As(err, &ee) {
		f := failure{entry: ee.Entry, code: ee.Code, status: ee.Status, message: ee.Message, requestID: ee.RequestID, report: ee.Report}
		if f.message == "" || ee.GaveUp != "" {
			f.message = ee.Error()
		}
		if f.entry == nil {
			f.entry = classify.FromError(err).Entry
		}
		return f
	}
	// The SDK face's error (a *keel.Error) carries the engine's account.
	if entry, rep, ok := keelx.Details(err); ok {
		f := failure{entry: entry, report: rep, message: err.Error()}
		res := classify.FromError(err)
		f.status, f.requestID, f.code = res.Status, res.RequestID, res.Code
		if f.entry == nil {
			f.entry = res.Entry
		}
		return f
	}
	res := classify.FromError(err)
	return failure{entry: res.Entry, code: res.Code, status: res.Status, message: err.Error(), requestID: res.RequestID}
}

// NewEntry builds the entry for call, which failed with err at now, without
// storing it. redact applies Redact to the body; a body that is not JSON is
// then dropped whole (its length is kept in the message) rather than stored
// in clear.
func NewEntry(call *engine.Call, err error, now time.Time, redact bool) (*Entry, error) {
	if err == nil {
		return nil, errors.New("dlq: NewEntry needs an error")
	}
	e := &Entry{Op: string(call.Op), Model: call.Model, Region: call.Region, Body: append([]byte(nil), call.Body...), CreatedAt: now}
	if redact {
		e.Body, e.Redacted = RedactBody(e.Body), true
	}
	e.Fail(err, now, 0)
	return e, nil
}

// Fail records a new failure of e's request at now: the error fields, the
// attempts of its report appended to the history (marked with redrive), the
// failure time, and the not-before time a LongWait failure asks for.
func (e *Entry) Fail(err error, now time.Time, redrive int) {
	f := describe(err)
	e.Code, e.Retry = catalog.CodeUnclassified, ""
	if f.entry != nil {
		e.Code, e.Retry = f.entry.Code, string(f.entry.Retry)
		if f.status == 0 {
			f.status = f.entry.Status
		}
	}
	e.Status, e.Message, e.RequestID = f.status, f.message, f.requestID
	if f.report != nil {
		if e.Region == "" && len(f.report.Attempts) > 0 {
			e.Region = f.report.Attempts[0].Target.Region
		}
		for _, a := range f.report.Attempts {
			e.Attempts = append(e.Attempts, Attempt{Model: a.Target.Model, Region: a.Target.Region, Status: a.Status,
				Code: a.Code, RequestID: a.RequestID, Start: normTime(a.Start), Delay: a.Delay, Duration: a.Duration,
				Skipped: a.Skipped, Redrive: redrive})
		}
	}
	e.FailedAt = now
	e.NotBefore = time.Time{}
	if f.entry != nil && f.entry.Retry == catalog.LongWait && f.entry.Wait > 0 {
		e.NotBefore = now.Add(f.entry.Wait)
	}
}

// String renders a one-line summary: id, code, model and age-independent facts.
func (e *Entry) String() string {
	return fmt.Sprintf("%d %s %s %s (%d attempt(s), %d redrive(s))", e.ID, e.Code, e.Op, e.Model, len(e.Attempts), e.Redrives)
}
