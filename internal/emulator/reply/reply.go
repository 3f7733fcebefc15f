// Package reply makes the emulator's model replies without a model: readable
// pseudo-English drawn deterministically from a seed, the model and the
// conversation, with token counts that follow the text's size.
//
// A reply is a pure function of its Request, so tests can predict it, and it
// is built so an interrupted reply can be resumed exactly: the full reply to a
// conversation depends only on (seed, model, system prompt, messages), never on
// the token limit or stop sequences, and a request whose last message is a
// partial assistant message (a prefill) that is a prefix of the full reply gets
// exactly the rest of it. Concatenating the text a broken stream delivered and
// the reply to the continuation request gives the unbroken reply, byte for byte.
// A continuation without a prefill (the partial reply as an assistant turn,
// then a user turn asking to go on: Request.ContinuePrompt) gets the rest of
// the reply too, sometimes after a repetition of the partial reply's end, as
// models do.
//
// Most callers want Generate. All functions are safe for concurrent use.
package reply

import (
	"strings"
	"sync/atomic"
)

// Message is one turn of a conversation, reduced to its text.
type Message struct {
	// Role is "user" or "assistant".
	Role string
	// Text is the message's text blocks, concatenated.
	Text string
}

// Range bounds the length, in tokens, of a reply that ends on its own
// (stop reason end_turn). The zero Range means DefaultRange.
type Range struct {
	Min, Max int
}

// DefaultRange is the end_turn length used when a Request's Length is zero.
var DefaultRange = Range{Min: 20, Max: 320}

// StopReason says why a reply ended, spelled as the Anthropic Messages API
// spells it (the Converse API uses the same words).
type StopReason string

// Stop reasons.
const (
	EndTurn      StopReason = "end_turn"      // the reply ended on its own
	MaxTokens    StopReason = "max_tokens"    // the token limit cut it
	StopSequence StopReason = "stop_sequence" // a stop sequence was produced
)

// Request is what a reply is computed from.
type Request struct {
	// Seed varies every reply; the same seed gives the same replies.
	Seed int64
	// Model is the foundation model id. Callers pass the base model, not an
	// inference profile or a region, so a conversation resumed on another
	// region or profile of the same model continues the same text.
	Model string
	// System is the system prompt's text; it is part of the conversation.
	System string
	// Messages is the conversation. If the last one has role "assistant" it
	// is a prefill: the reply continues it.
	Messages []Message
	// MaxTokens limits the reply's tokens (counted on the reply, not on the
	// prefill). Zero or less means no limit.
	MaxTokens int
	// StopSequences end the reply where the first of them completes; the
	// stop sequence itself is not part of the text. Empty strings are ignored.
	StopSequences []string
	// Length bounds the end_turn length; the zero value means DefaultRange.
	Length Range
	// ContinuePrompt, when not empty, is the text of the user turn that
	// asks for a reply that was cut off to be continued: a conversation
	// ending with an assistant message and then a user message of exactly
	// this text gets the rest of the reply the assistant message began (see
	// Reply.Continued).
	ContinuePrompt string
}

// Reply is a generated reply.
type Reply struct {
	// Text is what the model says after the prefill, if there was one.
	Text string
	// StopReason says why Text ends.
	StopReason StopReason
	// StopSequence is the stop sequence that ended the reply, if any.
	StopSequence string
	// InputTokens counts the system prompt and every message, the prefill
	// included.
	InputTokens int
	// OutputTokens counts Text: always Count(Text).
	OutputTokens int
	// Continued reports that the prefill was a prefix of the full reply to
	// the conversation before it, so Text is exactly the rest of that reply.
	// When the prefill is not such a prefix, Text is a fresh reply to the
	// whole conversation, prefill included. For a ContinuePrompt
	// conversation, it reports that the assistant message was such a
	// prefix, and Text is the rest of the reply, perhaps after a repetition
	// of the assistant message's end (see Overlap).
	Continued bool
	// Overlap is the length in bytes of the start of Text that repeats the
	// end of the assistant message a ContinuePrompt conversation continues.
	Overlap int
}

// Generate computes the reply to req.
func Generate(req *Request) Reply {
	r := Reply{InputTokens: InputTokens(req.System, req.Messages), StopReason: EndTurn}
	var rest string
	var tokens int
	if text, overlap, ok := continueTurn(req); ok {
		rest, tokens, r.Continued, r.Overlap = text, Count(text), true, overlap
	} else {
		rest, tokens, r.Continued = afterPrefill(req)
	}

	end := len(rest)
	if req.MaxTokens > 0 && req.MaxTokens < tokens {
		end, tokens = Cut(rest, req.MaxTokens), req.MaxTokens
		r.StopReason = MaxTokens
	}
	// A stop sequence counts when it completes within the tokens produced.
	best := -1
	for _, s := range req.StopSequences {
		if s == "" {
			continue
		}
		i := strings.Index(rest[:end], s)
		if i >= 0 && (best < 0 || i < best) {
			best, r.StopSequence = i, s
		}
	}
	if best >= 0 {
		end, tokens = best, Count(rest[:best])
		r.StopReason = StopSequence
	}
	r.Text = rest[:end]
	r.OutputTokens = tokens
	return r
}

// afterPrefill returns the reply to req's conversation and its token
// count: after a prefill (a final assistant message), the rest of the full
// reply to the conversation before it if the prefill begins that reply
// (continued), else a fresh reply to the whole conversation.
func afterPrefill(req *Request) (text string, tokens int, continued bool) {
	msgs := req.Messages
	var prefill string
	if n := len(msgs); n > 0 && msgs[n-1].Role == "assistant" {
		prefill = msgs[n-1].Text // an empty prefill is no prefill
		msgs = msgs[:n-1]
	}
	text, tokens = full(req.Seed, req.Model, req.System, msgs, req.Length)
	if prefill == "" {
		return text, tokens, false
	}
	if strings.HasPrefix(text, prefill) {
		text = text[len(prefill):]
		return text, Count(text), true
	}
	text, tokens = full(req.Seed, req.Model, req.System, req.Messages, req.Length)
	return text, tokens, false
}

// InputTokens counts the tokens of a conversation: the system prompt plus
// every message's text.
func InputTokens(system string, msgs []Message) int {
	n := Count(system)
	for i := range msgs {
		n += Count(msgs[i].Text)
	}
	return n
}

// Full returns the whole reply a model gives to a conversation when nothing
// cuts it short: the reply Generate continues from after a prefill. msgs must
// not end with the prefill itself.
func Full(seed int64, model, system string, msgs []Message, length Range) string {
	text, _ := full(seed, model, system, msgs, length)
	return text
}

// full returns the full reply and its token count.
func full(seed int64, model, system string, msgs []Message, length Range) (string, int) {
	h := conversationHash(seed, model, system, msgs)
	slot := &cache[mix(h)%uint64(len(cache))]
	if c := slot.Load(); c != nil && c.hash == h && c.length == length {
		return c.text, c.tokens
	}
	g := rng{state: h}
	text, tokens := write(&g, length.draw(&g))
	slot.Store(&cached{hash: h, length: length, text: text, tokens: tokens})
	return text, tokens
}

// cache keeps recent full replies, one per slot, the newest winning. Load
// tests ask the same question many times, and writing a reply costs more
// than everything else the emulator does for a request. A slot is only used
// when the whole 64-bit conversation hash matches.
var cache [1024]atomic.Pointer[cached]

type cached struct {
	hash   uint64
	length Range
	text   string
	tokens int
}

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (lr Range) draw(g *rng) int {
	if lr.Min <= 0 && lr.Max <= 0 {
		lr = DefaultRange
	}
	if lr.Min < 1 {
		lr.Min = 1
	}
	if lr.Max < lr.Min {
		lr.Max = lr.Min
	}
	return lr.Min + int(g.next()%uint64(lr.Max-lr.Min+1))
}

// write produces sentences until the text holds at least n tokens, ending on
// a full stop, and returns the text and its token count.
func write(g *rng, n int) (string, int) {
	var b strings.Builder
	b.Grow(n*4 + 96)
	tokens := 0
	sentences, paragraph := 0, 3+int(g.next()%4)
	for tokens < n {
		words := 5 + int(g.next()%12)
		for w := 0; w < words; w++ {
			word := wordsList[g.next()%uint64(len(wordsList))]
			runes := len(word) // the vocabulary is ASCII
			switch {
			case b.Len() == 0:
			case w == 0 && sentences == paragraph:
				b.WriteString("\n\n")
				runes += 2
				sentences, paragraph = 0, 3+int(g.next()%4)
			default:
				b.WriteByte(' ')
				runes++
			}
			if w == 0 {
				b.WriteByte(word[0] - 'a' + 'A')
				b.WriteString(word[1:])
			} else {
				b.WriteString(word)
			}
			switch {
			case w == words-1:
				b.WriteByte('.')
				runes++
			case w > 1 && w < words-2 && g.next()%9 == 0:
				b.WriteByte(',')
				runes++
			}
			// The word (its leading space and punctuation included) is cut
			// into pieces of PieceRunes runes: see Next.
			tokens += (runes + PieceRunes - 1) / PieceRunes
		}
		sentences++
	}
	return b.String(), tokens
}

var wordsList = words[:]

// conversationHash mixes everything a full reply depends on. Lengths are
// mixed in before each string so no two conversations collide by
// concatenation ("ab"+"c" vs "a"+"bc").
func conversationHash(seed int64, model, system string, msgs []Message) uint64 {
	h := uint64(14695981039346656037) // FNV-1a offset basis
	h = mixUint(h, uint64(seed))
	h = mixString(h, model)
	h = mixString(h, system)
	h = mixUint(h, uint64(len(msgs)))
	for i := range msgs {
		h = mixString(h, msgs[i].Role)
		h = mixString(h, msgs[i].Text)
	}
	return h
}

const fnvPrime = 1099511628211

func mixUint(h, v uint64) uint64 {
	for i := 0; i < 8; i++ {
		h ^= v & 0xff
		h *= fnvPrime
		v >>= 8
	}
	return h
}

func mixString(h uint64, s string) uint64 {
	h = mixUint(h, uint64(len(s)))
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// rng is splitmix64: tiny, fast, and the same on every platform.
type rng struct{ state uint64 }

func (g *rng) next() uint64 {
	g.state += 0x9e3779b97f4a7c15
	z := g.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
