package emulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/emulator/reply"
)

// invokeParams is what InvokeModel bodies of every format reduce to; the
// conversation itself goes to x.msgs.
type invokeParams struct {
	system    string
	maxTokens int // 0: the format's default
	stops     []string
}

// Default output limits of the formats whose body may leave it out.
const (
	llamaDefaultMaxGen   = 512
	titanDefaultMaxCount = 512
)

// parseInvoke reads an InvokeModel body in the model's format (also the
// "invokeModel" input of CountTokens). It reports false when it answered.
func (x *exchange) parseInvoke(body []byte) (invokeParams, bool) {
	switch x.tgt.model.Format {
	case FormatAnthropic:
		return x.parseAnthropic(body)
	case FormatNova:
		return x.parseNova(body)
	case FormatLlama:
		return x.parseLlama(body)
	default:
		return x.parseTitan(body)
	}
}

func (x *exchange) malformed(detail string) {
	x.fail(codeValidation, "Malformed input request: "+detail+", please reformat your input and try again.")
}

// anthropicRequest is the part of an Anthropic Messages body the emulator
// reads; images, tools and thinking are accepted and ignored.
type anthropicRequest struct {
	version     *string
	maxTokens   *int
	messages    []anthropicMessage
	hasMessages bool // the key is present and not null
	system      anthropicContent
	stops       []string
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
}

// decodeAnthropic reads an Anthropic Messages body in one pass, keys
// matched exactly.
func decodeAnthropic(body []byte, a *anthropicRequest) error {
	r := jsonReader{b: body}
	if r.null() {
		r.end()
		return r.err
	}
	r.object(func(key []byte) {
		switch string(key) {
		case "anthropic_version":
			if r.null() {
				a.version = nil
				return
			}
			v := r.str()
			a.version = &v
		case "max_tokens":
			if r.null() {
				a.maxTokens = nil
				return
			}
			v := r.integer()
			a.maxTokens = &v
		case "messages":
			a.messages = a.messages[:0]
			if a.hasMessages = !r.null(); !a.hasMessages {
				return
			}
			r.array(func() {
				var m anthropicMessage
				if !r.null() {
					r.object(func(key []byte) {
						switch string(key) {
						case "role":
							if !r.null() {
								m.role = r.str()
							}
						case "content":
							m.content = decodeAnthropicContent(&r)
						default:
							r.skip()
						}
					})
				}
				a.messages = append(a.messages, m)
			})
		case "system":
			a.system = decodeAnthropicContent(&r)
		case "stop_sequences":
			a.stops = r.strings(nil)
		default:
			r.skip()
		}
	})
	r.end()
	return r.err
}

// decodeAnthropicContent reads a string, a list of blocks, or null; anything
// else is an error. A tool_result block contributes the text of its own
// content, which is read only once the block's type is known.
func decodeAnthropicContent(r *jsonReader) anthropicContent {
	var c anthropicContent
	switch r.next() {
	case 'n':
		r.null()
	case '"':
		c.text = r.str()
		c.blocks = 1
		c.blank = strings.TrimSpace(c.text) == ""
	case '[':
		r.array(func() {
			c.blocks++
			if r.null() {
				return
			}
			var typ string
			var text *string
			var inner []byte
			cached := false
			r.object(func(key []byte) {
				switch string(key) {
				case "cache_control":
					cached = !r.null()
					if cached {
						r.object(func([]byte) { r.skip() })
					}
				case "type":
					if !r.null() {
						typ = r.str()
					}
				case "text":
					if r.null() {
						text = nil
						return
					}
					s := r.str()
					text = &s
				case "content":
					r.next()
					start := r.i
					r.skip()
					inner = r.b[start:r.i]
				default:
					r.skip()
				}
			})
			switch {
			case text != nil:
				if strings.TrimSpace(*text) == "" {
					c.blank = true
				}
				c.text += *text
			case typ == "tool_result" && inner != nil && r.err == nil:
				sub := jsonReader{b: inner, depth: r.depth}
				t := decodeAnthropicContent(&sub)
				if sub.err != nil {
					r.fail("tool_result content: " + sub.err.Error())
					return
				}
				c.text += t.text
			}
			if cached {
				c.cached, c.cacheAt = true, len(c.text)
			}
		})
	default:
		r.fail("content must be a string or a list of content blocks")
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
	case *b.version != "bedrock-2023-05-31":
		x.malformed("#/anthropic_version: " + strconv.Quote(*b.version) + " is not bedrock-2023-05-31")
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
	p.stops = b.stops
	return p, true
}

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
			if p.maxTokens < 1 || p.maxTokens > x.tgt.model.MaxOutputTokens {
				x.malformed(fmt.Sprintf("#/inferenceConfig/maxTokens: %d is not between 1 and %d", p.maxTokens, x.tgt.model.MaxOutputTokens))
				return p, false
			}
		}
	}
	return p, true
}

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
		if p.maxTokens < 1 || p.maxTokens > x.tgt.model.MaxOutputTokens {
			x.malformed(fmt.Sprintf("#/max_gen_len: %d is not between 1 and %d", p.maxTokens, x.tgt.model.MaxOutputTokens))
			return p, false
		}
	}
	x.msgs = append(x.msgs, reply.Message{Role: "user", Text: *b.Prompt})
	return p, true
}

func (x *exchange) parseTitan(body []byte) (invokeParams, bool) {
	p := invokeParams{maxTokens: titanDefaultMaxCount}
	var b struct {
		InputText            *string `json:"inputText"`
		TextGenerationConfig *struct {
			MaxTokenCount *int     `json:"maxTokenCount"`
			StopSequences []string `json:"stopSequences"`
		} `json:"textGenerationConfig"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		x.malformed("#: expected a JSON object (" + err.Error() + ")")
		return p, false
	}
	if b.InputText == nil {
		x.malformed("#: required key [inputText] not found")
		return p, false
	}
	if c := b.TextGenerationConfig; c != nil {
		p.stops = c.StopSequences
		if c.MaxTokenCount != nil {
			p.maxTokens = *c.MaxTokenCount
			if p.maxTokens < 1 || p.maxTokens > x.tgt.model.MaxOutputTokens {
				x.malformed(fmt.Sprintf("#/textGenerationConfig/maxTokenCount: %d is not between 1 and %d", p.maxTokens, x.tgt.model.MaxOutputTokens))
				return p, false
			}
		}
	}
	x.msgs = append(x.msgs, reply.Message{Role: "user", Text: *b.InputText})
	return p, true
}

func (x *exchange) serveInvoke() {
	p, ok := x.parseInvoke(x.body)
	if !ok {
		return
	}
	g, ok := x.generate(p.system, p.maxTokens, p.stops)
	if !ok {
		return
	}
	if x.op == OpInvokeStream {
		x.invokeStream(&g)
		return
	}
	if !x.waitToken(g.pace, g.reply.OutputTokens-1) { // the last token's time
		x.settle(&g, 0)
		return
	}
	latency := x.elapsed()
	r := &g.reply
	b := x.out[:0]
	switch x.tgt.model.Format {
	case FormatAnthropic:
		b = x.appendAnthropicMessage(b, &g)
	case FormatNova:
		b = append(b, `{"output":{"message":{"content":[{"text":`...)
		b = appendJSONString(b, r.Text)
		b = append(b, `}],"role":"assistant"}},"stopReason":`...)
		b = appendJSONString(b, string(r.StopReason))
		b = append(b, `,"usage":`...)
		b = appendNovaUsage(b, &g)
		b = append(b, '}')
	case FormatLlama:
		b = appendStringField(append(b, '{'), "generation", r.Text)
		b = appendIntField(b, "prompt_token_count", int64(r.InputTokens))
		b = appendIntField(b, "generation_token_count", int64(r.OutputTokens))
		b = appendStringField(b, "stop_reason", llamaStop(r.StopReason))
		b = append(b, '}')
	default:
		b = appendIntField(append(b, '{'), "inputTextTokenCount", int64(r.InputTokens))
		b = append(b, `,"results":[{`...)
		b = appendIntField(b, "tokenCount", int64(r.OutputTokens))
		b = appendStringField(b, "outputText", r.Text)
		b = appendStringField(b, "completionReason", titanStop(r.StopReason))
		b = append(b, `}]}`...)
	}
	x.out = b
	x.setUsageHeaders(&g, latency)
	x.settle(&g, r.OutputTokens) // before the client can see the end
	x.writeJSON(b)
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

func appendNovaUsage(b []byte, g *generation) []byte {
	b = appendIntField(append(b, '{'), "inputTokens", int64(g.input))
	b = appendIntField(b, "outputTokens", int64(g.reply.OutputTokens))
	b = appendIntField(b, "totalTokens", int64(g.total()))
	b = appendIntField(b, "cacheReadInputTokenCount", int64(g.cacheRead))
	b = appendIntField(b, "cacheWriteInputTokenCount", int64(g.cacheWrite))
	return append(b, '}')
}

func llamaStop(s reply.StopReason) string {
	if s == reply.MaxTokens {
		return "length"
	}
	return "stop"
}

func titanStop(s reply.StopReason) string {
	switch s {
	case reply.MaxTokens:
		return "LENGTH"
	case reply.StopSequence:
		return "STOP_CRITERIA_MET"
	}
	return "FINISH"
}

// invokeStream sends an InvokeModelWithResponseStream reply: "chunk" events
// whose bytes are the model's own stream events, base64-encoded, the last one
// carrying amazon-bedrock-invocationMetrics.
func (x *exchange) invokeStream(g *generation) {
	r := &g.reply
	n := r.OutputTokens
	var total int
	switch x.tgt.model.Format {
	case FormatAnthropic:
		total = 5 + n
	case FormatNova:
		total = 4 + n
	default:
		total = max(n, 1)
	}
	cs := chunkStreamer{streamer: x.beginStream(total, true, g)}
	defer cs.settle()
	if !x.waitToken(g.pace, 0) {
		return
	}
	switch x.tgt.model.Format {
	case FormatAnthropic:
		x.streamAnthropic(g, &cs)
	case FormatNova:
		x.streamNova(g, &cs)
	default:
		x.streamTokens(g, &cs)
	}
}

// chunkStreamer wraps model events into "chunk" events.
type chunkStreamer struct {
	streamer
	firstByte time.Duration // when the first chunk went out
}

// chunk sends x.inner as one chunk event carrying the given number of tokens.
func (cs *chunkStreamer) chunk(tokens int) bool {
	x := cs.x
	if cs.sent == 0 {
		cs.firstByte = x.elapsed()
	}
	b := append(x.out[:0], `{"bytes":"`...)
	b = base64.StdEncoding.AppendEncode(b, x.inner)
	b = append(b, `","p":`...)
	b = appendJSONString(b, padding(cs.sent))
	b = append(b, '}')
	x.out = b
	return cs.event("chunk", b, tokens)
}

func (x *exchange) appendInvocationMetrics(b []byte, g *generation, firstByte time.Duration) []byte {
	b = append(b, `"amazon-bedrock-invocationMetrics":{"inputTokenCount":`...)
	b = strconv.AppendInt(b, int64(g.input), 10)
	b = append(b, `,"outputTokenCount":`...)
	b = strconv.AppendInt(b, int64(g.reply.OutputTokens), 10)
	b = append(b, `,"invocationLatency":`...)
	b = strconv.AppendInt(b, millis(x.elapsed()), 10)
	b = append(b, `,"firstByteLatency":`...)
	b = strconv.AppendInt(b, millis(firstByte), 10)
	if g.cached {
		b = appendIntField(b, "cacheReadInputTokenCount", int64(g.cacheRead))
		b = appendIntField(b, "cacheWriteInputTokenCount", int64(g.cacheWrite))
	}
	return append(b, '}')
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
	text := r.Text
	for i := 0; len(text) > 0; i++ {
		if !x.waitToken(g.pace, i) {
			return
		}
		k := reply.Next(text)
		b = append(x.inner[:0], `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`...)
		b = appendJSONString(b, text[:k])
		b = append(b, `}}`...)
		x.inner = b
		if !cs.chunk(1) {
			return
		}
		text = text[k:]
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

func (x *exchange) streamNova(g *generation, cs *chunkStreamer) {
	r := &g.reply
	x.inner = append(x.inner[:0], `{"messageStart":{"role":"assistant"}}`...)
	if !cs.chunk(0) {
		return
	}
	text := r.Text
	for i := 0; len(text) > 0; i++ {
		if !x.waitToken(g.pace, i) {
			return
		}
		k := reply.Next(text)
		b := append(x.inner[:0], `{"contentBlockDelta":{"delta":{"text":`...)
		b = appendJSONString(b, text[:k])
		b = append(b, `},"contentBlockIndex":0}}`...)
		x.inner = b
		if !cs.chunk(1) {
			return
		}
		text = text[k:]
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

// streamTokens sends the Llama and Titan streams: one chunk per token, the
// last carrying the stop reason and invocation metrics.
func (x *exchange) streamTokens(g *generation, cs *chunkStreamer) {
	r := &g.reply
	llama := x.tgt.model.Format == FormatLlama
	text := r.Text
	n := r.OutputTokens
	for i := 0; i < max(n, 1); i++ {
		if !x.waitToken(g.pace, i) {
			return
		}
		k := 0
		if len(text) > 0 {
			k = reply.Next(text)
		}
		last := i == max(n, 1)-1
		b := append(x.inner[:0], '{')
		if llama {
			b = appendStringField(b, "generation", text[:k])
			if i == 0 {
				b = appendIntField(b, "prompt_token_count", int64(r.InputTokens))
			} else {
				b = append(b, `,"prompt_token_count":null`...)
			}
			b = appendIntField(b, "generation_token_count", int64(min(i+1, n)))
			if last {
				b = appendStringField(b, "stop_reason", llamaStop(r.StopReason))
			} else {
				b = append(b, `,"stop_reason":null`...)
			}
		} else {
			b = appendStringField(b, "outputText", text[:k])
			b = append(b, `,"index":0`...)
			b = appendIntField(b, "totalOutputTextTokenCount", int64(min(i+1, n)))
			if last {
				b = appendStringField(b, "completionReason", titanStop(r.StopReason))
			} else {
				b = append(b, `,"completionReason":null`...)
			}
			b = appendIntField(b, "inputTextTokenCount", int64(r.InputTokens))
		}
		if last {
			b = append(b, ',')
			first := cs.firstByte
			if cs.sent == 0 {
				first = x.elapsed()
			}
			b = x.appendInvocationMetrics(b, g, first)
		}
		b = append(b, '}')
		x.inner = b
		carried := 0
		if k > 0 {
			carried = 1
		}
		if !cs.chunk(carried) {
			return
		}
		text = text[k:]
	}
	cs.end()
}
