package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/stream"
)

func TestStreamResumeRefused(t *testing.T) {
	c := converseCase()
	thinking := []byte(`{"messages":[{"role":"user","content":[{"text":"` + prompt + `"}]}],"inferenceConfig":{"maxTokens":40},"additionalModelRequestFields":{"thinking":{"type":"enabled","budget_tokens":1024}}}`)
	every := func(n int) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 4, Code: catalog.CodeModelStreamError}}
	}
	first := func(n int) fault.Plan {
		if n == 0 {
			return every(n)
		}
		return fault.Plan{}
	}
	tests := []struct {
		name    string
		plan    func(int) fault.Plan
		c       streamCase
		mod     func(*Options)
		gaveUp  string
		resumes int
	}{
		{name: "resume turned off", plan: first, c: c, mod: func(o *Options) { o.Streaming.DisableResume = true }, gaveUp: "resume is turned off"},
		{name: "turned off for the model", plan: first, c: c, mod: func(o *Options) { o.Streaming.Resume = map[string]bool{sonnet: false} }, gaveUp: "turned off for " + sonnet},
		{name: "model not known to take a prefill", plan: first, c: streamCase{op: attempt.ConverseStream, model: llama, body: converseBody(prompt, 40), maxTokens: 40}, gaveUp: "not known to accept a prefill"},
		{name: "extended thinking", plan: first, c: streamCase{op: attempt.ConverseStream, model: sonnet, body: thinking, maxTokens: 40}, gaveUp: "extended thinking"},
		{name: "resume limit", plan: every, c: c, mod: func(o *Options) { o.Streaming.MaxResumes = 1 }, gaveUp: "limit of 1 resumes", resumes: 1},
		{name: "retry budget", plan: first, c: c, mod: func(o *Options) {
			o.Budget = budget.Options{Ratio: 1e-9, MinPerSecond: 1e-9}
		}, gaveUp: "retry budget"},
		{name: "retry policy allows no retry", plan: first, c: c, mod: func(o *Options) { o.Retry.MaxAttempts = 1 }, gaveUp: "retry policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			em := startEmu(t, tt.plan)
			r := runStream(t, em, tt.c, tt.mod)
			if r.doErr != nil {
				t.Fatal(r.doErr)
			}
			ke := r.readErr(t)
			if ke.Entry.Code != catalog.CodeModelStreamError || ke.Status != 424 || !strings.Contains(ke.GaveUp, tt.gaveUp) {
				t.Fatalf("error %v (gave up %q), want ModelStreamErrorException 424 giving up with %q", ke, ke.GaveUp, tt.gaveUp)
			}
			if r.rep.Resumes != tt.resumes || ke.Stream.Text != r.d.text || r.d.text == "" || r.endErr != ke {
				t.Fatalf("resumes %d, failure %+v, text %q, hook saw %v", r.rep.Resumes, ke.Stream, r.d.text, r.endErr)
			}
		})
	}
}

// TestStreamResumesTwice breaks the reply and its first continuation: the
// second continuation carries the whole text so far, once.
func TestStreamResumesTwice(t *testing.T) {
	for _, c := range []streamCase{converseCase(), invokeCase()} {
		t.Run(string(c.op), func(t *testing.T) {
			em := startEmu(t, func(n int) fault.Plan {
				if n < 2 {
					return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: c.lead + 4, Code: catalog.CodeInternalServer}}
				}
				return fault.Plan{}
			})
			r := runStream(t, em, c, nil)
			checkClean(t, r, c)
			checkUsage(t, r, em)
			if r.rep.Resumes != 2 || r.rep.Sent() != 3 {
				t.Fatalf("report %+v", r.rep)
			}
		})
	}
}

// TestStreamOutputLimitReached breaks a reply after its last token: nothing
// is left to continue, and the reader gets the error, not a second reply.
func TestStreamOutputLimitReached(t *testing.T) {
	c := converseCase()
	em := startEmu(t, func(n int) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 1 + c.maxTokens, Code: catalog.CodeInternalServer}}
	})
	r := runStream(t, em, c, nil)
	ke := r.readErr(t)
	if !strings.Contains(ke.GaveUp, "output limit") || r.d.text != unbroken(c.model, prompt, c.maxTokens).Text || r.rep.Sent() != 1 {
		t.Fatalf("gave up %q, text %q, report %+v", ke.GaveUp, r.d.text, r.rep)
	}
}

// TestStreamResumeOnFallback resumes on the route's next target when the
// first keeps failing: the continuation goes through the same route as any
// retry.
func TestStreamResumeOnFallback(t *testing.T) {
	c := converseCase()
	em := startEmu(t, func(n int) fault.Plan {
		switch {
		case n == 0:
			return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 6, Code: catalog.CodeServiceUnavailable}}
		case n <= 3:
			return fault.Plan{Error: catalog.CodeServiceUnavailable}
		}
		return fault.Plan{}
	})
	r := runStream(t, em, c, func(o *Options) {
		o.Routes = routeTo(sonnet, "us-east-1", "us-west-2")
	})
	checkClean(t, r, c)
	var targets []string
	for _, a := range r.rep.Attempts {
		targets = append(targets, a.Target.Region+":"+a.Code)
	}
	// The broken stream, the continuation refused three times in us-east-1,
	// then answered in us-west-2.
	want := "us-east-1:ServiceUnavailableException us-east-1:ServiceUnavailableException us-east-1:ServiceUnavailableException us-east-1:ServiceUnavailableException us-west-2:"
	if strings.Join(targets, " ") != want || r.rep.Resumes != 1 || r.rep.Fallbacks != 1 {
		t.Fatalf("attempts %v, resumes %d, fallbacks %d", targets, r.rep.Resumes, r.rep.Fallbacks)
	}
}

// TestStreamLogs checks the lines a resumed stream writes: the break and the
// end, with codes and counts, and never the prompt or the reply's text.
func TestStreamLogs(t *testing.T) {
	c := converseCase()
	em := startEmu(t, func(n int) fault.Plan {
		if n == 0 {
			return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 7, Code: catalog.CodeModelStreamError}}
		}
		return fault.Plan{}
	})
	var buf bytes.Buffer
	r := runStream(t, em, c, func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(&buf, nil)) })
	checkClean(t, r, c)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		lines = append(lines, m)
	}
	var msgs []string
	for _, m := range lines {
		msgs = append(msgs, m["msg"].(string))
	}
	// The first attempt (its first content), the break, the continuation,
	// the call's outcome, the stream's end.
	if got := strings.Join(msgs, ","); got != "attempt,stream broke,attempt,outcome,stream" {
		t.Fatalf("log lines %s", got)
	}
	brk, end := lines[1], lines[4]
	if brk["code"] != catalog.CodeModelStreamError || brk["events"].(float64) != 7 {
		t.Fatalf("break line %v", brk)
	}
	if end["resumes"].(float64) != 1 || end["outcome"] != "ok" || end["outputTokens"].(float64) != float64(r.rep.Usage.OutputTokens) {
		t.Fatalf("end line %v", end)
	}
	text := unbroken(c.model, prompt, c.maxTokens).Text
	if strings.Contains(buf.String(), prompt) || strings.Contains(buf.String(), text[:20]) {
		t.Fatalf("the logs carry prompt or reply text:\n%s", buf.String())
	}
}

// TestStreamPrefillRefusalIsRemembered plays a model keel believes takes a
// prefill but that refuses one (as Claude 4.6 does): the continuation fails
// with ValidationException (the catalog's PrefillUnsupported), the reader
// gets the original failure, and the next stream of that model is resumed by
// a continue-turn continuation.
func TestStreamPrefillRefusalIsRemembered(t *testing.T) {
	f := fakeConverse(t, "Hel", "lo")
	var mu sync.Mutex
	var prefills, turns int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.Contains(string(body), stream.ContinuePrompt):
			turns++
			w.Write(f.continuation(1))
		case strings.Contains(string(body), `"assistant"`):
			prefills++
			w.Header().Set("X-Amzn-ErrorType", "ValidationException")
			w.WriteHeader(400)
			io.WriteString(w, `{"message":"This model does not support assistant message prefill. The conversation must end with a user message."}`)
		default:
			w.Write(f.upTo(2))
			w.Write(f.exception("modelStreamErrorException", "The model stopped."))
		}
	}))
	defer srv.Close()
	e, _ := newStreamEngine(t, srv.URL, nil)
	for i, want := range []string{"the continuation failed with PrefillUnsupported", ""} {
		resp, rep, err := streamCall(context.Background(), e, attempt.ConverseStream, sonnet, converseBody(prompt, 40))
		if err != nil {
			t.Fatal(err)
		}
		d := readAll(t, resp.Body, false)
		resp.Body.Close()
		if want == "" {
			if d.err != nil || d.text != "Hello" || rep.Resumes != 1 || rep.Attempts[1].ResumeMode != "continue-turn" {
				t.Fatalf("call %d: error %v, text %q, report %+v; want the reply resumed by a continue-turn continuation", i, d.err, d.text, rep)
			}
			continue
		}
		var ke *Error
		if !errors.As(d.err, &ke) || ke.Entry.Code != catalog.CodeModelStreamError || !strings.Contains(ke.GaveUp, want) || d.text != "Hel" {
			t.Fatalf("call %d: error %v, text %q; want ModelStreamErrorException giving up with %q", i, d.err, d.text, want)
		}
		if rep.Attempts[1].ResumeMode != "prefill" {
			t.Fatalf("call %d: the continuation's attempt %+v", i, rep.Attempts[1])
		}
	}
	if prefills != 1 || turns != 1 {
		t.Fatalf("%d prefills and %d continue-turn continuations sent, want 1 each", prefills, turns)
	}
}
