package stream

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// Verdict is what the reader gets in place of one event frame.
type Verdict struct {
	// Out is what to deliver: the frame as received (Frame.Raw), a
	// rewritten frame, a synthesized frame followed by the frame, or nil
	// when the frame is dropped. It is valid until the next Feed or Next.
	Out []byte
	// Content reports that the frame belongs to the reply's content:
	// anything after the message start. An attempt's first such frame ends
	// its "before the first content" phase, in which everything it sent may
	// still be thrown away and the attempt retried.
	Content bool
	// Final reports the stream's last event.
	Final bool
}

// Splicer joins the event streams of the attempts of one call into the one
// stream its reader sees. The first attempt's events pass through as they
// are. After a break, a continuation (the same request with the text so far
// as a prefill, or as an assistant turn followed by a user turn asking to go
// on) is spliced in: its message start is dropped, its content block indexes
// continue the reader's, a block left open by the break is closed once, and
// its final usage becomes the sum over the attempts. A continue-turn
// continuation's text is held back until its overlap with the reader's text
// is known (see Overlap), and the overlap is dropped.
//
// Call Begin before each attempt's first frame, Feed for each event frame,
// and then Abort (the attempt failed before its first content: forget it),
// Break (it failed after: prepare a continuation) or nothing (it completed).
// The zero Splicer is not usable; call NewSplicer.
type Splicer struct {
	format Format
	p      Parser

	c, saved state
	text     []byte // text of the text blocks delivered, all attempts
	savedLen int
	skip     []byte // whitespace cut off the prefill, expected again at the continuation's start

	// A continue-turn continuation's first text, held until its overlap
	// with text is known: the reader's block heldAt.
	holding bool
	held    []byte
	heldAt  int
	pre     []byte // frames to deliver before the current one

	segs    []Segment // attempts that delivered content, the current one last while it runs
	seg     Segment   // the attempt being read
	started bool      // it delivered content

	out []byte // rewritten frames
	buf bytes.Buffer
	enc *eventstream.Encoder
}

// state is what the reader has seen, in its own block numbering.
type state struct {
	cur        int   // highest block index delivered; -1 before any
	open       bool  // block cur is open
	shift      int   // a continuation's block j is the reader's block j+shift
	continuing bool  // the continuation's block 0 continues the reader's open block cur
	nonText    Block // the first non-text block delivered, or BlockNone
	stopped    bool  // the message's stop was delivered
	unparsed   bool  // an event could not be read
	anthropic  bool  // InvokeModel chunks carry Anthropic Messages events
}

// Segment is one attempt's share of the reply.
type Segment struct {
	// Usage is what the attempt used. For an attempt whose stream broke, the
	// output is the tokens of content it delivered, estimated (see
	// Estimated); the input is what its stream reported, or, for a
	// ConverseStream (which reports input only at its end), the input of the
	// last continuation less that continuation's prefill plus this
	// attempt's own.
	Usage Usage
	// Estimated reports that a count above was estimated rather than
	// reported by Bedrock.
	Estimated bool
	// Reported reports that the attempt's final usage arrived.
	Reported bool
	// Dropped counts the characters (runes) at the start of a continue-turn
	// continuation that repeated the end of the reader's text and were
	// dropped.
	Dropped int

	prefill    int // tokens of prefill its request carried
	inputKnown bool
	deltas     int // text deltas it delivered
	textBytes  int
}

// NewSplicer returns a Splicer for streams of the given format.
func NewSplicer(format Format) *Splicer {
	s := &Splicer{format: format}
	s.c.cur = -1
	return s
}

// Begin starts an attempt. mode is how it continues the reply: "" for the
// first attempt, else the Continuation's Mode; prefillTokens is what its
// request added to the first attempt's input to carry the text so far (0
// for the first attempt).
func (s *Splicer) Begin(mode Mode, prefillTokens int) {
	s.saved = s.c
	s.savedLen = len(s.text)
	s.seg = Segment{prefill: prefillTokens}
	s.started = false
	s.holding, s.held = mode == ContinueTurn && len(s.segs) > 0, s.held[:0]
	if s.holding {
		s.skip = s.skip[:0] // the overlap finder drops repeated whitespace
	}
}

// Abort forgets the current attempt, which failed before its first content,
// and returns what its stream reported using (Anthropic streams report
// their input at the start).
func (s *Splicer) Abort() Segment {
	s.c = s.saved
	s.text = s.text[:s.savedLen]
	s.holding, s.held = false, s.held[:0]
	seg := s.seg
	s.seg = Segment{}
	return seg
}

// Dropped returns the characters of the current attempt dropped as an
// overlap with the reader's text (Segment.Dropped).
func (s *Splicer) Dropped() int { return s.seg.Dropped }

// Started reports whether the current attempt delivered content.
func (s *Splicer) Started() bool { return s.started }

// Text returns the text delivered so far.
func (s *Splicer) Text() []byte { return s.text }

// Feed decides what the reader gets for one event frame (f.IsEvent()).
func (s *Splicer) Feed(f *Frame) Verdict {
	s.pre = s.pre[:0]
	v := s.feed(f)
	if len(s.pre) > 0 {
		// Held text released by this frame goes first.
		s.pre = append(s.pre, v.Out...)
		v.Out, v.Content = s.pre, true
		s.commit()
	}
	return v
}

func (s *Splicer) feed(f *Frame) Verdict {
	ev := s.p.Parse(s.format, f)
	cont := len(s.prior()) > 0 // a continuation: earlier attempts delivered content
	if s.holding && s.releasedBy(&ev) {
		s.pre = s.release(s.pre)
	}
	if ev.Unparsed {
		s.c.unparsed = true
		s.commit()
		return Verdict{Out: f.Raw, Content: true, Final: ev.Final}
	}
	if ev.Anthropic {
		s.c.anthropic = true
	}
	s.out = s.out[:0]
	var v Verdict
	switch ev.Kind {
	case KindStart:
		if ev.HasInput {
			s.seg.Usage.InputTokens = ev.Usage.InputTokens
			s.seg.Usage.CacheReadInputTokens = ev.Usage.CacheReadInputTokens
			s.seg.Usage.CacheWriteInputTokens = ev.Usage.CacheWriteInputTokens
			s.seg.inputKnown = true
		}
		if cont {
			return Verdict{} // the reader has its message start
		}
		return Verdict{Out: f.Raw, Content: s.started}
	case KindOther:
		v = Verdict{Out: f.Raw, Content: s.started}
	case KindBlockStart:
		v = s.blockStart(f, &ev)
	case KindDelta:
		v = s.delta(f, &ev)
	case KindBlockStop:
		v = s.blockStop(f, &ev, cont)
	case KindStop:
		v = s.stop(f, &ev, cont)
	case KindMetadata:
		v = Verdict{Out: f.Raw, Content: true}
	}
	if ev.Final {
		v.Final, v.Content = true, true
		s.seg.Usage = ev.Usage
		s.seg.inputKnown, s.seg.Reported = true, true
		if cont {
			s.commit()
			v.Out = s.sumUsage(f)
		}
	}
	if v.Content {
		s.commit()
	}
	return v
}

// commit marks the current attempt as delivering content.
func (s *Splicer) commit() {
	if !s.started {
		s.started = true
		s.segs = append(s.segs, s.seg)
	}
}

// index maps a continuation's block index into the reader's numbering.
func (s *Splicer) index(j int) int {
	if j < 0 {
		return j
	}
	return j + s.c.shift
}

// emit returns what to deliver for f: whatever was synthesized into s.out,
// then the frame itself unless it was rewritten into s.out too.
func (s *Splicer) emit(f *Frame, rewritten bool) []byte {
	if rewritten {
		return s.out
	}
	if len(s.out) == 0 {
		return f.Raw
	}
	s.out = append(s.out, f.Raw...)
	return s.out
}

// reindex delivers f with its block index changed from j to k.
func (s *Splicer) reindex(f *Frame, j, k int) []byte {
	rewritten := j != k && j >= 0 && s.rewrite(f, func(m map[string]json.RawMessage) { s.setIndex(m, k) })
	return s.emit(f, rewritten)
}

func (s *Splicer) blockStart(f *Frame, ev *Event) Verdict {
	if ev.Index == 0 && s.c.continuing {
		if ev.Block == BlockText {
			return Verdict{} // the reader's text block is open already
		}
		// The continuation opens a non-text block where the reader's text
		// block still is: close the text block, and number from after it.
		s.appendStop(s.c.cur)
		s.c.open, s.c.continuing = false, false
		s.c.shift = s.c.cur + 1
	}
	k := s.index(ev.Index)
	if k > s.c.cur {
		s.c.continuing = false
	}
	s.c.cur, s.c.open = max(k, s.c.cur), true
	content := s.started
	if ev.Block != BlockText {
		content = true
		if s.c.nonText == 0 {
			s.c.nonText = ev.Block
		}
	}
	return Verdict{Out: s.reindex(f, ev.Index, k), Content: content}
}

func (s *Splicer) delta(f *Frame, ev *Event) Verdict {
	k := s.index(ev.Index)
	switch {
	case k > s.c.cur:
		s.c.cur, s.c.open, s.c.continuing = k, true, false
	case k == s.c.cur:
		s.c.open = true
	}
	if ev.Block != BlockText {
		if s.c.nonText == 0 {
			s.c.nonText = ev.Block
		}
		return Verdict{Out: s.reindex(f, ev.Index, k), Content: true}
	}
	if s.holding {
		return s.hold(ev.Text, k)
	}
	text := ev.Text
	cut := false
	if len(s.skip) > 0 {
		n := commonPrefix(s.skip, text)
		switch {
		case n == len(text): // the reader has all of this delta already
			s.skip = s.skip[n:]
			s.seg.deltas++
			return Verdict{Content: true}
		case n > 0:
			text, cut = text[n:], true
		}
		s.skip = s.skip[:0]
	}
	s.text = append(s.text, text...)
	s.seg.deltas++
	s.seg.textBytes += len(text)
	if !cut {
		return Verdict{Out: s.reindex(f, ev.Index, k), Content: true}
	}
	rest := string(text)
	rewritten := s.rewrite(f, func(m map[string]json.RawMessage) {
		s.setIndex(m, k)
		setText(m, rest)
	})
	return Verdict{Out: s.emit(f, rewritten), Content: true}
}

// hold keeps a text delta of a continue-turn continuation back until the
// overlap of the held text with the reader's is known, then delivers what
// follows the overlap as one delta.
func (s *Splicer) hold(text []byte, k int) Verdict {
	s.held = append(s.held, text...)
	s.heldAt = k
	s.seg.deltas++
	s.seg.textBytes += len(text)
	if _, pending := overlap(s.text, s.held); pending && len(s.held) < MaxOverlap {
		return Verdict{}
	}
	s.out = s.release(s.out)
	return Verdict{Out: s.out, Content: len(s.out) > 0}
}

// releasedBy reports whether ev ends the hold before it is processed: any
// event but a text delta of the held block, the start of a text block, or
// one that does nothing to the content.
func (s *Splicer) releasedBy(ev *Event) bool {
	switch {
	case ev.Unparsed:
		return true
	case ev.Kind == KindStart || ev.Kind == KindOther:
		return false
	case ev.Kind == KindBlockStart:
		return ev.Block != BlockText
	case ev.Kind == KindDelta && ev.Block == BlockText:
		return len(s.held) > 0 && s.index(ev.Index) != s.heldAt
	}
	return true
}

// release ends the hold: it drops the held text's overlap with the
// reader's text and appends a delta frame carrying the rest to dst.
func (s *Splicer) release(dst []byte) []byte {
	k, _ := overlap(s.text, s.held)
	s.seg.Dropped = utf8.RuneCount(s.held[:k])
	rest := s.held[k:]
	s.text = append(s.text, rest...)
	s.holding = false
	if len(rest) > 0 {
		dst = s.appendDelta(dst, s.heldAt, string(rest))
	}
	s.held = s.held[:0]
	return dst
}

// blockStop delivers a block stop unless the reader's block is closed already.
func (s *Splicer) blockStop(f *Frame, ev *Event, cont bool) Verdict {
	k := s.index(ev.Index)
	if k == s.c.cur && s.c.open {
		s.c.open, s.c.continuing = false, false
	} else if cont {
		return Verdict{Content: true} // the reader's block is closed already
	}
	return Verdict{Out: s.reindex(f, ev.Index, k), Content: true}
}

func (s *Splicer) stop(f *Frame, ev *Event, cont bool) Verdict {
	if ev.HasOutput {
		s.seg.Usage.OutputTokens = ev.Usage.OutputTokens
	}
	if cont && s.c.open {
		// The break left a block open and the continuation never closed it
		// (it had nothing to add): close it once, before the stop.
		s.appendStop(s.c.cur)
		s.c.open, s.c.continuing = false, false
	}
	s.c.stopped = true
	rewritten := false
	if cont && ev.HasOutput {
		// Anthropic's message_delta carries the output so far: make it the
		// output of the whole reply.
		total := ev.Usage.OutputTokens
		for _, g := range s.prior() {
			total += g.output()
		}
		rewritten = s.rewrite(f, func(m map[string]json.RawMessage) {
			m["usage"] = setNumber(m["usage"], "output_tokens", total)
		})
	}
	return Verdict{Out: s.emit(f, rewritten), Content: true}
}

// prior returns the segments before the current attempt's.
func (s *Splicer) prior() []Segment {
	if s.started {
		return s.segs[:len(s.segs)-1]
	}
	return s.segs
}

// output is the segment's output tokens: reported, else estimated from the
// content delivered (one token per delta, or four bytes per token when
// deltas carry more).
func (g Segment) output() int {
	if g.Reported {
		return g.Usage.OutputTokens
	}
	return max(g.deltas, (g.textBytes+3)/4)
}

// sumUsage rewrites the final event of a resumed stream so that its usage
// is the sum over the attempts that delivered content.
func (s *Splicer) sumUsage(f *Frame) []byte {
	total := Usage{}
	for _, g := range s.Segments() {
		total = total.Add(g.Usage)
	}
	s.out = s.out[:0]
	var rewritten bool
	if s.format == Converse {
		rewritten = s.rewrite(f, func(m map[string]json.RawMessage) {
			u := setNumber(m["usage"], "inputTokens", total.InputTokens)
			u = setNumber(u, "outputTokens", total.OutputTokens)
			u = setNumber(u, "totalTokens", total.InputTokens+total.OutputTokens)
			if total.CacheReadInputTokens > 0 || total.CacheWriteInputTokens > 0 {
				u = setNumber(u, "cacheReadInputTokens", total.CacheReadInputTokens)
				u = setNumber(u, "cacheWriteInputTokens", total.CacheWriteInputTokens)
			}
			m["usage"] = u
		})
	} else {
		rewritten = s.rewrite(f, func(m map[string]json.RawMessage) {
			const k = "amazon-bedrock-invocationMetrics"
			m[k] = setNumber(setNumber(m[k], "inputTokenCount", total.InputTokens), "outputTokenCount", total.OutputTokens)
		})
	}
	return s.emit(f, rewritten)
}

// Segments returns the usage of each attempt that delivered content, in
// order, with the estimates Segment describes.
func (s *Splicer) Segments() []Segment {
	out := make([]Segment, len(s.segs))
	copy(out, s.segs)
	if len(out) == 0 {
		return out
	}
	if s.started {
		out[len(out)-1] = s.seg
	}
	last := out[len(out)-1]
	for i := range out {
		g := &out[i]
		if !g.Reported {
			g.Usage.OutputTokens = g.output()
			g.Estimated = true
		}
		if !g.inputKnown && last.inputKnown && last.Reported && s.format == Converse {
			// ConverseStream reports input only at its end. The last
			// continuation's input is the first attempt's plus its prefill;
			// this attempt's input was the first's plus its own prefill.
			g.Usage.InputTokens = max(0, last.Usage.InputTokens-last.prefill+g.prefill)
			g.Estimated = true
		}
	}
	return out
}

// Continuation says whether and how a broken reply can be resumed.
type Continuation struct {
	// OK reports that it can; Why says why not otherwise.
	OK  bool
	Why string
	// Prefill is the text delivered so far with trailing whitespace cut
	// off (Anthropic refuses a prefill that ends in whitespace); the cut
	// whitespace is expected again at the continuation's start and is not
	// delivered twice.
	Prefill string
	// Tokens is the output produced so far, over every attempt: the
	// continuation's output limit is lowered by it.
	Tokens int
	// Mode is how the continuation asks for the rest: Break leaves it
	// empty, which Continue takes as Prefill; the caller chooses.
	Mode Mode
}

// Break ends the current attempt, which failed after delivering content,
// and says whether the reply can be continued. When it can, the next
// Begin starts the continuation.
func (s *Splicer) Break() Continuation {
	if s.started {
		s.segs[len(s.segs)-1] = s.seg
	}
	s.seg = Segment{}
	s.started = false
	s.holding, s.held = false, s.held[:0]
	c := s.c
	switch {
	case c.unparsed:
		return Continuation{Why: "an event of the stream could not be read"}
	case c.nonText == BlockTool:
		return Continuation{Why: "a tool-use block was in progress"}
	case c.nonText == BlockReasoning:
		return Continuation{Why: "reasoning content cannot be continued by a prefill"}
	case c.nonText != BlockNone:
		return Continuation{Why: "a non-text content block was delivered"}
	case c.stopped:
		return Continuation{Why: "the reply had already stopped; only its final events were lost"}
	case s.format == Invoke && !c.anthropic:
		return Continuation{Why: "only Anthropic Messages bodies can be continued through InvokeModel"}
	}
	tokens := 0
	for _, g := range s.segs {
		tokens += g.output()
	}
	end := len(s.text)
	for end > 0 {
		r, n := utf8.DecodeLastRune(s.text[:end])
		if !unicode.IsSpace(r) {
			break
		}
		end -= n
	}
	s.skip = append(s.skip[:0], s.text[end:]...)
	if c.open {
		s.c.shift, s.c.continuing = c.cur, true
	} else {
		s.c.shift, s.c.continuing = c.cur+1, false
	}
	return Continuation{OK: true, Prefill: string(s.text[:end]), Tokens: tokens}
}

func (s *Splicer) setIndex(m map[string]json.RawMessage, k int) {
	key := "contentBlockIndex"
	if s.format == Invoke {
		key = "index"
	}
	if _, ok := m[key]; ok {
		m[key] = json.RawMessage(strconv.Itoa(k))
	}
}

// setText replaces the text of a delta (Converse's delta.text, Anthropic's
// delta.text).
func setText(m map[string]json.RawMessage, text string) {
	var d map[string]json.RawMessage
	if json.Unmarshal(m["delta"], &d) != nil || d == nil {
		return
	}
	t, _ := json.Marshal(text)
	d["text"] = t
	m["delta"], _ = json.Marshal(d)
}

// setNumber sets key to n in the JSON object raw (creating it if needed).
func setNumber(raw json.RawMessage, key string, n int) json.RawMessage {
	var o map[string]json.RawMessage
	if json.Unmarshal(raw, &o) != nil || o == nil {
		o = map[string]json.RawMessage{}
	}
	o[key] = json.RawMessage(strconv.Itoa(n))
	b, _ := json.Marshal(o)
	return b
}

// rewrite re-encodes f with its JSON (a Converse payload, or the bytes of an
// InvokeModel chunk) edited, appending the frame to s.out. It reports false,
// appending nothing, when the JSON is not an object. Rewrites happen only on
// resumed streams, a few times each; they may allocate.
func (s *Splicer) rewrite(f *Frame, edit func(map[string]json.RawMessage)) bool {
	doc := f.Payload
	if s.format == Invoke {
		doc = s.p.Inner()
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(doc, &m) != nil || m == nil {
		return false
	}
	edit(m)
	payload, err := json.Marshal(m)
	if err != nil {
		return false
	}
	if s.format == Invoke {
		payload, _ = json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString(payload)})
	}
	msg, err := eventstream.NewDecoder().Decode(bytes.NewReader(f.Raw), nil)
	if err != nil {
		return false
	}
	msg.Payload = payload
	s.encode(msg)
	return true
}

// appendStop appends a synthesized block stop for block k to s.out.
func (s *Splicer) appendStop(k int) {
	if s.format == Converse {
		s.out = s.appendEvent(s.out, "contentBlockStop", []byte(`{"contentBlockIndex":`+strconv.Itoa(k)+`}`))
		return
	}
	s.out = s.appendEvent(s.out, "", []byte(`{"type":"content_block_stop","index":`+strconv.Itoa(k)+`}`))
}

// appendDelta appends a synthesized text delta of block k to dst.
func (s *Splicer) appendDelta(dst []byte, k int, text string) []byte {
	t, _ := json.Marshal(text)
	if s.format == Converse {
		return s.appendEvent(dst, "contentBlockDelta", []byte(`{"contentBlockIndex":`+strconv.Itoa(k)+`,"delta":{"text":`+string(t)+`}}`))
	}
	return s.appendEvent(dst, "", []byte(`{"type":"content_block_delta","index":`+strconv.Itoa(k)+`,"delta":{"type":"text_delta","text":`+string(t)+`}}`))
}

// appendEvent appends a synthesized event frame to dst: a ConverseStream
// event of the given type, or for InvokeModel a chunk carrying payload.
func (s *Splicer) appendEvent(dst []byte, eventType string, payload []byte) []byte {
	if s.format == Invoke {
		eventType = "chunk"
		payload = []byte(`{"bytes":"` + base64.StdEncoding.EncodeToString(payload) + `"}`)
	}
	msg := eventstream.Message{Headers: eventstream.Headers{
		{Name: ":event-type", Value: eventstream.StringValue(eventType)},
		{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		{Name: ":message-type", Value: eventstream.StringValue("event")},
	}, Payload: payload}
	return s.appendFrame(dst, msg)
}

// encode appends msg's frame to s.out and returns s.out.
func (s *Splicer) encode(msg eventstream.Message) []byte {
	s.out = s.appendFrame(s.out, msg)
	return s.out
}

// appendFrame appends msg's frame to dst.
func (s *Splicer) appendFrame(dst []byte, msg eventstream.Message) []byte {
	if s.enc == nil {
		s.enc = eventstream.NewEncoder()
	}
	s.buf.Reset()
	// Encoding into a bytes.Buffer fails only for impossible headers, and
	// these headers came from a frame that decoded or were written here.
	_ = s.enc.Encode(&s.buf, msg)
	return append(dst, s.buf.Bytes()...)
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
