package emulator

import (
	"cmp"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keel-run/keel/internal/emulator/reply"
	"github.com/keel-run/keel/internal/stream"
)

// generation is one admitted reply in progress.
type generation struct {
	reply     reply.Reply
	maxTokens int // as admitted
	pace      pacer
	// input, cacheRead and cacheWrite split reply.InputTokens: the prefix
	// up to the request's cache point is read from or written to the prompt
	// cache. cached reports that the request asked for caching at all.
	input, cacheRead, cacheWrite int
	cached                       bool
}

// total is what usage reports as totalTokens.
func (g *generation) total() int {
	return g.input + g.cacheRead + g.cacheWrite + g.reply.OutputTokens
}

// generate checks the conversation in x.msgs against the model's limits,
// asks the Admit hook, sleeps the fault plan's latency, and computes the
// reply. maxTokens zero means the
// model's maximum. It reports false when it answered with an error instead.
func (x *exchange) generate(system string, maxTokens int, stops []string) (generation, bool) {
	m := x.tgt.model
	maxTokens = cmp.Or(maxTokens, m.MaxOutputTokens)
	in := reply.InputTokens(system, x.msgs)
	if in > m.ContextWindow {
		x.fail(codeValidation, "Input is too long for requested model.")
		return generation{}, false
	}
	if admit := x.s.opts.Admit; admit != nil && !x.batch {
		rej := admit(AdmitRequest{Model: x.modelID, BaseModel: m.ID, Region: x.region, Operation: x.op,
			InputTokens: in, MaxTokens: maxTokens, RequestID: x.id})
		if rej != nil {
			x.fail(rej.Code, rej.Message)
			return generation{}, false
		}
	}
	g := generation{maxTokens: maxTokens, pace: x.pacer(), input: in}
	if !x.sleepLatency() {
		x.settle(&g, 0) // admitted, and gone before a token: settled before gone, which may end the handler
		x.gone()
		return generation{}, false
	}
	g.reply = reply.Generate(&reply.Request{Seed: x.s.opts.Seed, Model: m.ID, System: system, Messages: x.msgs,
		MaxTokens: maxTokens, StopSequences: stops, Length: x.s.opts.ReplyLength, ContinuePrompt: stream.ContinuePrompt})
	if x.cache.set && m.PromptCacheMin > 0 {
		g.cached = true
		if tokens, key := x.cachePrefix(system); tokens >= m.PromptCacheMin {
			if x.s.prompts.use(key, x.s.opts.Clock.Now()) {
				g.cacheRead = tokens
			} else {
				g.cacheWrite = tokens
			}
			g.input = in - tokens
		}
	}
	return g, true
}

// cachePos marks where the cacheable prefix of a conversation ends: in the
// system prompt (msg -1) or in message msg, at byte at of its text.
type cachePos struct {
	set     bool
	msg, at int
}

// cachePrefix returns the tokens of the conversation's prefix up to its
// cache point, and the key the prompt cache knows that prefix by.
func (x *exchange) cachePrefix(system string) (int, promptKey) {
	pos := x.cache
	k := promptKey{model: x.tgt.model.ID, region: x.region, hash: 14695981039346656037}
	if pos.msg < 0 {
		system = system[:pos.at]
	}
	tokens := reply.Count(system)
	k.hash = hashString(k.hash, system)
	for i := 0; i <= pos.msg && i < len(x.msgs); i++ {
		text := x.msgs[i].Text
		if i == pos.msg {
			text = text[:pos.at]
		}
		tokens += reply.Count(text)
		k.hash = hashString(hashString(k.hash, x.msgs[i].Role), text)
	}
	return tokens, k
}

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return (h ^ 0xff) * 1099511628211 // a separator, so "ab"+"c" differs from "a"+"bc"
}

// settle reports what an admitted request used. outputTokens is what was
// sent, which is less than the reply's when a stream broke.
func (x *exchange) settle(g *generation, outputTokens int) {
	if settle := x.s.opts.Settle; settle != nil && !x.batch {
		settle(SettleRequest{Model: x.modelID, BaseModel: x.tgt.model.ID, Region: x.region, Operation: x.op,
			RequestID: x.id, InputTokens: g.input, CacheReadTokens: g.cacheRead, CacheWriteTokens: g.cacheWrite,
			OutputTokens: outputTokens, Burndown: x.tgt.model.Burndown, MaxTokens: g.maxTokens})
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
	if speed == 0 || x.batch {
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

// waitReply waits, for a reply that is not streamed, until its last token
// is due; if the client leaves or the server closes meanwhile, it settles
// the admitted request with no output before calling gone (which may end
// the handler: on HTTP/2 it panics with http.ErrAbortHandler) and reports
// false.
func (x *exchange) waitReply(g *generation) bool {
	p := g.pace
	if p.ttft == 0 && p.perToken == 0 {
		return true
	}
	if !x.sleep(p.due(g.reply.OutputTokens-1) - x.elapsed()) {
		x.settle(g, 0)
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
	h["X-Amzn-Bedrock-Input-Token-Count"] = []string{strconv.Itoa(g.input)}
	if g.cached {
		h["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = []string{strconv.Itoa(g.cacheRead)}
		h["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = []string{strconv.Itoa(g.cacheWrite)}
	}
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
