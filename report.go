package keel

import (
	"time"

	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/engine"
)

// Target is a model in a region on a service tier: where one attempt goes,
// and the unit circuit breakers and quotas are kept per. An empty Region in
// Options means the default region.
type Target struct {
	Model  string
	Region string
	// Tier is the service tier (TierPriority, TierDefault, TierFlex,
	// TierReserved). In a report, empty means the call named none and was
	// served on the default tier. In a route, empty keeps the call's own
	// tier.
	Tier string
	// Priority limits a route's target to calls of one priority
	// (new(keel.Batch), new(keel.Interactive)); nil serves every call.
	// Always nil in a report.
	Priority *Priority
}

// Service tiers a call or a route's target may name.
const (
	TierPriority = bedrock.TierPriority
	TierDefault  = bedrock.TierDefault
	TierFlex     = bedrock.TierFlex
	TierReserved = bedrock.TierReserved
)

// String returns "model@region", or "model@region/tier" when it names a
// tier.
func (t Target) String() string {
	return bedrock.Target{Model: t.Model, Region: t.Region, Tier: t.Tier}.String()
}

// Report is what happened during one call: every attempt, where the call
// ended and how long it took. For a stream, keel writes the report while
// the body is read: get it (ReportOf, Details) once the stream has ended
// or been closed. A Report is a copy; changing it changes nothing in keel.
type Report struct {
	// Attempts lists every attempt in order, those not sent (Skipped)
	// included.
	Attempts []Attempt
	// Total is the call's time, from the first attempt's admission to the
	// outcome (for a stream, to its end).
	Total time.Duration
	// Target answered the call (the last attempt's target on failure).
	Target Target
	// Fallbacks counts moves to a later target of the call's route.
	Fallbacks int
	// Degraded reports that a reply blocked by a content filter or
	// guardrail was replaced by the configured content-filter message.
	Degraded bool
	// Resumes counts the continuations keel spliced into a stream after it
	// broke (streams only).
	Resumes int
	// Usage sums the attempts' usage (streams only).
	Usage Usage
	// Cache says how the response cache served the call: CacheHit,
	// CacheMiss, CacheCoalesced (it shared the reply of an identical call
	// in flight) or CacheBypassed; empty when the cache is off.
	Cache string
}

// How the response cache served a call (Report.Cache).
const (
	CacheHit       = "hit"
	CacheMiss      = "miss"
	CacheCoalesced = "coalesced"
	CacheBypassed  = "bypass"
)

// Sent returns the number of attempts actually sent upstream.
func (r *Report) Sent() int {
	n := 0
	for _, a := range r.Attempts {
		if !a.Skipped {
			n++
		}
	}
	return n
}

// Attempt is one attempt of a Report.
type Attempt struct {
	// Target is where the attempt went (or would have gone, if Skipped).
	Target Target
	// Status is the HTTP status; 0 when no response arrived.
	Status int
	// Code is the catalog code of the attempt's failure (one of the Code
	// constants); empty on success.
	Code string
	// RequestID is the response's x-amzn-RequestId, if any.
	RequestID string
	// Delay is the wait before this attempt: backoff and quota wait.
	Delay time.Duration
	// Start is when the attempt was sent.
	Start time.Time
	// Duration runs to the whole reply (for a stream, to its first
	// content), or to the failure.
	Duration time.Duration
	// Skipped reports an attempt that was not sent. Code says why:
	// CircuitOpen (the target's breaker was open), NoQuotaBeforeDeadline,
	// RequestTooLargeForQuota or TargetOverloaded (the quota governor
	// refused it), PrefillUnsupported or RemovedInAPIVersion (the body
	// could not be fitted to the fallback's model without changing what
	// the reply means).
	Skipped bool
	// QuotaWait is the part of Delay spent waiting for the target's quota.
	QuotaWait time.Duration
	// QuotaTokens is what the quota governor held for the attempt (input
	// estimate + max tokens); zero without a governor.
	QuotaTokens int
	// Adaptations lists the changes keel made to the request body for this
	// attempt: its target is a fallback whose model would have refused
	// the body as written (another anthropic_version, sampling parameters
	// that version removed, a lower maximum output). Nil when the body was
	// sent as written. docs/routes.md has the rules.
	Adaptations []Adaptation
	// Resume marks an attempt that continued a broken stream: its request
	// carried the text delivered so far, as ResumeMode says.
	Resume bool
	// ResumeMode says how a continuation carried the text so far:
	// ResumePrefill or ResumeContinueTurn. Empty for other attempts, and
	// for continuations not sent (Skipped).
	ResumeMode string
	// OverlapDropped counts the characters at the start of a continue-turn
	// continuation that repeated the end of the reply so far: keel dropped
	// them, so the reader did not get them twice.
	OverlapDropped int
	// Events counts the stream events this attempt passed to the reader.
	Events int
	// Usage is what the attempt used, as its stream reported it; for a
	// stream that broke, the output it delivered, estimated. Zero for
	// operations that do not stream.
	Usage Usage
}

// Adaptation is one change keel made to a request body before sending
// it to a fallback target (Attempt.Adaptations).
type Adaptation struct {
	// Field is the body's field as a dotted path: "anthropic_version",
	// "temperature", "max_tokens", "inferenceConfig.maxTokens".
	Field string
	// Action is AdaptTranslated, AdaptDropped or AdaptLowered.
	Action string
	// From is the value in the caller's body and To the value sent, as
	// JSON text; To is empty when the field was dropped.
	From, To string
}

// What keel did to a field of a body it fitted to a fallback's model
// (Adaptation.Action).
const (
	// AdaptTranslated: the value was replaced by one the model takes
	// (anthropic_version).
	AdaptTranslated = engine.AdaptTranslated
	// AdaptDropped: the field was removed, as the API version the body
	// was moved to has none (temperature, top_p, top_k): the reply is
	// sampled with the model's defaults.
	AdaptDropped = engine.AdaptDropped
	// AdaptLowered: a max tokens above the model's maximum output was
	// lowered to it; the reply may stop sooner than the caller allowed.
	AdaptLowered = engine.AdaptLowered
)

// How a continuation of a broken stream carried the reply so far
// (Attempt.ResumeMode). docs/streaming.md says what each guarantees.
const (
	// ResumePrefill: as a partial assistant message, which the model
	// continues exactly (Claude up to 4.5, Nova).
	ResumePrefill = "prefill"
	// ResumeContinueTurn: as an assistant turn followed by a user turn
	// asking the model to go on, for models that refuse a prefill (Claude
	// 4.6 and later). The continuation is a new reply: it may differ in
	// wording from an unbroken one, and a repeated start is dropped by a
	// heuristic.
	ResumeContinueTurn = "continue-turn"
)

// Usage is token usage, per attempt and per call, for streams. Zero
// InputTokens (with no cache tokens) means the input is not known: a
// ConverseStream that broke before its metadata reports none.
type Usage struct {
	InputTokens           int
	OutputTokens          int
	CacheReadInputTokens  int
	CacheWriteInputTokens int
	// Estimated reports that a count was estimated by keel, not reported
	// by Bedrock: the output of a stream that broke, or its input inferred
	// from a continuation's.
	Estimated bool
}

// Failure is keel's account of a failed call; Error.Failure returns it.
type Failure struct {
	// Entry is the catalog entry that decided the outcome.
	Entry *Entry
	// Code is the error code as seen on the wire; it may differ in
	// spelling from Entry.Code, and is empty when none arrived.
	Code string
	// Status is the true HTTP status; 0 when no response arrived.
	Status int
	// Message is the service's (or keel's) message.
	Message string
	// RequestID is the last response's x-amzn-RequestId, if any.
	RequestID string
	// GaveUp says why keel stopped trying.
	GaveUp GiveUpReason
	// GaveUpDetail says it in words when the reason has more to it ("not
	// resumed: the limit of 2 resumes was reached"); often empty.
	GaveUpDetail string
	// Report lists every attempt of the call.
	Report *Report
	// Stream is set when a stream failed after its reader had received
	// part of the reply: how much, and what.
	Stream *StreamFailure

	err error // keel's own error, for Error and Unwrap
}

// Error returns keel's one-line account of the failure.
func (f *Failure) Error() string { return f.err.Error() }

// Unwrap returns keel's own error, which wraps what caused the failure
// (a transport error, an open breaker, the context's error).
func (f *Failure) Unwrap() error { return f.err }

// StreamFailure says how much of a reply a stream's reader had received
// when the stream failed (Failure.Stream).
type StreamFailure struct {
	// Events counts the events the reader received.
	Events int
	// Text is the text the reader received (the text blocks, in order).
	Text string
	// Resumes counts the continuations spliced in before the failure.
	Resumes int
	// Frame is the exception or error frame as Bedrock sent it, when the
	// failure was one, so that a gateway can forward it as it came.
	Frame []byte
}

// GiveUpReason says why keel stopped trying a call (Failure.GaveUp).
type GiveUpReason int

// Give-up reasons. The zero GiveUpReason means none is known. (They
// number as the engine's do: TestGiveUpReasonNames.)
const (
	// GaveUpAttemptsExhausted: every attempt the retry policy allows was
	// used on every target of the route.
	GaveUpAttemptsExhausted GiveUpReason = iota + 1
	// GaveUpNotRetryable: the failure cannot succeed on a retry (its
	// entry's Retry is never, long-wait, or fallback with no target left).
	GaveUpNotRetryable
	// GaveUpBudgetExhausted: the retry budget shared by all calls was
	// spent (errors.Is(err, ErrBudgetExhausted) holds too).
	GaveUpBudgetExhausted
	// GaveUpDeadline: the next wait would have crossed the call's deadline.
	GaveUpDeadline
	// GaveUpContextEnded: the caller's context was cancelled or its
	// deadline passed.
	GaveUpContextEnded
	// GaveUpCircuitOpen: the last target's circuit breaker was open.
	GaveUpCircuitOpen
	// GaveUpNoQuota: the quota governor refused the call (no room before
	// the deadline, too large for the quota, or the target overloaded).
	GaveUpNoQuota
	// GaveUpNotResumed: a stream broke after part of its reply and could
	// not be resumed (GaveUpDetail says why).
	GaveUpNotResumed
)

// String returns the reason in a few words ("budget exhausted"), or "none".
func (r GiveUpReason) String() string { return engine.GiveUpReason(r).String() }

// Entry is a catalog entry: what an error means and what to do about it.
// `keel explain --list` prints them all. Entries are shared: do not modify
// one.
type Entry struct {
	// Code is the canonical code, as the service spells it
	// (ThrottlingException), or keel's name for a failure that has none
	// (ConnectionReset, StreamTruncated): one of the Code constants.
	Code string
	// Aliases are other spellings of the same failure.
	Aliases []string
	// Status is the HTTP status the failure arrives with; 0 when no HTTP
	// response exists (connection refused, DNS, ...).
	Status int
	// Category groups the failure: "auth", "access", "quota",
	// "validation", "not-found", "model", "server", "network", "stream",
	// "client", "content-filter" or "unknown".
	Category string
	// Retry says whether and how to retry: "never", "backoff",
	// "throttled", "long-wait" (only after Wait) or "fallback" (another
	// model or region may serve it).
	Retry string
	// Wait is the minimum wait before a retry can succeed, for long-wait
	// entries.
	Wait time.Duration
	// Unhealthy reports that the failure counts against the target's
	// circuit breaker.
	Unhealthy bool
	// FallbackOK reports that moving to the next target of a route may
	// help once retries on this target are used up.
	FallbackOK bool
	// Summary is one line saying what happened; Cause explains why; Fix
	// lists concrete steps, most likely first.
	Summary string
	Cause   string
	Fix     []string
	// Source says where the code comes from: "bedrock-runtime",
	// "aws-auth", "guide", "transport", "stream", "sdk" or "keel".
	Source string

	c *catalog.Entry
}

// Retryable reports whether the same request may be sent again after a
// delay (Retry is "backoff" or "throttled").
func (e *Entry) Retryable() bool { return e.c.Retryable() }

// Advice says in one line whether and how to retry.
func (e *Entry) Advice() string { return e.c.Advice() }

// QuotaStats are the quota governor's figures for one target (a model in
// a region). Keel.Quota and Keel.Quotas return them.
type QuotaStats struct {
	Target Target
	// Model holds the facts in use for the target's model.
	Model QuotaModel
	// Limit is the tokens-per-minute limit in force: the configured quota,
	// the discovered one (Quotas.Discover) or what was learned from
	// throttles; 0 while unknown.
	Limit int64
	// LimitSource is where Limit comes from: "configured", "discovered" or
	// "learned"; empty while Limit is unknown.
	LimitSource string
	// Floor and Ceiling bound the limit; Ceiling is 0 when there is none.
	Floor, Ceiling int64
	// Learning reports that the limit may grow past its first value.
	Learning bool
	// Available is what the token bucket holds now; negative while a call
	// that used more than it held is paid back.
	Available int64
	// RequestsPerMinute is the request limit (0: none).
	RequestsPerMinute int64
	// PausedFor is what is left of the pause after a throttle.
	PausedFor time.Duration
	// InFlight counts calls admitted and not yet ended; InFlightTokens
	// sums what they hold.
	InFlight       int
	InFlightTokens int64
	// ReservedPerMinute sums the tokens granted over the last minute;
	// SettledPerMinute what the calls that ended in it really used;
	// OfferedPerMinute what the calls that asked over the last minute
	// would settle (above Limit, the target is overloaded).
	ReservedPerMinute, SettledPerMinute, OfferedPerMinute int64
	// InputRatio is the learned ratio of real to estimated input tokens.
	InputRatio float64
	// Settled, Cancelled and Throttles count calls ended each way;
	// Decreases counts the confirmed throttles that set or lowered the limit,
	// Resyncs those that only emptied the bucket.
	Settled, Cancelled, Throttles, Decreases, Resyncs int64
	// Noise counts throttles taken for noise rather than a quota signal:
	// calls granted after them got through.
	Noise int64
	// ReplyTime is the time the target's replies take (95th percentile)
	// that admission keeps before a call's deadline; LargeHold what its
	// large calls hold (99th percentile). Zero until measured.
	ReplyTime time.Duration
	LargeHold int64
	// TooLarge counts calls refused as too large for the quota.
	TooLarge int64
	// Classes holds the queue figures per Priority (Classes[Batch]).
	Classes [2]ClassStats
}

// ClassStats are one priority class's queue figures for a target.
type ClassStats struct {
	// Queued and QueuedTokens are the calls waiting now and what they
	// would hold.
	Queued       int
	QueuedTokens int64
	// Admitted counts granted calls; Waited those of them that had to wait.
	Admitted, Waited int64
	// Expired counts calls refused for want of quota before their
	// deadline, Shed those refused on an overloaded target, Cancelled
	// those whose context ended while they waited.
	Expired, Shed, Cancelled int64
	// WaitTotal sums the waits of granted calls; WaitMax is the longest.
	WaitTotal, WaitMax time.Duration
}
