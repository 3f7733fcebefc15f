package cache

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keel-run/keel/internal/stream"
)

// An Anthropic model's InvokeModel reply (a Messages API message) and its
// InvokeModelWithResponseStream (chunks whose bytes are the Messages API's
// stream events) carry the same content, so a stored one can answer the
// other (docs/cache.md). Only text, tool use, thinking and redacted
// thinking blocks are converted, and only the message fields the Messages
// API documents; anything else is not, and the call goes upstream. The
// other model families' stream formats have no converter.

// The reply headers Bedrock sets on an InvokeModel reply with what its
// stream carries in amazon-bedrock-invocationMetrics.
const (
	headerInputTokens  = "X-Amzn-Bedrock-Input-Token-Count"
	headerOutputTokens = "X-Amzn-Bedrock-Output-Token-Count"
	headerLatency      = "X-Amzn-Bedrock-Invocation-Latency"
)

// anthropicMessageFields are the fields of a Messages API message keel
// converts.
var anthropicMessageFields = []string{"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"}

// anthropicBlock is one content block of a message.
type anthropicBlock struct {
	Type      string          `json:"type"`
	Text      *string         `json:"text,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	Thinking  *string         `json:"thinking,omitempty"`
	Signature string          `json:"signature,omitempty"`
	Data      string          `json:"data,omitempty"`
}

// blockFields are the fields each block type may have.
var blockFields = map[string][]string{
	"text":              {"type", "text"},
	"tool_use":          {"type", "id", "name", "input"},
	"thinking":          {"type", "thinking", "signature"},
	"redacted_thinking": {"type", "data"},
}

// AnthropicStreamFromReply returns the InvokeModelWithResponseStream
// events (encoded frames) that carry an Anthropic InvokeModel reply body,
// h being the reply's headers (its token counts and latency go into the
// last event's invocation metrics), and false when the reply holds
// something the conversion does not carry.
func AnthropicStreamFromReply(body []byte, h http.Header) ([]byte, bool) {
	if !known(body, anthropicMessageFields...) {
		return nil, false
	}
	var msg map[string]json.RawMessage
	var blocks []json.RawMessage
	if json.Unmarshal(body, &msg) != nil || json.Unmarshal(msg["content"], &blocks) != nil || msg["role"] == nil {
		return nil, false
	}
	var usage map[string]json.RawMessage
	if json.Unmarshal(msg["usage"], &usage) != nil || usage["output_tokens"] == nil {
		return nil, false
	}
	var out bytes.Buffer
	enc := eventstream.NewEncoder()
	ok := true
	chunk := func(ev any) {
		b, err := json.Marshal(ev)
		if err == nil {
			b, err = json.Marshal(map[string][]byte{"bytes": b}) // []byte: base64, as Bedrock sends it
		}
		if err == nil {
			err = enc.Encode(&out, eventstream.Message{Headers: eventstream.Headers{
				{Name: ":event-type", Value: eventstream.StringValue("chunk")},
				{Name: ":content-type", Value: eventstream.StringValue("application/json")},
				{Name: ":message-type", Value: eventstream.StringValue("event")},
			}, Payload: b})
		}
		ok = ok && err == nil
	}
	// message_start carries the message without its content, stop reason
	// and output (Bedrock counts the first output token there).
	start := map[string]json.RawMessage{}
	for k, v := range msg {
		start[k] = v
	}
	start["content"], start["stop_reason"], start["stop_sequence"] = json.RawMessage("[]"), json.RawMessage("null"), json.RawMessage("null")
	startUsage := map[string]json.RawMessage{}
	for k, v := range usage {
		startUsage[k] = v
	}
	var output int64
	if json.Unmarshal(usage["output_tokens"], &output) != nil {
		return nil, false
	}
	startUsage["output_tokens"] = json.RawMessage(strconv.FormatInt(min(output, 1), 10))
	start["usage"] = mustJSON(startUsage)
	chunk(map[string]any{"type": "message_start", "message": start})
	for i, raw := range blocks {
		var b anthropicBlock
		if json.Unmarshal(raw, &b) != nil || blockFields[b.Type] == nil || !known(raw, blockFields[b.Type]...) {
			return nil, false
		}
		switch b.Type {
		case "text":
			if b.Text == nil {
				return nil, false
			}
			chunk(map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]string{"type": "text", "text": ""}})
			chunk(map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]string{"type": "text_delta", "text": *b.Text}})
		case "tool_use":
			if !json.Valid(b.Input) {
				return nil, false
			}
			chunk(map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "tool_use", "id": b.ID, "name": b.Name, "input": map[string]any{}}})
			chunk(map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]string{"type": "input_json_delta", "partial_json": string(b.Input)}})
		case "thinking":
			if b.Thinking == nil {
				return nil, false
			}
			chunk(map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]string{"type": "thinking", "thinking": ""}})
			chunk(map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]string{"type": "thinking_delta", "thinking": *b.Thinking}})
			if b.Signature != "" {
				chunk(map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]string{"type": "signature_delta", "signature": b.Signature}})
			}
		case "redacted_thinking":
			chunk(map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]string{"type": "redacted_thinking", "data": b.Data}})
		}
		chunk(map[string]any{"type": "content_block_stop", "index": i})
	}
	chunk(map[string]any{"type": "message_delta", "delta": map[string]json.RawMessage{"stop_reason": orNull(msg["stop_reason"]),
		"stop_sequence": orNull(msg["stop_sequence"])}, "usage": map[string]int64{"output_tokens": output}})
	var input int64
	json.Unmarshal(usage["input_tokens"], &input)
	metrics := map[string]int64{"inputTokenCount": headerInt(h, headerInputTokens, input), "outputTokenCount": headerInt(h, headerOutputTokens, output)}
	if v := h.Get(headerLatency); v != "" {
		// A reply arrives whole: its first byte came at the end.
		lat := headerInt(h, headerLatency, 0)
		metrics["invocationLatency"], metrics["firstByteLatency"] = lat, lat
	}
	chunk(map[string]any{"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics})
	return out.Bytes(), ok
}

// headerInt returns h's integer header name, or def when it has none.
func headerInt(h http.Header, name string, def int64) int64 {
	if n, err := strconv.ParseInt(h.Get(name), 10, 64); err == nil {
		return n
	}
	return def
}

func orNull(v json.RawMessage) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	return v
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v) // maps of raw JSON: cannot fail
	return b
}

// AnthropicReplyFromStream returns the InvokeModel reply body a stored
// Anthropic InvokeModelWithResponseStream (its encoded frames) amounts
// to, with the token count and latency headers Bedrock sets on a reply,
// and false when the stream holds something the conversion does not carry
// or did not end.
func AnthropicReplyFromStream(frames []byte) ([]byte, http.Header, bool) {
	fr := stream.NewReader(bytes.NewReader(frames))
	defer fr.Release()
	var (
		msg     map[string]json.RawMessage
		usage   map[string]json.RawMessage
		blocks  []*anthropicBlock
		partial []*bytes.Buffer // each block's text, thinking or tool input so far
		ended   bool
		h       = http.Header{}
	)
	for {
		f, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil || !f.IsEvent() || string(f.EventType) != "chunk" || ended {
			return nil, nil, false
		}
		var c struct{ Bytes []byte }
		if json.Unmarshal(f.Payload, &c) != nil || !known(f.Payload, "bytes", "p") {
			return nil, nil, false
		}
		var ev struct {
			Type         string
			Index        int
			Message      map[string]json.RawMessage
			ContentBlock json.RawMessage `json:"content_block"`
			Delta        struct {
				Type, Text, Thinking, Signature string
				PartialJSON                     string          `json:"partial_json"`
				StopReason                      json.RawMessage `json:"stop_reason"`
				StopSequence                    json.RawMessage `json:"stop_sequence"`
			}
			Usage   map[string]json.RawMessage
			Metrics map[string]int64 `json:"amazon-bedrock-invocationMetrics"`
		}
		if json.Unmarshal(c.Bytes, &ev) != nil {
			return nil, nil, false
		}
		switch ev.Type {
		case "message_start":
			if msg != nil || !known(mustJSON(ev.Message), anthropicMessageFields...) ||
				json.Unmarshal(ev.Message["usage"], &usage) != nil {
				return nil, nil, false
			}
			msg = ev.Message
		case "content_block_start":
			var b anthropicBlock
			if msg == nil || ev.Index != len(blocks) || json.Unmarshal(ev.ContentBlock, &b) != nil || blockFields[b.Type] == nil ||
				!known(ev.ContentBlock, blockFields[b.Type]...) {
				return nil, nil, false
			}
			blocks, partial = append(blocks, &b), append(partial, &bytes.Buffer{})
		case "content_block_delta":
			if ev.Index < 0 || ev.Index >= len(blocks) {
				return nil, nil, false
			}
			b, p := blocks[ev.Index], partial[ev.Index]
			switch {
			case ev.Delta.Type == "text_delta" && b.Type == "text":
				p.WriteString(ev.Delta.Text)
			case ev.Delta.Type == "input_json_delta" && b.Type == "tool_use":
				p.WriteString(ev.Delta.PartialJSON)
			case ev.Delta.Type == "thinking_delta" && b.Type == "thinking":
				p.WriteString(ev.Delta.Thinking)
			case ev.Delta.Type == "signature_delta" && b.Type == "thinking":
				b.Signature += ev.Delta.Signature
			default:
				return nil, nil, false
			}
		case "content_block_stop", "ping":
		case "message_delta":
			if msg == nil {
				return nil, nil, false
			}
			msg["stop_reason"], msg["stop_sequence"] = orNull(ev.Delta.StopReason), orNull(ev.Delta.StopSequence)
			for k, v := range ev.Usage {
				usage[k] = v
			}
		case "message_stop":
			for name, key := range map[string]string{headerInputTokens: "inputTokenCount", headerOutputTokens: "outputTokenCount",
				headerLatency: "invocationLatency"} {
				if v, ok := ev.Metrics[key]; ok {
					h.Set(name, strconv.FormatInt(v, 10))
				}
			}
			ended = true
		default:
			return nil, nil, false
		}
	}
	if !ended || msg == nil || msg["stop_reason"] == nil || string(msg["stop_reason"]) == "null" {
		return nil, nil, false // not a whole stream
	}
	content := make([]any, 0, len(blocks))
	for i, b := range blocks {
		p := partial[i].String()
		switch b.Type {
		case "text":
			b.Text = &p
		case "thinking":
			b.Thinking = &p
		case "tool_use":
			if p == "" {
				p = "{}"
			}
			if !json.Valid([]byte(p)) {
				return nil, nil, false
			}
			b.Input = json.RawMessage(p)
		}
		content = append(content, b)
	}
	msg["content"] = mustJSON(content)
	msg["usage"] = mustJSON(usage)
	body, err := json.Marshal(msg)
	return body, h, err == nil
}
