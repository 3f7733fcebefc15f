package cache

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keel-run/keel/internal/stream"
)

// Converse's reply and its stream carry the same content, so a stored one
// can answer the other (docs/cache.md). Only the block kinds both forms are
// known to carry are converted: text, tool use and reasoning; a reply or
// stream with anything else (citations, images, documents, an event keel
// does not know) is not, and the call goes upstream.

// converseReply is a Converse reply body, as far as conversion needs it.
type converseReply struct {
	Output struct {
		Message struct {
			Role    string       `json:"role"`
			Content []replyBlock `json:"content"`
		} `json:"message"`
	} `json:"output"`
	StopReason                    string          `json:"stopReason"`
	Usage                         json.RawMessage `json:"usage,omitempty"`
	Metrics                       json.RawMessage `json:"metrics,omitempty"`
	AdditionalModelResponseFields json.RawMessage `json:"additionalModelResponseFields,omitempty"`
	Trace                         json.RawMessage `json:"trace,omitempty"`
	PerformanceConfig             json.RawMessage `json:"performanceConfig,omitempty"`
	ServiceTier                   json.RawMessage `json:"serviceTier,omitempty"`
}

type replyBlock struct {
	Text             *string          `json:"text,omitempty"`
	ToolUse          *toolUse         `json:"toolUse,omitempty"`
	ReasoningContent *reasoningOfText `json:"reasoningContent,omitempty"`
}

type toolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type reasoningOfText struct {
	ReasoningText *struct {
		Text      string `json:"text"`
		Signature string `json:"signature,omitempty"`
	} `json:"reasoningText,omitempty"`
	RedactedContent []byte `json:"redactedContent,omitempty"`
}

// known reports that every field of a JSON object is one of names.
func known(raw []byte, names ...string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	for k := range m {
		if !slices.Contains(names, k) {
			return false
		}
	}
	return true
}

// ConverseStreamFromReply returns the ConverseStream events (encoded
// frames) that carry the Converse reply body, and false when the reply
// holds something the conversion does not carry.
func ConverseStreamFromReply(body []byte) ([]byte, bool) {
	if !known(body, "output", "stopReason", "usage", "metrics", "additionalModelResponseFields", "trace", "performanceConfig", "serviceTier") {
		return nil, false
	}
	var r converseReply
	if json.Unmarshal(body, &r) != nil || r.Output.Message.Role == "" {
		return nil, false
	}
	var blocks []json.RawMessage
	if json.Unmarshal(mustField(body, "output", "message", "content"), &blocks) != nil {
		return nil, false
	}
	var out bytes.Buffer
	enc := eventstream.NewEncoder()
	ok := true
	event := func(typ string, payload any) {
		b, err := json.Marshal(payload)
		if err == nil {
			err = enc.Encode(&out, eventstream.Message{Headers: eventstream.Headers{
				{Name: ":event-type", Value: eventstream.StringValue(typ)},
				{Name: ":content-type", Value: eventstream.StringValue("application/json")},
				{Name: ":message-type", Value: eventstream.StringValue("event")},
			}, Payload: b})
		}
		ok = ok && err == nil
	}
	event("messageStart", map[string]string{"role": r.Output.Message.Role})
	for i, blk := range r.Output.Message.Content {
		if !known(blocks[i], "text", "toolUse", "reasoningContent") {
			return nil, false
		}
		switch {
		case blk.Text != nil:
			event("contentBlockDelta", map[string]any{"contentBlockIndex": i, "delta": map[string]string{"text": *blk.Text}})
		case blk.ToolUse != nil:
			event("contentBlockStart", map[string]any{"contentBlockIndex": i,
				"start": map[string]any{"toolUse": map[string]string{"toolUseId": blk.ToolUse.ToolUseID, "name": blk.ToolUse.Name}}})
			event("contentBlockDelta", map[string]any{"contentBlockIndex": i,
				"delta": map[string]any{"toolUse": map[string]string{"input": string(blk.ToolUse.Input)}}})
		case blk.ReasoningContent != nil && blk.ReasoningContent.ReasoningText != nil:
			rt := blk.ReasoningContent.ReasoningText
			event("contentBlockDelta", map[string]any{"contentBlockIndex": i, "delta": map[string]any{"reasoningContent": map[string]string{"text": rt.Text}}})
			if rt.Signature != "" {
				event("contentBlockDelta", map[string]any{"contentBlockIndex": i, "delta": map[string]any{"reasoningContent": map[string]string{"signature": rt.Signature}}})
			}
		case blk.ReasoningContent != nil && blk.ReasoningContent.RedactedContent != nil:
			event("contentBlockDelta", map[string]any{"contentBlockIndex": i, "delta": map[string]any{"reasoningContent": map[string][]byte{"redactedContent": blk.ReasoningContent.RedactedContent}}})
		default:
			return nil, false
		}
		event("contentBlockStop", map[string]int{"contentBlockIndex": i})
	}
	stop := map[string]any{"stopReason": r.StopReason}
	if r.AdditionalModelResponseFields != nil {
		stop["additionalModelResponseFields"] = r.AdditionalModelResponseFields
	}
	event("messageStop", stop)
	meta := map[string]any{}
	for k, v := range map[string]json.RawMessage{"usage": r.Usage, "metrics": r.Metrics, "trace": r.Trace,
		"performanceConfig": r.PerformanceConfig, "serviceTier": r.ServiceTier} {
		if v != nil {
			meta[k] = v
		}
	}
	event("metadata", meta)
	return out.Bytes(), ok
}

// mustField returns the JSON value at path in body, or nil.
func mustField(body []byte, path ...string) []byte {
	v := json.RawMessage(body)
	for _, p := range path {
		var m map[string]json.RawMessage
		if json.Unmarshal(v, &m) != nil {
			return nil
		}
		v = m[p]
	}
	return v
}

// streamBlock is one content block being put together from a stream.
type streamBlock struct {
	kind      string // "text", "toolUse", "reasoning", "redacted"
	text      bytes.Buffer
	id, name  string
	signature string
	redacted  []byte
}

// ConverseReplyFromStream returns the Converse reply body a stored
// ConverseStream (its encoded frames) amounts to, and false when the
// stream holds something the conversion does not carry or did not end.
func ConverseReplyFromStream(frames []byte) ([]byte, bool) {
	fr := stream.NewReader(bytes.NewReader(frames))
	defer fr.Release()
	var (
		role   string
		blocks []*streamBlock
		stop   map[string]json.RawMessage
		meta   map[string]json.RawMessage
	)
	block := func(i int, kind string) *streamBlock {
		if i < 0 || i > len(blocks) || i > 1<<12 {
			return nil
		}
		if i == len(blocks) {
			blocks = append(blocks, &streamBlock{kind: kind})
		}
		b := blocks[i]
		if b.kind != kind && !(b.kind == "reasoning" && kind == "redacted") {
			return nil
		}
		return b
	}
	for {
		f, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil || !f.IsEvent() {
			return nil, false
		}
		p := f.Payload
		switch string(f.EventType) {
		case "messageStart":
			var m struct{ Role string }
			if json.Unmarshal(p, &m) != nil || !known(p, "role", "p") {
				return nil, false
			}
			role = m.Role
		case "contentBlockStart":
			var m struct {
				ContentBlockIndex int
				Start             struct {
					ToolUse *struct{ ToolUseID, Name string }
				}
			}
			if json.Unmarshal(p, &m) != nil || m.Start.ToolUse == nil || !known(mustField(p, "start"), "toolUse") {
				return nil, false
			}
			b := block(m.ContentBlockIndex, "toolUse")
			if b == nil {
				return nil, false
			}
			b.id, b.name = m.Start.ToolUse.ToolUseID, m.Start.ToolUse.Name
		case "contentBlockDelta":
			var m struct {
				ContentBlockIndex int
				Delta             struct {
					Text             *string
					ToolUse          *struct{ Input string }
					ReasoningContent *struct {
						Text            *string
						Signature       *string
						RedactedContent []byte
					}
				}
			}
			if json.Unmarshal(p, &m) != nil || !known(mustField(p, "delta"), "text", "toolUse", "reasoningContent") {
				return nil, false
			}
			d := m.Delta
			var b *streamBlock
			switch {
			case d.Text != nil:
				if b = block(m.ContentBlockIndex, "text"); b != nil {
					b.text.WriteString(*d.Text)
				}
			case d.ToolUse != nil:
				if b = block(m.ContentBlockIndex, "toolUse"); b != nil {
					b.text.WriteString(d.ToolUse.Input)
				}
			case d.ReasoningContent != nil && d.ReasoningContent.RedactedContent != nil:
				if b = block(m.ContentBlockIndex, "redacted"); b != nil {
					b.kind, b.redacted = "redacted", append(b.redacted, d.ReasoningContent.RedactedContent...)
				}
			case d.ReasoningContent != nil:
				if b = block(m.ContentBlockIndex, "reasoning"); b != nil {
					if rc := d.ReasoningContent; rc.Text != nil {
						b.text.WriteString(*rc.Text)
					} else if rc.Signature != nil {
						b.signature += *rc.Signature
					}
				}
			}
			if b == nil {
				return nil, false
			}
		case "contentBlockStop":
		case "messageStop":
			if json.Unmarshal(p, &stop) != nil || !known(p, "stopReason", "additionalModelResponseFields", "p") {
				return nil, false
			}
		case "metadata":
			if json.Unmarshal(p, &meta) != nil || !known(p, "usage", "metrics", "trace", "performanceConfig", "serviceTier", "p") {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	if role == "" || stop == nil || meta == nil {
		return nil, false // not a whole stream
	}
	content := make([]any, 0, len(blocks))
	for _, b := range blocks {
		switch b.kind {
		case "text":
			content = append(content, map[string]string{"text": b.text.String()})
		case "toolUse":
			input := json.RawMessage(b.text.Bytes())
			if len(input) == 0 {
				input = json.RawMessage("{}")
			}
			if !json.Valid(input) {
				return nil, false
			}
			content = append(content, map[string]any{"toolUse": map[string]any{"toolUseId": b.id, "name": b.name, "input": input}})
		case "reasoning":
			rt := map[string]string{"text": b.text.String()}
			if b.signature != "" {
				rt["signature"] = b.signature
			}
			content = append(content, map[string]any{"reasoningContent": map[string]any{"reasoningText": rt}})
		case "redacted":
			content = append(content, map[string]any{"reasoningContent": map[string][]byte{"redactedContent": b.redacted}})
		}
	}
	reply := map[string]any{"output": map[string]any{"message": map[string]any{"role": role, "content": content}}}
	for k, v := range stop {
		if k != "p" {
			reply[k] = v
		}
	}
	for k, v := range meta {
		if k != "p" {
			reply[k] = v
		}
	}
	b, err := json.Marshal(reply)
	return b, err == nil
}
