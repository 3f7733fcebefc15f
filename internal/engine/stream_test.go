package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
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

// TestStreamReadsBursts reads a reply whose events are already there when
// the reader asks: one Read gives all of them, and a failure behind them
// (an exception frame) comes with the next Read, after the events.
func TestStreamReadsBursts(t *testing.T) {
	f := fakeConverse(t, "Hel", "lo", " world")
	body := append(f.upTo(3), f.exception("throttlingException", "Too many tokens")...)
	tests := []struct {
		name  string
		body  io.Reader
		first []byte // what the first Read gives
	}{
		{"all at once", bytes.NewReader(body), f.upTo(3)},
		// Nothing is read ahead: each Read gives what prime held (the
		// message start and the first delta), then one event.
		{"a byte at a time", iotest.OneByteReader(bytes.NewReader(body)), f.upTo(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			// A model keel does not know to take a prefill: a break is not resumed.
			rep := &Report{Attempts: []Attempt{{}}}
			sb := newStreamBody(e, context.Background(), &Call{Op: attempt.ConverseStream, Model: "example.unknown-v1"}, rep, time.Now())
			defer sb.Close()
			cancel := func() {}
			src := &source{body: io.NopCloser(tt.body), cancel: cancel, wd: startWatchdog(e.clk, time.Minute, time.Minute, cancel)}
			if _, _, ok, err := sb.prime(src); !ok {
				t.Fatal(err)
			}
			sb.src = src
			buf := make([]byte, 32<<10)
			n, err := sb.Read(buf)
			if err != nil || !bytes.Equal(buf[:n], tt.first) {
				t.Fatalf("first Read: %d bytes, %v; want %d bytes", n, err, len(tt.first))
			}
			got := append([]byte(nil), buf[:n]...)
			for err == nil {
				n, err = sb.Read(buf)
				got = append(got, buf[:n]...)
			}
			var ke *Error
			if !errors.As(err, &ke) || ke.Entry.Code != catalog.CodeThrottling || ke.Stream == nil || ke.Stream.Text != "Hello" {
				t.Fatalf("the Read after the events: %v (%+v), want the throttling exception after the text %q", err, ke, "Hello")
			}
			if !bytes.Equal(got, f.upTo(3)) {
				t.Fatalf("the reader got %d bytes, want the %d of the events before the exception", len(got), len(f.upTo(3)))
			}
		})
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
