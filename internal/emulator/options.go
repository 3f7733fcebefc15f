package emulator

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/reply"
	"github.com/keel-run/keel/internal/emulator/s3"
)

// Options configures an emulator. The zero Options means all defaults: the
// built-in models, no simulated latency, region us-east-1, never misbehave,
// no quotas, accept any credentials.
type Options struct {
	// Seed varies every reply; the same seed gives the same replies.
	Seed int64
	// Speed scales the models' simulated latency (time to first token and
	// tokens per second): 0 means none at all, 1 real time, 0.01 a hundred
	// times faster. It does not scale the latency a fault.Plan asks for.
	Speed float64
	// Clock measures and waits; nil means clock.Real{}.
	Clock clock.Clock
	// Models lists the models served; nil means DefaultModels().
	Models []Model
	// DefaultRegion is the region of a request that names none (see
	// Server.ServeHTTP); empty means "us-east-1".
	DefaultRegion string
	// ReplyLength bounds the length of replies that end on their own; the
	// zero value means reply.DefaultRange.
	ReplyLength reply.Range
	// Planner decides how each inference request misbehaves; nil means it
	// never does. It is called once per request, from many goroutines at once.
	Planner func(fault.Request) fault.Plan
	// Admit is called when an inference request has passed validation, before
	// any reply: a non-nil Rejection answers the request with that error
	// instead. Every admitted request is settled exactly once. nil admits all.
	Admit func(AdmitRequest) *Rejection
	// Settle is called when an admitted request ends, with what it really
	// used; a stream cut short settles the tokens it had sent. nil ignores it.
	Settle func(SettleRequest)
	// Observe is told how each inference request ended (the admin API counts
	// outcomes with it). It is called once per request to
	// /model/{modelId}/{operation} that names an operation and, when signed,
	// a region, after the response, from many goroutines at once. nil
	// ignores outcomes.
	Observe func(Outcome)
	// MaxBodyBytes is the largest request body served; a larger one is
	// answered with Bedrock's 400 ValidationException ("Input is too
	// long"), without being read when its Content-Length says so. Zero
	// means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxBufferedBytes bounds the request bodies held at once by the
	// requests being served. A request whose body would pass it is answered
	// at once with Bedrock's 503 ServiceUnavailableException, which clients
	// retry. Zero means DefaultMaxBufferedBytes; it may not be below
	// MaxBodyBytes.
	MaxBufferedBytes int64
	// Verify checks a request's credentials before anything else but the
	// fault plan's connection faults; a non-nil Rejection answers the request
	// with that error. body is the whole request body; Verify must not keep
	// it. nil accepts any credentials.
	Verify func(r *http.Request, body []byte) *Rejection
	// ClockSkew, when set, says how far the emulator's clock runs ahead of
	// Clock (negative: behind); it is read at each request. Every response
	// then carries a Date header of Clock's time plus it (Server.Now), as a
	// server with a wrong clock would send, and a Verify hook that checks
	// signature dates should check them against Server.Now too. nil means
	// no skew.
	ClockSkew func() time.Duration
	// Quota returns the tokens-per-minute and tokens-per-day limits of model
	// (as a request names it: a bare model id or an inference profile id) in
	// region, zero for none. The Service Quotas API lists them, so a client
	// that reads its quotas there sees the limits the Admit hook meters. nil
	// lists no quotas.
	Quota func(model, region string) (tokensPerMinute, tokensPerDay int64)
	// S3MaxBytes bounds the bytes the emulator's S3 holds (objects and
	// multipart parts); a write past it is answered 507 InsufficientStorage.
	// Zero means s3.DefaultMaxBytes.
	S3MaxBytes int64
	// JobPlanner decides, for each CreateModelInvocationJob, the job's pace,
	// the batch inference quotas it is checked against, and its faults
	// (the scenario package plugs in there). A zero field of its answer
	// means the default (DefaultJobStep, DefaultJobLimits); nil means
	// defaults and no faults. It is called from many goroutines at once.
	JobPlanner func(fault.JobRequest) fault.Job
}

const (
	// DefaultMaxBodyBytes is Options.MaxBodyBytes's default: Bedrock has
	// been seen to serve a 25.6 MB request and refuse a 34 MB one (400,
	// "Input is too long."), and 32 MiB lies between.
	DefaultMaxBodyBytes = 32 << 20
	// DefaultMaxBufferedBytes is Options.MaxBufferedBytes's default: eight
	// bodies of the largest size at once. Load tests send kilobytes, so it
	// binds only when a client floods the emulator with huge bodies.
	DefaultMaxBufferedBytes = 8 * DefaultMaxBodyBytes

	// maxMaxBodyBytes is the largest MaxBodyBytes allowed: more than any
	// machine buffers, and small enough that a limit plus one cannot
	// overflow.
	maxMaxBodyBytes = 1 << 40
)

// AdmitRequest describes an inference request about to be served.
type AdmitRequest struct {
	// Model is the model id as the request named it, unescaped: a bare
	// model id, an inference profile id or an ARN. Bedrock keeps separate
	// quotas for a model's on-demand and cross-region use.
	Model string
	// BaseModel is the foundation model id Model resolves to.
	BaseModel string
	// Region is the region the request was sent to.
	Region string
	// Operation is "converse", "converse-stream", "invoke" or
	// "invoke-with-response-stream".
	Operation string
	// InputTokens is the request's input, counted as the reply will count it.
	InputTokens int
	// MaxTokens is the request's maximum output, or the model's maximum
	// output when the request sets none.
	MaxTokens int
	// RequestID is the x-amzn-RequestId of the response.
	RequestID string
}

// SettleRequest describes what an admitted request really used.
type SettleRequest struct {
	Model, BaseModel, Region, Operation, RequestID string
	// InputTokens, CacheReadTokens, CacheWriteTokens and OutputTokens are the
	// usage the response reported (or, for a broken stream, the output
	// tokens it sent before breaking).
	InputTokens      int
	CacheReadTokens  int
	CacheWriteTokens int
	OutputTokens     int
	// Burndown is the model's output burndown rate (Model.Burndown).
	Burndown float64
	// MaxTokens is the MaxTokens the request was admitted with.
	MaxTokens int
}

// Outcome is how one inference request ended.
type Outcome struct {
	// Model is the model id as the request named it, or UnknownModel when
	// it names no model the server serves; Region and Operation as in
	// AdmitRequest.
	Model, Region, Operation string
	// Code is "" for a complete reply, else the catalog code of what the
	// client got: the error or exception code (ThrottlingException, ...),
	// catalog.CodeConnectionReset for a refused or reset connection or a
	// truncated JSON body, CodeStreamTruncated, CodeStreamCorrupt or
	// CodeStreamStalled for a broken stream or stalled body, and
	// CodeClientTimeout when the client gave up first (a hang, a long
	// latency).
	Code string
}

// Rejection is an error a hook answers a request with. Code is a catalog
// code with an HTTP status (such as "ThrottlingException"); an empty Message
// means the catalog's default message.
type Rejection struct {
	Code    string
	Message string
}

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if math.IsNaN(o.Speed) || math.IsInf(o.Speed, 0) || o.Speed < 0 {
		return o, fmt.Errorf("emulator: Speed %v must be zero (no latency) or a positive scale such as 1 (real time)", o.Speed)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Models == nil {
		o.Models = DefaultModels()
	} else if len(o.Models) == 0 {
		return o, fmt.Errorf("emulator: Models is empty; leave it nil for the built-in models")
	}
	o.DefaultRegion = cmp.Or(o.DefaultRegion, "us-east-1")
	if !validRegion(o.DefaultRegion) {
		return o, fmt.Errorf("emulator: DefaultRegion %q is not a region name such as us-east-1", o.DefaultRegion)
	}
	if o.MaxBodyBytes < 0 || o.MaxBodyBytes > maxMaxBodyBytes {
		return o, fmt.Errorf("emulator: MaxBodyBytes %d is not between 1 and %d; leave it zero for the default of %d",
			o.MaxBodyBytes, int64(maxMaxBodyBytes), DefaultMaxBodyBytes)
	}
	if o.MaxBufferedBytes < 0 {
		return o, fmt.Errorf("emulator: MaxBufferedBytes %d is negative; leave it zero for the default of %d", o.MaxBufferedBytes, DefaultMaxBufferedBytes)
	}
	o.MaxBodyBytes = cmp.Or(o.MaxBodyBytes, DefaultMaxBodyBytes)
	o.MaxBufferedBytes = cmp.Or(o.MaxBufferedBytes, max(DefaultMaxBufferedBytes, o.MaxBodyBytes))
	if o.MaxBufferedBytes < o.MaxBodyBytes {
		return o, fmt.Errorf("emulator: MaxBufferedBytes %d is below MaxBodyBytes %d: a body of the largest size could never be served",
			o.MaxBufferedBytes, o.MaxBodyBytes)
	}
	if o.S3MaxBytes < 0 {
		return o, fmt.Errorf("emulator: S3MaxBytes %d is negative; leave it zero for the default of %d", o.S3MaxBytes, int64(s3.DefaultMaxBytes))
	}
	if o.ReplyLength.Min < 0 || o.ReplyLength.Max < 0 || o.ReplyLength.Max < o.ReplyLength.Min {
		return o, fmt.Errorf("emulator: ReplyLength %d..%d is not a range of token counts", o.ReplyLength.Min, o.ReplyLength.Max)
	}
	return o, nil
}
