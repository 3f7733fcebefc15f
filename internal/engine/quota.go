package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/jsonscan"
	"github.com/keel-run/keel/internal/retry"
)

// This file wires the quota governor (package admission) into the engine's
// path: every attempt but CountTokens (which Bedrock does not meter) is
// admitted on its target before it is sent, and its Ticket is ended by what
// happened to it:
//
//	throttled (catalog.Throttled)          Ticket.Throttled: the target pauses, its limit shrinks
//	answered, usage known                   Ticket.Settle: a Converse body's "usage", InvokeModel's
//	                                        usage headers, a stream's metadata event, or for a stream
//	                                        cut short, the output it delivered
//	not sent, or failed with no usage       Ticket.Cancel
//
// A refusal (the call can never fit the target's quota, or would not fit
// before its deadline) moves the call to the route's next target, whose
// quota is its own; with none left, the call fails with the refusal's
// catalog entry (RequestTooLargeForQuota, NoQuotaBeforeDeadline,
// TargetOverloaded).

// Priority is a call's class in the quota governor's queues: Interactive
// calls are served first; Batch calls get one grant in every
// admission.DefaultBatchEvery+1 while both wait. The zero Priority is
// Interactive.
type Priority = admission.Class

// Priorities.
const (
	Interactive = admission.Interactive
	Batch       = admission.Batch
)

// Governor returns the quota governor attempts are admitted by, or nil.
func (e *Engine) Governor() *admission.Governor { return e.gov }

// QuotaGoverned reports whether calls go through a quota governor. The
// batch runner reads it to let the governor pace a run.
func (e *Engine) QuotaGoverned() bool { return e.gov != nil }

// QuotaStats returns the quota governor's figures for target t, and false
// when there is no governor or it holds no state for t yet.
func (e *Engine) QuotaStats(t attempt.Target) (admission.Stats, bool) {
	return e.gov.Stats(t)
}

// governs reports whether an operation's attempts are admitted.
func (e *Engine) governs(op attempt.Op) bool {
	return e.gov != nil && op != attempt.CountTokens
}

// throttleCap is how long the retry of a throttled attempt may wait for
// quota: the retry policy's throttle ceiling, the longest the backoff it
// replaces could have waited.
func (e *Engine) throttleCap() time.Duration {
	if c := e.opts.Retry.ThrottleCap; c > 0 {
		return c
	}
	return retry.DefaultThrottleCap
}

// limited reports whether the governor holds a tokens-per-minute limit for
// t: a configured quota, or one learned from throttles.
func (e *Engine) limited(t attempt.Target) bool {
	st, ok := e.gov.Stats(t)
	return ok && st.Limit > 0
}

// retryAfterFloor is the wait a Retry-After hint asks for, bounded as the
// retry policy bounds it.
func (e *Engine) retryAfterFloor(ra time.Duration) time.Duration {
	if ra <= 0 {
		return 0
	}
	m := e.opts.Retry.MaxRetryAfter
	if m <= 0 {
		m = retry.DefaultMaxRetryAfter
	}
	return min(ra, m)
}

// endFailed ends the Ticket of an attempt that failed: a throttle tells the
// governor, an attempt that reported usage (a stream that failed before its
// first content, after its start said what input it took) is charged it,
// an attempt whose 2xx reply broke or was too large, or that the caller or
// keel's attempt timeout gave up on, is charged its input estimate, since
// Bedrock charges a request it was answering for its input and what it
// generated, and anything else gives everything back.
func endFailed(tk *admission.Ticket, entry *catalog.Entry, u Usage, status int) {
	switch {
	case entry != nil && entry.Retry == catalog.Throttled:
		tk.Throttled()
	case u.InputTokens+u.CacheReadInputTokens+u.CacheWriteInputTokens+u.OutputTokens > 0:
		tk.Settle(admissionUsage(u))
	case status >= 200 && status < 300:
		// The reply came (Bedrock generated, and charged, it) but broke
		// or was too large: the usage is unknown.
		tk.Settle(admission.Usage{})
	case entry != nil && (entry.Code == catalog.CodeDeadlineExceeded || entry.Code == catalog.CodeContextCanceled ||
		entry.Code == catalog.CodeAttemptTimeout):
		tk.Settle(admission.Usage{})
	default:
		tk.Cancel()
	}
}

func admissionUsage(u Usage) admission.Usage {
	return admission.Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
		CacheReadInputTokens: u.CacheReadInputTokens, CacheWriteInputTokens: u.CacheWriteInputTokens}
}

// quotaRefusal turns an Admit error into the call's error and the catalog
// entry of the skipped attempt. ended reports that the caller's context
// ended (cancelled, or its deadline came while the call waited): the call
// stops there.
func (e *Engine) quotaRefusal(ctx context.Context, err error, t attempt.Target, rep *Report, retried bool) (qe *Error, ended bool) {
	var ae *admission.Error
	if !errors.As(err, &ae) {
		// The context was cancelled while the call waited, or the
		// arguments were refused (an unknown Priority): not a quota verdict.
		res := classify.FromError(err)
		if res.Entry == nil || res.Entry.Category != catalog.Client {
			return &Error{Entry: catalog.Must(catalog.CodeUnclassified), Message: err.Error(), Report: rep, Err: err}, true
		}
		return &Error{Entry: res.Entry, Code: res.Entry.Code, Message: "while waiting for quota on " + t.String(), Report: rep, Err: err}, true
	}
	code, reason := catalog.CodeNoQuotaBeforeDeadline, "would-exceed-deadline"
	switch {
	case errors.Is(err, admission.ErrTooLarge):
		code, reason = catalog.CodeRequestTooLargeForQuota, "too-large"
	case errors.Is(err, admission.ErrOverloaded):
		code, reason = catalog.CodeTargetOverloaded, "overloaded"
	}
	msg := err.Error()
	if retried && code == catalog.CodeNoQuotaBeforeDeadline && ae.Err == nil {
		msg += fmt.Sprintf(" (the retry after a throttle waits for quota at most the retry policy's throttle cap, %v)", e.throttleCap())
	}
	if e.m != nil {
		e.m.QuotaRefusals.WithLabelValues(e.models.label(t.Model), e.regions.label(t.Region), reason).Inc()
	}
	return &Error{Entry: catalog.Must(code), Code: code, Message: msg, Report: rep, Err: err}, ctx.Err() != nil
}

// admitted records what a granted admission waited.
func (e *Engine) admitted(tk *admission.Ticket, t attempt.Target, p Priority) {
	if w := tk.Waited(); w > 0 && e.m != nil {
		e.m.QuotaWait.WithLabelValues(e.models.label(t.Model), e.regions.label(t.Region), p.String()).Observe(w.Seconds())
	}
}

func (e *Engine) logRefusal(ctx context.Context, call *Call, t attempt.Target, n int, qe *Error) {
	if e.log == nil || !e.log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	e.log.LogAttrs(ctx, slog.LevelWarn, "quota", slog.String("op", string(call.Op)), slog.String("model", t.Model),
		slog.String("region", t.Region), slog.Int("attempt", n), slog.String("priority", call.Priority.String()),
		slog.String("code", qe.Entry.Code), slog.String("message", qe.Message))
}

// settleResponse ends the Ticket of a non-streaming attempt that succeeded,
// whose body send has read: with InvokeModel's usage headers, else with the
// usage its body reports (a body without any is charged its input
// estimate).
func settleResponse(resp *http.Response, body []byte, tk admission.Ticket) {
	if u, ok := headerUsage(resp.Header); ok {
		tk.Settle(u)
		return
	}
	tk.Settle(bodyUsage(body))
}

// ReplyUsage returns the usage a non-streaming reply reports: InvokeModel's
// usage headers when h has them, else the top-level "usage" object of its
// JSON body (Converse, and the Anthropic and Nova InvokeModel bodies). A
// gateway reads it to account a caller's tokens as the governor does.
func ReplyUsage(h http.Header, body []byte) Usage {
	u, ok := headerUsage(h)
	if !ok {
		u = bodyUsage(body)
	}
	return Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
		CacheReadInputTokens: u.CacheReadInputTokens, CacheWriteInputTokens: u.CacheWriteInputTokens}
}

// Header names as http.Header keeps them (canonical), read directly so that
// no lookup allocates.
const (
	hdrInputTokens      = "X-Amzn-Bedrock-Input-Token-Count"
	hdrOutputTokens     = "X-Amzn-Bedrock-Output-Token-Count"
	hdrCacheReadTokens  = "X-Amzn-Bedrock-Cache-Read-Input-Token-Count"
	hdrCacheWriteTokens = "X-Amzn-Bedrock-Cache-Write-Input-Token-Count"
)

// headerUsage reads InvokeModel's usage headers; ok is false when the
// response has none (Converse).
func headerUsage(h http.Header) (admission.Usage, bool) {
	in, ok := headerInt(h, hdrInputTokens)
	if !ok {
		return admission.Usage{}, false
	}
	out, _ := headerInt(h, hdrOutputTokens)
	cr, _ := headerInt(h, hdrCacheReadTokens)
	cw, _ := headerInt(h, hdrCacheWriteTokens)
	return admission.Usage{InputTokens: in, OutputTokens: out, CacheReadInputTokens: cr, CacheWriteInputTokens: cw}, true
}

func headerInt(h http.Header, key string) (int, bool) {
	v := h[key]
	if len(v) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(v[0])
	return n, err == nil
}

// maxUsageCount caps a count read from a reply body, far above any real one,
// so that a hostile number cannot overflow the governor's sums.
const maxUsageCount = 1 << 40

// bodyUsage reads the numbers of a JSON reply body's top-level "usage"
// object: Converse's {"inputTokens", "outputTokens", "cacheReadInputTokens",
// "cacheWriteInputTokens"} and the Anthropic and Nova InvokeModel bodies'
// {"input_tokens", "output_tokens", "cache_read_input_tokens",
// "cache_creation_input_tokens"}. Other values and deeper "usage" keys do
// not count; a body that is not JSON gives what was read before the problem.
// It does not allocate.
func bodyUsage(body []byte) admission.Usage {
	var u admission.Usage
	s := jsonscan.New(body, 0)
	s.Object(func(key []byte) {
		if string(key) != "usage" || s.Peek() != '{' {
			return
		}
		s.Object(func(key []byte) {
			if c := s.Peek(); c != '-' && (c < '0' || c > '9') {
				return
			}
			var n *int
			switch string(key) {
			case "inputTokens", "input_tokens":
				n = &u.InputTokens
			case "outputTokens", "output_tokens":
				n = &u.OutputTokens
			case "cacheReadInputTokens", "cache_read_input_tokens":
				n = &u.CacheReadInputTokens
			case "cacheWriteInputTokens", "cache_creation_input_tokens":
				n = &u.CacheWriteInputTokens
			default:
				return
			}
			*n = int(max(0, min(s.Float(), maxUsageCount)))
		})
	})
	return u
}
