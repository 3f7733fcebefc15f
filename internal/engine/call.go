package engine

import (
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/keel-run/keel/internal/attempt"
)

// Call is one Bedrock Runtime request.
type Call struct {
	Op     attempt.Op
	Model  string // model id, inference profile id or ARN, as the caller named it
	Region string // empty: the engine's default region
	Body   []byte
	Header http.Header // the caller's headers (content type, accept, bearer token)
	// Endpoints and Credentials override the engine's for this call (the SDK
	// face passes each client's own). Nil: the engine's.
	Endpoints   attempt.Endpoints
	Credentials aws.CredentialsProvider
	// Priority is the call's class in the quota governor's queues. The zero
	// value is Interactive; the batch runner sends Batch.
	Priority Priority
	// Tier is the service tier to ask for (priority, default, flex,
	// reserved), in place of the one the request names. Empty: the
	// request's own (none: Bedrock serves the default tier). The tier is part
	// of each target, for quota and breaker accounting; a route's steps may
	// move the call to another tier.
	Tier string
	// OnAdmit, when set, is called once, when the call's first attempt has
	// been admitted by the quota governor, refused by it, or (without a
	// governor) is about to be sent. The batch runner starts its next record
	// then, so that the governor, not a worker count, paces a run.
	OnAdmit func()
	// Stop, when closed, makes the engine give the call up at its next
	// wait point rather than send another attempt: while it waits for quota
	// or for a retry's backoff, or before its next attempt or fallback. An
	// attempt already on the wire is not interrupted; if it succeeds, the
	// call does. A call given up this way fails with an error wrapping
	// ErrStopped (stop.go). Nil: never. The batch runner closes it at the
	// first interrupt. Cancelling the context instead abandons every
	// attempt, those on the wire included.
	Stop <-chan struct{}
	// Caller names the caller for the response cache: entries are kept
	// per caller unless the cache is shared. Empty: one caller.
	Caller string
}

// Attempt records one attempt, or one not sent: a target skipped because
// its breaker was open, or an attempt the quota governor refused.
type Attempt struct {
	Target    attempt.Target
	Status    int           // HTTP status; 0 when no response arrived
	Code      string        // catalog code of the failure; empty on success
	RequestID string        // x-amzn-RequestId of the response, if any
	Delay     time.Duration // wait before this attempt: backoff and quota wait
	Start     time.Time
	Duration  time.Duration // to the whole reply (streams: to the first content), or to the failure
	// Skipped: not sent. Code says why: CircuitOpen (the target's breaker
	// was open), NoQuotaBeforeDeadline, RequestTooLargeForQuota or
	// TargetOverloaded (the quota governor refused it), PrefillUnsupported
	// or RemovedInAPIVersion (the body could not be fitted to the target's
	// model; adapt.go).
	Skipped bool

	// QuotaWait is the part of Delay spent waiting for the target's quota.
	QuotaWait time.Duration
	// QuotaTokens is what the quota governor held for the attempt (input
	// estimate + max tokens); zero without a governor.
	QuotaTokens int
	// Adaptations lists the changes keel made to the body for this
	// attempt's target, a fallback whose model would have refused the
	// body as written (adapt.go); nil when it was sent as written.
	Adaptations []Adaptation

	// Streams only.

	// Resume marks an attempt that continued a broken stream: its request
	// carried the text delivered so far, as ResumeMode says.
	Resume bool
	// ResumeMode says how a continuation carried the text so far:
	// "prefill" (a partial assistant message the model continues) or
	// "continue-turn" (an assistant turn, then a user turn asking the model
	// to go on). Empty for other attempts, and for continuations not sent
	// (Skipped).
	ResumeMode string
	// OverlapDropped counts the characters at the start of a continue-turn
	// continuation that repeated the end of the reply so far, and that the
	// reader did not get again.
	OverlapDropped int
	// Events counts the events this attempt passed to the reader.
	Events int
	// Usage is what the attempt used, as its stream reported it; for a
	// stream that broke, the output it delivered, estimated (see
	// docs/streaming.md). Zero for other operations.
	Usage Usage
}

// Usage is token usage. Zero InputTokens (with no cache tokens) means the
// input is not known: a ConverseStream that broke before its metadata
// reports none.
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

func (u Usage) add(v Usage) Usage {
	return Usage{InputTokens: u.InputTokens + v.InputTokens, OutputTokens: u.OutputTokens + v.OutputTokens,
		CacheReadInputTokens: u.CacheReadInputTokens + v.CacheReadInputTokens, CacheWriteInputTokens: u.CacheWriteInputTokens + v.CacheWriteInputTokens,
		Estimated: u.Estimated || v.Estimated}
}

// Report is what happened during a call.
type Report struct {
	Attempts []Attempt
	Total    time.Duration
	// Target answered the call (the last attempt's target on failure).
	Target attempt.Target
	// Fallbacks counts moves to a later target.
	Fallbacks int
	// Degraded is set when a blocked reply was replaced by the configured
	// content-filter message.
	Degraded bool

	// Streams only. A streaming call's Report is written while its body is
	// read: read these fields (and Total, and the attempts) once the body
	// has ended or been closed.

	// Resumes counts the continuations spliced into the stream after it
	// broke.
	Resumes int
	// Usage is the sum of the attempts' usage.
	Usage Usage

	// Cache says how the response cache served the call: "hit", "miss",
	// "coalesced" (it shared an identical call's reply) or "bypass" (not
	// cacheable, or asked not to); empty without a cache.
	Cache string
}

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
