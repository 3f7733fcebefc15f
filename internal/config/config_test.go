package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	doc := `
region: us-west-2
endpoint: http://127.0.0.1:4000
retry:
  max_attempts: 4
  base: 250ms
  cap: 10s
  throttle_base: 1s
  throttle_cap: 30s
budget:
  ratio: 0.2
  window: 10s
breaker:
  window: 30s
  min_calls: 5
  failure_rate: 0.5
  cooldown: 15s
  probes: 2
routes:
  - name: sonnet
    models: [anthropic.claude-sonnet-4-5-20250929-v1:0]
    targets:
      - model: anthropic.claude-sonnet-4-5-20250929-v1:0
      - model: us.anthropic.claude-sonnet-4-5-20250929-v1:0
        region: us-east-2
    streaming:
      resume: false
content_filter:
  enabled: true
  message: "Sorry, I can't help with that."
streaming:
  resume: true
  continue_turn: false
  max_resumes: 3
  first_event_timeout: 90s
  idle_timeout: 45s
quotas:
  max_wait: 30s
  discover: true
  small_first: true
  queue_target: 2s
  default:
    requests_per_minute: 100
  targets:
    - model: us.anthropic.claude-sonnet-4-5-20250929-v1:0
      region: us-east-1
      tokens_per_minute: 2000000
      requests_per_minute: 200
    - model: anthropic.claude-3-haiku-20240307-v1:0
      tokens_per_minute: 400000
      learn: true
      max_tokens_per_minute: 1000000
  models:
    - match: a1b2c3
      max_output_tokens: 64000
      burndown: 5
`
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.Region != "us-west-2" || c.Retry.MaxAttempts != 4 || c.Retry.Base.D() != 250*time.Millisecond || c.Breaker.Probes != 2 {
		t.Fatalf("parsed %+v", c)
	}
	st := c.Streaming
	if st.Resume == nil || !*st.Resume || st.ContinueTurn == nil || *st.ContinueTurn || st.MaxResumes != 3 || st.FirstEventTimeout.D() != 90*time.Second || st.IdleTimeout.D() != 45*time.Second {
		t.Fatalf("streaming = %+v", st)
	}
	if rs := c.Routes[0].Streaming; rs == nil || rs.Resume == nil || *rs.Resume {
		t.Fatalf("route streaming = %+v, want resume: false", rs)
	}
	q := c.Quotas
	if q.Disabled || !q.Discover || q.MaxWait.D() != 30*time.Second || !q.SmallFirst || q.QueueTarget.D() != 2*time.Second || q.Default.RequestsPerMinute != 100 || !q.Default.Learning() || len(q.Targets) != 2 || len(q.Models) != 1 {
		t.Fatalf("quotas = %+v", q)
	}
	if s := q.Targets[0]; s.TokensPerMinute != 2000000 || s.RequestsPerMinute != 200 || s.Learning() || s.Region != "us-east-1" {
		t.Fatalf("quotas.targets[0] = %+v, want a known quota", s)
	}
	if h := q.Targets[1]; !h.Learning() || h.MaxTokensPerMinute != 1000000 || h.Region != "" {
		t.Fatalf("quotas.targets[1] = %+v, want a learned one", h)
	}
	if m := q.Models[0]; m.Match != "a1b2c3" || m.MaxOutputTokens != 64000 || m.Burndown != 5 {
		t.Fatalf("quotas.models[0] = %+v", m)
	}
	got := c.RouteFor("anthropic.claude-sonnet-4-5-20250929-v1:0")
	if len(got) != 2 || got[1].String() != "us.anthropic.claude-sonnet-4-5-20250929-v1:0@us-east-2" {
		t.Fatalf("RouteFor = %v", got)
	}
	if other := c.RouteFor("amazon.nova-pro-v1:0"); len(other) != 1 || other[0].Model != "amazon.nova-pro-v1:0" || other[0].Region != "" {
		t.Fatalf("RouteFor(unrouted) = %v", other)
	}
}

func TestParseEmptyIsDefaults(t *testing.T) {
	for _, doc := range []string{"", "  \n", "# only a comment\n"} {
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("Parse(%q): %v", doc, err)
		}
		if c.Retry.MaxAttempts != 0 || len(c.Routes) != 0 || c.Streaming.Resume != nil || c.Streaming.MaxResumes != 0 || c.Quotas.Disabled || !c.Quotas.Default.Learning() {
			t.Fatalf("Parse(%q) = %+v, want zero", doc, c)
		}
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // every fragment must appear in the error
	}{
		{"unknown top-level key", "regoin: us-east-1\n", []string{"regoin", "line 1"}},
		{"unknown nested key", "retry:\n  max_attempt: 3\n", []string{"max_attempt", "line 2"}},
		{"bad duration", "retry:\n  base: fast\n", []string{"line 2", "fast", "duration"}},
		{"number as duration", "breaker:\n  cooldown: 30\n", []string{"line 2", "duration"}},
		{"bad region", "region: Mars\n", []string{"region", "Mars"}},
		{"bad endpoint", "endpoint: localhost:4000\n", []string{"endpoint", "http://"}},
		{"attempts out of range", "retry:\n  max_attempts: 50\n", []string{"retry.max_attempts", "50"}},
		{"negative duration", "retry:\n  cap: -1s\n", []string{"retry.cap", "negative"}},
		{"cap below base", "retry:\n  base: 2s\n  cap: 1s\n", []string{"retry.cap", "below retry.base"}},
		{"ratio above one", "budget:\n  ratio: 1.5\n", []string{"budget.ratio", "1.5"}},
		{"failure rate", "breaker:\n  failure_rate: 2\n", []string{"breaker.failure_rate"}},
		{"route without models", "routes:\n  - name: a\n    targets: [{model: m}]\n", []string{"routes[0].models", "line 2"}},
		{"route without targets", "routes:\n  - models: [m]\n", []string{"routes[0].targets"}},
		{"target without model", "routes:\n  - models: [m]\n    targets: [{region: us-east-1}]\n", []string{"routes[0].targets[0].model", "empty"}},
		{"target bad region", "routes:\n  - models: [m]\n    targets: [{model: m, region: east}]\n", []string{"routes[0].targets[0].region", "east"}},
		{"model in two routes", "routes:\n  - models: [m]\n    targets: [{model: m}]\n  - models: [m]\n    targets: [{model: m}]\n", []string{"routes[1].models", "already served by routes[0]"}},
		{"filter without message", "content_filter:\n  enabled: true\n", []string{"content_filter.message"}},
		{"not a mapping", "- a\n- b\n", []string{"line 1"}},
		{"resumes out of range", "streaming:\n  max_resumes: 11\n", []string{"streaming.max_resumes", "11"}},
		{"negative resumes", "streaming:\n  max_resumes: -1\n", []string{"streaming.max_resumes", "-1"}},
		{"tiny first-event limit", "streaming:\n  first_event_timeout: 10ms\n", []string{"streaming.first_event_timeout", "at least 1s"}},
		{"negative idle limit", "streaming:\n  idle_timeout: -5s\n", []string{"streaming.idle_timeout"}},
		{"resume not a bool", "streaming:\n  resume: sometimes\n", []string{"line 2", "sometimes"}},
		{"unknown streaming key", "streaming:\n  idle: 5s\n", []string{"idle", "line 2"}},
		{"unknown route streaming key", "routes:\n  - models: [m]\n    targets: [{model: m}]\n    streaming: {resumes: 2}\n", []string{"resumes", "line 4"}},
		{"unknown quotas key", "quotas:\n  max_waits: 5s\n", []string{"max_waits", "line 2"}},
		{"discover without the governor", "quotas:\n  disabled: true\n  discover: true\n", []string{"quotas.discover", "quotas.disabled"}},
		{"discover not a bool", "quotas:\n  discover: always\n", []string{"line 2", "always"}},
		{"negative max wait", "quotas:\n  max_wait: -1s\n", []string{"quotas.max_wait", "negative"}},
		{"negative queue target", "quotas:\n  queue_target: -1s\n", []string{"quotas.queue_target", "negative"}},
		{"default names a model", "quotas:\n  default: {model: m, tokens_per_minute: 5000}\n", []string{"quotas.default", "quotas.targets"}},
		{"negative quota", "quotas:\n  targets: [{model: m, tokens_per_minute: -5}]\n", []string{"quotas.targets[0].tokens_per_minute", "negative"}},
		{"target without model", "quotas:\n  targets: [{tokens_per_minute: 5000}]\n", []string{"quotas.targets[0].model", "empty"}},
		{"target bad region", "quotas:\n  targets: [{model: m, region: east}]\n", []string{"quotas.targets[0].region", "east"}},
		{"target twice", "quotas:\n  targets: [{model: m, region: us-east-1}, {model: m, region: us-east-1}]\n", []string{"quotas.targets[1]", "already"}},
		{"unknown quota not learned", "quotas:\n  default: {learn: false}\n", []string{"quotas.default.learn", "unknown quota"}},
		{"ceiling on a known quota", "quotas:\n  targets: [{model: m, tokens_per_minute: 1000, max_tokens_per_minute: 2000}]\n", []string{"quotas.targets[0].max_tokens_per_minute", "only when learning"}},
		{"floor above the quota", "quotas:\n  default: {tokens_per_minute: 1000, min_tokens_per_minute: 2000}\n", []string{"quotas.default.min_tokens_per_minute", "above"}},
		{"guess above its ceiling", "quotas:\n  default: {tokens_per_minute: 3000, learn: true, max_tokens_per_minute: 2000}\n", []string{"quotas.default.tokens_per_minute", "above"}},
		{"model without burndown", "quotas:\n  models: [{match: x, max_output_tokens: 100}]\n", []string{"quotas.models[0].burndown"}},
		{"model without match", "quotas:\n  models: [{max_output_tokens: 100, burndown: 1}]\n", []string{"quotas.models[0].match"}},
		{"quota not a number", "quotas:\n  default: {tokens_per_minute: lots}\n", []string{"line 2", "lots"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.doc)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keel.yaml")
	if err := os.WriteFile(p, []byte("retry:\n  max_attempts: 0x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Load error %v should name the file", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name, in      string
		model, region string
		wantErr       bool
	}{
		{"model only", "anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1:0", "", false},
		{"model and region", "amazon.nova-pro-v1:0@eu-west-1", "amazon.nova-pro-v1:0", "eu-west-1", false},
		{"arn keeps colons and slashes", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x-v1:0@us-east-1", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x-v1:0", "us-east-1", false},
		{"empty", " ", "", "", true},
		{"no model", "@us-east-1", "", "", true},
		{"bad region", "m@nowhere", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseTarget(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && (got.Model != tt.model || got.Region != tt.region) {
				t.Fatalf("ParseTarget(%q) = %+v", tt.in, got)
			}
		})
	}
}

// TestConfigErrorsAllAtOnce (issue 15, item 13): every problem in a file is
// reported at once, in line order, each with file:line; unknown keys in
// keel's words with the key they were probably meant to be.
func TestConfigErrorsAllAtOnce(t *testing.T) {
	doc := `retry:
  max_attempt: 3
  base: fast
budget:
  ratio: 1.5
routes:
  - models: [m]
    targets: [{model: m, regoin: us-east-1}]
streaming:
  max_resumes: lots
regoin: us-east-1
retry:
  cap: 1s
`
	p := filepath.Join(t.TempDir(), "keel.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil {
		t.Fatal("Load accepted the file")
	}
	want := []string{
		p + `:2: unknown key "max_attempt" in retry (did you mean "max_attempts"?)`,
		p + `:3: retry.base: want a duration such as 500ms or 2s, got "fast"`,
		p + `:5: budget.ratio: must be between 0 and 1, got 1.5`,
		p + `:8: unknown key "regoin" in routes[0].targets[0] (did you mean "region"?)`,
		p + `:10: streaming.max_resumes: want a whole number, got "lots"`,
		p + `:11: unknown key "regoin" (did you mean "region"?)`,
		p + `:12: duplicate key "retry" (first at line 1)`,
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	var e *Error
	if !errors.As(err, &e) || e.File != p || e.Line != 2 {
		t.Fatalf("errors.As(*Error) = %+v", e)
	}
}

// TestConfigOutOfRangeHasLine (issue 15, item 13): a value out of range is
// reported with its line.
func TestConfigOutOfRangeHasLine(t *testing.T) {
	tests := []parseErrorCase{
		{"attempts", "region: us-east-1\nretry:\n  max_attempts: 50\n", "config: line 3: retry.max_attempts: must be between 1 and 20 (0 = default), got 50"},
		{"route target region", "routes:\n  - models: [m]\n    targets:\n      - model: m\n        region: east\n", `config: line 5: routes[0].targets[0].region: "east" is not a region name such as us-west-2`},
		{"route target tier", "routes:\n  - models: [m]\n    targets:\n      - model: m\n        tier: standard\n", `config: line 5: routes[0].targets[0].tier: "standard" is not a service tier; want one of priority, default, flex, reserved`},
		{"route target priority", "routes:\n  - models: [m]\n    targets:\n      - model: m\n        priority: low\n", `config: line 5: routes[0].targets[0].priority: "low" is not a priority; want interactive or batch (or leave it out for every call)`},
		{"batch tier", "batch:\n  service_tier: Flex\n", `config: line 2: batch.service_tier: "Flex" is not a service tier; want one of priority, default, flex, reserved`},
		{"missing key: its parent's line", "content_filter:\n  enabled: true\n", "config: line 1: content_filter.message: is required when content_filter.enabled is true"},
		{"quota list element", "quotas:\n  targets:\n    - {model: m, region: us-east-1}\n    - {model: m, region: us-east-1}\n", "config: line 4: quotas.targets[1]: m@us-east-1 is already given a quota by quotas.targets[0]"},
	}
	checkParseErrors(t, tests)
}

// TestConfigRejectsSecondDocument (issue 15, item 10): a file holds one
// YAML document; what follows a --- was silently ignored.
func TestConfigRejectsSecondDocument(t *testing.T) {
	tests := []parseErrorCase{
		{"second document", "retry:\n  max_attempts: 3\n---\nretry:\n  max_attempts: 5\n", "config: line 3: a second YAML document: a configuration file holds one (remove the --- and merge what follows)"},
		{"after an empty line", "region: us-east-1\n\n---\nregion: us-west-2\n", "config: line 3: a second YAML document: a configuration file holds one (remove the --- and merge what follows)"},
	}
	checkParseErrors(t, tests)
	// A lone document marker and an end marker are one document.
	for _, doc := range []string{"---\nregion: us-east-1\n", "region: us-east-1\n...\n", "region: us-east-1\n---\n"} {
		if _, err := Parse([]byte(doc)); err != nil {
			t.Errorf("Parse(%q): %v", doc, err)
		}
	}
}

// parseErrorCase is a document and the whole error Parse must return.
type parseErrorCase struct{ name, doc, want string }

func checkParseErrors(t *testing.T, tests []parseErrorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v\nwant  %s", err, tt.want)
			}
		})
	}
}
