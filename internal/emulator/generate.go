package emulator

import (
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keel-run/keel/internal/emulator/reply"
)

// generation is one admitted reply in progress.
type generation struct {
	reply     reply.Reply
	maxTokens int // as admitted
	pace      pacer
}

// generate checks the conversation in x.msgs against the model's limits,
// asks the Admit hook, and computes the reply. maxTokens zero means the
// model's maximum. It reports false when it answered with an error instead.
func (x *exchange) generate(system string, maxTokens int, stops []string) (generation, bool) {
	m := x.tgt.model
	if maxTokens == 0 {
		maxTokens = m.MaxOutputTokens
	}
	in := reply.InputTokens(system, x.msgs)
	if in > m.ContextWindow {
		x.fail(codeValidation, "Input is too long for requested model.")
		return generation{}, false
	}
	if admit := x.s.opts.Admit; admit != nil {
		rej := admit(AdmitRequest{Model: x.modelID, BaseModel: m.ID, Region: x.region, Operation: x.op,
			InputTokens: in, MaxTokens: maxTokens, RequestID: x.id})
		if rej != nil {
			x.fail(rej.Code, rej.Message)
			return generation{}, false
		}
	}
	r := reply.Generate(&reply.Request{Seed: x.s.opts.Seed, Model: m.ID, System: system, Messages: x.msgs,
		MaxTokens: maxTokens, StopSequences: stops, Length: x.s.opts.ReplyLength})
	return generation{reply: r, maxTokens: maxTokens, pace: x.pacer()}, true
}

// settle reports what an admitted request used. outputTokens is what was
// sent, which is less than the reply's when a stream broke.
func (x *exchange) settle(g *generation, outputTokens int) {
	if settle := x.s.opts.Settle; settle != nil {
		settle(SettleRequest{Model: x.modelID, BaseModel: x.tgt.model.ID, Region: x.region, Operation: x.op,
			RequestID: x.id, InputTokens: g.reply.InputTokens, OutputTokens: outputTokens,
			Burndown: x.tgt.model.Burndown, MaxTokens: g.maxTokens})
	}
}

// pacer spaces a reply's tokens in time: the first after TimeToFirstToken,
// the others 1/TokensPerSecond apart, both scaled by Options.Speed, counted
// from the request's arrival.
type pacer struct {
	ttft, perToken time.Duration
}

func (x *exchange) pacer() pacer {
	speed, m := x.s.opts.Speed, x.tgt.model
	if speed == 0 {
		return pacer{}
	}
	p := pacer{ttft: time.Duration(float64(m.TimeToFirstToken) * speed)}
	if m.TokensPerSecond > 0 {
		p.perToken = time.Duration(float64(time.Second) / m.TokensPerSecond * speed)
	}
	return p
}

// due is when token i (from 0) is ready, relative to the request's arrival.
func (p pacer) due(i int) time.Duration {
	if i < 0 {
		i = 0
	}
	return p.ttft + time.Duration(i)*p.perToken
}

// waitToken waits until token i is due; it reports false if the wait was cut
// short (the exchange is then over).
func (x *exchange) waitToken(p pacer, i int) bool {
	if p.ttft == 0 && p.perToken == 0 {
		return true
	}
	if !x.sleep(p.due(i) - x.elapsed()) {
		x.gone()
		return false
	}
	return true
}

// millis formats a duration as whole milliseconds.
func millis(d time.Duration) int64 {
	return int64(d / time.Millisecond)
}

// setUsageHeaders sets InvokeModel's usage headers.
func (x *exchange) setUsageHeaders(g *generation, latency time.Duration) {
	h := x.w.Header()
	h["X-Amzn-Bedrock-Input-Token-Count"] = []string{strconv.Itoa(g.reply.InputTokens)}
	h["X-Amzn-Bedrock-Output-Token-Count"] = []string{strconv.Itoa(g.reply.OutputTokens)}
	h["X-Amzn-Bedrock-Invocation-Latency"] = []string{strconv.FormatInt(millis(latency), 10)}
}

// endsWithSpace reports whether s ends with whitespace, which Anthropic
// models refuse at the end of a prefill.
func endsWithSpace(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && unicode.IsSpace(r)
}

// padding is the "p" field Bedrock adds to stream events so their sizes do
// not reveal the length of the text they carry.
const paddingAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func padding(i int) string {
	return paddingAlphabet[:1+(i*37+11)%len(paddingAlphabet)]
}
