package keel

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/retry"
)

// Options configure keel. The zero value means all defaults.
//
// The policy fields (Routes, Retry, Budget, Breaker, Streaming, Limits,
// ContentFilter, Quotas) say in Go what a configuration file says in YAML,
// under the same names (retry.max_attempts is Retry.MaxAttempts; see
// docs/policies.md). With both, a field set here wins over the file, and a
// field left at its zero value takes the file's; a route here replaces the
// file's route for the same models, and a target's quota here replaces the
// file's for that target. New reports a bad value naming the field:
// "keel: Options.Retry.MaxAttempts: must be between 1 and 20 (0 = default), got 30".
type Options struct {
	// ConfigFile is a keel YAML file (routes, retry, budget, breaker,
	// streaming, limits, content filter, quotas). Empty: no file; the
	// fields below and the defaults apply.
	ConfigFile string
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

	// Routes give a model's calls fallback targets: a call goes first to
	// the model the client names, in the client's region, then to each
	// target of the model's route in order when the one before cannot
	// serve. A model without a route goes to itself alone.
	Routes []Route
	// Retry is the retry policy: attempts per target and backoff.
	Retry RetryOptions
	// Budget is the retry budget all calls share.
	Budget BudgetOptions
	// Breaker is the circuit breaker kept per target.
	Breaker BreakerOptions
	// Streaming steers how keel watches and resumes streams.
	Streaming StreamingOptions
	// Limits bound what keel reads of a reply.
	Limits LimitOptions
	// ContentFilter replaces a reply blocked by a filter or guardrail.
	ContentFilter ContentFilterOptions
	// Batch steers calls of Batch priority (WithPriority).
	Batch BatchOptions
	// Quotas configure the quota governor.
	Quotas QuotaOptions
	// Redis shares state with every process configured with the same
	// Redis and prefix: the quota governor's buckets and learned limits,
	// the circuit breakers and the retry budget (docs/redis.md). Zero
	// (URL empty): this process keeps its own, in memory. A Keel with
	// Redis holds a connection and a heartbeat: Close it.
	Redis RedisOptions
	// Cache serves replies again for identical requests, and makes
	// identical requests in flight share one upstream call
	// (docs/cache.md). Zero: the configuration file's cache:, else off.
	Cache CacheOptions

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

	clock clock.Clock    // tests only
	rand  retry.Rand     // tests only
	file  *config.Config // tests only: a parsed ConfigFile
}

// Route sends the calls of Models to Targets, in order.
type Route struct {
	// Name labels the route in errors; optional.
	Name string
	// Models are the model ids (as the client names them) the route
	// serves; a model is in at most one route.
	Models []string
	// Targets are the fallbacks, tried in order after the call's own
	// target (which is skipped if listed). A target with an empty Region
	// is in the default region; one with an empty Tier keeps the call's
	// tier, so a target naming the call's model and another tier moves the
	// call across tiers; one with a Priority serves only calls of that
	// priority. InvokeModel calls skip a target whose model takes another
	// native body format.
	Targets []Target
	// Resume turns resuming broken streams on or off for these models
	// (new(true), new(false)). Nil: Streaming.DisableResume decides.
	Resume *bool
}

// BatchOptions steer calls of Batch priority.
type BatchOptions struct {
	// ServiceTier is the service tier (TierFlex, ...) a Batch call asks for
	// when its request names none. Empty: none (the default tier).
	ServiceTier string
}

// RetryOptions are the retry policy. Zero fields take the defaults.
type RetryOptions struct {
	// MaxAttempts counts attempts per target, the first one included;
	// 1 to 20. 0: 3.
	MaxAttempts int
	// Base and Cap bound the exponential backoff (with full jitter) after
	// a transient failure. 0: 250 ms and 5 s.
	Base, Cap time.Duration
	// ThrottleBase and ThrottleCap bound it after a throttle. 0: 1 s and
	// 20 s.
	ThrottleBase, ThrottleCap time.Duration
	// AttemptTimeout ends one attempt that takes longer. 0: learned from
	// the target's reply times.
	AttemptTimeout time.Duration
}

// BudgetOptions are the retry budget: retries (and fallbacks) may be at
// most a share of first attempts, so an outage does not multiply traffic.
type BudgetOptions struct {
	// Ratio is the share of first attempts that may be retried, 0 to 1.
	// 0: 0.1.
	Ratio float64
	// MinPerSecond are retries always allowed, whatever the ratio. 0: 1.
	MinPerSecond float64
	// Window is how far back first attempts count. 0: 10 s.
	Window time.Duration
	// Disabled turns the budget off: every retry the policy allows is sent.
	Disabled bool
}

// BreakerOptions are the circuit breaker kept per target (model in a
// region). Zero fields take the defaults.
type BreakerOptions struct {
	// Window is the sliding window the failure rate is measured over.
	// 0: 60 s.
	Window time.Duration
	// MinCalls are the calls in the window before the breaker may open. 0: 10.
	MinCalls int
	// FailureRate is the share of unhealthy outcomes that opens it
	// (0 < r ≤ 1). 0: 0.5.
	FailureRate float64
	// ConsecutiveFailures opens it after that many unhealthy outcomes in
	// a row; -1: never by count. 0: 5.
	ConsecutiveFailures int
	// Cooldown is how long it stays open before probing. 0: 30 s.
	Cooldown time.Duration
	// Probes are the concurrent probe calls while half-open. 0: 2.
	Probes int
	// Disabled turns breakers off.
	Disabled bool
}

// StreamingOptions steer streams (ConverseStream,
// InvokeModelWithResponseStream). Zero fields take the defaults.
type StreamingOptions struct {
	// DisableResume turns off resuming a stream that broke after part of
	// its reply (Route.Resume can turn it back on for a route).
	DisableResume bool
	// DisableContinueTurn turns off resuming the streams of models that
	// refuse a prefill (Claude 4.6 and later) by a continuation ending in
	// a user turn that asks the model to go on; their streams then end
	// with the error when they break after part of the reply.
	DisableContinueTurn bool
	// MaxResumes bounds the continuations per call, 1 to 10. 0: 2.
	MaxResumes int
	// FirstEventTimeout is how long an attempt may wait for its first
	// event, and IdleTimeout for each next one; at least 1 s. 0: 2 min
	// and 60 s.
	FirstEventTimeout, IdleTimeout time.Duration
}

// LimitOptions bound what keel reads. Zero fields take the defaults.
type LimitOptions struct {
	// MaxResponseBytes bounds a reply's body. 0: 64 MiB.
	MaxResponseBytes int64
	// MaxEventBytes bounds one stream event. 0: 1 MiB.
	MaxEventBytes int64
}

// ContentFilterOptions replace a Converse reply blocked by a content
// filter or guardrail with a message of yours (Report.Degraded says so).
type ContentFilterOptions struct {
	Enabled bool
	// Message is the reply's text; required when Enabled.
	Message string
}

// QuotaOptions configure the quota governor, which holds each request's
// tokens against its target's tokens-per-minute quota.
type QuotaOptions struct {
	// Disabled turns the governor off: calls go out as they come.
	Disabled bool
	// MaxWait bounds how long a call waits for quota, on top of its
	// context's deadline. 0: only the deadline bounds it.
	MaxWait time.Duration
	// SmallFirst judges each waiting call by its own size, so that under
	// overload small calls get through far more often than large ones.
	// false: a call joining a queue is judged as large as the target's
	// large calls.
	SmallFirst bool
	// FullStart starts a known quota's bucket full, a minute of quota, as
	// Bedrock's is when nothing used it lately. false: it starts with a
	// second of quota and warms up as calls get through (Bedrock's may be
	// spent by another process, or hold less than a minute); Interactive
	// calls do not wait for the warm-up.
	FullStart bool
	// QueueTarget is how long an Interactive call joining the queue of an
	// overloaded target may expect to wait. 0: 1 s.
	QueueTarget time.Duration
	// Default is every target's quota unless Targets names it (Model and
	// Region must be empty). Zero: learned from throttles.
	Default Quota
	// Targets are quotas of named targets.
	Targets []Quota
	// Models are facts about models, matched by substring of the model id
	// before the built-in table.
	Models []QuotaModel
	// Discover reads each target's tokens-per-minute quota from Service
	// Quotas (the region's, or Endpoint's when set), with the aws.Config's
	// credentials, when a call first names the target and again every 15
	// minutes (docs/governor.md, Discovered quotas). A quota in Targets
	// wins over a discovered one, which wins over Default and learning;
	// a target Service Quotas does not tell (access denied, unreachable,
	// not listed: logged once per target) is learned. false: the file's
	// quotas.discover.
	Discover bool
}

// Quota is one target's quotas, as in the AWS Service Quotas console.
type Quota struct {
	// Model and Region name the target (QuotaOptions.Targets only); an
	// empty Region is the default region.
	Model, Region string
	// TokensPerMinute is the tokens-per-minute quota; 0: unknown, learned
	// from throttles.
	TokensPerMinute int
	// RequestsPerMinute is the requests-per-minute quota; 0: not limited.
	RequestsPerMinute int
	// Learn makes TokensPerMinute a first guess the governor may grow past
	// (up to MaxTokensPerMinute): new(true). Nil: false when
	// TokensPerMinute is set (the known quota), true when it is not.
	Learn *bool
	// MinTokensPerMinute is the floor a throttle never shrinks the limit
	// below; 0: 1% of the quota, at least 1,000.
	MinTokensPerMinute int
	// MaxTokensPerMinute is the ceiling of a learned limit; 0: none.
	MaxTokensPerMinute int
}

// QuotaModel is what the quota governor needs to know about a model; all
// three fields are required.
type QuotaModel struct {
	// Match is a substring of the model id ("claude-sonnet-4").
	Match string
	// MaxOutputTokens is the model's largest output, which a request that
	// sets no max tokens reserves.
	MaxOutputTokens int
	// Burndown is the quota tokens one output token costs: 5 for Claude
	// Sonnet 4, 1 for most models.
	Burndown float64
}

// RedisOptions connect keel to the Redis that processes sharing one
// Bedrock quota share their state through.
type RedisOptions struct {
	// URL is redis://[user:password@]host:port[/db], or rediss:// for TLS.
	URL string
	// Prefix starts every key keel writes. Empty: "keel:".
	Prefix string
	// Timeout bounds each round trip; past it keel falls back to local
	// state. 0: 50 ms.
	Timeout time.Duration
	// Share is the part of each limit this process uses while Redis is
	// unreachable, between 0 and 1. 0: 1 ÷ the processes seen alive.
	Share float64
	// TLS adds to a rediss:// URL's connection: PEM files of a CA, a
	// client certificate and its key, and a server name.
	TLS RedisTLS
}

// RedisTLS is a rediss:// connection's TLS settings.
type RedisTLS struct {
	CA, Cert, Key, ServerName string
}
