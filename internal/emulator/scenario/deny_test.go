package scenario

import (
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

func TestParseClockSkewAndDeny(t *testing.T) {
	tests := []struct {
		name string
		in   string
		skew time.Duration
		deny []Denial
	}{
		{name: "ahead", in: "clock_skew: 10m\n", skew: 10 * time.Minute},
		{name: "behind", in: "clock_skew: -90s\n", skew: -90 * time.Second},
		{name: "zero", in: "clock_skew: 0\n"},
		{name: "deny defaults to access denied", in: "deny:\n  - model: \"*opus*\"\n",
			deny: []Denial{{Model: "*opus*", Code: "AccessDeniedException"}}},
		{name: "deny with a code in any spelling", in: "deny:\n  - model: anthropic.claude-opus-4-7\n    region: eu-*\n    code: ftuformnotfilled\n    message: fill it\n",
			deny: []Denial{{Model: "anthropic.claude-opus-4-7", Region: "eu-*", Code: "FTUFormNotFilled", Message: "fill it"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.in)
			if s.ClockSkew != tt.skew {
				t.Errorf("ClockSkew = %v, want %v", s.ClockSkew, tt.skew)
			}
			if len(s.Deny) != len(tt.deny) {
				t.Fatalf("Deny = %+v, want %+v", s.Deny, tt.deny)
			}
			for i := range s.Deny {
				if s.Deny[i] != tt.deny[i] {
					t.Errorf("Deny[%d] = %+v, want %+v", i, s.Deny[i], tt.deny[i])
				}
			}
			if err := s.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParseClockSkewAndDenyErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "skew not a duration", in: "clock_skew: 10\n", want: []string{"line 1", `clock_skew: want a duration such as 10m or -90s, got "10"`}},
		{name: "skew too large", in: "clock_skew: 48h\n", want: []string{"line 1", "clock_skew: 48h0m0s is more than 24h0m0s either way"}},
		{name: "deny without a model", in: "deny:\n  - code: AccessDeniedException\n", want: []string{"line 2", "deny[0]: model is required"}},
		{name: "deny with a throttle", in: "deny:\n  - model: x\n    code: ThrottlingException\n",
			want: []string{"line 3", "deny[0].code", `"ThrottlingException" is a quota error, not a denial`}},
		{name: "deny with an unknown code", in: "deny:\n  - model: x\n    code: Nope\n", want: []string{"line 3", `code "Nope" is not in the catalog`}},
		{name: "deny unknown key", in: "deny:\n  - model: x\n    probability: 1\n", want: []string{"line 3", `unknown key "probability" in deny[0]`}},
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

func TestValidateClockSkewAndDeny(t *testing.T) {
	s := &Scenario{ClockSkew: -25 * time.Hour, Deny: []Denial{{Model: "x", Code: "ModelTimeoutException"}}}
	err := s.Validate()
	for _, w := range []string{"scenario: clock_skew: -25h0m0s is more than 24h0m0s", "scenario: deny[0].code", "is a model error, not a denial"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate = %v, want it to mention %q", err, w)
		}
	}
}

// TestInjectorDeny: a denial answers every operation of the models and
// regions it matches, before the rules, and leaves the rest to them.
func TestInjectorDeny(t *testing.T) {
	in := NewInjector(mustParse(t, `clock_skew: 10m
deny:
  - model: "*opus*"
    region: eu-west-1
    code: MPAgreementBeingCreated
  - model: "*haiku*"
rules:
  - name: all
    errors:
      - code: ThrottlingException
        probability: 1
`), 1, clock.NewFake(t0))
	if got := in.ClockSkew(); got != 10*time.Minute {
		t.Errorf("ClockSkew = %v", got)
	}
	for _, tc := range []struct {
		model, region, op string
		code, rule        string
	}{
		{"anthropic.claude-opus-4-7", "eu-west-1", "count-tokens", "MPAgreementBeingCreated", "deny[0]"},
		{"anthropic.claude-opus-4-7", "eu-west-1", "converse", "MPAgreementBeingCreated", "deny[0]"},
		{"anthropic.claude-opus-4-7", "us-east-1", "converse", "ThrottlingException", "all"},
		{"us.anthropic.claude-haiku-4-5-20251001-v1:0", "us-east-1", "invoke", "AccessDeniedException", "deny[1]"},
	} {
		p := in.Plan(req(tc.model, tc.region, tc.op))
		if p.Error != tc.code || p.Rule != tc.rule {
			t.Errorf("%s in %s, %s: plan %s by %q, want %s by %q", tc.model, tc.region, tc.op, p.Error, p.Rule, tc.code, tc.rule)
		}
	}
	in.Replace(nil)
	if got := in.ClockSkew(); got != 0 {
		t.Errorf("ClockSkew after Replace(nil) = %v", got)
	}
}
