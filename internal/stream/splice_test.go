package stream

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// cv builds ConverseStream frames.
type cv struct{ t *testing.T }

func (c cv) start() []byte { return converseFrame(c.t, "messageStart", `{"role":"assistant"}`) }
func (c cv) delta(i int, text string) []byte {
	b, _ := json.Marshal(map[string]any{"contentBlockIndex": i, "delta": map[string]any{"text": text}})
	return converseFrame(c.t, "contentBlockDelta", string(b))
}
func (c cv) tool(i int) []byte {
	return converseFrame(c.t, "contentBlockStart", fmt.Sprintf(`{"contentBlockIndex":%d,"start":{"toolUse":{"toolUseId":"t","name":"n"}}}`, i))
}
func (c cv) toolDelta(i int) []byte {
	return converseFrame(c.t, "contentBlockDelta", fmt.Sprintf(`{"contentBlockIndex":%d,"delta":{"toolUse":{"input":"{"}}}`, i))
}
func (c cv) reasoning(i int) []byte {
	return converseFrame(c.t, "contentBlockDelta", fmt.Sprintf(`{"contentBlockIndex":%d,"delta":{"reasoningContent":{"text":"hm"}}}`, i))
}
func (c cv) stop(i int) []byte {
	return converseFrame(c.t, "contentBlockStop", fmt.Sprintf(`{"contentBlockIndex":%d}`, i))
}
func (c cv) msgStop() []byte { return converseFrame(c.t, "messageStop", `{"stopReason":"end_turn"}`) }
func (c cv) meta(in, out int) []byte {
	return converseFrame(c.t, "metadata", fmt.Sprintf(`{"usage":{"inputTokens":%d,"outputTokens":%d,"totalTokens":%d},"metrics":{"latencyMs":5}}`, in, out, in+out))
}

// an builds InvokeModel chunks in the Anthropic Messages format.
type an struct{ t *testing.T }

func (a an) start(in int) []byte {
	return chunkFrame(a.t, fmt.Sprintf(`{"type":"message_start","message":{"usage":{"input_tokens":%d,"output_tokens":1}}}`, in))
}
func (a an) textStart(i int) []byte {
	return chunkFrame(a.t, fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"text","text":""}}`, i))
}
func (a an) delta(i int, text string) []byte {
	b, _ := json.Marshal(map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "text_delta", "text": text}})
	return chunkFrame(a.t, string(b))
}
func (a an) stop(i int) []byte {
	return chunkFrame(a.t, fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, i))
}
func (a an) msgDelta(out int) []byte {
	return chunkFrame(a.t, fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":%d}}`, out))
}
func (a an) msgStop(in, out int) []byte {
	return chunkFrame(a.t, fmt.Sprintf(`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":%d,"outputTokenCount":%d,"invocationLatency":4,"firstByteLatency":1}}`, in, out))
}

// attemptScript is one attempt's frames and how it ends.
type attemptScript struct {
	frames  [][]byte
	prefill int    // prefill tokens its request carried
	mode    Mode   // how it continues the reply
	end     string // "" complete, "break" after content, "abort" before content
}

// run feeds the attempts through a Splicer the way the engine does and
// returns what the reader got, decoded, and the Continuations of breaks.
func run(t *testing.T, format Format, attempts []attemptScript) (got []decodedEvent, conts []Continuation, sp *Splicer) {
	t.Helper()
	sp = NewSplicer(format)
	var out []byte
	for ai, at := range attempts {
		sp.Begin(at.mode, at.prefill)
		var held []byte
		for _, raw := range at.frames {
			f, err := NewReader(bytes.NewReader(raw)).Next()
			if err != nil {
				t.Fatal(err)
			}
			v := sp.Feed(&f)
			if !sp.Started() {
				held = append(held, v.Out...)
				continue
			}
			out = append(out, held...)
			held = nil
			out = append(out, v.Out...)
		}
		switch at.end {
		case "abort":
			if sp.Started() {
				t.Fatalf("attempt %d: content started, cannot abort", ai)
			}
			sp.Abort()
		case "break":
			conts = append(conts, sp.Break())
		}
	}
	return decodeAll(t, format, out), conts, sp
}

type decodedEvent struct {
	typ string
	m   map[string]any
}

func decodeAll(t *testing.T, format Format, b []byte) []decodedEvent {
	t.Helper()
	var out []decodedEvent
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		msg, err := eventstream.NewDecoder().Decode(r, nil)
		if err != nil {
			t.Fatalf("output does not decode with the SDK: %v", err)
		}
		ev := decodedEvent{typ: msg.Headers.Get(":event-type").String()}
		pl := msg.Payload
		if format == Invoke {
			var c struct{ Bytes string }
			json.Unmarshal(pl, &c)
			pl, _ = base64.StdEncoding.DecodeString(c.Bytes)
		}
		if err := json.Unmarshal(pl, &ev.m); err != nil {
			t.Fatalf("payload %q: %v", pl, err)
		}
		if format == Invoke {
			ev.typ, _ = ev.m["type"].(string)
		}
		out = append(out, ev)
	}
	return out
}

// summary renders the reader's stream compactly: "start d0:Hel d0:lo stop0
// msgstop meta(in,out)".
func summary(evs []decodedEvent) string {
	var parts []string
	num := func(v any) int { f, _ := v.(float64); return int(f) }
	for _, e := range evs {
		switch e.typ {
		case "messageStart", "message_start":
			parts = append(parts, "start")
		case "contentBlockDelta":
			d := e.m["delta"].(map[string]any)
			if txt, ok := d["text"].(string); ok {
				parts = append(parts, fmt.Sprintf("d%d:%s", num(e.m["contentBlockIndex"]), txt))
			} else {
				parts = append(parts, fmt.Sprintf("x%d", num(e.m["contentBlockIndex"])))
			}
		case "content_block_delta":
			parts = append(parts, fmt.Sprintf("d%d:%s", num(e.m["index"]), e.m["delta"].(map[string]any)["text"]))
		case "contentBlockStart":
			parts = append(parts, fmt.Sprintf("tool%d", num(e.m["contentBlockIndex"])))
		case "content_block_start":
			parts = append(parts, fmt.Sprintf("open%d", num(e.m["index"])))
		case "contentBlockStop":
			parts = append(parts, fmt.Sprintf("stop%d", num(e.m["contentBlockIndex"])))
		case "content_block_stop":
			parts = append(parts, fmt.Sprintf("stop%d", num(e.m["index"])))
		case "messageStop":
			parts = append(parts, "msgstop")
		case "message_delta":
			parts = append(parts, fmt.Sprintf("msgdelta(%d)", num(e.m["usage"].(map[string]any)["output_tokens"])))
		case "metadata":
			u := e.m["usage"].(map[string]any)
			parts = append(parts, fmt.Sprintf("meta(%d,%d,%d)", num(u["inputTokens"]), num(u["outputTokens"]), num(u["totalTokens"])))
		case "message_stop":
			u := e.m["amazon-bedrock-invocationMetrics"].(map[string]any)
			parts = append(parts, fmt.Sprintf("end(%d,%d)", num(u["inputTokenCount"]), num(u["outputTokenCount"])))
		default:
			parts = append(parts, e.typ)
		}
	}
	return strings.Join(parts, " ")
}

func TestSpliceConverse(t *testing.T) {
	c := cv{t}
	tests := []struct {
		name     string
		attempts []attemptScript
		want     string
		conts    []Continuation
	}{
		{
			name:     "unbroken passes through",
			attempts: []attemptScript{{frames: [][]byte{c.start(), c.delta(0, "Hel"), c.delta(0, "lo"), c.stop(0), c.msgStop(), c.meta(10, 2)}}},
			want:     "start d0:Hel d0:lo stop0 msgstop meta(10,2,12)",
		},
		{
			name: "break mid-block, continuation spliced, usage summed",
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Hel"), c.delta(0, "lo")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " wor"), c.delta(0, "ld"), c.stop(0), c.msgStop(), c.meta(12, 2)}, prefill: 2},
			},
			// input: 10 (the first attempt's, inferred as 12-2) + 12; output: 2 + 2.
			want:  "start d0:Hel d0:lo d0: wor d0:ld stop0 msgstop meta(22,4,26)",
			conts: []Continuation{{OK: true, Prefill: "Hello", Tokens: 2}},
		},
		{
			name: "failure before the first content is forgotten",
			attempts: []attemptScript{
				{frames: [][]byte{c.start()}, end: "abort"},
				{frames: [][]byte{c.start(), c.delta(0, "Hi"), c.stop(0), c.msgStop(), c.meta(10, 1)}},
			},
			want: "start d0:Hi stop0 msgstop meta(10,1,11)",
		},
		{
			name: "continuation that fails before content, then one that works",
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Hel")}, end: "break"},
				{frames: [][]byte{c.start()}, prefill: 1, end: "abort"},
				{frames: [][]byte{c.start(), c.delta(0, "lo"), c.stop(0), c.msgStop(), c.meta(11, 1)}, prefill: 1},
			},
			want:  "start d0:Hel d0:lo stop0 msgstop meta(21,2,23)",
			conts: []Continuation{{OK: true, Prefill: "Hel", Tokens: 1}},
		},
		{
			name: "continuation with nothing to add closes the open block once",
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Done.")}, end: "break"},
				{frames: [][]byte{c.start(), c.msgStop(), c.meta(12, 0)}, prefill: 2},
			},
			want:  "start d0:Done. stop0 msgstop meta(22,2,24)",
			conts: []Continuation{{OK: true, Prefill: "Done.", Tokens: 2}},
		},
		{
			name: "break after the block closed: no second stop",
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Done."), c.stop(0)}, end: "break"},
				{frames: [][]byte{c.start(), c.msgStop(), c.meta(12, 0)}, prefill: 2},
			},
			want:  "start d0:Done. stop0 msgstop meta(22,2,24)",
			conts: []Continuation{{OK: true, Prefill: "Done.", Tokens: 2}},
		},
		{
			name: "text after a closed block goes to a new block",
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "One."), c.stop(0)}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " Two."), c.stop(0), c.msgStop(), c.meta(11, 2)}, prefill: 1},
			},
			want:  "start d0:One. stop0 d1: Two. stop1 msgstop meta(21,3,24)",
			conts: []Continuation{{OK: true, Prefill: "One.", Tokens: 1}},
		},
		{
			name: "a second text block keeps its index across the splice",
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "A"), c.stop(0), c.delta(1, "B")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, "C"), c.stop(0), c.msgStop(), c.meta(12, 1)}, prefill: 2},
			},
			want:  "start d0:A stop0 d1:B d1:C stop1 msgstop meta(22,3,25)",
			conts: []Continuation{{OK: true, Prefill: "AB", Tokens: 2}},
		},
		{
			name: "whitespace cut off the prefill is not delivered twice",
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Hello"), c.delta(0, " world"), c.delta(0, " \n")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " "), c.delta(0, "\nagain"), c.delta(0, "."), c.stop(0), c.msgStop(), c.meta(14, 3)}, prefill: 4},
			},
			// 13 bytes in 3 deltas: 4 tokens by the four-bytes rule.
			want:  "start d0:Hello d0: world d0: \n d0:again d0:. stop0 msgstop meta(24,7,31)",
			conts: []Continuation{{OK: true, Prefill: "Hello world", Tokens: 4}},
		},
		{
			name: "a continuation that opens a tool where text was open",
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Let me check")}, end: "break"},
				{frames: [][]byte{c.start(), c.tool(0), c.toolDelta(0), c.stop(0), c.msgStop(), c.meta(13, 5)}, prefill: 3},
			},
			want:  "start d0:Let me check stop0 tool1 x1 stop1 msgstop meta(23,8,31)",
			conts: []Continuation{{OK: true, Prefill: "Let me check", Tokens: 3}},
		},
		{
			name:     "tool use in progress cannot be resumed",
			attempts: []attemptScript{{frames: [][]byte{c.start(), c.delta(0, "Let me"), c.stop(0), c.tool(1), c.toolDelta(1)}, end: "break"}},
			want:     "start d0:Let me stop0 tool1 x1",
			conts:    []Continuation{{Why: "a tool-use block was in progress"}},
		},
		{
			name:     "reasoning cannot be resumed",
			attempts: []attemptScript{{frames: [][]byte{c.start(), c.reasoning(0)}, end: "break"}},
			want:     "start x0",
			conts:    []Continuation{{Why: "reasoning content cannot be continued by a prefill"}},
		},
		{
			name:     "a reply that stopped is not resumed",
			attempts: []attemptScript{{frames: [][]byte{c.start(), c.delta(0, "Hi"), c.stop(0), c.msgStop()}, end: "break"}},
			want:     "start d0:Hi stop0 msgstop",
			conts:    []Continuation{{Why: "the reply had already stopped; only its final events were lost"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, conts, _ := run(t, Converse, tt.attempts)
			if s := summary(got); s != tt.want {
				t.Errorf("reader got\n  %s\nwant\n  %s", s, tt.want)
			}
			if !reflect.DeepEqual(conts, tt.conts) {
				t.Errorf("continuations %+v, want %+v", conts, tt.conts)
			}
		})
	}
}

func TestSpliceAnthropic(t *testing.T) {
	a := an{t}
	tests := []struct {
		name     string
		attempts []attemptScript
		want     string
		conts    []Continuation
	}{
		{
			name:     "unbroken",
			attempts: []attemptScript{{frames: [][]byte{a.start(9), a.textStart(0), a.delta(0, "Hi"), a.stop(0), a.msgDelta(1), a.msgStop(9, 1)}}},
			want:     "start open0 d0:Hi stop0 msgdelta(1) end(9,1)",
		},
		{
			name: "a break after the block start only is before the first content",
			attempts: []attemptScript{
				{frames: [][]byte{a.start(9), a.textStart(0)}, end: "abort"},
				{frames: [][]byte{a.start(9), a.textStart(0), a.delta(0, "Hi"), a.stop(0), a.msgDelta(1), a.msgStop(9, 1)}},
			},
			want: "start open0 d0:Hi stop0 msgdelta(1) end(9,1)",
		},
		{
			name: "continuation: one message start, one block start, summed usage",
			attempts: []attemptScript{
				{frames: [][]byte{a.start(9), a.textStart(0), a.delta(0, "Hel"), a.delta(0, "lo")}, end: "break"},
				{frames: [][]byte{a.start(11), a.textStart(0), a.delta(0, " there"), a.stop(0), a.msgDelta(1), a.msgStop(11, 1)}, prefill: 2},
			},
			want:  "start open0 d0:Hel d0:lo d0: there stop0 msgdelta(3) end(20,3)",
			conts: []Continuation{{OK: true, Prefill: "Hello", Tokens: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, conts, _ := run(t, Invoke, tt.attempts)
			if s := summary(got); s != tt.want {
				t.Errorf("reader got\n  %s\nwant\n  %s", s, tt.want)
			}
			if !reflect.DeepEqual(conts, tt.conts) {
				t.Errorf("continuations %+v, want %+v", conts, tt.conts)
			}
		})
	}
}

func TestSpliceOtherInvokeFormatsAreNotResumed(t *testing.T) {
	_, conts, _ := run(t, Invoke, []attemptScript{{frames: [][]byte{
		chunkFrame(t, `{"generation":" The","prompt_token_count":9,"generation_token_count":1,"stop_reason":null}`),
	}, end: "break"}})
	if len(conts) != 1 || conts[0].OK || !strings.Contains(conts[0].Why, "Anthropic") {
		t.Fatalf("continuations %+v", conts)
	}
}

func TestSegmentsUsage(t *testing.T) {
	c := cv{t}
	_, _, sp := run(t, Converse, []attemptScript{
		{frames: [][]byte{c.start(), c.delta(0, "abcdefghij"), c.delta(0, "k")}, end: "break"}, // 2 deltas, 11 bytes: 3 tokens by bytes
		{frames: [][]byte{c.start(), c.delta(0, "l"), c.stop(0), c.msgStop(), c.meta(13, 1)}, prefill: 3},
	})
	got := sp.Segments()
	want := []Segment{
		{Usage: Usage{InputTokens: 10, OutputTokens: 3}, Estimated: true},
		{Usage: Usage{InputTokens: 13, OutputTokens: 1}, Reported: true},
	}
	for i := range got {
		got[i].prefill, got[i].inputKnown, got[i].deltas, got[i].textBytes = 0, false, 0, 0
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("segments %+v\nwant     %+v", got, want)
	}
}

// TestSpliceContinueTurn splices continue-turn continuations: their text
// is held until its overlap with the reader's is known, and the overlap is
// dropped.
func TestSpliceContinueTurn(t *testing.T) {
	c, a := cv{t}, an{t}
	tests := []struct {
		name     string
		format   Format
		attempts []attemptScript
		want     string
		dropped  []int // Segment.Dropped of each attempt that delivered content
	}{
		{
			name:   "overlap dropped",
			format: Converse,
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Ships have"), c.delta(0, " keels to keep")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " keels"), c.delta(0, " to keep"), c.delta(0, " them"), c.delta(0, " upright."), c.stop(0), c.msgStop(), c.meta(20, 4)}, prefill: 2, mode: ContinueTurn},
			},
			want:    "start d0:Ships have d0: keels to keep d0: them d0: upright. stop0 msgstop meta(38,10,48)", // 24 bytes: 6 tokens, + 4
			dropped: []int{0, len(" keels to keep")},
		},
		{
			name:   "overlap within one delta, the rest of it delivered",
			format: Converse,
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Ships have"), c.delta(0, " keels to keep")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, "have keels to keep them"), c.delta(0, " upright."), c.stop(0), c.msgStop(), c.meta(20, 2)}, prefill: 2, mode: ContinueTurn},
			},
			want:    "start d0:Ships have d0: keels to keep d0: them d0: upright. stop0 msgstop meta(38,8,46)",
			dropped: []int{0, len("have keels to keep")},
		},
		{
			name:   "no overlap: appended as is",
			format: Converse,
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Ships have"), c.delta(0, " keels to keep")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " them"), c.delta(0, " upright."), c.stop(0), c.msgStop(), c.meta(20, 2)}, prefill: 2, mode: ContinueTurn},
			},
			want:    "start d0:Ships have d0: keels to keep d0: them d0: upright. stop0 msgstop meta(38,8,46)",
			dropped: []int{0, 0},
		},
		{
			name:   "a short common word is not taken for an overlap",
			format: Converse,
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "They sailed the")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " the sea."), c.stop(0), c.msgStop(), c.meta(20, 1)}, prefill: 1, mode: ContinueTurn},
			},
			want:    "start d0:They sailed the d0: the sea. stop0 msgstop meta(39,5,44)",
			dropped: []int{0, 0},
		},
		{
			name:   "held text that could still overlap is released by the block stop",
			format: Converse,
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Ships have keels to keep")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " to"), c.stop(0), c.msgStop(), c.meta(20, 1)}, prefill: 1, mode: ContinueTurn},
			},
			want:    "start d0:Ships have keels to keep d0: to stop0 msgstop meta(39,7,46)",
			dropped: []int{0, 0},
		},
		{
			name:   "repeated trailing whitespace is dropped",
			format: Converse,
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Hello world"), c.delta(0, " \n")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " "), c.delta(0, "\nagain."), c.stop(0), c.msgStop(), c.meta(20, 2)}, prefill: 2, mode: ContinueTurn},
			},
			want:    "start d0:Hello world d0: \n d0:again. stop0 msgstop meta(38,6,44)",
			dropped: []int{0, 2},
		},
		{
			name:   "a continuation that breaks again, then one that overlaps",
			format: Converse,
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Ships have keels")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " to keep"), c.delta(0, " them")}, prefill: 1, mode: ContinueTurn, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " keep them"), c.delta(0, " upright."), c.stop(0), c.msgStop(), c.meta(30, 2)}, prefill: 3, mode: ContinueTurn},
			},
			want:    "start d0:Ships have keels d0: to keep d0: them d0: upright. stop0 msgstop meta(85,10,95)",
			dropped: []int{0, 0, len(" keep them")},
		},
		{
			name:   "a continuation that fails while its text is held is forgotten",
			format: Converse,
			attempts: []attemptScript{
				{frames: [][]byte{c.start(), c.delta(0, "Ships have keels to keep")}, end: "break"},
				{frames: [][]byte{c.start(), c.delta(0, " to keep")}, prefill: 1, mode: ContinueTurn, end: "abort"},
				{frames: [][]byte{c.start(), c.delta(0, "keels to keep them"), c.delta(0, " upright."), c.stop(0), c.msgStop(), c.meta(20, 2)}, prefill: 1, mode: ContinueTurn},
			},
			want:    "start d0:Ships have keels to keep d0: them d0: upright. stop0 msgstop meta(39,8,47)",
			dropped: []int{0, len("keels to keep")},
		},
		{
			name:   "anthropic: overlap dropped, one block",
			format: Invoke,
			attempts: []attemptScript{
				{frames: [][]byte{a.start(9), a.textStart(0), a.delta(0, "Ships have"), a.delta(0, " keels to keep")}, end: "break"},
				{frames: [][]byte{a.start(20), a.textStart(0), a.delta(0, " keels to"), a.delta(0, " keep them"), a.delta(0, " upright."), a.stop(0), a.msgDelta(3), a.msgStop(20, 3)}, prefill: 2, mode: ContinueTurn},
			},
			want:    "start open0 d0:Ships have d0: keels to keep d0: them d0: upright. stop0 msgdelta(9) end(29,9)",
			dropped: []int{0, len(" keels to keep")},
		},
		{
			name:   "anthropic: no overlap after a closed block",
			format: Invoke,
			attempts: []attemptScript{
				{frames: [][]byte{a.start(9), a.textStart(0), a.delta(0, "Ships have keels."), a.stop(0)}, end: "break"},
				{frames: [][]byte{a.start(20), a.textStart(0), a.delta(0, "They keep"), a.delta(0, " them upright."), a.stop(0), a.msgDelta(3), a.msgStop(20, 3)}, prefill: 2, mode: ContinueTurn},
			},
			want:    "start open0 d0:Ships have keels. stop0 open1 d1:They keep d1: them upright. stop1 msgdelta(8) end(29,8)",
			dropped: []int{0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, conts, sp := run(t, tt.format, tt.attempts)
			if s := summary(got); s != tt.want {
				t.Errorf("reader got\n  %s\nwant\n  %s", s, tt.want)
			}
			for _, c := range conts {
				if !c.OK {
					t.Errorf("continuation refused: %s", c.Why)
				}
			}
			var dropped []int
			for _, g := range sp.Segments() {
				dropped = append(dropped, g.Dropped)
			}
			if !reflect.DeepEqual(dropped, tt.dropped) {
				t.Errorf("dropped %v, want %v", dropped, tt.dropped)
			}
			if text := string(sp.Text()); strings.Count(text, "keels") > 1 {
				t.Errorf("text %q", text)
			}
		})
	}
}

// TestSpliceContinueTurnHoldIsBounded feeds a continuation that could go on
// overlapping the reader's text: its text is released once MaxOverlap bytes
// are held.
func TestSpliceContinueTurnHoldIsBounded(t *testing.T) {
	c := cv{t}
	have := strings.Repeat(" go", 200) // 600 bytes
	sp := NewSplicer(Converse)
	feed := func(raw []byte) Verdict {
		f, err := NewReader(bytes.NewReader(raw)).Next()
		if err != nil {
			t.Fatal(err)
		}
		return sp.Feed(&f)
	}
	sp.Begin("", 0)
	feed(c.start())
	feed(c.delta(0, have))
	if cont := sp.Break(); !cont.OK {
		t.Fatal(cont.Why)
	}
	sp.Begin(ContinueTurn, 150)
	feed(c.start())
	held := 0
	for ; held+3 < MaxOverlap; held += 3 {
		if v := feed(c.delta(0, " go")); v.Out != nil {
			t.Fatalf("released with %d bytes held, fewer than MaxOverlap", held+3)
		}
	}
	held += 3
	if v := feed(c.delta(0, " go")); !v.Content {
		t.Fatalf("nothing released with %d bytes held", held)
	}
	// Everything held repeated the end of the reply; the longest overlap
	// within the bound is dropped and the rest delivered.
	if got := string(sp.Text()); !strings.HasPrefix(got, have) || len(got)-len(have) != held-sp.Dropped() || sp.Dropped() == 0 {
		t.Fatalf("text grew by %d bytes with %d dropped of %d held", len(got)-len(have), sp.Dropped(), held)
	}
}
