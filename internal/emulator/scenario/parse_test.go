package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/quota"
)

const full = `description: every key
quotas:
  - model: "anthropic.claude-3-7-sonnet*"
    region: us-east-1
    tokens_per_minute: 20_000
    requests_per_minute: 50
    tokens_per_day: 1000000
  - tokens_per_minute: 200000
rules:
  - name: storm
    model: "*claude*"
    region: us-east-1
    operation: "converse*"
    from: 5s
    to: 1m
    errors:
      - code: throttlingException
        probability: 0.25
        message: slow down
      - code: ServiceUnavailable
        probability: 10%
    refuse: 0.01
    hang: 0
    latency:
      fixed: 100ms
      jitter: 50ms
      probability: 0.5
    stream:
      - kind: exception
        code: ModelStreamErrorException
        after: 3
        probability: 0.2
      - kind: reset
        probability: 1
  - name: outage
    region: eu-west-1
    outages:
      - from: 10s
        to: 40s
        answer: 503
      - from: 50s
        answer: refuse
      - from: 0
        to: 1s
        answer: InternalServerException
        message: boom
  - cold_start:
      idle: 5m
      requests: 2
      within: 20s
      message: warming up
  - cold_start:
`

func TestParseFull(t *testing.T) {
	s, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if s.Description != "every key" || string(s.Source()) != full {
		t.Errorf("description %q, source kept %v", s.Description, string(s.Source()) == full)
	}
	wantQuotas := quota.Table{
		{Model: "anthropic.claude-3-7-sonnet*", Region: "us-east-1", Limits: quota.Limits{TokensPerMinute: 20000, RequestsPerMinute: 50, TokensPerDay: 1000000}},
		{Limits: quota.Limits{TokensPerMinute: 200000}},
	}
	if len(s.Quotas) != 2 || s.Quotas[0] != wantQuotas[0] || s.Quotas[1] != wantQuotas[1] {
		t.Errorf("quotas = %+v, want %+v", s.Quotas, wantQuotas)
	}
	if len(s.Rules) != 4 {
		t.Fatalf("got %d rules, want 4", len(s.Rules))
	}
	r := s.Rules[0]
	if r.Name != "storm" || r.Model != "*claude*" || r.Region != "us-east-1" || r.Operation != "converse*" ||
		r.From != 5*time.Second || r.To != time.Minute || r.Refuse != 0.01 || r.Hang != 0 {
		t.Errorf("rule 0 = %+v", r)
	}
	if len(r.Errors) != 2 ||
		r.Errors[0] != (ErrorFault{Code: "ThrottlingException", Message: "slow down", Probability: 0.25}) ||
		r.Errors[1] != (ErrorFault{Code: "ServiceUnavailable", Probability: 0.1}) {
		t.Errorf("errors = %+v (codes must be canonical, 10%% must be 0.1)", r.Errors)
	}
	if r.Latency != (Latency{Fixed: 100 * time.Millisecond, Jitter: 50 * time.Millisecond, Probability: 0.5}) {
		t.Errorf("latency = %+v", r.Latency)
	}
	if len(r.Stream) != 2 ||
		r.Stream[0] != (StreamFault{Kind: fault.Exception, Code: "ModelStreamErrorException", After: 3, Probability: 0.2}) ||
		r.Stream[1] != (StreamFault{Kind: fault.Reset, Probability: 1}) {
		t.Errorf("stream = %+v", r.Stream)
	}
	o := s.Rules[1]
	wantOutages := []Outage{
		{From: 10 * time.Second, To: 40 * time.Second, Answer: "ServiceUnavailableException"},
		{From: 50 * time.Second, Answer: AnswerRefuse},
		{To: time.Second, Answer: "InternalServerException", Message: "boom"},
	}
	if o.Name != "outage" || len(o.Outages) != 3 {
		t.Fatalf("rule 1 = %+v", o)
	}
	for i, w := range wantOutages {
		if o.Outages[i] != w {
			t.Errorf("outages[%d] = %+v, want %+v", i, o.Outages[i], w)
		}
	}
	c := s.Rules[2]
	if c.Name != "rules[2]" || c.ColdStart == nil ||
		*c.ColdStart != (ColdStart{Idle: 5 * time.Minute, Requests: 2, Within: 20 * time.Second, Message: "warming up"}) {
		t.Errorf("rule 2 = %+v cold %+v", c, c.ColdStart)
	}
	d := s.Rules[3]
	if d.ColdStart == nil || *d.ColdStart != (ColdStart{Idle: DefaultColdIdle, Requests: DefaultColdRequests, Within: DefaultColdWithin}) {
		t.Errorf("an empty cold_start must take the defaults, got %+v", d.ColdStart)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate() on a parsed scenario = %v", err)
	}
}

func TestParseEmpty(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "nothing", in: ""},
		{name: "comment", in: "# nothing to see\n"},
		{name: "null document", in: "~\n"},
		{name: "empty lists", in: "quotas: []\nrules:\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Rules) != 0 || len(s.Quotas) != 0 {
				t.Errorf("Parse(%q) = %+v, want empty", tt.in, s)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // every one must appear in the error
	}{
		{name: "not yaml", in: "rules: [", want: []string{"scenario: ", "line"}},
		{name: "bare star", in: "rules:\n  - model: *\n    hang: 1\n", want: []string{"must be quoted"}},
		{name: "top level is a list", in: "- a\n", want: []string{"line 1", "want a mapping with keys description, quotas, rules"}},
		{name: "unknown top key", in: "rulez: []\n", want: []string{"line 1", `unknown key "rulez" here`}},
		{name: "unknown rule key", in: "rules:\n  - name: x\n    hang: 1\n    probabilty: 1\n",
			want: []string{"line 4", `unknown key "probabilty" in rules[0]`, "want one of name, model"}},
		{name: "duplicate key", in: "rules:\n  - hang: 1\n    hang: 0.5\n", want: []string{"line 3", "rules[0].hang: key is given twice"}},
		{name: "rules is a mapping", in: "rules:\n  a: 1\n", want: []string{"line 2", "rules: want a list, got a mapping"}},
		{name: "probability too big", in: "rules:\n  - errors:\n      - code: ThrottlingException\n        probability: 1.5\n",
			want: []string{"line 4", "rules[0].errors[0].probability", "1.5 is not between 0 and 1"}},
		{name: "probability percent too big", in: "rules:\n  - hang: 150%\n", want: []string{"line 2", "rules[0].hang", "1.5 is not between 0 and 1"}},
		{name: "probability not a number", in: "rules:\n  - hang: often\n", want: []string{"line 2", "rules[0].hang", `want a probability from 0 to 1 (or a percentage such as 25%), got "often"`}},
		{name: "unknown code", in: "rules:\n  - errors:\n      - code: TeapotException\n        probability: 1\n",
			want: []string{"line 3", "rules[0].errors[0].code", `code "TeapotException" is not in the catalog`}},
		{name: "code without a status", in: "rules:\n  - errors:\n      - code: ConnectionReset\n        probability: 1\n",
			want: []string{"line 3", `code "ConnectionReset" cannot be answered as an HTTP error`}},
		{name: "error needs code and probability", in: "rules:\n  - errors:\n      - message: hi\n",
			want: []string{"line 3", "rules[0].errors[0]: code is required", "rules[0].errors[0]: probability is required"}},
		{name: "unknown tier", in: "rules:\n  - tier: standard\n    hang: 1\n",
			want: []string{"line 2", "rules[0].tier", `"standard" is not a service tier; want one of priority, default, flex, reserved`}},
		{name: "tier not a string", in: "rules:\n  - tier: [flex]\n    hang: 1\n", want: []string{"line 2", "rules[0].tier: want a string"}},
		{name: "bad duration", in: "rules:\n  - latency:\n      fixed: 100\n", want: []string{"line 3", "rules[0].latency.fixed", `want a duration such as 500ms or 30s, got "100"`}},
		{name: "negative duration", in: "rules:\n  - latency:\n      jitter: -1s\n", want: []string{"line 3", "rules[0].latency.jitter", "negative"}},
		{name: "window backwards", in: "rules:\n  - hang: 1\n    from: 10s\n    to: 5s\n", want: []string{"line 4", "rules[0].to", "to 5s is not after from 10s"}},
		{name: "outage window backwards", in: "rules:\n  - outages:\n      - from: 40s\n        to: 10s\n", want: []string{"line 4", "rules[0].outages[0].to", "to 10s is not after from 40s"}},
		{name: "bad outage answer", in: "rules:\n  - outages:\n      - answer: 418\n", want: []string{"line 3", "rules[0].outages[0].answer", `code "418" is not in the catalog`, "refuse, hang, 503, 500"}},
		{name: "bad stream kind", in: "rules:\n  - stream:\n      - kind: explode\n        probability: 1\n", want: []string{"line 3", "rules[0].stream[0].kind", `kind "explode" is not one of exception, error, truncate, corrupt, reset, stall`}},
		{name: "exception needs a code", in: "rules:\n  - stream:\n      - kind: exception\n        probability: 1\n", want: []string{"line 3", "rules[0].stream[0]", "code is empty"}},
		{name: "exception code must be streamable", in: "rules:\n  - stream:\n      - kind: exception\n        code: AccessDeniedException\n        probability: 1\n",
			want: []string{"line 4", "rules[0].stream[0].code", "never arrives as an event-stream exception"}},
		{name: "code on a reset", in: "rules:\n  - stream:\n      - kind: reset\n        code: ThrottlingException\n        probability: 1\n",
			want: []string{"line 4", "only applies to kinds exception and error"}},
		{name: "negative after", in: "rules:\n  - stream:\n      - kind: reset\n        after: -2\n        probability: 1\n", want: []string{"line 4", "rules[0].stream[0].after", "-2 is negative"}},
		{name: "misspelt operation", in: "rules:\n  - operation: Converse\n    hang: 1\n", want: []string{"line 2", "rules[0].operation", `"Converse" is not an operation; want one of converse, converse-stream`}},
		{name: "pattern matching no operation", in: "rules:\n  - operation: \"chat*\"\n    hang: 1\n", want: []string{"line 2", `pattern "chat*" matches no operation`}},
		{name: "rule does nothing", in: "rules:\n  - name: idle\n    model: x\n", want: []string{"line 2", "rules[0]: the rule does nothing"}},
		{name: "duplicate names", in: "rules:\n  - name: a\n    hang: 1\n  - name: a\n    hang: 1\n", want: []string{"line 4", `rules[1].name: "a" is already used by rules[0]`}},
		{name: "name not a string", in: "rules:\n  - name: [a]\n    hang: 1\n", want: []string{"line 2", "rules[0].name: want a string, got a list"}},
		{name: "cold start zero requests", in: "rules:\n  - cold_start:\n      requests: 0\n", want: []string{"line 3", "rules[0].cold_start.requests: want 1 or more"}},
		{name: "cold start zero idle", in: "rules:\n  - cold_start:\n      idle: 0s\n", want: []string{"line 3", "rules[0].cold_start.idle: want a duration above zero"}},
		{name: "quota negative", in: "quotas:\n  - tokens_per_minute: -5\n", want: []string{"line 2", "quotas[0].tokens_per_minute", `want a whole number of 0 or more, got "-5"`}},
		{name: "quota not a number", in: "quotas:\n  - tokens_per_minute: lots\n", want: []string{"line 2", "quotas[0].tokens_per_minute: want a whole number, got \"lots\""}},
		{name: "unknown quota key", in: "quotas:\n  - tpm: 5\n", want: []string{"line 2", `unknown key "tpm" in quotas[0]; want one of model, region, tokens_per_minute, requests_per_minute, tokens_per_day`}},
		{name: "burst too short", in: "quotas:\n  - tokens_per_minute: 5\n    burst: 500ms\n",
			want: []string{"line 3", "quotas[0].burst: burst 500ms is not between 1s and 1h0m0s"}},
		{name: "burst zero", in: "quotas:\n  - tokens_per_minute: 5\n    burst: 0\n",
			want: []string{"line 3", "quotas[0].burst: burst 0s is not between 1s and 1h0m0s"}},
		{name: "burst not a duration", in: "quotas:\n  - tokens_per_minute: 5\n    burst: 10\n",
			want: []string{"line 3", `quotas[0].burst: want a duration such as 500ms or 30s, got "10"`}},
		{name: "start level above 1", in: "quotas:\n  - tokens_per_minute: 5\n    start_level: 1.5\n",
			want: []string{"line 3", "quotas[0].start_level: start level 1.5 is not between 0 and 1"}},
		{name: "start level negative", in: "quotas:\n  - tokens_per_minute: 5\n    start_level: -1\n",
			want: []string{"line 3", "quotas[0].start_level: start level -1 is not between 0 and 1"}},
		{name: "start level not a number", in: "quotas:\n  - tokens_per_minute: 5\n    start_level: full\n",
			want: []string{"line 3", `quotas[0].start_level: want a number, got "full"`}},
		{name: "refill too fine", in: "quotas:\n  - tokens_per_minute: 5\n    refill_every: 10ms\n",
			want: []string{"line 3", "quotas[0].refill_every: refill every 10ms is neither 0 (continuous) nor between 1s and 1h0m0s"}},
		{name: "refill negative", in: "quotas:\n  - tokens_per_minute: 5\n    refill_every: -1m\n",
			want: []string{"line 3", "quotas[0].refill_every: duration -1m is negative"}},
		{name: "shape without a per-minute limit", in: "quotas:\n  - tokens_per_day: 5\n    burst: 10s\n",
			want: []string{"line 2", "quotas[0]: burst, start_level and refill_every shape the per-minute buckets; set tokens_per_minute or requests_per_minute"}},
		{name: "empty rule", in: "rules:\n-\n", want: []string{"rules[0]: the list item is empty"}},
		{name: "empty error item", in: "rules:\n  - errors:\n      -\n", want: []string{"rules[0].errors[0]: the list item is empty"}},
		{name: "several problems at once", in: "rules:\n  - hang: 2\n  - refuse: 3\n", want: []string{"line 2", "line 3", "rules[0].hang", "rules[1].refuse"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want an error", s)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseQuotaShape(t *testing.T) {
	def := quota.DefaultShape()
	tests := []struct {
		name string
		in   string
		want *quota.Shape // nil: the default shape, left unset
	}{
		{name: "no shape keys", in: "tokens_per_minute: 600"},
		{name: "every key", in: "tokens_per_minute: 600\nburst: 10s\nstart_level: 0\nrefill_every: 1m",
			want: &quota.Shape{Burst: 10 * time.Second, RefillEvery: time.Minute}},
		{name: "burst alone keeps the other defaults", in: "tokens_per_minute: 600\nburst: 1s",
			want: &quota.Shape{Burst: time.Second, StartLevel: 1}},
		{name: "start level alone", in: "requests_per_minute: 60\nstart_level: 0.25",
			want: &quota.Shape{Burst: def.Burst, StartLevel: 0.25}},
		{name: "a whole-number start level", in: "tokens_per_minute: 600\nstart_level: 1",
			want: &def},
		{name: "refill alone, at the bound", in: "tokens_per_minute: 600\nrefill_every: 1h",
			want: &quota.Shape{Burst: def.Burst, StartLevel: 1, RefillEvery: time.Hour}},
		{name: "continuous refill written as 0", in: "tokens_per_minute: 600\nrefill_every: 0\nburst: 1h",
			want: &quota.Shape{Burst: time.Hour, StartLevel: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "quotas:\n  - " + strings.ReplaceAll(tt.in, "\n", "\n    ") + "\n"
			s, err := Parse([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			got := s.Quotas[0].Limits.Shape
			if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
				t.Errorf("shape = %v, want %v", got, tt.want)
			}
			if err := s.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil for a parsed scenario", err)
			}
		})
	}
}

// TestParseQuotaShapeOneError checks that a shape value that does not
// parse is reported once, not again as out of bounds.
func TestParseQuotaShapeOneError(t *testing.T) {
	_, err := Parse([]byte("quotas:\n  - tokens_per_minute: 5\n    burst: soon\n    refill_every: [1]\n    start_level: x\n"))
	if err == nil {
		t.Fatal("want an error")
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("%d problems reported, want 3 (one a key):\n%v", n, err)
	}
}

func TestParseCapsErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("rules:\n")
	for range 30 {
		b.WriteString("  - hang: 2\n")
	}
	_, err := Parse([]byte(b.String()))
	if err == nil {
		t.Fatal("want an error")
	}
	if n := strings.Count(err.Error(), "is not between 0 and 1"); n != maxErrors {
		t.Errorf("%d problems shown, want %d", n, maxErrors)
	}
	if !strings.Contains(err.Error(), "10 more problems not shown") {
		t.Errorf("error %q does not say how many were left out", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		s    Scenario
		want string // "" for valid
	}{
		{name: "valid", s: Scenario{Rules: []Rule{{Name: "a", Hang: 1}}}},
		{name: "empty name", s: Scenario{Rules: []Rule{{Hang: 1}}}, want: "scenario: rules[0]: name is empty"},
		{name: "duplicate name", s: Scenario{Rules: []Rule{{Name: "a", Hang: 1}, {Name: "a", Hang: 1}}}, want: `rules[1]: name "a" is already used by rules[0]`},
		{name: "does nothing", s: Scenario{Rules: []Rule{{Name: "a"}}}, want: "rules[0]: the rule does nothing"},
		{name: "bad code", s: Scenario{Rules: []Rule{{Name: "a", Errors: []ErrorFault{{Code: "Nope", Probability: 1}}}}}, want: `rules[0].errors[0]: code "Nope" is not in the catalog`},
		{name: "bad probability", s: Scenario{Rules: []Rule{{Name: "a", Refuse: -0.1}}}, want: "rules[0].refuse: probability -0.1 is not between 0 and 1"},
		{name: "bad window", s: Scenario{Rules: []Rule{{Name: "a", Hang: 1, From: time.Minute, To: time.Second}}}, want: "rules[0]: to 1s is not after from 1m0s"},
		{name: "bad latency", s: Scenario{Rules: []Rule{{Name: "a", Latency: Latency{Fixed: time.Second, Probability: 2}}}}, want: "rules[0].latency: probability 2 is not between 0 and 1"},
		{name: "bad stream", s: Scenario{Rules: []Rule{{Name: "a", Stream: []StreamFault{{Kind: "x", Probability: 1}}}}}, want: `rules[0].stream[0]: kind "x" is not one of`},
		{name: "bad outage", s: Scenario{Rules: []Rule{{Name: "a", Outages: []Outage{{Answer: "ConnectionRefused"}}}}}, want: `rules[0].outages[0]: code "ConnectionRefused" cannot be answered`},
		{name: "bad cold start", s: Scenario{Rules: []Rule{{Name: "a", ColdStart: &ColdStart{Idle: time.Minute, Within: time.Second}}}}, want: "rules[0].cold_start: requests 0 is less than 1"},
		{name: "bad quota", s: Scenario{Quotas: quota.Table{{Limits: quota.Limits{TokensPerDay: -1}}}}, want: "scenario: quotas: quota: rule 0: tokens per day -1 is negative"},
		{name: "bad quota shape", s: Scenario{Quotas: quota.Table{{Limits: quota.Limits{TokensPerMinute: 1, Shape: &quota.Shape{Burst: time.Minute, StartLevel: 2}}}}},
			want: "scenario: quotas: quota: rule 0: start level 2 is not between 0 and 1"},
		{name: "bad operation", s: Scenario{Rules: []Rule{{Name: "a", Hang: 1, Operation: "chat"}}}, want: `rules[0].operation: "chat" is not an operation`},
		{name: "bad tier", s: Scenario{Rules: []Rule{{Name: "a", Hang: 1, Tier: "Flex"}}}, want: `rules[0].tier: "Flex" is not a service tier`},
		{name: "tier", s: Scenario{Rules: []Rule{{Name: "a", Hang: 1, Tier: "flex"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("rules:\n  - hang: 0.5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("rules:\n  - hang: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want string // "" for success
	}{
		{name: "good", path: good},
		{name: "bad names the file", path: bad, want: bad + ": scenario: line 2: rules[0].hang"},
		{name: "missing", path: filepath.Join(dir, "nope.yaml"), want: "scenario: open "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(tt.path)
			if tt.want == "" {
				if err != nil || len(s.Rules) != 1 {
					t.Fatalf("Load = %+v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestExamples keeps the example scenarios valid.
func TestExamples(t *testing.T) {
	paths, err := filepath.Glob("../../../examples/scenarios/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 5 {
		t.Fatalf("found %d example scenarios, want at least 5", len(paths))
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			s, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if s.Description == "" {
				t.Error("example has no description")
			}
			if len(s.Rules) == 0 && len(s.Quotas) == 0 && len(s.Deny) == 0 && s.ClockSkew == 0 {
				t.Error("example has no rules, quotas, denials or clock skew")
			}
		})
	}
}

// FuzzParse checks that no input makes Parse panic, and that whatever it
// accepts passes Validate and can be planned with.
func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("rules:\n  - hang: 1\n"))
	f.Add([]byte("quotas:\n  - tokens_per_minute: 5\n"))
	paths, _ := filepath.Glob("../../../examples/scenarios/*.yaml")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v", err)
		}
		in := NewInjector(s, 1, nil)
		for _, op := range Operations {
			in.Plan(fault.Request{Model: "anthropic.claude-3-5-haiku-20241022-v1:0", Region: "us-east-1", Operation: op})
		}
	})
}

// TestItem10ScenarioInputIsNotChangedSilently covers issue 15, item 10 for
// scenario files: a YAML document after the first was ignored without a
// word; it is refused with its line. Duplicate keys were already refused (by
// the parser's own check: yaml.v3 keeps both keys of a mapping decoded into a
// yaml.Node); the cases pin that at every level, with the line.
func TestItem10ScenarioInputIsNotChangedSilently(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // every one must appear in the error; none means it parses
	}{
		{name: "second document", in: "rules:\n  - hang: 1\n---\nrules:\n  - refuse: 1\n",
			want: []string{"line 3", "a second YAML document", "one document"}},
		{name: "second document after an explicit start", in: "---\nrules:\n  - hang: 1\n---\nquotas: []\n",
			want: []string{"line 4", "a second YAML document"}},
		{name: "empty second document", in: "rules:\n  - hang: 1\n---\n", want: []string{"line 3", "a second YAML document"}},
		{name: "document end marker alone", in: "rules:\n  - hang: 1\n...\n"},
		{name: "one document with a start marker", in: "---\nrules:\n  - hang: 1\n"},
		{name: "duplicate top-level key", in: "rules:\n  - hang: 1\nrules:\n  - refuse: 1\n",
			want: []string{"line 3", "rules: key is given twice"}},
		{name: "duplicate quota key", in: "quotas:\n  - tokens_per_minute: 5\n    tokens_per_minute: 6\n",
			want: []string{"line 3", "quotas[0].tokens_per_minute: key is given twice"}},
		{name: "duplicate nested key", in: "rules:\n  - latency:\n      fixed: 1s\n      fixed: 2s\n",
			want: []string{"line 4", "rules[0].latency.fixed: key is given twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
