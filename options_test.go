package keel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/config"
)

// TestOptionsOverFile checks the precedence of Go options over the
// configuration file, field by field: a field set in Go wins, one left
// zero takes the file's.
func TestOptionsOverFile(t *testing.T) {
	const file = `
region: eu-west-1
retry: {max_attempts: 5, base: 100ms, attempt_timeout: 30s}
budget: {ratio: 0.3}
breaker: {min_calls: 20, cooldown: 10s}
streaming: {max_resumes: 3, continue_turn: false}
limits: {max_event_bytes: 4096}
routes:
  - {name: file, models: [m1, m2], targets: [{model: f1, region: us-west-2}]}
quotas:
  default: {tokens_per_minute: 1000}
  targets:
    - {model: m1, tokens_per_minute: 5000}
    - {model: m3, tokens_per_minute: 7000}
`
	path := filepath.Join(t.TempDir(), "keel.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{ConfigFile: path, Region: "us-east-2",
		Retry:     RetryOptions{MaxAttempts: 2, Cap: time.Second},
		Breaker:   BreakerOptions{ConsecutiveFailures: -1},
		Streaming: StreamingOptions{DisableResume: true},
		Routes:    []Route{{Name: "go", Models: []string{"m2"}, Targets: []Target{{Model: "g1"}}, Resume: new(true)}},
		Quotas: QuotaOptions{Default: Quota{RequestsPerMinute: 50},
			Targets: []Quota{{Model: "m1", TokensPerMinute: 9000, Learn: new(true)}}, Models: []QuotaModel{{Match: "m", MaxOutputTokens: 4096, Burndown: 5}}},
	}
	c, err := opts.policies()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"region: Go", c.Region, "us-east-2"},
		{"max attempts: Go", c.Retry.MaxAttempts, 2},
		{"cap: Go", c.Retry.Cap.D(), time.Second},
		{"base: file", c.Retry.Base.D(), 100 * time.Millisecond},
		{"attempt timeout: file", c.Retry.AttemptTimeout.D(), 30 * time.Second},
		{"budget ratio: file", c.Budget.Ratio, 0.3},
		{"breaker min calls: file", c.Breaker.MinCalls, 20},
		{"breaker consecutive failures: Go", c.Breaker.ConsecutiveFailures, -1},
		{"resume: Go", c.Streaming.Resume != nil && !*c.Streaming.Resume, true},
		{"max resumes: file", c.Streaming.MaxResumes, 3},
		{"max event bytes: file", c.Limits.MaxEventBytes, int64(4096)},
		{"default quota tokens: file", c.Quotas.Default.TokensPerMinute, 1000},
		{"default quota requests: Go", c.Quotas.Default.RequestsPerMinute, 50},
		{"model facts: Go first", c.Quotas.Models[0].Match, "m"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	eo, err := engineOptions(c, c.Region, "", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// m1 keeps the file's route, m2 takes Go's.
	for model, want := range map[string][]string{"m1": {"m1", "f1"}, "m2": {"m2", "g1"}} {
		var got []string
		for _, tg := range eo.Routes.Targets(attempt.Converse, model, "") {
			got = append(got, tg.Model)
		}
		if !slices.Equal(got, want) {
			t.Errorf("route of %s: %v, want %v", model, got, want)
		}
	}
	if !eo.Streaming.Resume["m2"] || !eo.Streaming.DisableResume || !eo.Streaming.DisableContinueTurn {
		t.Errorf("streaming %+v: want resume off but on for m2, continue-turn off (the file's)", eo.Streaming)
	}
	// The target quota of m1 is Go's; m3's stays the file's.
	ao := governorOptions(&c.Quotas, c.Region)
	if q := ao.Targets[attempt.Target{Model: "m1", Region: "us-east-2"}]; q.TokensPerMinute != 9000 || !q.Learn {
		t.Errorf("m1's quota %+v; want Go's 9000, learning", q)
	}
	if q := ao.Targets[attempt.Target{Model: "m3", Region: "us-east-2"}]; q.TokensPerMinute != 7000 {
		t.Errorf("m3's quota %+v; want the file's 7000", q)
	}
}

// TestTierOptions: a route's tier steps and the tier of Batch calls, from
// the file and from Go, reach the engine.
func TestTierOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keel.yaml")
	const file = "batch: {service_tier: flex}\nroutes:\n  - {models: [m1], targets: [{model: m1, tier: flex, priority: batch}, {model: m1, tier: priority, priority: interactive}]}\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts Options
		tier string
	}{
		{"file", Options{ConfigFile: path, Region: "us-east-1"}, "flex"},
		{"Go over the file", Options{ConfigFile: path, Region: "us-east-1", Batch: BatchOptions{ServiceTier: TierPriority},
			Routes: []Route{{Models: []string{"m2"}, Targets: []Target{{Model: "m2", Tier: TierFlex, Priority: new(Batch)}}}}}, "priority"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.opts.policies()
			if err != nil {
				t.Fatal(err)
			}
			eo, err := engineOptions(c, c.Region, "", nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if eo.BatchTier != tt.tier {
				t.Errorf("BatchTier %q, want %q", eo.BatchTier, tt.tier)
			}
			targets := func(model, class string) (out []string) {
				for _, x := range eo.Routes.TargetsFor(attempt.Converse, model, "", "", class) {
					out = append(out, x.String())
				}
				return out
			}
			for _, ck := range []struct {
				model, class string
				want         []string
			}{
				{"m1", "batch", []string{"m1@us-east-1", "m1@us-east-1/flex"}},
				{"m1", "interactive", []string{"m1@us-east-1", "m1@us-east-1/priority"}},
			} {
				if got := targets(ck.model, ck.class); !slices.Equal(got, ck.want) {
					t.Errorf("%s, %s: %q, want %q", ck.model, ck.class, got, ck.want)
				}
			}
			if tt.name == "Go over the file" {
				if got, want := targets("m2", "batch"), []string{"m2@us-east-1", "m2@us-east-1/flex"}; !slices.Equal(got, want) {
					t.Errorf("m2, batch: %q, want %q", got, want)
				}
				if got, want := targets("m2", "interactive"), []string{"m2@us-east-1"}; !slices.Equal(got, want) {
					t.Errorf("m2, interactive: %q, want %q", got, want)
				}
			}
		})
	}
}

// TestOptionsCheck checks that a bad Go option is reported under its
// field's name, every one at once.
func TestOptionsCheck(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"max attempts", Options{Retry: RetryOptions{MaxAttempts: 30}},
			[]string{"keel: Options.Retry.MaxAttempts: must be between 1 and 20 (0 = default), got 30"}},
		{"negative base and bad rate", Options{Retry: RetryOptions{Base: -time.Second}, Breaker: BreakerOptions{FailureRate: 2}},
			[]string{"keel: Options.Retry.Base: must not be negative", "keel: Options.Breaker.FailureRate: must be between 0 and 1, got 2"}},
		{"route target", Options{Routes: []Route{{Models: []string{"m"}, Targets: []Target{{Model: "x"}, {Model: ""}}}}},
			[]string{"keel: Options.Routes[0].Targets[1].Model: is empty"}},
		{"quota target", Options{Quotas: QuotaOptions{Targets: []Quota{{Model: "m", TokensPerMinute: -1}}}},
			[]string{"keel: Options.Quotas.Targets[0].TokensPerMinute:"}},
		{"content filter", Options{ContentFilter: ContentFilterOptions{Enabled: true}},
			[]string{"keel: Options.ContentFilter.Message: is required"}},
		{"region", Options{Region: "moon-1"}, []string{`keel: Options.Region: "moon-1" is not a region name`}},
		{"route target tier", Options{Routes: []Route{{Models: []string{"m"}, Targets: []Target{{Model: "m", Tier: "standard"}}}}},
			[]string{`keel: Options.Routes[0].Targets[0].Tier: "standard" is not a service tier; want one of priority, default, flex, reserved`}},
		{"redis url", Options{Redis: RedisOptions{URL: "http://:secret@host"}},
			[]string{`keel: Options.Redis.URL: scheme "http": want redis:// or rediss://`}},
		{"redis share", Options{Redis: RedisOptions{URL: "redis://127.0.0.1:1", Share: 1.5}},
			[]string{"keel: Options.Redis.Share: must be between 0 and 1"}},
		{"batch tier", Options{Batch: BatchOptions{ServiceTier: "cheap"}},
			[]string{`keel: Options.Batch.ServiceTier: "cheap" is not a service tier`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(aws.Config{}, tt.opts)
			if err == nil {
				t.Fatal("New accepted the options")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestGoName(t *testing.T) {
	for key, want := range map[string]string{
		"retry.max_attempts":                 "Options.Retry.MaxAttempts",
		"routes[0].targets[12].region":       "Options.Routes[0].Targets[12].Region",
		"quotas.default.tokens_per_minute":   "Options.Quotas.Default.TokensPerMinute",
		"content_filter.message":             "Options.ContentFilter.Message",
		"streaming.first_event_timeout":      "Options.Streaming.FirstEventTimeout",
		"quotas.models[1].max_output_tokens": "Options.Quotas.Models[1].MaxOutputTokens",
		"redis.url":                          "Options.Redis.URL",
		"redis.tls.server_name":              "Options.Redis.TLS.ServerName",
	} {
		if got := goName(key); got != want {
			t.Errorf("goName(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestGoConfigRoundTrip checks that every Go option reaches the file's
// terms: a Config parsed from YAML and one written from the same options
// in Go are the same.
func TestGoConfigRoundTrip(t *testing.T) {
	yaml := `
region: us-west-2
endpoint: http://127.0.0.1:4000
retry: {max_attempts: 4, base: 1s, cap: 2s, throttle_base: 3s, throttle_cap: 4s, attempt_timeout: 5s}
budget: {ratio: 0.5, min_per_second: 2, window: 6s, disabled: true}
breaker: {window: 7s, min_calls: 8, failure_rate: 0.9, consecutive_failures: 9, cooldown: 10s, probes: 3, disabled: true}
content_filter: {enabled: true, message: blocked}
streaming: {resume: false, continue_turn: false, max_resumes: 4, first_event_timeout: 11s, idle_timeout: 12s}
limits: {max_response_bytes: 1000, max_event_bytes: 100}
routes:
  - {name: r, models: [a], targets: [{model: b, region: eu-west-1}], streaming: {resume: true}}
quotas:
  disabled: true
  max_wait: 13s
  small_first: true
  full_start: true
  queue_target: 14s
  default: {tokens_per_minute: 1000, requests_per_minute: 10, learn: true, min_tokens_per_minute: 100, max_tokens_per_minute: 2000}
  targets: [{model: a, region: us-east-1, tokens_per_minute: 500}]
  models: [{match: a, max_output_tokens: 64, burndown: 5}]
redis: {url: "rediss://:pw@127.0.0.1:6380/2", prefix: "app:", timeout: 20ms, share: 0.25, tls: {ca: ca.pem, cert: c.pem, key: k.pem, server_name: r.internal}}
`
	want, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	s := time.Second
	got := goConfig(&Options{Region: "us-west-2", Endpoint: "http://127.0.0.1:4000",
		Retry:         RetryOptions{MaxAttempts: 4, Base: s, Cap: 2 * s, ThrottleBase: 3 * s, ThrottleCap: 4 * s, AttemptTimeout: 5 * s},
		Budget:        BudgetOptions{Ratio: 0.5, MinPerSecond: 2, Window: 6 * s, Disabled: true},
		Breaker:       BreakerOptions{Window: 7 * s, MinCalls: 8, FailureRate: 0.9, ConsecutiveFailures: 9, Cooldown: 10 * s, Probes: 3, Disabled: true},
		ContentFilter: ContentFilterOptions{Enabled: true, Message: "blocked"},
		Streaming:     StreamingOptions{DisableResume: true, DisableContinueTurn: true, MaxResumes: 4, FirstEventTimeout: 11 * s, IdleTimeout: 12 * s},
		Limits:        LimitOptions{MaxResponseBytes: 1000, MaxEventBytes: 100},
		Routes:        []Route{{Name: "r", Models: []string{"a"}, Targets: []Target{{Model: "b", Region: "eu-west-1"}}, Resume: new(true)}},
		Quotas: QuotaOptions{Disabled: true, MaxWait: 13 * s, SmallFirst: true, FullStart: true, QueueTarget: 14 * s,
			Default: Quota{TokensPerMinute: 1000, RequestsPerMinute: 10, Learn: new(true), MinTokensPerMinute: 100, MaxTokensPerMinute: 2000},
			Targets: []Quota{{Model: "a", Region: "us-east-1", TokensPerMinute: 500}},
			Models:  []QuotaModel{{Match: "a", MaxOutputTokens: 64, Burndown: 5}}},
		Redis: RedisOptions{URL: "rediss://:pw@127.0.0.1:6380/2", Prefix: "app:", Timeout: 20 * time.Millisecond, Share: 0.25,
			TLS: RedisTLS{CA: "ca.pem", Cert: "c.pem", Key: "k.pem", ServerName: "r.internal"}},
	})
	if diff := configDiff(want, got); diff != "" {
		t.Errorf("Go options differ from the same YAML: %s", diff)
	}
	// Laid over an empty file, the options stay as they are.
	if diff := configDiff(want, overlay(got, &config.Config{})); diff != "" {
		t.Errorf("overlay on an empty file changed: %s", diff)
	}
}

// configDiff returns "" when a and b are equal, else both as JSON.
func configDiff(a, b *config.Config) string {
	if reflect.DeepEqual(a, b) {
		return ""
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return fmt.Sprintf("\nwant %s\n got %s", ja, jb)
}
