package engine

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	emureply "github.com/keel-run/keel/internal/emulator/reply"
	"github.com/keel-run/keel/internal/stream"
)

// sonnet46 is a model of the table that refuses a prefill.
const sonnet46 = "us.anthropic.claude-sonnet-4-6"

// turnMaxTokens is an output limit that the reply and the repetitions of
// its continuations fit in, so that the spliced reply can be compared with
// the unbroken one byte for byte.
const turnMaxTokens = 1000

func turnCases() []streamCase {
	return []streamCase{
		{op: attempt.ConverseStream, model: sonnet46, body: converseBody(prompt, turnMaxTokens), lead: 1, maxTokens: turnMaxTokens},
		{op: attempt.InvokeWithResponseStream, model: sonnet46, body: anthropicBody(prompt, turnMaxTokens), lead: 2, maxTokens: turnMaxTokens},
	}
}

// delivered is the text of c's reply up to its k-th token, as a reader has
// it after a break there, and the assistant turn keel sends for it.
func delivered(c streamCase, k int) (have, turn string) {
	whole := unbroken(c.model, prompt, c.maxTokens).Text
	have = whole[:emureply.Cut(whole, k)]
	return have, strings.TrimRightFunc(have, unicode.IsSpace)
}

// continuation is the emulator's reply to the continue-turn continuation
// of c's reply broken after k tokens.
func continuation(c streamCase, k int) emureply.Reply {
	_, turn := delivered(c, k)
	return emureply.Generate(&emureply.Request{Seed: seed, Model: strings.TrimPrefix(c.model, "us."), MaxTokens: c.maxTokens - k,
		ContinuePrompt: stream.ContinuePrompt, Messages: []emureply.Message{{Role: "user", Text: prompt},
			{Role: "assistant", Text: turn}, {Role: "user", Text: stream.ContinuePrompt}}})
}

// breakWith returns a number of tokens, from, after which a break gets a
// continuation that repeats some of the reply (overlap) or none of it.
func breakWith(t *testing.T, c streamCase, from int, overlap bool) int {
	t.Helper()
	for k := from; k < unbroken(c.model, prompt, c.maxTokens).OutputTokens-6; k++ {
		if r := continuation(c, k); (r.Overlap > 0) == overlap {
			return k
		}
	}
	t.Fatalf("no break point gives a continuation with overlap %v", overlap)
	return 0
}

// recorder keeps the body of every request it sends.
type recorder struct {
	base   *http.Transport
	mu     sync.Mutex
	bodies [][]byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.bodies = append(r.bodies, b)
	r.mu.Unlock()
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(b))
	return r.base.RoundTrip(req)
}

func (r *recorder) CloseIdleConnections() { r.base.CloseIdleConnections() }

// messages returns the role and text of each message of a request body.
func messages(t *testing.T, body []byte) (roles, texts []string) {
	t.Helper()
	var m struct {
		Messages []struct {
			Role    string
			Content json.RawMessage
		}
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("request body %s: %v", body, err)
	}
	for _, msg := range m.Messages {
		var text string
		var blocks []struct{ Text string }
		if json.Unmarshal(msg.Content, &text) != nil && json.Unmarshal(msg.Content, &blocks) == nil {
			for _, b := range blocks {
				text += b.Text
			}
		}
		roles, texts = append(roles, msg.Role), append(texts, text)
	}
	return roles, texts
}

// TestStreamContinueTurn breaks streams of a model that refuses a prefill
// after their first content: each is resumed by a continuation that ends
// in a user turn, and the reader gets the unbroken reply once, whether the
// continuation repeats the end of the reply or not, and when it breaks
// again.
func TestStreamContinueTurn(t *testing.T) {
	exception := func(after int) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: after, Code: catalog.CodeModelStreamError}}
	}
	// breakAfter has request n break after after[n] events of its own.
	breakAfter := func(after ...int) func(int) fault.Plan {
		return func(n int) fault.Plan {
			if n < len(after) {
				return exception(after[n])
			}
			return fault.Plan{}
		}
	}
	for _, c := range turnCases() {
		withOverlap, without, later := breakWith(t, c, 6, true), breakWith(t, c, 6, false), breakWith(t, c, 40, true)
		again := continuation(c, withOverlap)
		tests := []struct {
			name string
			plan func(n int) fault.Plan
			// breaks lists the tokens the reader has at each break (-1:
			// not worked out); held is set when a continuation failed
			// while its text was held.
			breaks []int
			held   bool
		}{
			{name: "overlap", breaks: []int{withOverlap}, plan: breakAfter(c.lead + withOverlap)},
			{name: "overlap later in the reply", breaks: []int{later}, plan: breakAfter(c.lead + later)},
			{name: "no overlap", breaks: []int{without}, plan: breakAfter(c.lead + without)},
			{name: "the continuation breaks again after its content", breaks: []int{withOverlap, -1},
				plan: breakAfter(c.lead+withOverlap, c.lead+again.OutputTokens-2)},
			{name: "the continuation breaks while its text is held", breaks: []int{withOverlap}, held: true,
				plan: breakAfter(c.lead+withOverlap, c.lead+1)},
		}
		for _, tt := range tests {
			t.Run(string(c.op)+"/"+tt.name, func(t *testing.T) {
				em := startEmu(t, tt.plan)
				rec := &recorder{base: &http.Transport{}}
				r := runStream(t, em, c, func(o *Options) { o.HTTPClient = &http.Client{Transport: rec} })
				checkClean(t, r, c)
				sent := len(tt.breaks) + 1
				if tt.held {
					sent++
				}
				if r.rep.Resumes != len(tt.breaks) || r.rep.Sent() != sent || len(rec.bodies) != sent {
					t.Fatalf("resumes %d, %d attempts, %d requests; want %d, %d", r.rep.Resumes, r.rep.Sent(), len(rec.bodies), len(tt.breaks), sent)
				}
				for i, a := range r.rep.Attempts {
					roles, texts := messages(t, rec.bodies[i])
					if i == 0 {
						if a.Resume || a.ResumeMode != "" || len(roles) != 1 {
							t.Fatalf("attempt 0 %+v, messages %v", a, roles)
						}
						continue
					}
					// No prefill: the continuation ends with the user turn
					// asking to go on, after the reply so far.
					n := len(roles)
					if !a.Resume || a.ResumeMode != "continue-turn" || n != 3 || roles[n-1] != "user" || texts[n-1] != stream.ContinuePrompt || roles[n-2] != "assistant" {
						t.Fatalf("attempt %d %+v, messages %v", i, a, roles)
					}
					if !strings.HasPrefix(r.d.text, texts[n-2]) || texts[n-2] != strings.TrimRightFunc(texts[n-2], unicode.IsSpace) {
						t.Fatalf("attempt %d carried %q, not the start of the reply without trailing whitespace", i, texts[n-2])
					}
				}
				// The first continuation that delivered content dropped the
				// emulator's repetition of the reply's end.
				first := r.rep.Attempts[len(r.rep.Attempts)-len(tt.breaks)]
				have, turn := delivered(c, tt.breaks[0])
				want := utf8.RuneCountInString(have[len(turn):]) + utf8.RuneCountInString(continuation(c, tt.breaks[0]).Text[:continuation(c, tt.breaks[0]).Overlap])
				if first.OverlapDropped != want {
					t.Fatalf("OverlapDropped %d, want %d", first.OverlapDropped, want)
				}
				if (want > 0) != (tt.breaks[0] != without) {
					t.Fatalf("the case does not test what it says: %d characters of overlap", want)
				}
				if c.op == attempt.InvokeWithResponseStream && !tt.held {
					// Anthropic streams report their input at the start:
					// the usage is exact.
					checkUsage(t, r, em)
				}
			})
		}
	}
}

// TestStreamContinueTurnOff turns continue-turn resume off: a model that
// refuses a prefill is not resumed.
func TestStreamContinueTurnOff(t *testing.T) {
	c := turnCases()[0]
	em := startEmu(t, func(n int) fault.Plan {
		if n == 0 {
			return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: c.lead + 5, Code: catalog.CodeModelStreamError}}
		}
		return fault.Plan{}
	})
	r := runStream(t, em, c, func(o *Options) { o.Streaming.DisableContinueTurn = true })
	ke := r.readErr(t)
	if !strings.Contains(ke.GaveUp, "refuses a prefill, and continue-turn resume is turned off") || r.rep.Sent() != 1 || r.d.text == "" {
		t.Fatalf("gave up %q, report %+v, text %q", ke.GaveUp, r.rep, r.d.text)
	}
}

func TestResumeMode(t *testing.T) {
	const refused = "us.anthropic.claude-3-5-haiku-20241022-v1:0" // remembered as having refused a prefill
	tests := []struct {
		name  string
		model string
		o     StreamOptions
		body  []byte
		mode  stream.Mode
		why   string
	}{
		{name: "a model that takes a prefill", model: sonnet, mode: stream.Prefill},
		{name: "a model that refuses one", model: sonnet46, mode: stream.ContinueTurn},
		{name: "a model that refused one earlier", model: refused, mode: stream.ContinueTurn},
		{name: "a model not known either way", model: llama, why: "not known to accept a prefill"},
		{name: "a model not known, turned on: prefill", model: llama, o: StreamOptions{Resume: map[string]bool{llama: true}}, mode: stream.Prefill},
		{name: "resume off", model: sonnet46, o: StreamOptions{DisableResume: true}, why: "resume is turned off"},
		{name: "resume off, on for the model", model: sonnet46, o: StreamOptions{DisableResume: true, Resume: map[string]bool{sonnet46: true}}, mode: stream.ContinueTurn},
		{name: "off for the model", model: sonnet46, o: StreamOptions{Resume: map[string]bool{sonnet46: false}}, why: "turned off for " + sonnet46},
		{name: "continue-turn off", model: sonnet46, o: StreamOptions{DisableContinueTurn: true}, why: "continue-turn resume is turned off"},
		{name: "continue-turn off, on for the model: prefill", model: sonnet46, o: StreamOptions{DisableContinueTurn: true, Resume: map[string]bool{sonnet46: true}}, mode: stream.Prefill},
		{name: "continue-turn off, refused earlier", model: refused, o: StreamOptions{DisableContinueTurn: true, Resume: map[string]bool{refused: true}}, why: "refused a prefill earlier"},
		{name: "continue-turn off leaves prefills alone", model: sonnet, o: StreamOptions{DisableContinueTurn: true}, mode: stream.Prefill},
		{name: "extended thinking", model: sonnet46, body: []byte(`{"additionalModelRequestFields":{"thinking":{"type":"enabled"}}}`), why: "extended thinking"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newStreamEngine(t, "http://127.0.0.1:1", func(o *Options) { o.Streaming = tt.o })
			e.noPrefill.Store(refused, true)
			mode, why := e.resumeMode(&Call{Op: attempt.ConverseStream, Model: tt.model, Body: tt.body}, stream.Converse)
			if mode != tt.mode || (tt.why == "") != (why == "") || !strings.Contains(why, tt.why) {
				t.Fatalf("resumeMode = %q, %q; want %q, %q", mode, why, tt.mode, tt.why)
			}
		})
	}
}
