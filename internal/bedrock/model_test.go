package bedrock

import "testing"

func TestBaseModelID(t *testing.T) {
	tests := []struct{ name, id, want string }{
		{name: "foundation model", id: "anthropic.claude-3-haiku-20240307-v1:0", want: "anthropic.claude-3-haiku-20240307-v1:0"},
		{name: "us profile", id: "us.anthropic.claude-sonnet-4-20250514-v1:0", want: "anthropic.claude-sonnet-4-20250514-v1:0"},
		{name: "global profile", id: "global.anthropic.claude-sonnet-4-5-20250929-v1:0", want: "anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{name: "apac profile", id: "apac.amazon.nova-lite-v1:0", want: "amazon.nova-lite-v1:0"},
		{name: "jp profile", id: "jp.anthropic.claude-sonnet-4-5-20250929-v1:0", want: "anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{name: "us-gov profile", id: "us-gov.anthropic.claude-3-haiku-20240307-v1:0", want: "anthropic.claude-3-haiku-20240307-v1:0"},
		{name: "a geography not yet listed, before a provider", id: "sa.anthropic.claude-opus-4-6-v1", want: "anthropic.claude-opus-4-6-v1"},
		{name: "profile ARN", id: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-opus-4-20250514-v1:0",
			want: "anthropic.claude-opus-4-20250514-v1:0"},
		{name: "foundation model ARN", id: "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-1-8b-instruct-v1:0",
			want: "meta.llama3-1-8b-instruct-v1:0"},
		{name: "application profile ARN", id: "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
			want: "a1b2c3"},
		{name: "a dot later in the id is kept", id: "mistral.mistral-large-2407-v1:0", want: "mistral.mistral-large-2407-v1:0"},
		{name: "a short provider is not a geography", id: "google.gemma-3-27b-it", want: "google.gemma-3-27b-it"},
		{name: "openai", id: "openai.gpt-oss-120b-1:0", want: "openai.gpt-oss-120b-1:0"},
		{name: "unknown", id: "example.model", want: "example.model"},
		{name: "no dot", id: "model", want: "model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BaseModelID(tt.id); got != tt.want {
				t.Errorf("BaseModelID(%q) = %q, want %q", tt.id, got, tt.want)
			}
		})
	}
}

func TestProvider(t *testing.T) {
	tests := []struct{ id, want string }{
		{"us.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic"},
		{"arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-70b-instruct-v1:0", "meta"},
		{"arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123", ""},
		{"example.model", ""},
	}
	for _, tt := range tests {
		if got := Provider(tt.id); got != tt.want {
			t.Errorf("Provider(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}
