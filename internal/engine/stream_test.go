package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const prompt = "Why do ships have keels?"

// streamCase is one streaming call against the emulator.
type streamCase struct {
	op        attempt.Op
	model     string
	body      []byte
	lead      int // events before the first content
	maxTokens int
}

func converseCase() streamCase {
	return streamCase{op: attempt.ConverseStream, model: sonnet, body: converseBody(prompt, 40), lead: 1, maxTokens: 40}
}

func invokeCase() streamCase {
	return streamCase{op: attempt.InvokeWithResponseStream, model: sonnet, body: anthropicBody(prompt, 40), lead: 2, maxTokens: 40}
}

// total is the number of events of the unbroken stream.
func (c streamCase) total() int {
	n := unbroken(c.model, prompt, c.maxTokens).OutputTokens
	if c.op == attempt.ConverseStream {
		return n + 4 // messageStart, deltas, contentBlockStop, messageStop, metadata
	}
	return n + 5 // message_start, content_block_start, deltas, content_block_stop, message_delta, message_stop
}

// result is what one streaming call gave.
type result struct {
	resp   *http.Response
	rep    *Report
	doErr  error
	d      decoded
	ends   int   // OnStreamEnd calls
	endErr error // the error OnStreamEnd saw
}

// readErr returns the *Error the reader got, or fails.
func (r *result) readErr(t *testing.T) *Error {
	t.Helper()
	var ke *Error
	if !errors.As(r.d.err, &ke) {
		t.Fatalf("the reader got %v, want a *Error", r.d.err)
	}
	return ke
}

// runStream sends c through an engine pointed at em, reads the whole body
// and returns what happened.
func runStream(t *testing.T, em *emu, c streamCase, mod func(*Options)) *result {
	t.Helper()
	var r result
	var mu sync.Mutex
	e, _ := newStreamEngine(t, em.rn.URL, func(o *Options) {
		o.OnStreamEnd = func(_ *Call, _ *Report, err error) {
			mu.Lock()
			r.ends++
			r.endErr = err
			mu.Unlock()
		}
		if mod != nil {
			mod(o)
		}
	})
	r.resp, r.rep, r.doErr = streamCall(context.Background(), e, c.op, c.model, c.body)
	if r.doErr == nil {
		r.d = readAll(t, r.resp.Body, c.op == attempt.InvokeWithResponseStream)
		r.resp.Body.Close()
		if r.ends != 1 {
			t.Fatalf("OnStreamEnd ran %d times, want once", r.ends)
		}
	}
	return r.withT(t)
}

func (r result) withT(*testing.T) *result { return &r }

// starts counts the message starts the reader got.
func (d decoded) starts() int {
	n := 0
	for _, e := range d.events {
		if e.typ == "messageStart" || e.typ == "message_start" {
			n++
		}
	}
	return n
}

// finalUsage is the usage of the stream's final event.
func (d decoded) finalUsage(t *testing.T) (in, out int) {
	t.Helper()
	if len(d.events) == 0 {
		t.Fatal("no events")
	}
	last := d.events[len(d.events)-1].payload
	num := func(m any, k string) int { v, _ := m.(map[string]any)[k].(float64); return int(v) }
	if u, ok := last["usage"]; ok { // ConverseStream metadata
		return num(u, "inputTokens"), num(u, "outputTokens")
	}
	m := last["amazon-bedrock-invocationMetrics"]
	return num(m, "inputTokenCount"), num(m, "outputTokenCount")
}

// checkClean checks that the reader got one clean stream: the unbroken
// reply, one message start, a clean end.
func checkClean(t *testing.T, r *result, c streamCase) {
	t.Helper()
	if r.doErr != nil {
		t.Fatalf("Do: %v", r.doErr)
	}
	if r.d.err != nil {
		t.Fatalf("the reader got %v, want a clean end", r.d.err)
	}
	if want := unbroken(c.model, prompt, c.maxTokens).Text; r.d.text != want {
		t.Fatalf("text\n%q\nwant the unbroken reply\n%q", r.d.text, want)
	}
	if n := r.d.starts(); n != 1 {
		t.Fatalf("%d message starts, want 1", n)
	}
	if r.endErr != nil {
		t.Fatalf("OnStreamEnd saw %v", r.endErr)
	}
}

// checkUsage checks that the reader's final usage is the sum over the
// attempts, equal to what the emulator itself settled, and the Report's.
func checkUsage(t *testing.T, r *result, em *emu) {
	t.Helper()
	in, out := r.d.finalUsage(t)
	sin, sout := em.settledSum()
	if in != sin || out != sout {
		t.Errorf("the reader's usage is %d in, %d out; the emulator settled %d in, %d out", in, out, sin, sout)
	}
	if r.rep.Usage.InputTokens != in || r.rep.Usage.OutputTokens != out {
		t.Errorf("Report.Usage %+v, the reader's %d in, %d out", r.rep.Usage, in, out)
	}
	sum := Usage{}
	for _, a := range r.rep.Attempts {
		sum = sum.add(a.Usage)
	}
	if sum != r.rep.Usage {
		t.Errorf("Report.Usage %+v is not the sum over the attempts %+v", r.rep.Usage, sum)
	}
}

func TestStreamUnbroken(t *testing.T) {
	tests := []struct {
		name string
		c    streamCase
	}{
		{"converse", converseCase()},
		{"invoke anthropic", invokeCase()},
		{"converse nova", streamCase{op: attempt.ConverseStream, model: novaPro, body: converseBody(prompt, 30), maxTokens: 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			em := startEmu(t, nil)
			r := runStream(t, em, tt.c, nil)
			checkClean(t, r, tt.c)
			checkUsage(t, r, em)
			if r.rep.Sent() != 1 || r.rep.Resumes != 0 || r.rep.Usage.Estimated {
				t.Fatalf("report %+v", r.rep)
			}
			if a := r.rep.Attempts[0]; a.Events != len(r.d.events) || a.Status != 200 || a.Code != "" {
				t.Fatalf("attempt %+v, the reader got %d events", a, len(r.d.events))
			}
		})
	}
}

// TestStreamOtherFormatsPassThrough checks InvokeModel streams of the other
// body formats: checked, retried before content, never resumed.
func TestStreamOtherFormatsPassThrough(t *testing.T) {
	for _, model := range []string{novaPro, llama, "amazon.titan-text-express-v1"} {
		t.Run(model, func(t *testing.T) {
			em := startEmu(t, func(n int) fault.Plan {
				if n == 0 {
					return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 0, Code: catalog.CodeServiceUnavailable}}
				}
				return fault.Plan{}
			})
			body := []byte(`{"messages":[{"role":"user","content":[{"text":"` + prompt + `"}]}],"inferenceConfig":{"maxTokens":20}}`)
			if model == llama {
				body = []byte(`{"prompt":"` + prompt + `","max_gen_len":20}`)
			} else if strings.HasPrefix(model, "amazon.titan") {
				body = []byte(`{"inputText":"` + prompt + `","textGenerationConfig":{"maxTokenCount":20}}`)
			}
			r := runStream(t, em, streamCase{op: attempt.InvokeWithResponseStream, model: model, body: body}, nil)
			if r.doErr != nil || r.d.err != nil || r.rep.Sent() != 2 || len(r.d.raw) == 0 {
				t.Fatalf("Do %v, read %v, report %+v", r.doErr, r.d.err, r.rep)
			}
			if in, out := r.d.finalUsage(t); in == 0 || out == 0 || r.rep.Usage.OutputTokens != out {
				t.Fatalf("final usage %d/%d, report %+v", in, out, r.rep.Usage)
			}
		})
	}
}

// TestStreamExceptions sends every exception a stream can carry, before the
// first event, after the message start, in the middle of the content and
// after the final event, through both stream operations.
func TestStreamExceptions(t *testing.T) {
	for _, c := range []streamCase{converseCase(), invokeCase()} {
		total := c.total()
		for _, entry := range catalog.All() {
			if !entry.Streamable {
				continue
			}
			for _, after := range []int{0, 1, c.lead + 5, total} {
				t.Run(fmt.Sprintf("%s/%s/after %d", c.op, entry.Code, after), func(t *testing.T) {
					em := startEmu(t, func(n int) fault.Plan {
						if n == 0 {
							return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: after, Code: entry.Code}}
						}
						return fault.Plan{}
					})
					r := runStream(t, em, c, nil)
					pre, final := after <= c.lead, after >= total
					switch {
					case pre && entry.Retryable():
						checkClean(t, r, c)
						if r.rep.Sent() != 2 || r.rep.Attempts[0].Code != entry.Code || r.rep.Resumes != 0 || r.rep.Attempts[1].Resume {
							t.Fatalf("report %+v", r.rep)
						}
					case pre:
						var ke *Error
						if !errors.As(r.doErr, &ke) || ke.Entry.Code != entry.Code || ke.Status != entry.Status || r.rep.Sent() != 1 {
							t.Fatalf("Do: %v, want %s with status %d after one attempt", r.doErr, entry.Code, entry.Status)
						}
						if r.resp == nil || r.resp.StatusCode != entry.Status || !strings.EqualFold(r.resp.Header.Get("X-Amzn-Errortype"), entry.Code) {
							t.Fatalf("error response %+v, want status %d and X-Amzn-ErrorType %s", r.resp, entry.Status, entry.Code)
						}
					case final:
						// Every event arrived; the exception came after.
						ke := r.readErr(t)
						if ke.Entry.Code != entry.Code || ke.Status != entry.Status || ke.Stream == nil || r.d.text != unbroken(c.model, prompt, c.maxTokens).Text {
							t.Fatalf("error %v (status %d), text %q", ke, ke.Status, r.d.text)
						}
						if entry.Retryable() && !strings.Contains(ke.GaveUp, "already stopped") {
							t.Fatalf("gave up %q", ke.GaveUp)
						}
					case entry.Retryable():
						checkClean(t, r, c)
						checkUsage(t, r, em)
						if r.rep.Resumes != 1 || r.rep.Sent() != 2 || !r.rep.Attempts[1].Resume || r.rep.Attempts[0].Code != entry.Code {
							t.Fatalf("report %+v", r.rep)
						}
					default:
						ke := r.readErr(t)
						if ke.Entry.Code != entry.Code || ke.Status != entry.Status || ke.Stream == nil || ke.Stream.Text == "" ||
							!strings.HasPrefix(unbroken(c.model, prompt, c.maxTokens).Text, ke.Stream.Text) || ke.Stream.Text != r.d.text {
							t.Fatalf("error %v, partial %+v, text %q", ke, ke.Stream, r.d.text)
						}
						if r.rep.Resumes != 0 || len(ke.Stream.Frame) == 0 || ke.Stream.Events != len(r.d.events) {
							t.Fatalf("report %+v, failure %+v, %d events", r.rep, ke.Stream, len(r.d.events))
						}
					}
				})
			}
		}
	}
}

// TestStreamBroken covers the failures that are not exceptions: error
// frames, resets, truncated bodies and corrupt frames, before and after the
// first content.
func TestStreamBroken(t *testing.T) {
	kinds := []struct {
		kind fault.MidStreamKind
		code string // the catalog code keel records
	}{
		{fault.ErrorFrame, catalog.CodeThrottling},
		{fault.Reset, catalog.CodeConnectionReset},
		{fault.Truncate, catalog.CodeStreamTruncated},
		{fault.Corrupt, catalog.CodeStreamCorrupt},
	}
	for _, c := range []streamCase{converseCase(), invokeCase()} {
		for _, k := range kinds {
			for _, after := range []int{0, 1, c.lead + 7} {
				t.Run(fmt.Sprintf("%s/%s/after %d", c.op, k.kind, after), func(t *testing.T) {
					em := startEmu(t, func(n int) fault.Plan {
						if n == 0 {
							return fault.Plan{MidStream: &fault.MidStream{Kind: k.kind, After: after, Code: k.code}}
						}
						return fault.Plan{}
					})
					r := runStream(t, em, c, nil)
					checkClean(t, r, c)
					a := r.rep.Attempts[0]
					if r.rep.Sent() != 2 || a.Code != k.code {
						t.Fatalf("report %+v, want 2 attempts, the first %s", r.rep, k.code)
					}
					if after > c.lead && k.kind != fault.Reset {
						// A reset may lose the events just before it; then
						// the first content may not have arrived at all.
						if r.rep.Resumes != 1 || !r.rep.Attempts[1].Resume {
							t.Fatalf("report %+v, want one resume", r.rep)
						}
						checkUsage(t, r, em)
					}
				})
			}
		}
	}
}

// TestStreamCleanEndWithoutFinalEvent is the case aws-sdk-go-v2 reports as a
// complete stream: the body ends between two frames, before the final
// event. keel treats it as truncated and resumes.
func TestStreamCleanEndWithoutFinalEvent(t *testing.T) {
	full := fakeConverse(t, "Hel", "lo", " world")
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		if first {
			w.Write(full.upTo(2)) // messageStart and one delta, then a clean end
			return
		}
		w.Write(full.continuation(1))
	}))
	defer srv.Close()
	e, _ := newStreamEngine(t, srv.URL, nil)
	resp, rep, err := streamCall(context.Background(), e, attempt.ConverseStream, sonnet, converseBody(prompt, 40))
	if err != nil {
		t.Fatal(err)
	}
	d := readAll(t, resp.Body, false)
	resp.Body.Close()
	if d.err != nil || d.text != "Hello world" || rep.Resumes != 1 || rep.Attempts[0].Code != catalog.CodeStreamTruncated {
		t.Fatalf("text %q, err %v, report %+v", d.text, d.err, rep)
	}
}

// TestStreamBrokenAfterTheEnd cuts the body after the final event: the
// reply is complete, and the reader gets a clean end.
func TestStreamBrokenAfterTheEnd(t *testing.T) {
	f := fakeConverse(t, "All", " done.")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.Write(f.continuation(0))
		w.Write(f.upTo(1)[:7]) // half a prelude, then the end
	}))
	defer srv.Close()
	e, _ := newStreamEngine(t, srv.URL, nil)
	resp, rep, err := streamCall(context.Background(), e, attempt.ConverseStream, sonnet, converseBody(prompt, 40))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || rep.Sent() != 1 || rep.Attempts[0].Code != "" {
		t.Fatalf("read error %v, report %+v", err, rep)
	}
	if d := readAll(t, bytes.NewReader(raw), false); d.text != "All done." {
		t.Fatalf("text %q", d.text)
	}
}

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

func TestStreamReaderClosesEarly(t *testing.T) {
	c := converseCase()
	em := startEmu(t, nil)
	var ends int
	var endErr error
	e, _ := newStreamEngine(t, em.rn.URL, func(o *Options) {
		o.OnStreamEnd = func(_ *Call, _ *Report, err error) { ends, endErr = ends+1, err }
	})
	resp, rep, err := streamCall(context.Background(), e, c.op, c.model, c.body)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(buf); !errors.Is(err, errClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	resp.Body.Close() // twice is fine
	if ends != 1 || endErr != nil || rep.Sent() != 1 || rep.Attempts[0].Usage.OutputTokens == 0 || !rep.Usage.Estimated {
		t.Fatalf("hook ran %d times (%v); report %+v", ends, endErr, rep)
	}
}

// TestStreamCloseWhileReading closes a stream while a Read waits on a
// stalled upstream, as the SDK's stream.Close does: the Read ends at once
// with errClosed, the stream's end is no failure, nothing is left running.
func TestStreamCloseWhileReading(t *testing.T) {
	c := converseCase()
	em := startEmu(t, func(n int) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 5}}
	})
	var ends int
	var endErr error
	e, _ := newStreamEngine(t, em.rn.URL, func(o *Options) {
		o.OnStreamEnd = func(_ *Call, _ *Report, err error) { ends, endErr = ends+1, err }
	})
	resp, rep, err := streamCall(context.Background(), e, c.op, c.model, c.body)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	<-em.settled // the emulator is about to stall
	resp.Body.Close()
	if err := <-done; !errors.Is(err, errClosed) {
		t.Fatalf("the blocked Read ended with %v, want errClosed", err)
	}
	if ends != 1 || endErr != nil || rep.Resumes != 0 || rep.Sent() != 1 {
		t.Fatalf("hook ran %d times (%v); report %+v", ends, endErr, rep)
	}
}

// TestStreamCallerCancels ends a stream with the caller's context: no
// resume, the context's error.
func TestStreamCallerCancels(t *testing.T) {
	c := converseCase()
	em := startEmu(t, func(n int) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 5}}
	})
	e, _ := newStreamEngine(t, em.rn.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	resp, rep, err := streamCall(ctx, e, c.op, c.model, c.body)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-em.settled // the emulator is about to stall
		cancel()
	}()
	_, err = io.ReadAll(resp.Body)
	var ke *Error
	if !errors.As(err, &ke) || ke.Entry.Code != catalog.CodeContextCanceled || rep.Resumes != 0 {
		t.Fatalf("read error %v, resumes %d", err, rep.Resumes)
	}
	resp.Body.Close()
}

// TestStreamStalls declares stalls exactly: the test moves the fake clock
// past the limit only once the stream is stuck (the emulator has stalled and
// keel is waiting on the connection).
func TestStreamStalls(t *testing.T) {
	tests := []struct {
		name    string
		plan    fault.Plan
		resumed bool // the stall comes after the first content
	}{
		{name: "no response headers", plan: fault.Plan{Hang: true}},
		{name: "headers but no event", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 0}}},
		{name: "after the message start", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 1}}},
		{name: "in the middle of the content", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 9}}, resumed: true},
	}
	for _, c := range []streamCase{converseCase(), invokeCase()} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%s", c.op, tt.name), func(t *testing.T) {
				planned := make(chan struct{}, 4)
				em := startEmu(t, func(n int) fault.Plan {
					planned <- struct{}{}
					if n == 0 {
						return tt.plan
					}
					return fault.Plan{}
				})
				pr := newProbe()
				e, clk := newStreamEngine(t, em.rn.URL, func(o *Options) { o.HTTPClient = &http.Client{Transport: pr} })
				// No deadline: the engine compares deadlines with its (fake)
				// clock. The context only stops the helper below.
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				// Once the first request is stuck, fire its watchdog: its
				// first timer (the first-event limit, the only timer then),
				// and, if keel was not waiting at that instant (a frame had
				// just arrived), the idle-limit timers it re-arms, until the
				// next request reaches the emulator. The next attempt's own
				// first-event timer is never fired.
				fired := make(chan bool, 1)
				reached := make(chan struct{}) // the reader has every event sent before the stall
				go func() {
					<-planned
					switch {
					case tt.resumed:
						select {
						case <-reached:
						case <-ctx.Done():
						}
						pr.waitReading(ctx)
					case !tt.plan.Hang:
						// Stuck before the first content: Do is still reading.
						// Whether keel has read the message start or not, it
						// is a stall before the first content.
						select {
						case <-em.settled:
						case <-ctx.Done():
						}
						pr.waitReading(ctx)
					}
					ok := clk.Fire(ctx, nil)
					next, stop := context.WithCancel(ctx)
					go func() {
						select {
						case <-planned:
						case <-ctx.Done():
						}
						stop()
					}()
					for clk.Fire(next, func(d time.Duration) bool { return d == DefaultIdleTimeout }) {
					}
					fired <- ok
				}()
				resp, rep, err := streamCall(ctx, e, c.op, c.model, c.body)
				if err != nil {
					t.Fatal(err)
				}
				// Read frame by frame, telling the helper when every event
				// before the stall has arrived.
				var got []byte
				fr := stream.NewReader(resp.Body)
				for n := 1; ; n++ {
					f, err := fr.Next()
					if err != nil {
						if err != io.EOF {
							t.Fatalf("reading: %v", err)
						}
						break
					}
					got = append(got, f.Raw...)
					if tt.resumed && n == tt.plan.MidStream.After {
						close(reached)
					}
				}
				resp.Body.Close()
				d := readAll(t, bytes.NewReader(got), c.op == attempt.InvokeWithResponseStream)
				if !<-fired {
					t.Fatal("the watchdog's timer never came")
				}
				r := &result{resp: resp, rep: rep, d: d}
				checkClean(t, r, c)
				a := rep.Attempts[0]
				if rep.Sent() != 2 || a.Code != catalog.CodeStreamStalled || (rep.Resumes == 1) != tt.resumed {
					t.Fatalf("report %+v", rep)
				}
				if tt.resumed {
					em.waitSettled(ctx, 2)
					checkUsage(t, r, em)
				}
			})
		}
	}
}

func TestStreamOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    StreamOptions
		want string
	}{
		{"negative first event", StreamOptions{FirstEventTimeout: -1}, "FirstEventTimeout"},
		{"negative idle", StreamOptions{IdleTimeout: -time.Second}, "IdleTimeout"},
		{"too many resumes", StreamOptions{MaxResumes: 11}, "MaxResumes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{Streaming: tt.o})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tt.want)
			}
		})
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

// BenchmarkStreamBody measures keel's per-frame work on a stream that
// passes through: read the frame, time it on the watchdog, parse the
// event, hand the bytes to the reader. One op is one event.
func BenchmarkStreamBody(b *testing.B) {
	var raw bytes.Buffer
	f := fake{deltas: make([]string, b.N)}
	for i := range f.deltas {
		f.deltas[i] = " keel"
	}
	for _, fr := range f.frames(0) {
		raw.Write(fr)
	}
	e, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	rep := &Report{Attempts: []Attempt{{}}}
	sb := newStreamBody(e, context.Background(), &Call{Op: attempt.ConverseStream, Model: sonnet}, rep, time.Now())
	cancel := func() {}
	src := &source{body: io.NopCloser(&raw), cancel: cancel, wd: startWatchdog(e.clk, time.Minute, time.Minute, cancel)}
	defer src.close()
	if _, _, ok, err := sb.prime(src); !ok {
		b.Fatal(err)
	}
	sb.src = src
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	b.ResetTimer()
	for {
		if _, err := sb.Read(buf); err != nil {
			if err != io.EOF {
				b.Fatal(err)
			}
			break
		}
	}
}

// TestStreamPrefillRefusalIsRemembered plays a model that refuses a prefill
// (as Claude 4.6 does): the continuation fails with ValidationException, the
// reader gets the original failure, and the next stream of that model is not
// resumed at all.
func TestStreamPrefillRefusalIsRemembered(t *testing.T) {
	f := fakeConverse(t, "Hel", "lo")
	var mu sync.Mutex
	var continuations int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"assistant"`) {
			mu.Lock()
			continuations++
			mu.Unlock()
			w.Header().Set("X-Amzn-ErrorType", "ValidationException")
			w.WriteHeader(400)
			io.WriteString(w, `{"message":"This model does not support assistant message prefill. The conversation must end with a user message."}`)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.Write(f.upTo(2))
		w.Write(f.exception("modelStreamErrorException", "The model stopped."))
	}))
	defer srv.Close()
	e, _ := newStreamEngine(t, srv.URL, nil)
	for i, want := range []string{"the continuation failed with ValidationException", "refused a prefill earlier"} {
		resp, _, err := streamCall(context.Background(), e, attempt.ConverseStream, sonnet, converseBody(prompt, 40))
		if err != nil {
			t.Fatal(err)
		}
		d := readAll(t, resp.Body, false)
		resp.Body.Close()
		var ke *Error
		if !errors.As(d.err, &ke) || ke.Entry.Code != catalog.CodeModelStreamError || !strings.Contains(ke.GaveUp, want) || d.text != "Hel" {
			t.Fatalf("call %d: error %v, text %q; want ModelStreamErrorException giving up with %q", i, d.err, d.text, want)
		}
	}
	if continuations != 1 {
		t.Fatalf("%d continuations sent, want 1", continuations)
	}
}
