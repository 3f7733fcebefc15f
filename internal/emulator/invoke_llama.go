package emulator

import (
	"encoding/json"

	"github.com/keel-run/keel/internal/emulator/reply"
)

// llamaDefaultMaxGen is max_gen_len when a Llama body leaves it out.
const llamaDefaultMaxGen = 512

func (x *exchange) parseLlama(body []byte) (invokeParams, bool) {
	p := invokeParams{maxTokens: llamaDefaultMaxGen}
	var b struct {
		Prompt    *string `json:"prompt"`
		MaxGenLen *int    `json:"max_gen_len"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		x.malformed("#: expected a JSON object (" + err.Error() + ")")
		return p, false
	}
	if b.Prompt == nil {
		x.malformed("#: required key [prompt] not found")
		return p, false
	}
	if b.MaxGenLen != nil {
		p.maxTokens = *b.MaxGenLen
		if !x.checkMaxTokens("#/max_gen_len", p.maxTokens) {
			return p, false
		}
	}
	x.msgs = append(x.msgs, reply.Message{Role: "user", Text: *b.Prompt})
	return p, true
}

// appendLlamaGeneration appends a complete Llama InvokeModel response.
func appendLlamaGeneration(b []byte, r *reply.Reply) []byte {
	b = appendStringField(append(b, '{'), "generation", r.Text)
	b = appendIntField(b, "prompt_token_count", int64(r.InputTokens))
	b = appendIntField(b, "generation_token_count", int64(r.OutputTokens))
	b = appendStringField(b, "stop_reason", llamaStop(r.StopReason))
	return append(b, '}')
}

func llamaStop(s reply.StopReason) string {
	if s == reply.MaxTokens {
		return "length"
	}
	return "stop"
}

// appendLlamaToken appends the fields of a Llama stream's i-th chunk, which
// carries text; the prompt's token count comes in the first, the stop
// reason in the last.
func appendLlamaToken(b []byte, r *reply.Reply, text string, i int, last bool) []byte {
	b = appendStringField(b, "generation", text)
	if i == 0 {
		b = appendIntField(b, "prompt_token_count", int64(r.InputTokens))
	} else {
		b = append(b, `,"prompt_token_count":null`...)
	}
	b = appendIntField(b, "generation_token_count", int64(min(i+1, r.OutputTokens)))
	if last {
		return appendStringField(b, "stop_reason", llamaStop(r.StopReason))
	}
	return append(b, `,"stop_reason":null`...)
}
