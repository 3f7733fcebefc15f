package emulator

import (
	"encoding/base64"
	"fmt"
	"strconv"
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

// checkMaxTokens checks n, the output limit a Nova, Llama or Titan body
// sets at path (a JSON pointer), against the model's; it reports false when
// it answered.
func (x *exchange) checkMaxTokens(path string, n int) bool {
	if limit := x.tgt.model.MaxOutputTokens; n < 1 || n > limit {
		x.malformed(fmt.Sprintf("%s: %d is not between 1 and %d", path, n, limit))
		return false
	}
	return true
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
	if !x.waitReply(&g) {
		return
	}
	latency := x.elapsed()
	r := &g.reply
	b := x.out[:0]
	switch x.tgt.model.Format {
	case FormatAnthropic:
		b = x.appendAnthropicMessage(b, &g)
	case FormatNova:
		b = appendNovaMessage(b, &g)
	case FormatLlama:
		b = appendLlamaGeneration(b, r)
	default:
		b = appendTitanResults(b, r)
	}
	x.out = b
	x.setUsageHeaders(&g, latency)
	x.settle(&g, r.OutputTokens) // before the client can see the end
	x.writeJSON(b)
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

// text sends g's reply text, one chunk per token, each the model's delta
// event: before, the text as a JSON string, after. It waits for each
// token's time, and reports false when the stream ended early.
func (cs *chunkStreamer) text(g *generation, before, after string) bool {
	x := cs.x
	text := g.reply.Text
	for i := 0; len(text) > 0; i++ {
		if !x.waitToken(g.pace, i) {
			return false
		}
		k := reply.Next(text)
		b := append(x.inner[:0], before...)
		b = appendJSONString(b, text[:k])
		x.inner = append(b, after...)
		if !cs.chunk(1) {
			return false
		}
		text = text[k:]
	}
	return true
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

// streamTokens sends the Llama and Titan streams: one chunk per token, the
// last carrying the stop reason and invocation metrics.
func (x *exchange) streamTokens(g *generation, cs *chunkStreamer) {
	r := &g.reply
	appendToken := appendTitanToken
	if x.tgt.model.Format == FormatLlama {
		appendToken = appendLlamaToken
	}
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
		b := appendToken(append(x.inner[:0], '{'), r, text[:k], i, last)
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
