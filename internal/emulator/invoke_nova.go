package emulator

import (
	"encoding/json"
	"fmt"

	"github.com/keel-run/keel/internal/emulator/reply"
)

type novaBody struct {
	Messages []struct {
		Role    string `json:"role"`
		Content []struct {
			Text *string `json:"text"`
		} `json:"content"`
	} `json:"messages"`
	System []struct {
		Text *string `json:"text"`
	} `json:"system"`
	InferenceConfig *struct {
		MaxTokens     *int     `json:"maxTokens"`
		MaxNewTokens  *int     `json:"max_new_tokens"`
		StopSequences []string `json:"stopSequences"`
	} `json:"inferenceConfig"`
}

func (x *exchange) parseNova(body []byte) (invokeParams, bool) {
	var p invokeParams
	var b novaBody
	if err := json.Unmarshal(body, &b); err != nil {
		x.malformed("#: expected a JSON object (" + err.Error() + ")")
		return p, false
	}
	if b.Messages == nil {
		x.malformed("#: required key [messages] not found")
		return p, false
	}
	for _, s := range b.System {
		if s.Text != nil {
			p.system += *s.Text
		}
	}
	for i, msg := range b.Messages {
		if msg.Role != "user" && msg.Role != "assistant" {
			x.malformed(fmt.Sprintf("#/messages/%d/role: %s is not a valid enum value", i, msg.Role))
			return p, false
		}
		var text string
		for _, c := range msg.Content {
			if c.Text != nil {
				text += *c.Text
			}
		}
		x.msgs = append(x.msgs, reply.Message{Role: msg.Role, Text: text})
	}
	if len(x.msgs) == 0 || x.msgs[0].Role != "user" {
		x.fail(codeValidation, "A conversation must start with a user message. Try again with a conversation that starts with a user message.")
		return p, false
	}
	if ic := b.InferenceConfig; ic != nil {
		p.stops = ic.StopSequences
		mt := ic.MaxTokens
		if mt == nil {
			mt = ic.MaxNewTokens
		}
		if mt != nil {
			p.maxTokens = *mt
			if !x.checkMaxTokens("#/inferenceConfig/maxTokens", p.maxTokens) {
				return p, false
			}
		}
	}
	return p, true
}

// appendNovaMessage appends a complete Nova InvokeModel response.
func appendNovaMessage(b []byte, g *generation) []byte {
	r := &g.reply
	b = append(b, `{"output":{"message":{"content":[{"text":`...)
	b = appendJSONString(b, r.Text)
	b = append(b, `}],"role":"assistant"}},"stopReason":`...)
	b = appendJSONString(b, string(r.StopReason))
	b = append(b, `,"usage":`...)
	b = appendNovaUsage(b, g)
	return append(b, '}')
}

func appendNovaUsage(b []byte, g *generation) []byte {
	b = appendIntField(append(b, '{'), "inputTokens", int64(g.input))
	b = appendIntField(b, "outputTokens", int64(g.reply.OutputTokens))
	b = appendIntField(b, "totalTokens", int64(g.total()))
	b = appendIntField(b, "cacheReadInputTokenCount", int64(g.cacheRead))
	b = appendIntField(b, "cacheWriteInputTokenCount", int64(g.cacheWrite))
	return append(b, '}')
}

func (x *exchange) streamNova(g *generation, cs *chunkStreamer) {
	r := &g.reply
	x.inner = append(x.inner[:0], `{"messageStart":{"role":"assistant"}}`...)
	if !cs.chunk(0) {
		return
	}
	if !cs.text(g, `{"contentBlockDelta":{"delta":{"text":`, `},"contentBlockIndex":0}}`) {
		return
	}
	x.inner = append(x.inner[:0], `{"contentBlockStop":{"contentBlockIndex":0}}`...)
	if !cs.chunk(0) {
		return
	}
	b := append(x.inner[:0], `{"messageStop":{"stopReason":`...)
	b = appendJSONString(b, string(r.StopReason))
	b = append(b, `}}`...)
	x.inner = b
	if !cs.chunk(0) {
		return
	}
	b = append(x.inner[:0], `{"metadata":{"usage":`...)
	b = appendNovaUsage(b, g)
	b = append(b, `,"metrics":{},"trace":{}},`...)
	b = x.appendInvocationMetrics(b, g, cs.firstByte)
	b = append(b, '}')
	x.inner = b
	if !cs.chunk(0) {
		return
	}
	cs.end()
}
