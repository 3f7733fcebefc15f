// Package bedrock is the vocabulary keel's packages share about Amazon
// Bedrock: how model ids are written (foundation models, cross-region
// inference profiles, ARNs).
package bedrock

import "strings"

// geoPrefixes are the geographies of cross-region inference profiles that
// Bedrock documents ("us.anthropic.claude-...").
var geoPrefixes = map[string]bool{"us": true, "eu": true, "apac": true, "global": true, "us-gov": true, "jp": true, "au": true, "ca": true}

// providers are the model providers whose ids Bedrock serves
// ("anthropic.claude-...", "amazon.nova-...").
var providers = map[string]bool{"anthropic": true, "amazon": true, "meta": true, "mistral": true, "cohere": true, "ai21": true,
	"deepseek": true, "openai": true, "qwen": true, "writer": true, "twelvelabs": true, "stability": true, "luma": true,
	"google": true, "nvidia": true, "minimax": true, "moonshot": true, "moonshotai": true, "zai": true}

// BaseModelID returns the foundation model id inside id: an ARN's resource
// part after its last '/', without a cross-region inference profile's
// geography prefix. "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-20250514-v1:0"
// and "us.anthropic.claude-opus-4-20250514-v1:0" both give
// "anthropic.claude-opus-4-20250514-v1:0". A prefix is a geography when
// Bedrock documents it, or when a known provider follows it (so a
// geography added later is seen through, and a provider is never taken for
// one). Other ids come back as they are; an application inference
// profile's ARN, which does not name its model, gives its opaque id.
func BaseModelID(id string) string {
	if strings.HasPrefix(id, "arn:") {
		if i := strings.LastIndexByte(id, '/'); i >= 0 {
			id = id[i+1:]
		}
	}
	first, rest, ok := strings.Cut(id, ".")
	if !ok || providers[first] {
		return id
	}
	next, _, _ := strings.Cut(rest, ".")
	if geoPrefixes[first] || providers[next] {
		return rest
	}
	return id
}

// Provider returns the provider part of id's base model id ("anthropic"
// for "us.anthropic.claude-..."), or "" when it names none keel knows.
func Provider(id string) string {
	first, _, ok := strings.Cut(BaseModelID(id), ".")
	if !ok || !providers[first] {
		return ""
	}
	return first
}
