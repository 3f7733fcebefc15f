package glob

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		s       string
		want    bool
	}{
		{name: "star matches anything", pattern: "*", s: "anthropic.claude-3-haiku-20240307-v1:0", want: true},
		{name: "star matches empty", pattern: "*", s: "", want: true},
		{name: "empty matches empty only", pattern: "", s: "", want: true},
		{name: "empty does not match text", pattern: "", s: "x", want: false},
		{name: "literal equal", pattern: "us-east-1", s: "us-east-1", want: true},
		{name: "literal differs", pattern: "us-east-1", s: "us-east-2", want: false},
		{name: "literal is case sensitive", pattern: "US-EAST-1", s: "us-east-1", want: false},
		{name: "prefix", pattern: "anthropic.*", s: "anthropic.claude-sonnet-4-20250514-v1:0", want: true},
		{name: "prefix miss", pattern: "anthropic.*", s: "us.anthropic.claude-sonnet-4-20250514-v1:0", want: false},
		{name: "suffix", pattern: "*-v1:0", s: "amazon.nova-pro-v1:0", want: true},
		{name: "suffix miss", pattern: "*-v1:0", s: "amazon.nova-pro-v2:0", want: false},
		{name: "infix", pattern: "*claude*", s: "us.anthropic.claude-3-7-sonnet-20250219-v1:0", want: true},
		{name: "infix miss", pattern: "*claude*", s: "amazon.nova-lite-v1:0", want: false},
		{name: "question mark is literal", pattern: "a?c", s: "abc", want: false},
		{name: "slash is ordinary", pattern: "arn:aws:bedrock:*:inference-profile/*", s: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0", want: true},
		{name: "pieces in order", pattern: "a*b*c", s: "axxbyyc", want: true},
		{name: "pieces out of order", pattern: "a*b*c", s: "axxcyyb", want: false},
		{name: "suffix does not overlap prefix", pattern: "ab*ba", s: "aba", want: false},
		{name: "double star", pattern: "us-**-1", s: "us-west-1", want: true},
		{name: "suffix found after leftmost middle", pattern: "*a*a", s: "aaa", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Match(tt.pattern, tt.s); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}

func TestLiteral(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		want    bool
	}{
		{name: "plain", pattern: "converse", want: true},
		{name: "wildcard", pattern: "converse*", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Literal(tt.pattern); got != tt.want {
				t.Errorf("Literal(%q) = %v, want %v", tt.pattern, got, tt.want)
			}
		})
	}
}
