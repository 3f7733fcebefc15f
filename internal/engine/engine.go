// Package engine is keel's one path for every Bedrock Runtime call:
//
//	route → admission → breaker → attempt → classify → decide
//
// A call (operation, model, region, body) is tried on the targets of its route
// in order; a fallback whose model takes another API version or a lower
// output limit gets the body fitted to it (adapt.go). Each attempt is admitted by the target's quota governor (when the
// engine has one: it waits for room in the target's tokens-per-minute quota,
// or is refused at once when it cannot fit before its deadline), passes the
// target's circuit breaker, is signed anew and sent with a timeout of its
// own (learned from the model's reply times; timeout.go), its reply read
// whole and bounded; each failure is classified through the catalog, and
// the entry decides: retry on the same target after a jittered backoff (if
// the shared retry budget allows), move to the next target, or give up.
// Every attempt is recorded, so the caller can see exactly what happened.
// path.go has the stages, one method each.
//
// The engine works on HTTP traffic, not on SDK types, so the same code serves
// the Go SDK face (keel as the SDK's HTTP client), the CLI and a gateway.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/cache"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/retry"
	"github.com/keel-run/keel/internal/route"
	"github.com/keel-run/keel/internal/telemetry"
	"github.com/keel-run/keel/internal/transport"
)

// Options configure an Engine. The zero value means all defaults; each field
// says what its zero value does.
type Options struct {
	// Endpoints maps a region to its Bedrock Runtime base URL. Nil: the real
	// AWS endpoints.
	Endpoints attempt.Endpoints
	// Credentials sign each attempt (SigV4). Nil: requests go unsigned, or
	// with the caller's bearer token.
	Credentials aws.CredentialsProvider
	// HTTPClient sends attempts. Nil: transport.NewClient() (keep-alive probes
	// well under the 350 s NAT/VPC-endpoint idle timeout).
	HTTPClient *http.Client
	// Region is used when a call names none. Empty: us-east-1.
	Region string
	// Routes holds the fallback targets per model. Nil: every model alone.
	Routes *route.Table
	// BatchTier is the service tier a Batch call asks for when neither the
	// call (Call.Tier) nor its request names one. Empty: none.
	BatchTier string
	// Retry is the per-target retry policy; its zero value is keel's defaults.
	Retry retry.Policy
	// Budget bounds retries and fallbacks across all calls. Its zero value is
	// keel's defaults.
	Budget budget.Options
	// DisableBudget sends every retry the policy allows.
	DisableBudget bool
	// Breaker configures the per-target circuit breakers; zero is defaults.
	Breaker breaker.Options
	// DisableBreaker never opens a breaker.
	DisableBreaker bool
	// Governor admits every attempt (CountTokens excepted) within its
	// target's tokens-per-minute quota: see docs/governor.md. It should run
	// on the same clock as the engine. Nil: no quota governor (keel.New makes
	// one by default, learning each target's quota from throttles).
	Governor *admission.Governor
	// Clock measures and waits; nil is the wall clock.
	Clock clock.Clock
	// Rand draws the backoff jitter; nil is math/rand/v2.
	Rand retry.Rand
	// Logger receives one JSON line per attempt and per outcome. Nil: no logs.
	Logger *slog.Logger
	// Metrics receives Prometheus measurements. Nil: none.
	Metrics *telemetry.Metrics
	// ContentFilterMessage, when set, replaces a Converse reply that a content
	// filter or guardrail blocked with this text (graceful degradation). Empty:
	// the blocked reply is returned as it is.
	ContentFilterMessage string
	// MaxErrorBody caps how much of an error response is read to classify it.
	// Zero: 1 MiB.
	MaxErrorBody int64
	// MaxResponseBytes bounds a non-streaming reply's body (read whole as
	// part of its attempt) and the text a stream keeps for its resume; a
	// larger one fails with ResponseTooLarge. Zero: DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// MaxEventBytes bounds one event-stream message. Zero:
	// DefaultMaxEventBytes.
	MaxEventBytes int64
	// AttemptTimeout bounds each non-streaming attempt, its whole reply
	// included; an attempt that takes longer fails with AttemptTimeout,
	// which counts against the target's breaker and moves the call to the
	// route's next target (or is retried, on the last). Zero: learned per
	// model from the reply times of calls of similar max tokens (see
	// timeout.go). Streams are bounded by Streaming's timeouts instead.
	AttemptTimeout time.Duration
	// Streaming configures how ConverseStream and InvokeModelWithResponseStream
	// are inspected, retried before their first content, and resumed after
	// it. Its zero value is keel's defaults.
	Streaming StreamOptions
	// OnStreamEnd, when set, is called once when a streaming call's body
	// ends: at its last event, at a failure keel could not recover (err is
	// then the *Error the reader got), or when the reader closes it early
	// (err nil). The Report is final by then: per-attempt and total usage
	// included (the quota governor has been settled from it). It runs on the
	// reader's goroutine (for a stream the cache stage shares, on the
	// goroutine that reads it upstream; for one served from the store, as
	// it is served); keep it cheap.
	OnStreamEnd func(call *Call, rep *Report, err error)
	// Cache answers calls from stored replies and coalesces identical
	// calls in flight (cache.go, docs/cache.md). Nil: no cache.
	Cache *cache.Cache
}

// Engine runs calls. It is safe for concurrent use; create one per process
// (its budget and breakers are shared state) with New.
type Engine struct {
	opts     Options
	sender   *attempt.Sender
	routes   *route.Table
	budget   *budget.Budget
	breakers *breaker.Registry
	clk      clock.Clock
	log      *slog.Logger
	m        *telemetry.Metrics
	// models and regions bound the label values of m (labels.go).
	models, regions *labelSet
	gov             *admission.Governor
	replies         *replyTimes
	errs            errorLog // failures by target and code, for Snapshot
	// noPrefill remembers models that refused a continuation's prefill, so
	// their streams are resumed by continue-turn from then on.
	noPrefill sync.Map
	cache     *cacheStage // nil without Options.Cache
}

// New validates opts and returns an Engine.
func New(opts Options) (*Engine, error) {
	if err := opts.Retry.Validate(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if err := opts.Streaming.validate(); err != nil {
		return nil, err
	}
	opts.Region = cmp.Or(opts.Region, "us-east-1")
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = transport.NewClient(transport.Options{})
	}
	if opts.MaxErrorBody <= 0 {
		opts.MaxErrorBody = 1 << 20
	}
	if opts.AttemptTimeout < 0 || opts.MaxResponseBytes < 0 || opts.MaxEventBytes < 0 {
		return nil, fmt.Errorf("engine: AttemptTimeout (%v), MaxResponseBytes (%d) and MaxEventBytes (%d) must not be negative",
			opts.AttemptTimeout, opts.MaxResponseBytes, opts.MaxEventBytes)
	}
	if opts.BatchTier != "" && !bedrock.ValidTier(opts.BatchTier) {
		return nil, fmt.Errorf("engine: BatchTier %q is not a service tier; want one of %s", opts.BatchTier, strings.Join(bedrock.Tiers(), ", "))
	}
	opts.MaxResponseBytes = cmp.Or(opts.MaxResponseBytes, DefaultMaxResponseBytes)
	opts.MaxEventBytes = cmp.Or(opts.MaxEventBytes, DefaultMaxEventBytes)
	routes := opts.Routes
	if routes == nil {
		routes = route.New(opts.Region, nil)
	}
	e := &Engine{
		opts:   opts,
		routes: routes,
		sender: &attempt.Sender{Client: opts.HTTPClient, Endpoints: opts.Endpoints, Credentials: opts.Credentials,
			Clock: opts.Clock, UserAgent: "keel",
			// A signer of its own: the SDK signer caches derived keys by access
			// key id alone, so engines with different secrets must not share one.
			Signer: v4.NewSigner()},
		clk:     opts.Clock,
		models:  newModelLabels(),
		regions: newRegionLabels(),
		log:     opts.Logger,
		m:       opts.Metrics,
		gov:     opts.Governor,
		replies: newReplyTimes(opts.AttemptTimeout),
	}
	if opts.Cache != nil {
		e.cache = &cacheStage{c: opts.Cache}
	}
	if e.gov != nil && e.m != nil {
		e.m.SetQuotaSource(e.quotaSeries)
	}
	if !opts.DisableBudget {
		bo := opts.Budget
		bo.Clock = opts.Clock
		b, err := budget.New(bo)
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		e.budget = b
	}
	if !opts.DisableBreaker {
		bo := opts.Breaker
		bo.OnStateChange = e.breakerChanged
		r, err := breaker.NewRegistry(bo, opts.Clock)
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		e.breakers = r
	}
	return e, nil
}

// BaseURL returns the base URL attempts to region are sent to (empty: the
// engine's default region): the configured Endpoints', else AWS's.
func (e *Engine) BaseURL(region string) (*url.URL, error) {
	eps := e.opts.Endpoints
	if eps == nil {
		eps = attempt.AWSEndpoints{}
	}
	return eps.BaseURL(cmp.Or(region, e.opts.Region))
}

// HTTPClient returns the client attempts are sent with.
func (e *Engine) HTTPClient() *http.Client { return e.opts.HTTPClient }

// Do runs call through the engine. On success it returns the upstream
// response (the caller closes its body). On failure it returns an *Error and,
// when the last attempt got an HTTP error response, that response too, with
// its body intact, so an SDK can turn it into its own typed error.
//
// A streaming call (ConverseStream, InvokeModelWithResponseStream) returns
// once its first content has arrived, and its body is keel's: it checks
// every frame, retries or resumes a stream that breaks, and reports a
// failure it cannot recover as an *Error from Read. An exception that ends
// every attempt before any content is returned like an HTTP error response
// of its true status. docs/streaming.md says what a reader can rely on.
func (e *Engine) Do(ctx context.Context, call *Call) (*http.Response, *Report, error) {
	start := e.clk.Now()
	rep := &Report{}
	if e.cache != nil {
		if resp, err, done := e.cached(ctx, call, rep, start); done {
			return resp, rep, err
		}
	}
	if call.Op.Streaming() {
		return e.doStream(ctx, call, rep, start)
	}
	resp, err := e.do(ctx, call, rep, nil, round{body: call.Body})
	rep.Total = e.clk.Now().Sub(start)
	e.outcome(ctx, call, rep, err)
	return resp, rep, err
}

// round is one pass over a call's route: the call itself, or the
// continuation of a broken stream.
type round struct {
	body []byte
	// resume marks a continuation: the budget already paid for its first
	// attempt, which waits delay before it is sent.
	resume bool
	delay  time.Duration
}

func (e *Engine) do(ctx context.Context, call *Call, rep *Report, sb *streamBody, rd round) (*http.Response, error) {
	p, err := e.route(ctx, call, rep, sb, rd)
	if err != nil {
		return nil, err
	}
	defer p.admitted()
	defer p.endWait()
	for ti := range p.targets {
		p.enter(ti)
	target:
		for p.n = 1; ; p.n++ {
			switch v, resp, err := p.attempt(); v {
			case finish:
				return resp, err
			case next:
				break target
			}
		}
	}
	if p.last == nil {
		p.last = &Error{Entry: catalog.Must(catalog.CodeUnknownServerError), Message: "engine: no target could be tried", Report: rep}
	}
	return p.lastResp, p.last
}

// contextEnded marks the last failure as ended by the caller's context
// (err, from ctx.Err or a wait it interrupted) and returns it. An attempt
// that failed because of the context (its entry is ContextCanceled or
// DeadlineExceeded) already says so; one that failed for its own reason
// keeps its entry, gives why as the reason keel stopped, and wraps err so
// that errors.Is finds it. The entry decides, not the chain: an
// http.Client timeout matches context.DeadlineExceeded too.
func contextEnded(last *Error, err error, why string) *Error {
	if c := last.Entry.Code; c == catalog.CodeContextCanceled || c == catalog.CodeDeadlineExceeded {
		return last
	}
	last.Err = errors.Join(last.Err, err)
	last.GaveUp = why
	return last
}

// budgetSpent marks the last failure as ended by the shared retry budget;
// spent is the budget's *ExhaustedError (it matches budget.ErrExhausted).
func budgetSpent(last *Error, spent error) *Error {
	if last != nil {
		last.GaveUp = gaveUpBudgetSpentTxt
		last.Err = errors.Join(last.Err, spent)
	}
	return last
}
