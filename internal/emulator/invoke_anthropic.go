package emulator

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/emulator/reply"
)

// anthropicRequest is the part of an Anthropic Messages body the emulator
// reads; images, tools and thinking are accepted and ignored.
type anthropicRequest struct {
	version     *string
	maxTokens   *int
	messages    []anthropicMessage
	hasMessages bool // the key is present and not null
	system      anthropicContent
	stops       []string
	// sampling names the first of temperature, top_p and top_k the body
	// sets (not null), "" for none.
	sampling string
}

type anthropicMessage struct {
	role    string
	content anthropicContent
}

// anthropicContent is a content (or system) value reduced to its text:
// blocks counts its blocks (a plain string is one), blank reports a text
// block with nothing but whitespace in it.
type anthropicContent struct {
	text   string
	blocks int
	blank  bool
	// cached reports a block with cache_control; cacheAt is the length of
	// the text up to the end of the last such block.
	cached  bool
	cacheAt int
	// document is one more than the index of the first document block,
	// cited one more than that of the first block carrying a non-empty
	// citations array (itself or inside a search_result's content); zero
	// for none.
	document, cited int
}

// decodeAnthropic reads an Anthropic Messages body in one pass, keys
// matched exactly.
func decodeAnthropic(body []byte, a *anthropicRequest) error {
	r := newJSONReader(body)
	if r.Null() {
		r.End()
		return r.Err()
	}
	r.Object(func(key []byte) {
		switch string(key) {
		case "anthropic_version":
			if r.Null() {
				a.version = nil
				return
			}
			v := r.str()
			a.version = &v
		case "max_tokens":
			if r.Null() {
				a.maxTokens = nil
				return
			}
			v := r.Int()
			a.maxTokens = &v
		case "messages":
			a.messages = a.messages[:0]
			if a.hasMessages = !r.Null(); !a.hasMessages {
				return
			}
			r.Array(func() {
				var m anthropicMessage
				if !r.Null() {
					r.Object(func(key []byte) {
						switch string(key) {
						case "role":
							if !r.Null() {
								m.role = r.str()
							}
						case "content":
							m.content = decodeAnthropicContent(&r)
						}
					})
				}
				a.messages = append(a.messages, m)
			})
		case "system":
			a.system = decodeAnthropicContent(&r)
		case "stop_sequences":
			a.stops = r.strings(nil)
		case "temperature", "top_p", "top_k":
			if !r.Null() {
				r.Skip()
				if a.sampling == "" {
					a.sampling = string(key)
				}
			}
		}
	})
	r.End()
	return r.Err()
}

// decodeAnthropicContent reads a string, a list of blocks, or null; anything
// else is an error. A tool_result block contributes the text of its own
// content, which is read only once the block's type is known.
func decodeAnthropicContent(r *jsonReader) anthropicContent {
	var c anthropicContent
	switch r.Peek() {
	case 'n':
		r.Null()
	case '"':
		c.text = r.str()
		c.blocks = 1
		c.blank = strings.TrimSpace(c.text) == ""
	case '[':
		r.Array(func() {
			c.blocks++
			if r.Null() {
				return
			}
			var typ string
			var text *string
			var inner []byte
			cached, cites := false, false
			r.Object(func(key []byte) {
				switch string(key) {
				case "citations":
					// A list on text (the citations made); an object on a
					// document or search result ({"enabled": true}).
					if r.Peek() != '[' {
						r.Skip()
						return
					}
					r.Array(func() { cites = true; r.Skip() })
				case "cache_control":
					cached = !r.Null()
					if cached {
						r.Object(func([]byte) {})
					}
				case "type":
					if !r.Null() {
						typ = r.str()
					}
				case "text":
					if r.Null() {
						text = nil
						return
					}
					s := r.str()
					text = &s
				case "content":
					inner = r.Value()
				}
			})
			if typ == "document" && c.document == 0 {
				c.document = c.blocks
			}
			if cites && c.cited == 0 {
				c.cited = c.blocks
			}
			switch {
			case typ == "search_result" && inner != nil && !r.Failed():
				sub := jsonReader{Scanner: r.Sub(inner)}
				if t := decodeAnthropicContent(&sub); sub.Err() == nil && t.cited > 0 && c.cited == 0 {
					c.cited = c.blocks
				}
			case text != nil:
				if strings.TrimSpace(*text) == "" {
					c.blank = true
				}
				c.text += *text
			case typ == "tool_result" && inner != nil && !r.Failed():
				sub := jsonReader{Scanner: r.Sub(inner)}
				t := decodeAnthropicContent(&sub)
				if err := sub.Err(); err != nil {
					r.Fail("tool_result content: " + err.Error())
					return
				}
				c.text += t.text
			}
			if cached {
				c.cached, c.cacheAt = true, len(c.text)
			}
		})
	default:
		r.Fail("content must be a string or a list of content blocks")
	}
	return c
}

func (x *exchange) parseAnthropic(body []byte) (invokeParams, bool) {
	var p invokeParams
	var b anthropicRequest
	if err := decodeAnthropic(body, &b); err != nil {
		x.malformed("#: expected a JSON object (" + err.Error() + ")")
		return p, false
	}
	m := x.tgt.model
	switch {
	case b.version == nil:
		x.malformed("#: required key [anthropic_version] not found")
		return p, false
	case !x.checkAnthropicVersion(*b.version):
		return p, false
	case b.maxTokens == nil && x.op != OpCountTokens:
		x.malformed("#: required key [max_tokens] not found")
		return p, false
	case !b.hasMessages:
		x.malformed("#: required key [messages] not found")
		return p, false
	}
	if b.maxTokens != nil {
		p.maxTokens = *b.maxTokens
		switch {
		case p.maxTokens < 1:
			x.fail(codeValidation, "max_tokens: Input should be greater than or equal to 1")
			return p, false
		case p.maxTokens > m.MaxOutputTokens:
			x.fail(codeValidation, fmt.Sprintf("max_tokens: %d > %d, which is the maximum allowed number of output tokens for %s", p.maxTokens, m.MaxOutputTokens, wireName(m.ID)))
			return p, false
		}
	}
	p.system = b.system.text
	if b.system.cached {
		x.cache = cachePos{set: true, msg: -1, at: b.system.cacheAt}
	}
	if len(b.messages) == 0 {
		x.fail(codeValidation, "messages: at least one message is required")
		return p, false
	}
	last := len(b.messages) - 1
	for i := range b.messages {
		msg := &b.messages[i]
		c := &msg.content
		switch {
		case msg.role != "user" && msg.role != "assistant":
			x.fail(codeValidation, fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i))
			return p, false
		case i == 0 && msg.role != "user":
			x.fail(codeValidation, `messages: first message must use the "user" role`)
			return p, false
		case i > 0 && msg.role == b.messages[i-1].role:
			x.fail(codeValidation, fmt.Sprintf(`messages: roles must alternate between "user" and "assistant", but found multiple %q roles in a row`, msg.role))
			return p, false
		case c.blocks == 0 && !(i == last && msg.role == "assistant"):
			x.fail(codeValidation, fmt.Sprintf("messages.%d: all messages must have non-empty content except for the optional final assistant message", i))
			return p, false
		case c.blank && !(i == last && msg.role == "assistant" && c.text == ""):
			x.fail(codeValidation, "messages: text content blocks must be non-empty")
			return p, false
		case i == last && msg.role == "assistant" && endsWithSpace(c.text):
			x.fail(codeValidation, "messages: final assistant content cannot end with trailing whitespace")
			return p, false
		}
		if c.cached {
			x.cache = cachePos{set: true, msg: i, at: c.cacheAt}
		}
		x.msgs = append(x.msgs, reply.Message{Role: msg.role, Text: c.text})
	}
	if *b.version == bedrock.AnthropicVersion20261021 && !x.checkVersion20261021(&b) {
		return p, false
	}
	if !x.checkPrefill() {
		return p, false
	}
	p.stops = b.stops
	return p, true
}

// checkAnthropicVersion checks a body's anthropic_version against the
// versions Bedrock knows and the ones the model takes, answering as
// Bedrock does when it fails: a malformed-input error for a version no
// model takes, a ValidationException naming what the model takes for one
// it does not.
func (x *exchange) checkAnthropicVersion(v string) bool {
	m := x.tgt.model
	takes := m.AnthropicVersions
	if len(takes) == 0 {
		takes = []string{bedrock.AnthropicVersionBedrock}
	}
	switch {
	case slices.Contains(takes, v):
		return true
	case !slices.Contains(bedrock.AnthropicVersions(), v):
		x.malformed("#/anthropic_version: " + strconv.Quote(v) + " is not a known anthropic_version (" +
			strings.Join(bedrock.AnthropicVersions(), ", ") + ")")
	default:
		x.fail(codeValidation, "anthropic_version "+strconv.Quote(v)+" is not supported by this model ("+wireName(m.ID)+
			"), which takes "+strings.Join(takes, ", ")+".")
	}
	return false
}

// checkVersion20261021 enforces what Messages API version 2026-10-21
// removes: the sampling parameters, a document block in an assistant
// message, and citations on user text.
func (x *exchange) checkVersion20261021(b *anthropicRequest) bool {
	const in = " in API version 2026-10-21"
	if b.sampling != "" {
		x.fail(codeValidation, b.sampling+": this parameter is not supported"+in+".")
		return false
	}
	for i := range b.messages {
		msg := &b.messages[i]
		switch c := &msg.content; {
		case msg.role == "assistant" && c.document > 0:
			x.fail(codeValidation, fmt.Sprintf("messages.%d.content.%d: a document block in an assistant message is not supported%s.", i, c.document-1, in))
			return false
		case msg.role == "user" && c.cited > 0:
			x.fail(codeValidation, fmt.Sprintf("messages.%d.content.%d: citations on user text are not supported%s.", i, c.cited-1, in))
			return false
		}
	}
	return true
}

// appendAnthropicMessage appends a complete Messages API response.
func (x *exchange) appendAnthropicMessage(b []byte, g *generation) []byte {
	r := &g.reply
	b = append(b, `{"id":`...)
	b = x.appendMessageID(b)
	b = append(b, `,"type":"message","role":"assistant","model":`...)
	b = appendJSONString(b, wireName(x.tgt.model.ID))
	b = append(b, `,"content":[{"type":"text","text":`...)
	b = appendJSONString(b, r.Text)
	b = append(b, `}],"stop_reason":`...)
	b = appendJSONString(b, string(r.StopReason))
	b = append(b, `,"stop_sequence":`...)
	b = appendStopSequence(b, r)
	b = append(b, `,"usage":`...)
	b = appendAnthropicUsage(b, g, r.OutputTokens)
	return append(b, '}')
}

// appendAnthropicUsage appends a Messages API usage object.
func appendAnthropicUsage(b []byte, g *generation, output int) []byte {
	b = appendIntField(append(b, '{'), "input_tokens", int64(g.input))
	b = appendIntField(b, "cache_creation_input_tokens", int64(g.cacheWrite))
	b = appendIntField(b, "cache_read_input_tokens", int64(g.cacheRead))
	b = appendIntField(b, "output_tokens", int64(output))
	return append(b, '}')
}

func appendStopSequence(b []byte, r *reply.Reply) []byte {
	if r.StopReason != reply.StopSequence {
		return append(b, "null"...)
	}
	return appendJSONString(b, r.StopSequence)
}

// appendMessageID appends a Messages API id ("msg_bdrk_01..."), derived
// from the request id.
func (x *exchange) appendMessageID(b []byte) []byte {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b = append(b, `"msg_bdrk_01`...)
	var h uint64 = 1469598103934665603
	for i := 0; i < len(x.id); i++ {
		h = (h ^ uint64(x.id[i])) * 1099511628211
	}
	for i := 0; i < 22; i++ {
		if i%10 == 0 {
			h = mix64(h)
		}
		b = append(b, alphabet[h%62])
		h /= 62
	}
	return append(b, '"')
}

func (x *exchange) streamAnthropic(g *generation, cs *chunkStreamer) {
	r := &g.reply
	b := append(x.inner[:0], `{"type":"message_start","message":{"id":`...)
	b = x.appendMessageID(b)
	b = append(b, `,"type":"message","role":"assistant","model":`...)
	b = appendJSONString(b, wireName(x.tgt.model.ID))
	b = append(b, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
	b = appendAnthropicUsage(b, g, min(1, r.OutputTokens))
	b = append(b, `}}`...)
	x.inner = b
	if !cs.chunk(0) {
		return
	}
	x.inner = append(x.inner[:0], `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`...)
	if !cs.chunk(0) {
		return
	}
	if !cs.text(g, `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`, `}}`) {
		return
	}
	x.inner = append(x.inner[:0], `{"type":"content_block_stop","index":0}`...)
	if !cs.chunk(0) {
		return
	}
	b = append(x.inner[:0], `{"type":"message_delta","delta":{"stop_reason":`...)
	b = appendJSONString(b, string(r.StopReason))
	b = append(b, `,"stop_sequence":`...)
	b = appendStopSequence(b, r)
	b = append(b, `},"usage":{"output_tokens":`...)
	b = strconv.AppendInt(b, int64(r.OutputTokens), 10)
	b = append(b, `}}`...)
	x.inner = b
	if !cs.chunk(0) {
		return
	}
	b = append(x.inner[:0], `{"type":"message_stop",`...)
	b = x.appendInvocationMetrics(b, g, cs.firstByte)
	b = append(b, '}')
	x.inner = b
	if !cs.chunk(0) {
		return
	}
	cs.end()
}
