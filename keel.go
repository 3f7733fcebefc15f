// Package keel is a resilience layer for Amazon Bedrock. It plugs into the
// official aws-sdk-go-v2 bedrockruntime client as its HTTP client: the client
// and its types stay the same, and every call gains retries with jitter and a
// shared budget, per-target circuit breakers, fallback routes across regions
// and models, fresh SigV4 signatures per attempt, and a full account of what
// happened. A quota governor stands in front of every attempt: it holds each
// request's tokens against its target's tokens-per-minute quota (configured,
// or learned from throttles), queues what does not fit, Interactive calls
// ahead of Batch ones (WithPriority), and fails at once what cannot fit
// before its deadline.
//
// Most users want New and Keel.ClientOptions:
//
//	cfg, _ := config.LoadDefaultConfig(ctx)
//	k, err := keel.New(cfg, keel.Options{ConfigFile: "keel.yaml"})
//	client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions)
//
// The client then sends to the region and endpoint named first by
// keel.Options, the configuration file, cfg, or the environment (see New).
//
// Errors keep the SDK's types (errors.As(err, &throttling) with
// *types.ThrottlingException still works) and carry keel's details, reachable
// with Details.
package keel

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithy "github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/retry"
	"github.com/keel-run/keel/internal/route"
	"github.com/keel-run/keel/internal/telemetry"
	"github.com/keel-run/keel/internal/transport"
)

// Entry is a catalog entry: an error's status, category, retry class, cause
// and fix. See `keel explain --list`.
type Entry = catalog.Entry

// Report is what happened during one call: every attempt with its target,
// status, code, delay and duration, and the total time.
type Report = engine.Report

// Attempt is one attempt of a Report.
type Attempt = engine.Attempt

// Failure is keel's account of a failed call; Details returns it.
type Failure = engine.Error

// StreamFailure says how much of a reply a stream's reader had received
// when the stream failed (Failure.Stream).
type StreamFailure = engine.StreamFailure

// Usage is token usage, per attempt and per call (Report.Usage), for
// streams.
type Usage = engine.Usage

// QuotaStats are the quota governor's figures for one target (a model in a
// region): the tokens-per-minute limit in force (0 while unknown), tokens
// available, held in flight, reserved and settled over the last minute, the
// learned input ratio, counts of settled, cancelled and throttled calls, and
// per priority class the queue depth and waits.
type QuotaStats = admission.Stats

// Priority is a call's class in the quota governor's queues.
type Priority = engine.Priority

// Priorities. Interactive calls are served first; Batch calls get one grant
// in every five while both wait, so they are never starved.
const (
	Interactive Priority = engine.Interactive
	Batch       Priority = engine.Batch
)

type priorityKey struct{}

// WithPriority returns a context whose Bedrock calls through keel have
// priority p in the quota governor's queues:
//
//	out, err := client.Converse(keel.WithPriority(ctx, keel.Batch), input)
//
// Calls default to Interactive.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// priorityOf returns the priority WithPriority set on ctx, or Interactive.
func priorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

// Options configure keel. The zero value means all defaults.
type Options struct {
	// ConfigFile is a keel YAML file (routes, retry, budget, breaker,
	// streaming, quotas). Empty:
	// no file; the fields below and the defaults apply.
	ConfigFile string
	// Config is an already-parsed configuration; it wins over ConfigFile.
	// (keel's own commands use it; Go users normally set ConfigFile.)
	Config *config.Config
	// Region is the default region of calls: the region a client signs
	// for and sends to, and that of route targets and quotas named without
	// one. Empty: the first found of the configuration file's region:, the
	// aws.Config's Region, AWS_REGION and AWS_DEFAULT_REGION, else
	// us-east-1. Region and the file's region: replace the region of every
	// client keel is plugged into; the others only fill in a client
	// without one.
	Region string
	// Endpoint is a Bedrock-compatible base URL every region is sent to (a
	// `keel emulate` address, a gateway). Empty: the first found of the
	// configuration file's endpoint:, the aws.Config's BaseEndpoint,
	// AWS_ENDPOINT_URL_BEDROCK_RUNTIME and AWS_ENDPOINT_URL (unless
	// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), else each region's AWS
	// endpoint. Endpoint and the file's endpoint: replace the endpoint of
	// every client keel is plugged into; the others only fill in a client
	// without one.
	Endpoint string
	// Logger receives one JSON line per attempt and per outcome. Nil: no logs.
	Logger *slog.Logger
	// Registerer receives keel's Prometheus metrics. Nil: metrics are kept
	// but not registered anywhere.
	Registerer prometheus.Registerer
	// HTTPClient sends attempts. Nil: keel's transport (TCP keep-alive probes
	// well under the 350 s idle timeout of NAT gateways and VPC endpoints).
	// Its CheckRedirect is ignored: keel never follows a redirect, so a
	// signed request cannot be sent on to another server; a 3xx fails the
	// attempt as UnexpectedRedirect.
	HTTPClient *http.Client

	clock clock.Clock // tests only
	rand  retry.Rand  // tests only
}

// Keel holds the engine shared by every client it is plugged into: one retry
// budget and one set of circuit breakers per process. It is safe for
// concurrent use.
type Keel struct {
	eng   *engine.Engine
	where placement
}

// New returns a Keel for cfg. Where calls go is decided in this order, the
// first that names a region (or an endpoint) winning: opts (Region,
// Endpoint), the configuration file (region:, endpoint:), cfg (Region,
// BaseEndpoint), the environment (AWS_REGION, AWS_DEFAULT_REGION;
// AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL); with none, us-east-1
// and AWS's endpoints. A bedrockruntime option given after
// Keel.ClientOptions is applied after keel's, so it wins over all of them.
func New(cfg aws.Config, opts Options) (*Keel, error) {
	c := opts.Config
	if c == nil && opts.ConfigFile != "" {
		var err error
		if c, err = config.Load(opts.ConfigFile); err != nil {
			return nil, err
		}
	}
	if c == nil {
		c = &config.Config{}
	}
	where := place(&opts, c, cfg, os.Getenv)
	eo, err := engineOptions(c, where.region, where.endpoint, opts.clock)
	if err != nil {
		return nil, err
	}
	eo.Credentials = cfg.Credentials
	eo.Logger = opts.Logger
	eo.HTTPClient = opts.HTTPClient
	eo.Clock = opts.clock
	eo.Rand = opts.rand
	if eo.Metrics, err = telemetry.NewMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("keel: registering metrics: %w", err)
	}
	eng, err := engine.New(eo)
	if err != nil {
		return nil, err
	}
	return &Keel{eng: eng, where: where}, nil
}

// defaultRegion is the region of calls when nothing names one, as for
// keel's commands.
const defaultRegion = "us-east-1"

// placement is where calls go unless a client says otherwise: the default
// region, and a Bedrock-compatible base URL ("" for each region's AWS
// endpoint). The explicit fields report a value from Options or the
// configuration file, which replaces a client's own.
type placement struct {
	region, endpoint                 string
	regionExplicit, endpointExplicit bool
}

// place resolves the placement: the first of opts, the configuration file,
// cfg and the environment (getenv) that names a region or an endpoint wins.
func place(opts *Options, c *config.Config, cfg aws.Config, getenv func(string) string) placement {
	var p placement
	switch {
	case opts.Region != "":
		p.region, p.regionExplicit = opts.Region, true
	case c.Region != "":
		p.region, p.regionExplicit = c.Region, true
	case cfg.Region != "":
		p.region = cfg.Region
	default:
		p.region = cmp.Or(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"), defaultRegion)
	}
	switch {
	case opts.Endpoint != "":
		p.endpoint, p.endpointExplicit = opts.Endpoint, true
	case c.Endpoint != "":
		p.endpoint, p.endpointExplicit = c.Endpoint, true
	case aws.ToString(cfg.BaseEndpoint) != "":
		p.endpoint = *cfg.BaseEndpoint
	case !strings.EqualFold(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true"):
		// The SDK's own names, most specific first; LoadDefaultConfig reads
		// them too, but an aws.Config built by hand does not.
		p.endpoint = cmp.Or(getenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"), getenv("AWS_ENDPOINT_URL"))
	}
	return p
}

// apply sets a client's region and base endpoint: keel's explicit values
// replace the client's, the others fill in what the client lacks.
func (p placement) apply(region *string, endpoint **string) {
	if p.regionExplicit || *region == "" {
		*region = p.region
	}
	if p.endpoint != "" && (p.endpointExplicit || aws.ToString(*endpoint) == "") {
		*endpoint = aws.String(p.endpoint)
	}
}

// EngineOptions maps a configuration file onto engine options. region is the
// fallback when the file names none. The quota governor it makes (unless
// quotas.disabled) runs on the wall clock.
func EngineOptions(c *config.Config, region string) (engine.Options, error) {
	region = cmp.Or(c.Region, region, defaultRegion)
	return engineOptions(c, region, c.Endpoint, nil)
}

// engineOptions maps c onto engine options for calls whose default region
// is region, sent to endpoint ("" for AWS's endpoints); c's own region:
// and endpoint: are not read, the caller has weighed them.
func engineOptions(c *config.Config, region, endpoint string, clk clock.Clock) (engine.Options, error) {
	routes := map[string][]attempt.Target{}
	for _, rt := range c.Routes {
		ts := make([]attempt.Target, 0, len(rt.Targets))
		for _, t := range rt.Targets {
			ts = append(ts, attempt.Target{Model: t.Model, Region: t.Region})
		}
		for _, m := range rt.Models {
			routes[m] = ts
		}
	}
	eo := engine.Options{
		Region: region,
		Routes: route.New(region, routes),
		Retry: retry.Policy{MaxAttempts: c.Retry.MaxAttempts, Base: c.Retry.Base.D(), Cap: c.Retry.Cap.D(),
			ThrottleBase: c.Retry.ThrottleBase.D(), ThrottleCap: c.Retry.ThrottleCap.D()},
		Budget:        budget.Options{Ratio: c.Budget.Ratio, MinPerSecond: c.Budget.MinPerSecond, Window: c.Budget.Window.D()},
		DisableBudget: c.Budget.Disabled,
		Breaker: breaker.Options{Window: c.Breaker.Window.D(), MinCalls: c.Breaker.MinCalls, FailureRate: c.Breaker.FailureRate,
			ConsecutiveFailures: c.Breaker.ConsecutiveFailures, Cooldown: c.Breaker.Cooldown.D(), Probes: c.Breaker.Probes},
		DisableBreaker:   c.Breaker.Disabled,
		AttemptTimeout:   c.Retry.AttemptTimeout.D(),
		MaxResponseBytes: c.Limits.MaxResponseBytes,
		MaxEventBytes:    c.Limits.MaxEventBytes,
	}
	if c.ContentFilter.Enabled {
		eo.ContentFilterMessage = c.ContentFilter.Message
	}
	st := c.Streaming
	eo.Streaming = engine.StreamOptions{FirstEventTimeout: st.FirstEventTimeout.D(), IdleTimeout: st.IdleTimeout.D(),
		MaxResumes: st.MaxResumes, DisableResume: st.Resume != nil && !*st.Resume}
	for _, rt := range c.Routes {
		if rt.Streaming == nil || rt.Streaming.Resume == nil {
			continue
		}
		if eo.Streaming.Resume == nil {
			eo.Streaming.Resume = map[string]bool{}
		}
		for _, m := range rt.Models {
			eo.Streaming.Resume[m] = *rt.Streaming.Resume
		}
	}
	if endpoint != "" {
		u, err := parseEndpoint(endpoint)
		if err != nil {
			return eo, err
		}
		eo.Endpoints = attempt.FixedEndpoint{URL: u}
	}
	if !c.Quotas.Disabled {
		ao := governorOptions(&c.Quotas, region)
		ao.Clock = clk
		g, err := admission.New(ao)
		if err != nil {
			return eo, fmt.Errorf("keel: quotas: %w", err)
		}
		eo.Governor = g
	}
	return eo, nil
}

// governorOptions maps the quotas: section onto the quota governor's
// options; a target without a region is in region, the default one.
func governorOptions(q *config.Quotas, region string) admission.Options {
	quota := func(c config.Quota) admission.Quota {
		return admission.Quota{TokensPerMinute: c.TokensPerMinute, RequestsPerMinute: c.RequestsPerMinute,
			Learn: c.TokensPerMinute > 0 && c.Learning(), MinTokensPerMinute: c.MinTokensPerMinute, MaxTokensPerMinute: c.MaxTokensPerMinute}
	}
	ao := admission.Options{Default: quota(q.Default), MaxWait: q.MaxWait.D(), SmallFirst: q.SmallFirst,
		QueueTarget: q.QueueTarget.D()}
	if len(q.Targets) > 0 {
		ao.Targets = make(map[admission.Target]admission.Quota, len(q.Targets))
		for _, t := range q.Targets {
			r := t.Region
			if r == "" {
				r = region
			}
			ao.Targets[admission.Target{Model: t.Model, Region: r}] = quota(t)
		}
	}
	for _, m := range q.Models {
		ao.Models = append(ao.Models, admission.Model{Match: m.Match, MaxOutputTokens: m.MaxOutputTokens, Burndown: m.Burndown})
	}
	return ao
}

// ClientOptions plugs keel into a bedrockruntime client:
//
//	client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions)
//
// keel becomes the client's HTTP client, the SDK's own retryer is switched off
// (so attempts never multiply), and errors gain keel's details. The
// client's region and base endpoint are set as New says: Options and the
// configuration file replace the client's own, the aws.Config and the
// environment only fill in what the client lacks.
func (k *Keel) ClientOptions(o *bedrockruntime.Options) {
	creds := o.Credentials
	if creds != nil && !isCached(creds) {
		creds = aws.NewCredentialsCache(creds)
	}
	k.where.apply(&o.Region, &o.BaseEndpoint)
	o.HTTPClient = &sdkClient{k: k, creds: creds, region: o.Region}
	o.Retryer = aws.NopRetryer{}
	o.RetryMaxAttempts = 1
	o.APIOptions = append(o.APIOptions, addMiddleware)
}

// Enable plugs keel into every bedrockruntime client built from cfg from now
// on. It sets cfg.HTTPClient, so use it on a Config made for Bedrock Runtime:
// other services' clients built from the same cfg would send through keel
// (it passes them through untouched, but without the SDK's retries).
func Enable(cfg *aws.Config, opts Options) (*Keel, error) {
	k, err := New(*cfg, opts)
	if err != nil {
		return nil, err
	}
	creds := cfg.Credentials
	if creds != nil && !isCached(creds) {
		creds = aws.NewCredentialsCache(creds)
	}
	k.where.apply(&cfg.Region, &cfg.BaseEndpoint)
	cfg.HTTPClient = &sdkClient{k: k, creds: creds, region: cfg.Region}
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	cfg.RetryMaxAttempts = 1
	cfg.APIOptions = append(cfg.APIOptions, addMiddleware)
	return k, nil
}

// Do runs one Bedrock Runtime call through the engine without the SDK, as a
// gateway or the CLI does. A call whose Priority is Interactive takes the
// one WithPriority set on ctx, if any.
func (k *Keel) Do(ctx context.Context, call *engine.Call) (*http.Response, *Report, error) {
	if call.Priority == Interactive {
		call.Priority = priorityOf(ctx)
	}
	return k.eng.Do(ctx, call)
}

// QuotaGoverned reports whether calls go through the quota governor (it is
// on unless the configuration says quotas.disabled).
func (k *Keel) QuotaGoverned() bool { return k.eng.QuotaGoverned() }

// Quota returns the quota governor's figures for a model in a region, and
// false when the governor is off or has seen no call to that target.
func (k *Keel) Quota(model, region string) (QuotaStats, bool) {
	return k.eng.QuotaStats(attempt.Target{Model: model, Region: region})
}

// Quotas returns the quota governor's figures for every target it has seen,
// in no particular order; nil when it is off.
func (k *Keel) Quotas() []QuotaStats { return k.eng.Governor().Snapshot() }

func isCached(p aws.CredentialsProvider) bool {
	_, ok := p.(*aws.CredentialsCache)
	return ok
}

// sdkClient is the aws.HTTPClient keel installs in the SDK.
type sdkClient struct {
	k      *Keel
	creds  aws.CredentialsProvider
	region string
}

func (c *sdkClient) Do(r *http.Request) (*http.Response, error) {
	model, op, eps, ok := parseRequestURL(r.URL)
	if !ok {
		// Not a call keel knows (ApplyGuardrail, async invoke, ...): send it
		// as is, but never follow a redirect with its signature.
		return transport.WithoutRedirects(c.k.eng.HTTPClient()).Do(r)
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("keel: reading request body: %w", err)
		}
		body = b
	}
	region := attempt.RegionFromAuthorization(r.Header.Get("Authorization"))
	if region == "" {
		region = c.region
	}
	call := &engine.Call{Op: op, Model: model, Region: region, Body: body, Header: r.Header,
		Endpoints: eps, Credentials: c.creds, Priority: priorityOf(r.Context())}
	resp, rep, err := c.k.eng.Do(r.Context(), call)
	if rec, _ := r.Context().Value(recordKey{}).(*record); rec != nil {
		rec.report = rep
		rec.err, _ = err.(*engine.Error)
	}
	if resp != nil {
		resp.Request = r
		if op.Streaming() && err == nil {
			resp.Body = sdkStreamBody{resp.Body}
		}
		return resp, nil
	}
	return nil, err
}

// parseRequestURL reads the model and operation from an SDK request's URL,
// and the endpoints its attempts go to. A base endpoint with a path (a
// gateway at http://host/bedrock) puts that path before "/model/"; the
// attempts keep it, and the call is not mistaken for one keel does not
// handle.
func parseRequestURL(u *url.URL) (model string, op attempt.Op, eps attempt.Endpoints, ok bool) {
	path := u.EscapedPath()
	if model, op, ok = attempt.ParsePath(path); ok {
		return model, op, attempt.EndpointsFor(u), true
	}
	// The model id is escaped (its slashes too), so the last "/model/" is
	// where the call's own path starts.
	i := strings.LastIndex(path, "/model/")
	if i <= 0 {
		return "", "", nil, false
	}
	if model, op, ok = attempt.ParsePath(path[i:]); !ok {
		return "", "", nil, false
	}
	prefix, err := url.PathUnescape(path[:i])
	if err != nil {
		return "", "", nil, false
	}
	base := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: prefix, RawPath: path[:i]}
	return model, op, attempt.FixedEndpoint{URL: base}, true
}

// sdkStreamBody hands the SDK's event-stream reader a failure keel could
// not recover as an error it understands: the SDK's typed exception when
// the failure was one (*types.ThrottlingException, ...), else an API error
// whose code is the catalog's (StreamTruncated, StreamStalled, ...). Either
// way the error is a *Error, so Details and Failure reach keel's account.
type sdkStreamBody struct{ io.ReadCloser }

func (b sdkStreamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var f *engine.Error
	if err != nil && err != io.EOF && errors.As(err, &f) {
		err = &Error{err: sdkStreamError(f), failure: f, report: f.Report}
	}
	return n, err
}

// sdkStreamError builds the error the SDK would have produced from the
// failure's exception frame, or a smithy API error carrying the catalog
// code when there was no frame (truncated, corrupt, stalled, reset).
func sdkStreamError(f *engine.Error) error {
	msg := f.Message
	var payload []byte
	if f.Stream != nil && len(f.Stream.Frame) > 0 {
		if m, err := eventstream.NewDecoder().Decode(bytes.NewReader(f.Stream.Frame), nil); err == nil {
			payload = m.Payload
			if mt := m.Headers.Get(":message-type"); mt != nil && mt.String() == "error" {
				code := f.Code
				if h := m.Headers.Get(":error-code"); h != nil {
					code = h.String()
				}
				return &smithy.GenericAPIError{Code: code, Message: msg}
			}
		}
	}
	var typed error
	switch f.Entry.Code {
	case catalog.CodeThrottling:
		typed = &types.ThrottlingException{Message: &msg}
	case catalog.CodeInternalServer:
		typed = &types.InternalServerException{Message: &msg}
	case catalog.CodeServiceUnavailable:
		typed = &types.ServiceUnavailableException{Message: &msg}
	case catalog.CodeModelStreamError:
		typed = &types.ModelStreamErrorException{Message: &msg}
	case catalog.CodeModelTimeout:
		typed = &types.ModelTimeoutException{Message: &msg}
	case catalog.CodeValidation:
		typed = &types.ValidationException{Message: &msg}
	}
	if typed != nil {
		if len(payload) > 0 {
			// The frame's JSON carries the exception's fields
			// (originalStatusCode, originalMessage): the names match the
			// types' fields.
			json.Unmarshal(payload, typed)
		}
		return typed
	}
	fault := smithy.FaultServer
	if f.Entry.Category == catalog.Validation || f.Entry.Category == catalog.Client {
		fault = smithy.FaultClient
	}
	code := f.Entry.Code
	if f.Code != "" && len(payload) > 0 {
		code = f.Code // an exception the SDK does not model: its own name, as the SDK reports it
		return &smithy.GenericAPIError{Code: code, Message: msg, Fault: fault}
	}
	return &smithy.GenericAPIError{Code: code, Message: f.Error(), Fault: fault}
}

type recordKey struct{}

// record carries keel's account of a call from the HTTP client back up to the
// middleware, which attaches it to the SDK's result or error.
type record struct {
	report *Report
	err    *engine.Error
}

func addMiddleware(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("keel", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		rec := &record{}
		ctx = context.WithValue(ctx, recordKey{}, rec)
		out, md, err := next.HandleInitialize(ctx, in)
		if rec.report != nil {
			md.Set(reportKey{}, rec.report)
		}
		if err != nil && rec.report != nil {
			err = &Error{err: err, failure: rec.err, report: rec.report}
		}
		return out, md, err
	}), middleware.Before)
}

type reportKey struct{}

// ReportOf returns keel's report of a successful call from its result
// metadata (out.ResultMetadata), or nil.
func ReportOf(md middleware.Metadata) *Report {
	r, _ := md.Get(reportKey{}).(*Report)
	return r
}

// Error wraps the SDK's error for a call that went through keel. It unwraps
// to the SDK's error, so errors.As with the SDK's typed exceptions keeps
// working, and Details returns keel's account.
type Error struct {
	err     error
	failure *engine.Error
	report  *Report
}

func (e *Error) Error() string { return e.err.Error() }

// Unwrap returns the SDK's error and, when keel stopped because the
// caller's context ended (say, while it waited to retry), the context's
// error: errors.Is(err, context.Canceled) holds even though the SDK's error
// is the last upstream failure.
func (e *Error) Unwrap() []error {
	errs := []error{e.err}
	for _, c := range []error{context.Canceled, context.DeadlineExceeded} {
		if e.failure != nil && errors.Is(e.failure, c) && !errors.Is(e.err, c) {
			errs = append(errs, c)
		}
	}
	return errs
}

// Report returns every attempt of the call.
func (e *Error) Report() *Report { return e.report }

// Failure returns keel's account of the failure (nil when keel has none,
// e.g. for an error the SDK raised before sending). For a stream that
// failed after part of the reply had arrived, Failure().Stream says how
// much.
func (e *Error) Failure() *Failure { return e.failure }

// Entry returns the catalog entry for the failure.
func (e *Error) Entry() *Entry {
	if e.failure != nil && e.failure.Entry != nil {
		return e.failure.Entry
	}
	return classify.FromError(e.err).Entry
}

// Details returns keel's account of err: the catalog entry and the attempt
// history. It works on any error from a keel-enabled client (and on keel's
// own errors); ok is false for other errors.
func Details(err error) (entry *Entry, report *Report, ok bool) {
	var ke *Error
	if errors.As(err, &ke) {
		return ke.Entry(), ke.report, true
	}
	var f *engine.Error
	if errors.As(err, &f) {
		return f.Entry, f.Report, true
	}
	return nil, nil, false
}

// Explain classifies any error (SDK, HTTP, network, keel's own) onto its
// catalog entry.
func Explain(err error) *Entry {
	if entry, _, ok := Details(err); ok && entry != nil {
		return entry
	}
	return classify.FromError(err).Entry
}

func parseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("keel: endpoint %q is not an http(s) URL such as http://127.0.0.1:4000", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}, nil
}
