package emulator

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/keel-run/keel/internal/emulator/reply"
)

// converseBody is the part of a Converse / ConverseStream request the
// emulator reads. Tool use, images, documents and guardrails are accepted and
// ignored; only text counts as tokens.
type converseBody struct {
	Messages        []converseMessage `json:"messages"`
	System          []converseBlock   `json:"system"`
	InferenceConfig *inferenceConfig  `json:"inferenceConfig"`
}

type inferenceConfig struct {
	MaxTokens     *int     `json:"maxTokens"`
	StopSequences []string `json:"stopSequences"`
}

type converseMessage struct {
	Role    string          `json:"role"`
	Content []converseBlock `json:"content"`
}

type converseBlock struct {
	Text       *string     `json:"text"`
	ToolResult *toolResult `json:"toolResult"`
	CachePoint *struct{}   `json:"cachePoint"` // marks the end of a cacheable prefix
}

type toolResult struct {
	Content []toolResultBlock `json:"content"`
}

type toolResultBlock struct {
	Text *string `json:"text"`
}

func (b *converseBody) reset() { *b = converseBody{} }

// decodeConverse reads a Converse body into c, as json.Unmarshal would but
// with exact key matching, in one pass and without reflection.
func decodeConverse(body []byte, c *converseBody) error {
	r := newJSONReader(body)
	if r.Null() {
		r.End()
		return r.Err()
	}
	r.Object(func(key []byte) {
		switch string(key) {
		case "messages":
			if r.Null() {
				c.Messages = nil
				return
			}
			c.Messages = c.Messages[:0]
			r.Array(func() {
				var m converseMessage
				if !r.Null() {
					r.Object(func(key []byte) {
						switch string(key) {
						case "role":
							if !r.Null() {
								m.Role = r.str()
							}
						case "content":
							m.Content = decodeBlocks(&r)
						}
					})
				}
				c.Messages = append(c.Messages, m)
			})
		case "system":
			c.System = decodeBlocks(&r)
		case "inferenceConfig":
			if r.Null() {
				c.InferenceConfig = nil
				return
			}
			if c.InferenceConfig == nil {
				c.InferenceConfig = &inferenceConfig{}
			}
			ic := c.InferenceConfig
			r.Object(func(key []byte) {
				switch string(key) {
				case "maxTokens":
					if r.Null() {
						ic.MaxTokens = nil
						return
					}
					v := r.Int()
					ic.MaxTokens = &v
				case "stopSequences":
					ic.StopSequences = r.strings(nil)
				}
			})
		}
	})
	r.End()
	return r.Err()
}

// decodeBlocks reads a list of content blocks, or null.
func decodeBlocks(r *jsonReader) []converseBlock {
	if r.Null() {
		return nil
	}
	blocks := []converseBlock{}
	r.Array(func() {
		var b converseBlock
		if !r.Null() {
			r.Object(func(key []byte) {
				switch string(key) {
				case "text":
					if r.Null() {
						b.Text = nil
						return
					}
					s := r.str()
					b.Text = &s
				case "cachePoint":
					if r.Null() {
						b.CachePoint = nil
						return
					}
					r.Object(func([]byte) {})
					b.CachePoint = &struct{}{}
				case "toolResult":
					if r.Null() {
						b.ToolResult = nil
						return
					}
					tr := &toolResult{}
					r.Object(func(key []byte) {
						if string(key) != "content" {
							return
						}
						if r.Null() {
							tr.Content = nil
							return
						}
						tr.Content = []toolResultBlock{}
						r.Array(func() {
							var t toolResultBlock
							if !r.Null() {
								r.Object(func(key []byte) {
									if string(key) != "text" {
										return
									}
									if r.Null() {
										t.Text = nil
										return
									}
									s := r.str()
									t.Text = &s
								})
							}
							tr.Content = append(tr.Content, t)
						})
					})
					b.ToolResult = tr
				}
			})
		}
		blocks = append(blocks, b)
	})
	return blocks
}

// blockText is the text a block contributes to the conversation.
func (c *converseBlock) blockText() (string, bool) {
	if c.Text != nil {
		return *c.Text, true
	}
	if c.ToolResult != nil {
		var sb strings.Builder
		for _, t := range c.ToolResult.Content {
			if t.Text != nil {
				sb.WriteString(*t.Text)
			}
		}
		return sb.String(), false
	}
	return "", false
}

// parseConverse reads a Converse request body (also the "converse" input of
// CountTokens) into x.msgs. It reports false when it answered with an error.
func (x *exchange) parseConverse(body []byte) (system string, maxTokens int, stops []string, ok bool) {
	c := &x.conv
	c.reset()
	if err := decodeConverse(body, c); err != nil {
		x.fail(codeValidation, "Malformed input request, please reformat your input and try again.")
		return "", 0, nil, false
	}
	for i := range c.System {
		if t, isText := c.System[i].blockText(); isText {
			system += t
		}
		if c.System[i].CachePoint != nil {
			x.cache = cachePos{set: true, msg: -1, at: len(system)}
		}
	}
	if len(c.Messages) == 0 {
		x.fail(codeValidation, "A conversation must start with a user message. Try again with a conversation that starts with a user message.")
		return "", 0, nil, false
	}
	for i := range c.Messages {
		m := &c.Messages[i]
		switch {
		case m.Role != "user" && m.Role != "assistant":
			x.fail(codeValidation, fmt.Sprintf("1 validation error detected: Value '%s' at 'messages.%d.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]", m.Role, i+1))
			return "", 0, nil, false
		case i == 0 && m.Role != "user":
			x.fail(codeValidation, "A conversation must start with a user message. Try again with a conversation that starts with a user message.")
			return "", 0, nil, false
		case i > 0 && m.Role == c.Messages[i-1].Role:
			x.fail(codeValidation, "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.")
			return "", 0, nil, false
		case len(m.Content) == 0:
			x.fail(codeValidation, fmt.Sprintf("The content field in the Message object at messages.%d is empty. Add a ContentBlock object to the content field and try again.", i))
			return "", 0, nil, false
		}
		var text string
		for j := range m.Content {
			t, isText := m.Content[j].blockText()
			if isText && strings.TrimSpace(t) == "" {
				x.fail(codeValidation, fmt.Sprintf("The text field in the ContentBlock object at messages.%d.content.%d is blank. Add text to the text field, and try again.", i, j))
				return "", 0, nil, false
			}
			if j == 0 {
				text = t
			} else {
				text += t
			}
			if m.Content[j].CachePoint != nil {
				x.cache = cachePos{set: true, msg: i, at: len(text)}
			}
		}
		x.msgs = append(x.msgs, reply.Message{Role: m.Role, Text: text})
	}
	if ic := c.InferenceConfig; ic != nil {
		stops = ic.StopSequences
		if ic.MaxTokens != nil {
			maxTokens = *ic.MaxTokens
			if maxTokens < 1 {
				x.fail(codeValidation, fmt.Sprintf("1 validation error detected: Value '%d' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1", maxTokens))
				return "", 0, nil, false
			}
		}
	}
	return system, maxTokens, stops, true
}

// checkConverseLimits applies the model-specific checks of Converse: the
// output limit and, for Anthropic models, the prefill rule.
func (x *exchange) checkConverseLimits(maxTokens int) bool {
	m := x.tgt.model
	if maxTokens > m.MaxOutputTokens {
		x.fail(codeValidation, fmt.Sprintf("The maximum tokens you requested exceeds the model limit of %d. Try again with a maximum tokens value that is lower than %d.", m.MaxOutputTokens, m.MaxOutputTokens))
		return false
	}
	if m.Format == FormatAnthropic {
		if n := len(x.msgs); n > 0 && x.msgs[n-1].Role == "assistant" && endsWithSpace(x.msgs[n-1].Text) {
			x.fail(codeValidation, "The model returned the following errors: messages: final assistant content cannot end with trailing whitespace")
			return false
		}
	}
	return x.checkPrefill()
}

func (x *exchange) serveConverse() {
	system, maxTokens, stops, ok := x.parseConverse(x.body)
	if !ok || !x.checkConverseLimits(maxTokens) {
		return
	}
	g, ok := x.generate(system, maxTokens, stops)
	if !ok {
		return
	}
	if x.op == OpConverseStream {
		x.converseStream(&g)
		return
	}
	if !x.waitReply(&g) {
		return
	}
	r := &g.reply
	b := x.out[:0]
	b = append(b, `{"metrics":{"latencyMs":`...)
	b = strconv.AppendInt(b, millis(x.elapsed()), 10)
	b = append(b, `},"output":{"message":{"content":[{"text":`...)
	b = appendJSONString(b, r.Text)
	b = append(b, `}],"role":"assistant"}},"stopReason":`...)
	b = appendJSONString(b, string(r.StopReason))
	b = x.appendStopSequenceField(b, r)
	b = x.appendTierField(b)
	b = append(b, `,"usage":`...)
	b = appendConverseUsage(b, &g)
	b = append(b, '}')
	x.out = b
	x.settle(&g, r.OutputTokens) // before the client can see the end
	x.writeJSON(b)
}

// appendStopSequenceField adds the stop sequence an Anthropic model stopped
// at, which Converse reports among the model's additional response fields.
func (x *exchange) appendStopSequenceField(b []byte, r *reply.Reply) []byte {
	if r.StopReason != reply.StopSequence || x.tgt.model.Format != FormatAnthropic {
		return b
	}
	b = append(b, `,"additionalModelResponseFields":{"stop_sequence":`...)
	b = appendJSONString(b, r.StopSequence)
	return append(b, '}')
}

func appendConverseUsage(b []byte, g *generation) []byte {
	b = append(b, '{')
	if g.cached {
		b = appendIntField(b, "cacheReadInputTokens", int64(g.cacheRead))
		b = appendIntField(b, "cacheWriteInputTokens", int64(g.cacheWrite))
	}
	b = appendIntField(b, "inputTokens", int64(g.input))
	b = appendIntField(b, "outputTokens", int64(g.reply.OutputTokens))
	b = appendIntField(b, "totalTokens", int64(g.total()))
	return append(b, '}')
}

// writeJSON sends a complete 200 JSON response, or breaks it as the fault
// plan says.
func (x *exchange) writeJSON(b []byte) {
	h := x.w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	x.setTierHeader()
	if x.breakBody(b) {
		return
	}
	x.w.WriteHeader(200)
	x.wroteHeader = true
	x.w.Write(b)
}

// converseStream sends a ConverseStream reply: messageStart, one
// contentBlockDelta per token, contentBlockStop, messageStop, metadata.
// As Bedrock does for text, no contentBlockStart is sent.
func (x *exchange) converseStream(g *generation) {
	r := &g.reply
	tokens := r.OutputTokens
	total := 3 + tokens
	if tokens > 0 {
		total++ // contentBlockStop
	}
	st := x.beginStream(total, false, g)
	defer st.settle()

	if !x.waitToken(g.pace, 0) {
		return
	}
	b := append(x.inner[:0], `{"p":`...)
	b = appendJSONString(b, padding(0))
	b = append(b, `,"role":"assistant"}`...)
	x.inner = b
	if !st.event("messageStart", b, 0) {
		return
	}
	text := r.Text
	for i := 0; len(text) > 0; i++ {
		if !x.waitToken(g.pace, i) {
			return
		}
		n := reply.Next(text)
		b = append(x.inner[:0], `{"contentBlockIndex":0,"delta":{"text":`...)
		b = appendJSONString(b, text[:n])
		b = append(b, `},"p":`...)
		b = appendJSONString(b, padding(i+1))
		b = append(b, '}')
		x.inner = b
		if !st.event("contentBlockDelta", b, 1) {
			return
		}
		text = text[n:]
	}
	if tokens > 0 {
		b = append(x.inner[:0], `{"contentBlockIndex":0,"p":`...)
		b = appendJSONString(b, padding(tokens+1))
		b = append(b, '}')
		x.inner = b
		if !st.event("contentBlockStop", b, 0) {
			return
		}
	}
	b = append(x.inner[:0], `{"p":`...)
	b = appendJSONString(b, padding(tokens+2))
	b = append(b, `,"stopReason":`...)
	b = appendJSONString(b, string(r.StopReason))
	b = x.appendStopSequenceField(b, r)
	b = append(b, '}')
	x.inner = b
	if !st.event("messageStop", b, 0) {
		return
	}
	b = append(x.inner[:0], `{"metrics":{"latencyMs":`...)
	b = strconv.AppendInt(b, millis(x.elapsed()), 10)
	b = append(b, `},"p":`...)
	b = appendJSONString(b, padding(tokens+3))
	b = x.appendTierField(b)
	b = append(b, `,"usage":`...)
	b = appendConverseUsage(b, g)
	b = append(b, '}')
	x.inner = b
	if !st.event("metadata", b, 0) {
		return
	}
	st.end()
}
