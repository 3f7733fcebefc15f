package route

import (
	"reflect"
	"slices"
	"testing"

	"github.com/keel-run/keel/internal/attempt"
)

func TestBodyFormat(t *testing.T) {
	tests := []struct{ name, model, want string }{
		{"anthropic", "anthropic.claude-3-haiku-20240307-v1:0", "anthropic"},
		{"us profile", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic"},
		{"global profile", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic"},
		{"apac profile", "apac.amazon.nova-pro-v1:0", "nova"},
		{"profile arn", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic"},
		{"foundation model arn", "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-70b-instruct-v1:0", "llama"},
		{"opaque arn", "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123", ""},
		{"titan", "amazon.titan-text-express-v1", "titan-text"},
		{"mistral", "mistral.mistral-large-2402-v1:0", "mistral"},
		{"unknown", "example.model", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BodyFormat(tt.model); got != tt.want {
				t.Fatalf("BodyFormat(%q) = %q, want %q", tt.model, got, tt.want)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	sonnet := "anthropic.claude-sonnet-4-5-20250929-v1:0"
	tab := New("us-east-1", map[string][]attempt.Target{
		sonnet: {
			{Model: sonnet},
			{Model: sonnet, Region: "us-west-2"},
			{Model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", Region: "us-east-2"},
			{Model: "amazon.nova-pro-v1:0", Region: "us-east-1"},
		},
	})
	tests := []struct {
		name   string
		op     attempt.Op
		model  string
		region string
		want   []attempt.Target
	}{
		{"converse falls back to any model", attempt.Converse, sonnet, "", []attempt.Target{
			{Model: sonnet, Region: "us-east-1"}, {Model: sonnet, Region: "us-west-2"},
			{Model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", Region: "us-east-2"}, {Model: "amazon.nova-pro-v1:0", Region: "us-east-1"}}},
		{"invoke keeps the body format", attempt.Invoke, sonnet, "", []attempt.Target{
			{Model: sonnet, Region: "us-east-1"}, {Model: sonnet, Region: "us-west-2"},
			{Model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", Region: "us-east-2"}}},
		{"caller's region first", attempt.ConverseStream, sonnet, "eu-west-1", []attempt.Target{
			{Model: sonnet, Region: "eu-west-1"}, {Model: sonnet, Region: "us-east-1"}, {Model: sonnet, Region: "us-west-2"},
			{Model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", Region: "us-east-2"}, {Model: "amazon.nova-pro-v1:0", Region: "us-east-1"}}},
		{"unrouted model alone", attempt.Converse, "amazon.nova-lite-v1:0", "", []attempt.Target{{Model: "amazon.nova-lite-v1:0", Region: "us-east-1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tab.Targets(tt.op, tt.model, tt.region)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Targets = %v\nwant      %v", got, tt.want)
			}
		})
	}
	var zero Table
	if got := zero.Targets(attempt.Converse, "m", "us-east-1"); len(got) != 1 {
		t.Fatalf("zero table: %v", got)
	}
}

// TestTargetsForTiers: steps naming a tier, a class, or neither.
func TestTargetsForTiers(t *testing.T) {
	const m, other = "us.anthropic.claude-sonnet-4-6", "us.anthropic.claude-opus-4-6-v1"
	tb := NewSteps("us-east-1", map[string][]Step{m: {
		{Target: attempt.Target{Model: m, Tier: "flex"}, Class: ClassBatch},
		{Target: attempt.Target{Model: m, Tier: "priority"}, Class: ClassInteractive},
		{Target: attempt.Target{Model: other, Region: "us-west-2"}},
		{Target: attempt.Target{Model: m, Tier: "default"}},
	}})
	tests := []struct {
		name        string
		op          attempt.Op
		tier, class string
		want        []string
	}{
		{"batch", attempt.Converse, "", ClassBatch,
			[]string{m + "@us-east-1", m + "@us-east-1/flex", other + "@us-west-2"}},
		{"interactive", attempt.Converse, "", ClassInteractive,
			[]string{m + "@us-east-1", m + "@us-east-1/priority", other + "@us-west-2"}},
		{"a flex call keeps flex on a step naming no tier", attempt.Converse, "flex", ClassBatch,
			[]string{m + "@us-east-1/flex", other + "@us-west-2/flex", m + "@us-east-1"}},
		{"default named is no tier", attempt.Invoke, "default", ClassInteractive,
			[]string{m + "@us-east-1", m + "@us-east-1/priority", other + "@us-west-2"}},
		{"count tokens has no tier", attempt.CountTokens, "flex", ClassBatch,
			[]string{m + "@us-east-1", other + "@us-west-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, x := range tb.TargetsFor(tt.op, m, "", tt.tier, tt.class) {
				got = append(got, x.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("TargetsFor = %q\nwant %q", got, tt.want)
			}
		})
	}
}
