package admission

import (
	"fmt"

	"github.com/keel-run/keel/internal/jsonscan"
)

// Estimate is what a request body says about the quota it will use.
type Estimate struct {
	// InputTokens is the estimated input, before the governor's per-target
	// correction: the text's UTF-8 bytes divided by BytesPerToken, rounded
	// up, plus ImageTokens per image and DocumentTokens per document.
	InputTokens int
	// MaxTokens is the most output the request allows. Zero means the request
	// sets none, and the governor reserves the target model's maximum, as
	// Bedrock does.
	MaxTokens int
}

// EstimateBody estimates the quota a Bedrock Runtime request body will use,
// without a network call. It reads the Converse and ConverseStream body and
// the InvokeModel bodies of the Anthropic Messages API, Amazon Nova, Meta
// Llama, Amazon Titan and Cohere, telling them apart by their fields.
//
// The text counted is that of the system prompt and the messages: "text",
// "content", "thinking" and "message" strings, the JSON of tool inputs and
// results, and the Llama "prompt" and Titan "inputText". Tool definitions
// ("toolConfig", "tools") count as their JSON. Images and documents count a
// flat ImageTokens and DocumentTokens each; their bytes are not read. The max
// tokens come from Converse "inferenceConfig.maxTokens", Anthropic
// "max_tokens", Nova "inferenceConfig.max_new_tokens", Llama "max_gen_len"
// and Titan "textGenerationConfig.maxTokenCount".
//
// EstimateBody does not allocate when the body is well formed. On a body that
// is not a JSON object, or that sets a negative or absurd max tokens, it
// returns an error naming the problem and its byte offset, together with a
// cautious estimate (the whole body's length over BytesPerToken, max tokens
// unset) that a caller may still admit with; Bedrock will most likely reject
// such a body itself.
func EstimateBody(body []byte) (Estimate, error) {
	s := jsonscan.New(body, maxDepth)
	e := estimator{s: &s}
	e.top()
	if msg, at := s.Problem(); msg != "" {
		fallback := Estimate{InputTokens: ceilDiv(len(body), BytesPerToken)}
		return fallback, fmt.Errorf("admission: request body: %s at byte %d of %d", msg, at, len(body))
	}
	return Estimate{InputTokens: ceilDiv(e.text, BytesPerToken) + e.media, MaxTokens: e.max}, nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
