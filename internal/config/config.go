// Package config reads keel's one YAML configuration file: the default region
// and endpoint, routes of fallback targets, the retry, budget and breaker
// settings, streaming, the quota governor's quotas, and the gateway (keel
// serve) with its callers. The zero Config (no file at all) means "all defaults", and every
// field documents what its zero value does.
//
// Parsing is strict: an unknown key, a bad value or a second YAML document is
// an error that names the key and its line, so a typo never silently falls
// back to a default; every problem of a file is reported at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keel-run/keel/internal/bedrock"
)

// Config is the whole file.
type Config struct {
	// Region is the region for a model named without one. Empty: the AWS
	// configuration's region (AWS_REGION, profile), else us-east-1.
	Region string `yaml:"region"`
	// Endpoint is a Bedrock-compatible base URL (for example a `keel emulate`
	// address) used for every region. Empty: the real Bedrock Runtime endpoint of
	// each target's region.
	Endpoint string `yaml:"endpoint"`
	// Retry tunes retries on one target. Zero fields take the defaults.
	Retry Retry `yaml:"retry"`
	// Budget bounds retries across all calls. Zero fields take the defaults.
	Budget Budget `yaml:"budget"`
	// Breaker tunes the per-target circuit breaker. Zero fields take the defaults.
	Breaker Breaker `yaml:"breaker"`
	// Routes list fallback targets per model. A model with no route is called
	// on its own, in the default region.
	Routes []Route `yaml:"routes"`
	// Batch steers calls of Batch priority (keel batch run's, and those a
	// program marks with keel.WithPriority).
	Batch Batch `yaml:"batch"`
	// ContentFilter configures graceful degradation when a reply is blocked.
	ContentFilter ContentFilter `yaml:"content_filter"`
	// Streaming tunes ConverseStream and InvokeModelWithResponseStream:
	// stall limits and resume. Zero fields take the defaults.
	Streaming Streaming `yaml:"streaming"`
	// Limits bound the size of replies and stream events keel reads.
	Limits Limits `yaml:"limits"`
	// Quotas configures the quota governor, which admits every attempt
	// within its target's tokens-per-minute quota. Absent: on, every
	// target's quota unknown and learned from throttles.
	Quotas Quotas `yaml:"quotas"`
	// Gateway configures keel serve: its listener, limits, dead-letter
	// queue, TLS and callers. Absent: the flags' values and no callers.
	Gateway Gateway `yaml:"gateway"`
	// Redis shares quota, breakers and budgets between processes.
	// Absent: each process keeps its own.
	Redis Redis `yaml:"redis"`
	// Cache stores replies and coalesces identical requests. Absent: off.
	Cache Cache `yaml:"cache"`
}

// Quotas configures the quota governor (docs/governor.md). The zero value
// means the governor is on and learns every target's quota from Bedrock's
// throttles: it limits nothing until a target is first throttled.
type Quotas struct {
	// Disabled turns the governor off: attempts are sent without waiting
	// for quota, and a throttle is retried after the retry policy's
	// throttle backoff.
	Disabled bool `yaml:"disabled"`
	// MaxWait bounds how long a call waits in keel's queue for quota, on
	// top of its context's deadline. 0: only the deadline bounds it.
	MaxWait Duration `yaml:"max_wait"`
	// SmallFirst judges each waiting call by its own size: under overload,
	// small calls then get through far more often than large ones. false:
	// a call joining a queue is judged as if it were as large as the
	// target's large calls, so large and small are refused alike.
	SmallFirst bool `yaml:"small_first"`
	// FullStart starts a known quota's bucket full, a minute of quota, as
	// Bedrock's is when nothing used it lately. false: it starts with a
	// second of quota and warms up as calls get through (Bedrock's may be
	// spent by another process, or hold less than a minute).
	FullStart bool `yaml:"full_start"`
	// QueueTarget is how long an interactive call may expect to wait in the
	// queue of an overloaded target (its calls ask for more than its
	// quota) before it is refused at once with TargetOverloaded instead. 0:
	// the default, 1s; a value as long as the calls' deadlines turns the
	// rule off.
	QueueTarget Duration `yaml:"queue_target"`
	// Default is the quota of every target not listed in Targets; its model
	// and region must be empty. Zero: unknown, learned from throttles.
	Default Quota `yaml:"default"`
	// Targets are the quotas of particular targets (model id as calls name
	// it, region).
	Targets []Quota `yaml:"targets"`
	// Models tells the governor about models its table lacks (an
	// application inference profile's ARN does not name its model).
	Models []QuotaModel `yaml:"models"`
	// Discover reads each target's tokens-per-minute quota from the
	// Service Quotas API of its region (the endpoint's, when one is set)
	// when a call first names it, and again every 15 minutes
	// (docs/governor.md, Discovered quotas). A quota in Targets wins over
	// a discovered one, which wins over Default and learning; a target
	// Service Quotas does not tell is learned. false: not read.
	Discover bool `yaml:"discover"`
}

// Quota is one target's quotas, as in the AWS Service Quotas console, or
// the default for every target.
type Quota struct {
	// Model and Region name the target (Targets only). An empty region is
	// the default region.
	Model  string `yaml:"model"`
	Region string `yaml:"region"`
	// TokensPerMinute is the tokens-per-minute quota; 0: unknown, learned
	// from throttles.
	TokensPerMinute int `yaml:"tokens_per_minute"`
	// RequestsPerMinute is the requests-per-minute quota; 0: not limited.
	RequestsPerMinute int `yaml:"requests_per_minute"`
	// Learn makes TokensPerMinute a first guess the governor may grow past
	// (up to MaxTokensPerMinute). Nil (absent): false when TokensPerMinute
	// is set (it is the known quota, the ceiling), true when it is not.
	Learn *bool `yaml:"learn"`
	// MinTokensPerMinute is the floor a throttle never shrinks the limit
	// below; 0: 1% of the quota, at least 1,000.
	MinTokensPerMinute int `yaml:"min_tokens_per_minute"`
	// MaxTokensPerMinute is the ceiling of a learned limit; 0: none.
	MaxTokensPerMinute int `yaml:"max_tokens_per_minute"`
}

// Learning reports whether the quota is learned from throttles.
func (q Quota) Learning() bool {
	if q.Learn != nil {
		return *q.Learn
	}
	return q.TokensPerMinute == 0
}

// QuotaModel is what the governor needs to know about a model: matched by
// substring of the model id, before the built-in table.
type QuotaModel struct {
	Match           string  `yaml:"match"`
	MaxOutputTokens int     `yaml:"max_output_tokens"` // reserved when a request sets no max tokens
	Burndown        float64 `yaml:"burndown"`          // quota tokens per output token (5 for Claude Sonnet 4)
}

// Streaming tunes streams; zero fields take the defaults (see
// docs/streaming.md).
type Streaming struct {
	// Resume continues a stream that broke after its first content by
	// re-sending the request with the text so far: as a prefill, for
	// models known to accept one (Claude up to 4.5, Nova), or followed by
	// a user turn asking to go on, for models known to refuse one (see
	// ContinueTurn). Nil (absent): true.
	Resume *bool `yaml:"resume"`
	// ContinueTurn resumes the streams of models that refuse a prefill
	// (Claude 4.6 and later) by a continuation ending in a user turn that
	// asks the model to go on; the repeated start of its reply is dropped.
	// Nil (absent): true.
	ContinueTurn *bool `yaml:"continue_turn"`
	// MaxResumes bounds the continuations of one call (1 to 10; 0: 2).
	MaxResumes int `yaml:"max_resumes"`
	// FirstEventTimeout bounds the wait from sending a request to its first
	// event (0: 2m; at least 1s).
	FirstEventTimeout Duration `yaml:"first_event_timeout"`
	// IdleTimeout bounds the wait for each later event (0: 60s; at least 1s).
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// RouteStreaming overrides streaming settings for the models of one route.
type RouteStreaming struct {
	// Resume, when set, decides for these models: true resumes even a model
	// keel does not know to accept a prefill, false never resumes.
	Resume *bool `yaml:"resume"`
}

// Retry mirrors retry.Policy; zero fields take its defaults.
type Retry struct {
	MaxAttempts  int      `yaml:"max_attempts"`  // attempts per target, first one included
	Base         Duration `yaml:"base"`          // backoff base for transient failures
	Cap          Duration `yaml:"cap"`           // backoff ceiling for transient failures
	ThrottleBase Duration `yaml:"throttle_base"` // backoff base after throttling
	ThrottleCap  Duration `yaml:"throttle_cap"`  // backoff ceiling after throttling
	// AttemptTimeout bounds one non-streaming attempt, its whole reply
	// included. 0: learned per model from the reply times of calls of the
	// same size (see docs/policies.md); streams are bounded by streaming:'s
	// first_event_timeout and idle_timeout instead.
	AttemptTimeout Duration `yaml:"attempt_timeout"`
}

// Limits bound what keel holds in memory for one call; zero fields take the
// defaults, far above any real Bedrock reply.
type Limits struct {
	// MaxResponseBytes bounds a non-streaming reply's body, and the text a
	// stream keeps for its resume (0: 64 MiB).
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// MaxEventBytes bounds one event-stream message (0: 1 MiB).
	MaxEventBytes int64 `yaml:"max_event_bytes"`
}

// Budget bounds retries across calls; zero fields take the defaults.
type Budget struct {
	// Ratio is the share of first attempts that may be retried (0.1 = 10%).
	Ratio float64 `yaml:"ratio"`
	// MinPerSecond lets a trickle of retries through even at low traffic.
	MinPerSecond float64 `yaml:"min_per_second"`
	// Window is how far back calls are counted.
	Window Duration `yaml:"window"`
	// Disabled turns the budget off (every retry the policy allows is sent).
	Disabled bool `yaml:"disabled"`
}

// Breaker tunes the per-target circuit breaker; zero fields take the defaults.
type Breaker struct {
	Window      Duration `yaml:"window"`       // sliding window the failure rate is measured over
	MinCalls    int      `yaml:"min_calls"`    // calls in the window before the breaker may open
	FailureRate float64  `yaml:"failure_rate"` // share of unhealthy outcomes that opens it (0 < r ≤ 1)
	// ConsecutiveFailures opens it after this many unhealthy outcomes in a
	// row, whatever the window holds (0: 5; -1: off).
	ConsecutiveFailures int      `yaml:"consecutive_failures"`
	Cooldown            Duration `yaml:"cooldown"` // open time before probing
	Probes              int      `yaml:"probes"`   // concurrent probes while half-open
	Disabled            bool     `yaml:"disabled"`
}

// Route is an ordered list of targets for calls to one or more models.
type Route struct {
	// Name labels the route in logs and metrics.
	Name string `yaml:"name"`
	// Models are the model ids (as the caller names them) this route serves.
	Models []string `yaml:"models"`
	// Targets are tried in order. The first is normally the model itself.
	Targets []Target `yaml:"targets"`
	// Streaming overrides the streaming settings for these models. Nil:
	// the file's.
	Streaming *RouteStreaming `yaml:"streaming"`
}

// Target is one model in one region, on one service tier.
type Target struct {
	Model  string `yaml:"model"`
	Region string `yaml:"region"` // empty: the default region
	// Tier is the service tier to ask for: priority, default, flex or
	// reserved. Empty: the call's own.
	Tier string `yaml:"tier"`
	// Priority limits the target to calls of one class: interactive or
	// batch. Empty: every call.
	Priority string `yaml:"priority"`
}

// String renders the target as MODEL@REGION, with /TIER when it names a
// tier.
func (t Target) String() string {
	s := t.Model
	if t.Region != "" {
		s += "@" + t.Region
	}
	if t.Tier != "" {
		s += "/" + t.Tier
	}
	return s
}

// ParseTarget reads MODEL or MODEL@REGION, the form `--fallback` takes.
func ParseTarget(s string) (Target, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Target{}, errors.New("config: empty target; want MODEL or MODEL@REGION")
	}
	model, region, _ := strings.Cut(s, "@")
	if model == "" {
		return Target{}, fmt.Errorf("config: target %q has no model; want MODEL or MODEL@REGION", s)
	}
	if strings.Contains(s, "@") && !validRegion(region) {
		return Target{}, fmt.Errorf("config: target %q has a bad region %q; want a region such as us-west-2", s, region)
	}
	return Target{Model: model, Region: region}, nil
}

// Batch steers calls of Batch priority.
type Batch struct {
	// ServiceTier is the service tier a Batch call asks for when its
	// request names none (flex: cheaper, served after the other tiers).
	// Empty: none.
	ServiceTier string `yaml:"service_tier"`
}

// ContentFilter configures the reply used when a content filter or guardrail
// blocked the answer. Off by default: the caller sees the blocked reply as is.
type ContentFilter struct {
	Enabled bool   `yaml:"enabled"`
	Message string `yaml:"message"` // required when enabled
}

// Duration is a time.Duration written as "500ms", "2s", "1m30s".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string. Its error is a
// *yaml.TypeError naming the line, so decoding goes on and every problem is
// reported.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	err := n.Decode(&s)
	var v time.Duration
	if err == nil {
		v, err = time.ParseDuration(s)
	}
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, durationMsg(n))}}
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Load reads and validates the file at path. Every problem is reported at
// once, each an *Error naming the file and line.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, errs := parse(b)
	for _, e := range errs {
		e.File = path
	}
	if len(errs) > 0 {
		return nil, join(errs)
	}
	return c, nil
}

// Parse reads and validates a configuration document. An empty document is
// the all-defaults Config. Every problem is reported at once, in line order,
// each an *Error with its line: YAML syntax, unknown or duplicate keys,
// values of the wrong type or out of range, and a second YAML document.
func Parse(b []byte) (*Config, error) {
	c, errs := parse(b)
	if len(errs) > 0 {
		return nil, join(errs)
	}
	return c, nil
}

func parse(b []byte) (*Config, []*Error) {
	c := &Config{}
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil // comments only
		}
		return nil, []*Error{syntaxError(err)}
	}
	ck := &checker{lines: map[string]int{}}
	// A second document used to be ignored without a word.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		ck.errs = append(ck.errs, syntaxError(err))
	case len(next.Content) > 0 && !(next.Content[0].Kind == yaml.ScalarNode && next.Content[0].Tag == "!!null" && next.Content[0].Value == ""):
		ck.add(next.Line, "", "a second YAML document: a configuration file holds one (remove the --- and merge what follows)")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			return c, ck.errs
		}
		ck.add(root.Line, "", "want a mapping of keys such as region: and retry:, got %s", describe(root))
		return nil, ck.errs
	}
	ck.mapping(root, reflect.TypeFor[Config](), "")
	// The checker has reported every key and type problem in keel's words;
	// decoding goes on past them (unknown keys are skipped, bad values left
	// zero), so that the values' checks below report theirs too.
	if err := root.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			// Decoding stopped part-way (excessive aliasing, say): the
			// half-filled Config would give Validate false problems.
			ck.errs = append(ck.errs, syntaxError(err))
			sortErrors(ck.errs)
			return c, ck.errs
		}
		if len(ck.errs) == 0 {
			for _, m := range te.Errors {
				ck.errs = append(ck.errs, syntaxError(errors.New("yaml: "+m)))
			}
		}
	}
	var resolved []*Error
	note := func(key, format string, args ...any) {
		resolved = append(resolved, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	c.Gateway.resolve(os.LookupEnv, note)
	c.Redis.resolve(os.LookupEnv, note)
	for _, e := range append(resolved, c.validate()...) {
		e.Line = ck.line(e.Key)
		ck.errs = append(ck.errs, e)
	}
	sortErrors(ck.errs)
	return c, ck.errs
}

// join returns errs as one error, one line each.
func join(errs []*Error) error {
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

// Validate checks every value and reports every problem, each an *Error
// naming the key (without a line: a Config built in Go has none).
func (c *Config) Validate() error {
	if errs := c.validate(); len(errs) > 0 {
		return join(errs)
	}
	return nil
}

func (c *Config) validate() []*Error {
	var errs []*Error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Region != "" && !validRegion(c.Region) {
		bad("region", "%q is not a region name such as us-east-1", c.Region)
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		bad("endpoint", "%q must start with http:// or https://", c.Endpoint)
	}
	r := c.Retry
	if r.MaxAttempts < 0 || r.MaxAttempts > 20 {
		bad("retry.max_attempts", "must be between 1 and 20 (0 = default), got %d", r.MaxAttempts)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"retry.base", r.Base}, {"retry.cap", r.Cap}, {"retry.throttle_base", r.ThrottleBase}, {"retry.throttle_cap", r.ThrottleCap},
		{"budget.window", c.Budget.Window}, {"breaker.window", c.Breaker.Window}, {"breaker.cooldown", c.Breaker.Cooldown}} {
		if d.v < 0 {
			bad(d.key, "must not be negative, got %s", d.v.D())
		}
	}
	if r.Base > 0 && r.Cap > 0 && r.Cap < r.Base {
		bad("retry.cap", "%s is below retry.base %s", r.Cap.D(), r.Base.D())
	}
	if r.ThrottleBase > 0 && r.ThrottleCap > 0 && r.ThrottleCap < r.ThrottleBase {
		bad("retry.throttle_cap", "%s is below retry.throttle_base %s", r.ThrottleCap.D(), r.ThrottleBase.D())
	}
	if r.AttemptTimeout < 0 {
		bad("retry.attempt_timeout", "must not be negative, got %s (0 = learned from reply times)", r.AttemptTimeout.D())
	}
	if c.Limits.MaxResponseBytes < 0 {
		bad("limits.max_response_bytes", "must not be negative, got %d (0 = default 64 MiB)", c.Limits.MaxResponseBytes)
	}
	if c.Limits.MaxEventBytes < 0 {
		bad("limits.max_event_bytes", "must not be negative, got %d (0 = default 1 MiB)", c.Limits.MaxEventBytes)
	}
	if c.Budget.Ratio < 0 || c.Budget.Ratio > 1 {
		bad("budget.ratio", "must be between 0 and 1, got %g", c.Budget.Ratio)
	}
	if c.Budget.MinPerSecond < 0 {
		bad("budget.min_per_second", "must not be negative, got %g", c.Budget.MinPerSecond)
	}
	b := c.Breaker
	if b.MinCalls < 0 {
		bad("breaker.min_calls", "must not be negative, got %d", b.MinCalls)
	}
	if b.FailureRate < 0 || b.FailureRate > 1 {
		bad("breaker.failure_rate", "must be between 0 and 1, got %g", b.FailureRate)
	}
	if b.ConsecutiveFailures < -1 {
		bad("breaker.consecutive_failures", "must be -1 (off), 0 (default 5) or more, got %d", b.ConsecutiveFailures)
	}
	if b.Probes < 0 {
		bad("breaker.probes", "must not be negative, got %d", b.Probes)
	}
	if t := c.Batch.ServiceTier; t != "" && !bedrock.ValidTier(t) {
		bad("batch.service_tier", "%q is not a service tier; want one of %s", t, strings.Join(bedrock.Tiers(), ", "))
	}
	seen := map[string]string{}
	for i, rt := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if len(rt.Models) == 0 {
			bad(key+".models", "lists no model; name the model ids this route serves")
		}
		for _, m := range rt.Models {
			if prev, dup := seen[m]; dup {
				bad(key+".models", "model %q is already served by %s", m, prev)
			}
			seen[m] = key
		}
		if len(rt.Targets) == 0 {
			bad(key+".targets", "lists no target")
		}
		for j, t := range rt.Targets {
			tk := fmt.Sprintf("%s.targets[%d]", key, j)
			if t.Model == "" {
				bad(tk+".model", "is empty")
			}
			if t.Region != "" && !validRegion(t.Region) {
				bad(tk+".region", "%q is not a region name such as us-west-2", t.Region)
			}
			if t.Tier != "" && !bedrock.ValidTier(t.Tier) {
				bad(tk+".tier", "%q is not a service tier; want one of %s", t.Tier, strings.Join(bedrock.Tiers(), ", "))
			}
			if t.Priority != "" && t.Priority != "interactive" && t.Priority != "batch" {
				bad(tk+".priority", "%q is not a priority; want interactive or batch (or leave it out for every call)", t.Priority)
			}
		}
	}
	st := c.Streaming
	if st.MaxResumes < 0 || st.MaxResumes > 10 {
		bad("streaming.max_resumes", "must be between 1 and 10 (0 = default 2), got %d", st.MaxResumes)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"streaming.first_event_timeout", st.FirstEventTimeout}, {"streaming.idle_timeout", st.IdleTimeout}} {
		if d.v != 0 && d.v < Duration(time.Second) {
			bad(d.key, "must be at least 1s (0 = default), got %s", d.v.D())
		}
	}
	if c.ContentFilter.Enabled && strings.TrimSpace(c.ContentFilter.Message) == "" {
		bad("content_filter.message", "is required when content_filter.enabled is true")
	}
	c.Quotas.validate(bad)
	c.Gateway.validate(bad)
	c.Redis.validate(bad)
	c.Cache.validate(bad)
	return errs
}

func (qs *Quotas) validate(bad func(key, format string, args ...any)) {
	if qs.MaxWait < 0 {
		bad("quotas.max_wait", "must not be negative, got %s", qs.MaxWait.D())
	}
	if qs.QueueTarget < 0 {
		bad("quotas.queue_target", "must not be negative, got %s (0 is the default, 1s)", qs.QueueTarget.D())
	}
	if qs.Discover && qs.Disabled {
		bad("quotas.discover", "needs the governor, which quotas.disabled turns off")
	}
	if qs.Default.Model != "" || qs.Default.Region != "" {
		bad("quotas.default", "applies to every target: list a model's quota under quotas.targets instead")
	}
	qs.Default.validate("quotas.default", bad)
	seen := map[string]string{}
	for i, q := range qs.Targets {
		key := fmt.Sprintf("quotas.targets[%d]", i)
		if q.Model == "" {
			bad(key+".model", "is empty")
		}
		if q.Region != "" && !validRegion(q.Region) {
			bad(key+".region", "%q is not a region name such as us-west-2", q.Region)
		}
		id := q.Model + "@" + q.Region
		if prev, dup := seen[id]; dup {
			bad(key, "%s is already given a quota by %s", id, prev)
		}
		seen[id] = key
		q.validate(key, bad)
	}
	for i, m := range qs.Models {
		key := fmt.Sprintf("quotas.models[%d]", i)
		switch {
		case m.Match == "":
			bad(key+".match", "is empty, so it would match every model")
		case m.MaxOutputTokens <= 0:
			bad(key+".max_output_tokens", "must be positive, got %d", m.MaxOutputTokens)
		case !(m.Burndown >= 1):
			bad(key+".burndown", "must be at least 1 (5 for Claude Sonnet 4, 1 for most models), got %v", m.Burndown)
		}
	}
}

func (q Quota) validate(key string, bad func(key, format string, args ...any)) {
	for _, f := range []struct {
		name string
		v    int
	}{{"tokens_per_minute", q.TokensPerMinute}, {"requests_per_minute", q.RequestsPerMinute},
		{"min_tokens_per_minute", q.MinTokensPerMinute}, {"max_tokens_per_minute", q.MaxTokensPerMinute}} {
		if f.v < 0 {
			bad(key+"."+f.name, "must not be negative, got %d", f.v)
		}
	}
	switch {
	case q.Learn != nil && !*q.Learn && q.TokensPerMinute == 0:
		bad(key+".learn", "an unknown quota can only be learned: set tokens_per_minute, or quotas.disabled: true to turn the governor off")
	case q.MaxTokensPerMinute > 0 && !q.Learning():
		bad(key+".max_tokens_per_minute", "applies only when learning; the known tokens_per_minute %d is the ceiling (or set learn: true)", q.TokensPerMinute)
	case q.MaxTokensPerMinute > 0 && q.MinTokensPerMinute > q.MaxTokensPerMinute:
		bad(key+".min_tokens_per_minute", "%d is above max_tokens_per_minute %d", q.MinTokensPerMinute, q.MaxTokensPerMinute)
	case q.TokensPerMinute > 0 && q.MinTokensPerMinute > q.TokensPerMinute:
		bad(key+".min_tokens_per_minute", "%d is above tokens_per_minute %d", q.MinTokensPerMinute, q.TokensPerMinute)
	case q.MaxTokensPerMinute > 0 && q.TokensPerMinute > q.MaxTokensPerMinute:
		bad(key+".tokens_per_minute", "the first guess %d is above max_tokens_per_minute %d", q.TokensPerMinute, q.MaxTokensPerMinute)
	}
}

// RouteFor returns the targets for model: its route's targets when one serves
// it, else the model alone in the default region (Region empty).
func (c *Config) RouteFor(model string) []Target {
	for _, rt := range c.Routes {
		for _, m := range rt.Models {
			if m == model {
				return rt.Targets
			}
		}
	}
	return []Target{{Model: model}}
}

// validRegion accepts names shaped like AWS regions: lower-case letters and
// digits in dash-separated parts, such as us-east-1 or us-gov-west-1.
func validRegion(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 3 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for _, r := range p {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
				return false
			}
		}
	}
	return true
}
