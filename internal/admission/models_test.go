package admission

import (
	"strings"
	"testing"
)

func TestLookupModel(t *testing.T) {
	tests := []struct {
		name     string
		id       string
		burndown float64
		maxOut   int
		known    bool
	}{
		{name: "claude 3.7 sonnet", id: "us.anthropic.claude-3-7-sonnet-20250219-v1:0", burndown: 5, maxOut: 64000, known: true},
		{name: "sonnet 4", id: "anthropic.claude-sonnet-4-20250514-v1:0", burndown: 5, maxOut: 64000, known: true},
		{name: "sonnet 4.5 via global profile", id: "global.anthropic.claude-sonnet-4-5-20250929-v1:0", burndown: 5, maxOut: 64000, known: true},
		{name: "opus 4", id: "us.anthropic.claude-opus-4-20250514-v1:0", burndown: 5, maxOut: 32000, known: true},
		{name: "opus 4.1 via ARN", id: "arn:aws:bedrock:us-west-2:1:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0", burndown: 5, maxOut: 32000, known: true},
		{name: "opus 4.5", id: "anthropic.claude-opus-4-5-20251101-v1:0", burndown: 5, maxOut: 64000, known: true},
		{name: "haiku 4.5 burns 1", id: "us.anthropic.claude-haiku-4-5-20251001-v1:0", burndown: 1, maxOut: 64000, known: true},
		{name: "claude 3.5 sonnet v2", id: "anthropic.claude-3-5-sonnet-20241022-v2:0", burndown: 1, maxOut: 8192, known: true},
		{name: "claude 3 haiku", id: "anthropic.claude-3-haiku-20240307-v1:0", burndown: 1, maxOut: 4096, known: true},
		{name: "nova pro", id: "us.amazon.nova-pro-v1:0", burndown: 1, maxOut: 5000, known: true},
		{name: "llama", id: "meta.llama3-3-70b-instruct-v1:0", burndown: 1, maxOut: 2048, known: true},
		{name: "titan express", id: "amazon.titan-text-express-v1", burndown: 1, maxOut: 8192, known: true},
		{name: "opus 4.6, undated with -v1", id: "global.anthropic.claude-opus-4-6-v1", burndown: 5, maxOut: 128000, known: true},
		{name: "sonnet 4.6, undated", id: "us.anthropic.claude-sonnet-4-6", burndown: 5, maxOut: 64000, known: true},
		{name: "sonnet 5.5", id: "us.anthropic.claude-sonnet-5-5", burndown: 5, maxOut: 128000, known: true},
		{name: "a Sonnet the table lacks errs high", id: "us.anthropic.claude-sonnet-9", burndown: 5, maxOut: 128000, known: true},
		{name: "claude 2 by family", id: "anthropic.claude-v2:1", burndown: 1, maxOut: 4096, known: true},
		{name: "llama 3.2 by family", id: "us.meta.llama3-2-1b-instruct-v1:0", burndown: 1, maxOut: 2048, known: true},
		{name: "unknown", id: "acme.brand-new-model-v1:0", burndown: 1, maxOut: 8192},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := LookupModel(tt.id)
			if m.Burndown != tt.burndown || m.MaxOutputTokens != tt.maxOut || ok != tt.known {
				t.Errorf("LookupModel(%q) = %+v, %v; want burndown %v, max output %d, %v", tt.id, m, ok, tt.burndown, tt.maxOut, tt.known)
			}
		})
	}
}

func TestOptionsModelsComeFirst(t *testing.T) {
	// An application inference profile ARN does not name its model: its id
	// (the part after the last '/') goes in Options.Models.
	extra := []Model{{Match: "a1b2c3", MaxOutputTokens: 1000, Burndown: 5}, {Match: "claude-3-haiku", MaxOutputTokens: 10, Burndown: 2}}
	if m, ok := lookupModel(extra, "arn:aws:bedrock:us-east-1:1:application-inference-profile/a1b2c3"); !ok || m.Burndown != 5 || m.MaxOutputTokens != 1000 {
		t.Errorf("application profile: %+v, %v; want the extra entry", m, ok)
	}
	if m, _ := lookupModel(extra, "anthropic.claude-3-haiku-20240307-v1:0"); m.MaxOutputTokens != 10 || m.Burndown != 2 {
		t.Errorf("override: %+v, want the extra entry before the built-in one", m)
	}
	if m, _ := lookupModel(extra, "anthropic.claude-sonnet-4-20250514-v1:0"); m.Burndown != 5 || m.MaxOutputTokens != 64000 {
		t.Errorf("built-in: %+v, want the built-in entry when no extra one matches", m)
	}
}

func TestValidateModels(t *testing.T) {
	tests := []struct {
		name   string
		models []Model
		want   string
	}{
		{name: "empty match", models: []Model{{MaxOutputTokens: 1, Burndown: 1}}, want: "admission: Models[0]: Match is empty"},
		{name: "no output", models: []Model{{Match: "x", Burndown: 1}}, want: `admission: Models[0] ("x"): MaxOutputTokens 0 must be positive`},
		{name: "burndown below 1", models: []Model{{Match: "x", MaxOutputTokens: 1, Burndown: 1}, {Match: "y", MaxOutputTokens: 1, Burndown: 0.5}},
			want: `admission: Models[1] ("y"): Burndown 0.5 must be at least 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{Models: tt.models})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestGovernorModel: the facts a Governor uses for a model id, the
// configured Models first, and what a nil Governor uses.
func TestGovernorModel(t *testing.T) {
	g, err := New(Options{Models: []Model{{Match: "my-model", MaxOutputTokens: 100, Burndown: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	var none *Governor
	tests := []struct {
		name string
		g    *Governor
		id   string
		want Model
	}{
		{"configured", g, "us.my-model-v1", Model{Match: "my-model", MaxOutputTokens: 100, Burndown: 3}},
		{"nil Governor: the unknown model's figures", none, "us.my-model-v1", unknownModel},
	}
	for _, tt := range tests {
		if got := tt.g.Model(tt.id); got != tt.want {
			t.Errorf("%s: Model(%q) = %+v, want %+v", tt.name, tt.id, got, tt.want)
		}
	}
	// A model of keel's table: its own row's figures.
	if m := g.Model("us.anthropic.claude-sonnet-4-5-20250929-v1:0"); m.Burndown != 5 || m.MaxOutputTokens == 0 {
		t.Errorf("Sonnet 4.5: %+v, want burndown 5 and its output limit", m)
	}
}
