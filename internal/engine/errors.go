package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// Error is a call's final failure: the catalog entry that decided it, the
// code and status as seen, and the whole attempt history. It wraps the
// underlying error (a transport error, an open breaker, a deadline), so
// errors.Is and errors.As see through it.
type Error struct {
	Entry     *catalog.Entry
	Code      string // as seen on the wire; may differ in spelling from Entry.Code
	Status    int    // the true status (0 when no response arrived)
	Message   string
	RequestID string
	// GaveUp says why keel stopped when it was not the entry's own verdict,
	// e.g. "the next wait would cross the deadline".
	GaveUp string
	Report *Report
	// Stream is set when a stream failed after its reader had received
	// part of the reply: how much, and what.
	Stream *StreamFailure
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("keel: ")
	code := e.Code
	if code == "" && e.Entry != nil {
		code = e.Entry.Code
	}
	b.WriteString(code)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Stream != nil {
		fmt.Fprintf(&b, "; the stream broke after %d event(s)", e.Stream.Events)
		if e.Stream.Resumes > 0 {
			fmt.Fprintf(&b, " and %d resume(s)", e.Stream.Resumes)
		}
	}
	if e.Report != nil {
		fmt.Fprintf(&b, " after %d attempt(s)", e.Report.Sent())
		if e.Report.Target.Model != "" {
			fmt.Fprintf(&b, ", last on %s", e.Report.Target)
		}
	}
	if e.GaveUp != "" {
		b.WriteString("; gave up: ")
		b.WriteString(e.GaveUp)
	}
	if e.Err != nil && e.Message == "" {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is a catalog.Kind that matches the failure's
// entry (keel.ErrThrottled and its kin).
func (e *Error) Is(target error) bool {
	k, ok := target.(*catalog.Kind)
	return ok && k.Matches(e.Entry)
}

// CatalogEntry lets the classifier and `keel explain` read the entry.
func (e *Error) CatalogEntry() *catalog.Entry { return e.Entry }

func (e *Engine) openError(err error, t attempt.Target, rep *Report) *Error {
	var oe *breaker.OpenError
	msg := "circuit breaker open for " + t.String()
	if errors.As(err, &oe) {
		msg = fmt.Sprintf("circuit breaker open for %s; next probe at %s", t, oe.ProbeAt.UTC().Format("15:04:05.000Z07:00"))
	}
	return &Error{Entry: catalog.Must(catalog.CodeCircuitOpen), Code: catalog.CodeCircuitOpen, Message: msg, Report: rep, Err: err}
}

// inspect looks at one attempt's result. ok is true for a 2xx response. For a
// failure it classifies the error or the error response, whose body it reads
// (bounded) and puts back so the caller can still decode it.
func (e *Engine) inspect(resp *http.Response, sendErr error, a *Attempt) (classify.Result, bool) {
	if sendErr != nil {
		return classify.FromError(sendErr), false
	}
	a.Status = resp.StatusCode
	a.RequestID = resp.Header.Get("X-Amzn-Requestid")
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return classify.Result{}, true
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, e.opts.MaxErrorBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	res := classify.FromHTTP(resp.StatusCode, resp.Header, body)
	if err != nil && res.Entry == nil {
		res = classify.FromError(err)
	}
	if res.Entry == nil {
		res.Entry = catalog.ForStatus(resp.StatusCode)
	}
	return res, false
}

// degrade replaces a Converse reply blocked by a content filter or guardrail
// with the configured message, keeping the usage the call consumed.
func (e *Engine) degrade(resp *http.Response, rep *Report) (*http.Response, error) {
	body, err := io.ReadAll(resp.Body) // read whole and bounded by send
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return resp, nil
	}
	var out map[string]json.RawMessage
	if json.Unmarshal(body, &out) != nil {
		return resp, nil
	}
	var reason string
	json.Unmarshal(out["stopReason"], &reason)
	if _, blocked := classify.FromStopReason(reason); !blocked {
		return resp, nil
	}
	msg, _ := json.Marshal(map[string]any{"message": map[string]any{"role": "assistant", "content": []any{map[string]string{"text": e.opts.ContentFilterMessage}}}})
	out["output"] = msg
	out["stopReason"] = json.RawMessage(`"end_turn"`)
	nb, err := json.Marshal(out)
	if err != nil {
		return resp, nil
	}
	rep.Degraded = true
	resp.Body = io.NopCloser(bytes.NewReader(nb))
	resp.ContentLength = int64(len(nb))
	resp.Header.Set("Content-Length", strconv.Itoa(len(nb)))
	resp.Header.Set("X-Keel-Degraded", "content-filter")
	return resp, nil
}
