package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/transport"
)

// A Contender is one way of calling Bedrock that the bench compares. Each
// is configured as its users would configure it, with defaults.
type Contender struct {
	Name        string
	Description string
	// client returns a bedrockruntime client that sends to its own emulator.
	client func(ctx context.Context, e Endpoint) (*bedrockruntime.Client, error)
	// replica, when set instead of client, returns one of the contender's
	// Config.Replicas instances: a client and the Keel behind it, which
	// the run closes at its end.
	replica func(e Endpoint) (*bedrockruntime.Client, *keel.Keel, error)
	// sharesRedis: the replicas share state through Config.Redis
	// (Endpoint.Redis names it).
	sharesRedis bool
}

// Endpoint is where a contender sends and what it may know about it.
type Endpoint struct {
	// URL is the contender's emulator.
	URL string
	// Model and Region are the target every call names.
	Model, Region string
	// Quota is the target's tokens-per-minute quota. Only a contender with
	// a knob for it (keel) reads it; the SDK has none.
	Quota int64
	// Fallback is the region a route sends the model to when Region fails
	// (the outage bench); empty: none. Deadline is each call's deadline.
	Fallback string
	Deadline time.Duration
	// Redis is where a contender's replicas share state; zero: nowhere.
	Redis keel.RedisOptions
}

// contenders in the order the table shows them.
var contenders = []Contender{
	{Name: "keel", Description: "official SDK client + keel told the quota (quotas: in keel's configuration), otherwise defaults",
		client: keelClient(true)},
	{Name: "keel-learn", Description: "official SDK client + keel with its defaults: no quota told, the governor learns it from throttles",
		client: keelClient(false)},
	{Name: "standard", Description: "official SDK client, retry.NewStandard() (3 attempts, backoff up to 20 s, retry quota 500)",
		client: sdkClient(func() aws.Retryer { return retry.NewStandard() })},
	{Name: "adaptive", Description: "official SDK client, retry.NewAdaptiveMode() (standard + client-side rate limiting from throttles)",
		client: sdkClient(func() aws.Retryer { return retry.NewAdaptiveMode() })},
	{Name: "keel-redis", Description: "--replicas keel instances, each as keel (told the quota) with its own HTTP client, sharing state through one Redis (--redis)",
		replica: keelReplica, sharesRedis: true},
	{Name: "keel-local", Description: "the same instances sharing nothing: each believes it has the whole quota",
		replica: keelReplica},
}

// DefaultContenders are the contenders a run compares when none are named.
var DefaultContenders = []string{"keel", "keel-learn", "standard", "adaptive"}

// DefaultReplicaContenders are the contenders a run with Config.Replicas
// above 1 compares when none are named.
var DefaultReplicaContenders = []string{"keel-redis", "keel-local"}

// Contenders lists every contender in table order.
func Contenders() []Contender { return append([]Contender(nil), contenders...) }

// lookupContenders checks names against the quota bench's contenders and
// returns them in table order.
func lookupContenders(names []string) ([]Contender, error) {
	return pickContenders(contenders, DefaultContenders, names)
}

// pickContenders checks names (empty: defaults) against all and returns
// the contenders named, in all's order.
func pickContenders(all []Contender, defaults, names []string) ([]Contender, error) {
	return pickNamed(all, func(c Contender) string { return c.Name }, defaults, names)
}

// pickNamed checks names (empty: defaults) against the names of all and
// returns the elements named, in all's order.
func pickNamed[T any](all []T, name func(T) string, defaults, names []string) ([]T, error) {
	if len(names) == 0 {
		names = defaults
	}
	seen := map[string]bool{}
	for _, n := range names {
		if !slices.ContainsFunc(all, func(c T) bool { return name(c) == n }) {
			known := make([]string, len(all))
			for i, c := range all {
				known[i] = name(c)
			}
			return nil, fmt.Errorf("bench: unknown contender %q; choose from %s", n, strings.Join(known, ", "))
		}
		if seen[n] {
			return nil, fmt.Errorf("bench: contender %q named twice", n)
		}
		seen[n] = true
	}
	var out []T
	for _, c := range all {
		if seen[name(c)] {
			out = append(out, c)
		}
	}
	return out, nil
}

// tellQuota declares a target's tokens-per-minute quota in keel's
// options (the quotas: section of a file), as a user who knows their quota
// would (Bedrock's quotas are listed in the Service Quotas console).
func tellQuota(o *keel.Options, model, region string, tpm int64) {
	o.Quotas.Targets = append(o.Quotas.Targets, keel.Quota{Model: model, Region: region, TokensPerMinute: int(tpm)})
}

// fakeCredentials sign for the emulator, which accepts any.
var fakeCredentials = credentials.NewStaticCredentialsProvider("KEELBENCHACCESSKEY", "keel-bench-secret", "")

// awsConfig is the aws.Config a Go user would build, without reading the
// environment or ~/.aws (AWS_MAX_ATTEMPTS, AWS_RETRY_MODE and profiles must
// not change what is measured).
func awsConfig(e Endpoint) aws.Config {
	return aws.Config{Region: e.Region, Credentials: aws.NewCredentialsCache(fakeCredentials)}
}

func sdkClient(retryer func() aws.Retryer) func(context.Context, Endpoint) (*bedrockruntime.Client, error) {
	return func(_ context.Context, e Endpoint) (*bedrockruntime.Client, error) {
		cfg := awsConfig(e)
		cfg.Retryer = retryer
		// The SDK's default HTTP client, traced (see trace).
		cfg.HTTPClient = traced(awshttp.NewBuildableClient().Do)
		return bedrockruntime.NewFromConfig(cfg, func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String(e.URL) }), nil
	}
}

func keelClient(quota bool) func(context.Context, Endpoint) (*bedrockruntime.Client, error) {
	return func(_ context.Context, e Endpoint) (*bedrockruntime.Client, error) {
		c, _, err := newKeelClient(e, quota, nil)
		return c, err // a Keel without Redis needs no Close
	}
}

// keelReplica is one instance of keel-redis or keel-local: keel told the
// quota, with its own HTTP client, sharing state through e.Redis if set.
// Both kinds log nowhere: a replica's lines about Redis episodes would
// break the bench's progress line, and what an outage did is read from
// the calls.
func keelReplica(e Endpoint) (*bedrockruntime.Client, *keel.Keel, error) {
	return newKeelClient(e, true, slog.New(slog.DiscardHandler))
}

// newKeelClient returns a client through a new Keel: keel's default HTTP
// client (transport.NewClient), traced (see trace), told the quota if
// quota, connected to e.Redis if it names one, logging to logger (nil:
// nowhere, Redis's episodes to slog's default).
func newKeelClient(e Endpoint, quota bool, logger *slog.Logger) (*bedrockruntime.Client, *keel.Keel, error) {
	cfg := awsConfig(e)
	hc := &http.Client{Transport: traced(transport.NewTransport(transport.Options{}).RoundTrip)}
	o := keel.Options{Endpoint: e.URL, HTTPClient: hc, Redis: e.Redis, Logger: logger}
	if quota {
		tellQuota(&o, e.Model, e.Region, e.Quota)
	}
	k, err := keel.New(cfg, o)
	if err != nil {
		return nil, nil, err
	}
	return bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String(e.URL) }), k, nil
}
