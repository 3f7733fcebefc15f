package bedrock

import (
	"strings"
	"testing"
)

func TestModelTable(t *testing.T) {
	ms := Models()
	if len(ms) == 0 {
		t.Fatal("the model table is empty")
	}
	ms[0].Profiles = append(ms[0].Profiles[:0], "changed")
	if Models()[0].Profiles[0] == "changed" {
		t.Error("Models returns the table itself, not a copy")
	}
	// Facts the rest of keel relies on, one row per claim.
	tests := []struct {
		name      string
		id        string
		prefill   bool
		version2  bool // takes 2026-10-21
		burndown  float64
		maxOutput int
	}{
		{name: "dated 4.5 takes a prefill", id: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", prefill: true, burndown: 5, maxOutput: 64000},
		{name: "Haiku 4.5 burns 1", id: "anthropic.claude-haiku-4-5-20251001-v1:0", prefill: true, burndown: 1, maxOutput: 64000},
		{name: "4.6 refuses a prefill", id: "global.anthropic.claude-opus-4-6-v1", burndown: 5, maxOutput: 128000},
		{name: "undated Sonnet 4.6", id: "anthropic.claude-sonnet-4-6", burndown: 5, maxOutput: 64000},
		{name: "4.7 takes the new version", id: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-7", version2: true, burndown: 5, maxOutput: 128000},
		{name: "Sonnet 5.5", id: "us.anthropic.claude-sonnet-5-5", version2: true, burndown: 5, maxOutput: 128000},
		{name: "Nova takes a prefill", id: "us.amazon.nova-pro-v1:0", prefill: true, burndown: 1, maxOutput: 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := LookupModel(tt.id)
			if !ok {
				t.Fatalf("LookupModel(%q) found nothing", tt.id)
			}
			if m.Prefill != tt.prefill || m.AcceptsVersion(AnthropicVersion20261021) != tt.version2 ||
				m.Burndown != tt.burndown || m.MaxOutput != tt.maxOutput {
				t.Errorf("%s: prefill %v, 2026-10-21 %v, burndown %v, maxOutput %d; want %v, %v, %v, %d", m.ID,
					m.Prefill, m.AcceptsVersion(AnthropicVersion20261021), m.Burndown, m.MaxOutput, tt.prefill, tt.version2, tt.burndown, tt.maxOutput)
			}
			if m.Format == "anthropic" && !m.AcceptsVersion(AnthropicVersionBedrock) {
				t.Errorf("%s does not take %s", m.ID, AnthropicVersionBedrock)
			}
		})
	}
	for _, id := range []string{"anthropic.claude-opus-4-6-v1:0", "anthropic.claude-v2", "mistral.mistral-large-2402-v1:0", ""} {
		if _, ok := LookupModel(id); ok {
			t.Errorf("LookupModel(%q) found a row", id)
		}
	}
}

func TestParseModelsRejects(t *testing.T) {
	const obj = `{"id":"anthropic.claude-x","name":"X","provider":"Anthropic","format":"anthropic","contextWindow":1,"maxOutput":1,` +
		`"burndown":1,"anthropicVersions":["bedrock-2023-05-31"],"serviceTiers":["default"],"ttftMs":0,"tokensPerSecond":0}`
	row := func(extra string) string {
		return `{"models":[` + strings.TrimSuffix(obj, "}") + extra + `}]}`
	}
	if _, err := ParseModels([]byte(row(""))); err != nil {
		t.Fatalf("a valid row: %v", err)
	}
	tests := []struct {
		name, data, want string
	}{
		{name: "not JSON", data: `{`, want: "unexpected EOF"},
		{name: "unknown key", data: row(`,"colour":"red"`), want: `unknown field "colour"`},
		{name: "empty", data: `{"models":[]}`, want: "no models"},
		{name: "profile prefix in id", data: strings.Replace(row(""), `"anthropic.claude-x"`, `"us.anthropic.claude-x"`, 1), want: "profile prefix"},
		{name: "bad format", data: strings.Replace(row(""), `"format":"anthropic"`, `"format":"gpt"`, 1), want: `format "gpt"`},
		{name: "burndown below 1", data: strings.Replace(row(""), `"burndown":1`, `"burndown":0.5`, 1), want: "burndown 0.5"},
		{name: "unknown version", data: strings.Replace(row(""), `"bedrock-2023-05-31"`, `"2099-01-01"`, 1), want: `anthropic version "2099-01-01"`},
		{name: "no default tier", data: strings.Replace(row(""), `["default"]`, `["flex"]`, 1), want: `must include "default"`},
		{name: "unknown tier", data: strings.Replace(row(""), `["default"]`, `["default","gold"]`, 1), want: `service tier "gold"`},
		{name: "unknown geography", data: row(`,"profiles":["mars"]`), want: `geography "mars"`},
		{name: "profile only without profiles", data: row(`,"profileOnly":true`), want: "profiles is empty"},
		{name: "versions on another format", data: strings.Replace(row(""), `"format":"anthropic"`, `"format":"nova"`, 1), want: "only for it"},
		{name: "listed twice", data: `{"models":[` + obj + `,` + obj + `]}`, want: "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseModels([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseModels: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
