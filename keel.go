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
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithy "github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/admission/redisstore"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker/redisbreaker"
	"github.com/keel-run/keel/internal/budget/redisbudget"
	"github.com/keel-run/keel/internal/cache"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/keelx"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/telemetry"
	"github.com/keel-run/keel/internal/transport"
)

// Priority is a call's class in the quota governor's queues. The zero
// Priority is Interactive.
type Priority uint8

// Priorities. Interactive calls are served first; Batch calls get one grant
// in every five while both wait, so they are never starved.
const (
	Interactive Priority = iota
	Batch
)

// String returns "interactive" or "batch".
func (p Priority) String() string { return enginePriority(p).String() }

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

// Keel holds the engine shared by every client it is plugged into: one retry
// budget and one set of circuit breakers per process. It is safe for
// concurrent use.
type Keel struct {
	eng    *engine.Engine
	where  placement
	shared *redisx.Client // nil without Options.Redis
	cache  *cache.Cache   // nil without a cache
}

func init() {
	// keel's own commands reach the engine and the engine's account of a
	// failure through keelx.
	keelx.Register(keelx.Hooks{
		Engine: func(k any) *engine.Engine { return k.(*Keel).eng },
		Shared: func(k any) *redisx.Client { return k.(*Keel).shared },
		Details: func(err error) (*catalog.Entry, *engine.Report, bool) {
			var ke *Error
			if !errors.As(err, &ke) {
				return nil, nil, false
			}
			return ke.entry(), ke.report, true
		},
	})
}

// New returns a Keel for cfg. Where calls go is decided in this order, the
// first that names a region (or an endpoint) winning: opts (Region,
// Endpoint), the configuration file (region:, endpoint:), cfg (Region,
// BaseEndpoint), the environment (AWS_REGION, AWS_DEFAULT_REGION;
// AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL); with none, us-east-1
// and AWS's endpoints. A bedrockruntime option given after
// Keel.ClientOptions is applied after keel's, so it wins over all of them.
func New(cfg aws.Config, opts Options) (*Keel, error) {
	c, err := opts.policies()
	if err != nil {
		return nil, err
	}
	where := place(c, cfg, os.Getenv)
	var shared *redisx.Client
	if c.Redis.Enabled() {
		ro := redisx.FromConfig(c.Redis)
		ro.Logger = cmp.Or(opts.Logger, slog.Default())
		if creds := cfg.Credentials; creds != nil {
			// The keys name no account: the Client warns when another
			// account's processes share the prefix (docs/redis.md).
			ro.Account = func(ctx context.Context) (string, error) {
				v, err := creds.Retrieve(ctx)
				return v.AccountID, err
			}
		}
		if shared, err = redisx.Open(context.Background(), ro); err != nil {
			// redisx names the file's key (redis.url); name the field
			// when the Go options set the Redis.
			if key, rest, ok := strings.Cut(err.Error(), ": "); ok && opts.Redis.URL != "" && strings.HasPrefix(key, "redis.") {
				return nil, fmt.Errorf("keel: %s: %s", goName(key), rest)
			}
			return nil, fmt.Errorf("keel: %w", err)
		}
		if opts.Registerer != nil {
			for _, m := range shared.Collectors() {
				if err := opts.Registerer.Register(m); err != nil {
					shared.Close()
					return nil, fmt.Errorf("keel: registering Redis metrics: %w", err)
				}
			}
		}
	}
	k, err := newKeel(cfg, opts, c, where, shared)
	if err != nil && shared != nil {
		shared.Close()
	}
	return k, err
}

func newKeel(cfg aws.Config, opts Options, c *config.Config, where placement, shared *redisx.Client) (*Keel, error) {
	var store admission.Store
	if shared != nil {
		store = redisstore.NewFailover(shared, redisstore.Options{})
	}
	var discover func(context.Context, admission.Target) (int, error)
	if c.Quotas.Discover {
		discover = newDiscoverer(cfg, where.endpoint, opts.HTTPClient, cmp.Or(opts.Logger, slog.Default()), opts.clock).discover
	}
	eo, err := engineOptions(c, where.region, where.endpoint, opts.clock, store, discover)
	if err != nil {
		return nil, err
	}
	if shared != nil {
		// What replicas share (docs/redis.md): the governor's buckets
		// (above), breakers' states and the retry budget.
		eo.Breaker.Shared = redisbreaker.New(shared, opts.clock)
		eo.Budget.Shared = redisbudget.New(shared, "", opts.clock)
	}
	eo.Credentials = cfg.Credentials
	eo.Logger = opts.Logger
	eo.HTTPClient = opts.HTTPClient
	eo.Clock = opts.clock
	eo.Rand = opts.rand
	if eo.Metrics, err = telemetry.NewMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("keel: registering metrics: %w", err)
	}
	if eo.Cache, err = openCache(c.Cache, shared, cmp.Or(opts.Logger, slog.Default()), opts.clock); err != nil {
		return nil, err
	}
	k := &Keel{where: where, shared: shared, cache: eo.Cache}
	if k.eng, err = engine.New(eo); err == nil && eo.Cache != nil && opts.Registerer != nil {
		for _, m := range eo.Cache.Collectors() {
			if err = opts.Registerer.Register(m); err != nil {
				err = fmt.Errorf("keel: registering cache metrics: %w", err)
				break
			}
		}
	}
	if err != nil {
		k.closeCache()
		return nil, err
	}
	return k, nil
}

// SharedStats is the health of keel's connection to Redis (Options.Redis).
type SharedStats struct {
	// Degraded reports that nothing is shared: the last round trip
	// failed, or every round trip for redisx.RepliesLostAfter (10 s) was
	// answered with an error reply (OOM, NOPERM); each limit falls back
	// to this process's Share until a round trip succeeds. DownSince is
	// when it began, LastError what failed (zero while healthy).
	Degraded  bool
	DownSince time.Time
	LastError string
	// Failures counts the round trips that failed, Episodes the times
	// Redis became unreachable.
	Failures, Episodes uint64
	// Replicas is the number of keel processes the heartbeat counts
	// (the highest count within its time to live); Share is the part of
	// each limit used while degraded. ShareGuessed reports a Share of 1
	// that no count backs: redis.share unset and no heartbeat ever got
	// through.
	Replicas     int
	Share        float64
	ShareGuessed bool
	// ReplyErrors counts Redis's error replies that were no outage (a
	// script's error, OOM, NOPERM): each such operation fell back alone.
	ReplyErrors uint64
	// AccountConflict is set while processes of another AWS account
	// share the Redis and prefix (their quotas merge with this one's): the
	// last four digits of their account ("…1234").
	AccountConflict string
}

// Shared returns the health of the connection to Redis; ok is false when
// Options.Redis names none.
func (k *Keel) Shared() (s SharedStats, ok bool) {
	if k.shared == nil {
		return s, false
	}
	st := k.shared.Stats()
	return SharedStats{Degraded: st.Degraded, DownSince: st.DownSince, LastError: st.LastError, Failures: st.Failures,
		Episodes: st.Episodes, Replicas: st.Replicas, Share: st.Share, ShareGuessed: st.ShareGuessed, ReplyErrors: st.ReplyErrors,
		AccountConflict: st.AccountConflict}, true
}

// Close ends what New started: the connection to Redis and its heartbeat,
// when Options.Redis names one, and the response cache's SQLite file. Calls
// made after Close fall back to this process's share of each limit (and
// find the cache empty, or failing: they go upstream). Close is safe to
// call more than once; a Keel with neither Redis nor a SQLite cache needs
// no Close.
func (k *Keel) Close() error {
	err := k.closeCache()
	if k.shared != nil {
		err = errors.Join(err, k.shared.Close())
	}
	return err
}

// closeCache closes the cache's store (a SQLite file); the Redis one is
// the shared connection's, which Close ends.
func (k *Keel) closeCache() error {
	if k.cache == nil {
		return nil
	}
	return k.cache.Store().Close()
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

// place resolves the placement: the first of c (Options laid over the
// configuration file), cfg and the environment (getenv) that names a
// region or an endpoint wins.
func place(c *config.Config, cfg aws.Config, getenv func(string) string) placement {
	var p placement
	switch {
	case c.Region != "":
		p.region, p.regionExplicit = c.Region, true
	case cfg.Region != "":
		p.region = cfg.Region
	default:
		p.region = cmp.Or(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"), defaultRegion)
	}
	switch {
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

// QuotaGoverned reports whether calls go through the quota governor (it is
// on unless the configuration says quotas.disabled).
func (k *Keel) QuotaGoverned() bool { return k.eng.QuotaGoverned() }

// Quota returns the quota governor's figures for a model in a region on
// the default tier (calls naming no tier), and false when the governor is
// off or has seen no call to that target. Quotas lists every tier's.
func (k *Keel) Quota(model, region string) (QuotaStats, bool) {
	st, ok := k.eng.QuotaStats(attempt.Target{Model: model, Region: region})
	if !ok {
		return QuotaStats{}, false
	}
	return quotaStatsOf(st), true
}

// Quotas returns the quota governor's figures for every target it has seen,
// in no particular order; nil when it is off.
func (k *Keel) Quotas() []QuotaStats {
	all := k.eng.Governor().Snapshot()
	if all == nil {
		return nil
	}
	out := make([]QuotaStats, len(all))
	for i, st := range all {
		out[i] = quotaStatsOf(st)
	}
	return out
}

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
		Endpoints: eps, Credentials: c.creds, Priority: enginePriority(priorityOf(r.Context()))}
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
	switch f.Entry.WireCode() { // a refinement (PrefillUnsupported) is still its wire code's type
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
	report *engine.Report
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
// metadata (out.ResultMetadata), or nil. For a stream, call it once the
// stream has ended or been closed: the report is complete then.
func ReportOf(md middleware.Metadata) *Report {
	r, _ := md.Get(reportKey{}).(*engine.Report)
	return reportOf(r)
}

// Error wraps the SDK's error for a call that went through keel. It unwraps
// to the SDK's error, so errors.As with the SDK's typed exceptions keeps
// working, and Details returns keel's account.
type Error struct {
	err     error
	failure *engine.Error
	report  *engine.Report
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
func (e *Error) Report() *Report { return reportOf(e.report) }

// Failure returns keel's account of the failure (nil when keel has none,
// e.g. for an error the SDK raised before sending). For a stream that
// failed after part of the reply had arrived, Failure().Stream says how
// much.
func (e *Error) Failure() *Failure { return failureOf(e.failure) }

// Entry returns the catalog entry for the failure.
func (e *Error) Entry() *Entry { return entryOf(e.entry()) }

func (e *Error) entry() *catalog.Entry {
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
		return ke.Entry(), ke.Report(), true
	}
	var f *engine.Error
	if errors.As(err, &f) {
		return entryOf(f.Entry), reportOf(f.Report), true
	}
	return nil, nil, false
}

// Explain classifies any error (SDK, HTTP, network, keel's own) onto its
// catalog entry.
func Explain(err error) *Entry {
	if entry, _, ok := Details(err); ok && entry != nil {
		return entry
	}
	return entryOf(classify.FromError(err).Entry)
}

func parseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("keel: endpoint %q is not an http(s) URL such as http://127.0.0.1:4000", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}, nil
}
