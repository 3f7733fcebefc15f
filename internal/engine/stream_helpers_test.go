package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	emureply "github.com/keel-run/keel/internal/emulator/reply"
	"github.com/keel-run/keel/internal/route"
)

// manualFrom is where newStreamEngine's clock stops firing timers as they
// are made: backoffs take no time, and the stream watchdog's timers (30 s
// and more) fire only when the test calls Fire, so a stall is declared
// exactly when the test says the stream is stuck.
const manualFrom = 30 * time.Second

// emu is an emulator whose n-th request (from 0) gets plan(n).
type emu struct {
	rn      *emulator.Running
	n       atomic.Int32
	plan    func(n int) fault.Plan
	mu      sync.Mutex
	settles []emulator.SettleRequest
	settled chan emulator.SettleRequest
}

const (
	haiku3  = "anthropic.claude-3-haiku-20240307-v1:0"
	sonnet  = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	novaPro = "amazon.nova-pro-v1:0"
	llama   = "meta.llama3-1-8b-instruct-v1:0"
	seed    = 11
)

func startEmu(t *testing.T, plan func(n int) fault.Plan) *emu {
	t.Helper()
	return startEmuModels(t, plan, nil)
}

// startEmuModels is startEmu serving models (nil: the built-in ones).
func startEmuModels(t *testing.T, plan func(n int) fault.Plan, models []emulator.Model) *emu {
	t.Helper()
	e := &emu{plan: plan, settled: make(chan emulator.SettleRequest, 64)}
	rn, err := emulator.Start(emulator.Options{Seed: seed, Models: models,
		Planner: func(fault.Request) fault.Plan {
			n := int(e.n.Add(1)) - 1
			if e.plan == nil {
				return fault.Plan{}
			}
			return e.plan(n)
		},
		Settle: func(s emulator.SettleRequest) {
			e.mu.Lock()
			e.settles = append(e.settles, s)
			e.mu.Unlock()
			select {
			case e.settled <- s:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rn.Close() })
	e.rn = rn
	return e
}

// waitSettled blocks until the emulator has settled n requests. A stalled
// request is settled only when the emulator reaches its fault, which can be
// after keel has given up on it and resumed.
func (e *emu) waitSettled(ctx context.Context, n int) {
	for {
		e.mu.Lock()
		have := len(e.settles)
		e.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-e.settled:
		case <-ctx.Done():
			return
		}
	}
}

// settledSum is the usage the emulator settled, over every request.
func (e *emu) settledSum() (in, out int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.settles {
		in += s.InputTokens
		out += s.OutputTokens
	}
	return in, out
}

func newStreamEngine(t *testing.T, url string, mod func(*Options)) (*Engine, *clock.Fake) {
	t.Helper()
	u, err := parseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)).AutoFire(manualFrom)
	opts := Options{
		Endpoints:   attempt.FixedEndpoint{URL: u},
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		Region:      "us-east-1",
		Clock:       clk,
		Rand:        rand.New(rand.NewPCG(1, 2)),
	}
	if mod != nil {
		mod(&opts)
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.HTTPClient().CloseIdleConnections() })
	return e, clk
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }

// converseBody is a ConverseStream / Converse request for model.
func converseBody(prompt string, maxTokens int) []byte {
	b, _ := json.Marshal(map[string]any{
		"messages":        []any{map[string]any{"role": "user", "content": []any{map[string]any{"text": prompt}}}},
		"inferenceConfig": map[string]any{"maxTokens": maxTokens},
	})
	return b
}

// anthropicBody is an InvokeModel body in the Anthropic Messages format.
func anthropicBody(prompt string, maxTokens int) []byte {
	b, _ := json.Marshal(map[string]any{"anthropic_version": "bedrock-2023-05-31", "max_tokens": maxTokens,
		"messages": []any{map[string]any{"role": "user", "content": prompt}}})
	return b
}

// unbroken is the emulator's full reply to prompt from model.
func unbroken(model, prompt string, maxTokens int) emureply.Reply {
	base := strings.TrimPrefix(model, "us.")
	return emureply.Generate(&emureply.Request{Seed: seed, Model: base, Messages: []emureply.Message{{Role: "user", Text: prompt}}, MaxTokens: maxTokens})
}

// event is one decoded event of a stream, read with the SDK's own decoder.
type event struct {
	typ     string         // :event-type, or the Anthropic "type" of a chunk
	payload map[string]any // the event's JSON (a chunk's decoded bytes)
}

// decoded is what a stream reader got.
type decoded struct {
	events []event
	text   string
	err    error // the error Read returned, nil for a clean end
	raw    []byte
}

// readAll reads a stream body to its end with aws-sdk-go-v2's eventstream
// decoder, as an SDK would.
func readAll(t *testing.T, body io.Reader, invoke bool) decoded {
	t.Helper()
	var d decoded
	raw, err := io.ReadAll(body)
	d.raw, d.err = raw, err
	dec := eventstream.NewDecoder()
	r := bytes.NewReader(raw)
	for r.Len() > 0 {
		m, err := dec.Decode(r, nil)
		if err != nil {
			t.Fatalf("the reader got bytes that do not decode: %v", err)
		}
		mt := m.Headers.Get(":message-type").String()
		if mt != "event" {
			t.Fatalf("the reader got a %s frame", mt)
		}
		ev := event{typ: m.Headers.Get(":event-type").String()}
		pl := m.Payload
		if invoke {
			var c struct{ Bytes string }
			if err := json.Unmarshal(pl, &c); err != nil {
				t.Fatalf("chunk %q: %v", pl, err)
			}
			pl, _ = base64.StdEncoding.DecodeString(c.Bytes)
		}
		if err := json.Unmarshal(pl, &ev.payload); err != nil {
			t.Fatalf("event %q: %v", pl, err)
		}
		if invoke {
			ev.typ, _ = ev.payload["type"].(string)
			if delta, ok := ev.payload["delta"].(map[string]any); ok && ev.typ == "content_block_delta" {
				d.text += delta["text"].(string)
			}
		} else if ev.typ == "contentBlockDelta" {
			d.text += ev.payload["delta"].(map[string]any)["text"].(string)
		}
		d.events = append(d.events, ev)
	}
	return d
}

func (d decoded) types() []string {
	var out []string
	for _, e := range d.events {
		out = append(out, e.typ)
	}
	return out
}

// call runs one streaming call and returns its response.
func streamCall(ctx context.Context, e *Engine, op attempt.Op, model string, body []byte) (*http.Response, *Report, error) {
	return e.Do(ctx, &Call{Op: op, Model: model, Body: body})
}

// probe is an HTTP transport that tells the test when a response body is
// being read and has nothing to give: the reader is then waiting on the
// upstream, which is when a stall may be declared.
type probe struct {
	base    http.RoundTripper
	mu      sync.Mutex
	reading int
	changed chan struct{}
}

func newProbe() *probe {
	return &probe{base: &http.Transport{}, changed: make(chan struct{})}
}

func (p *probe) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(r)
	if resp != nil {
		resp.Body = &probedBody{ReadCloser: resp.Body, p: p}
	}
	return resp, err
}

func (p *probe) add(d int) {
	p.mu.Lock()
	p.reading += d
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// waitReading blocks until some body Read is in progress.
func (p *probe) waitReading(ctx context.Context) bool {
	for {
		p.mu.Lock()
		n, ch := p.reading, p.changed
		p.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

type probedBody struct {
	io.ReadCloser
	p *probe
}

func (b *probedBody) Read(buf []byte) (int, error) {
	b.p.add(1)
	defer b.p.add(-1)
	return b.ReadCloser.Read(buf)
}

func (p *probe) CloseIdleConnections() { p.base.(*http.Transport).CloseIdleConnections() }

// routeTo routes model to itself in its region, then to the same model in
// each of fallbacks.
func routeTo(model, region string, fallbacks ...string) *route.Table {
	var ts []attempt.Target
	for _, r := range fallbacks {
		ts = append(ts, attempt.Target{Model: model, Region: r})
	}
	return route.New(region, map[string][]attempt.Target{model: ts})
}

// fake is a ConverseStream reply made of the given text deltas, for
// upstreams the emulator cannot play.
type fake struct {
	t      *testing.T
	deltas []string
}

func fakeConverse(t *testing.T, deltas ...string) fake { return fake{t, deltas} }

func (f fake) frame(eventType string, payload any) []byte {
	b, _ := json.Marshal(payload)
	var buf bytes.Buffer
	err := eventstream.NewEncoder().Encode(&buf, eventstream.Message{Headers: eventstream.Headers{
		{Name: ":event-type", Value: eventstream.StringValue(eventType)},
		{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		{Name: ":message-type", Value: eventstream.StringValue("event")},
	}, Payload: b})
	if err != nil {
		f.t.Fatal(err)
	}
	return buf.Bytes()
}

// frames returns the reply's frames from delta k on, with a message start.
func (f fake) frames(k int) [][]byte {
	out := [][]byte{f.frame("messageStart", map[string]any{"role": "assistant"})}
	for _, d := range f.deltas[k:] {
		out = append(out, f.frame("contentBlockDelta", map[string]any{"contentBlockIndex": 0, "delta": map[string]any{"text": d}}))
	}
	out = append(out, f.frame("contentBlockStop", map[string]any{"contentBlockIndex": 0}),
		f.frame("messageStop", map[string]any{"stopReason": "end_turn"}),
		f.frame("metadata", map[string]any{"usage": map[string]any{"inputTokens": 5 + k, "outputTokens": len(f.deltas) - k, "totalTokens": 5 + len(f.deltas)}}))
	return out
}

// upTo is the unbroken reply's first n frames.
func (f fake) upTo(n int) []byte { return bytes.Join(f.frames(0)[:n], nil) }

// continuation is the reply after k deltas, as a continuation sends it.
func (f fake) continuation(k int) []byte { return bytes.Join(f.frames(k), nil) }

// exception is an exception frame.
func (f fake) exception(streamName, message string) []byte {
	b, _ := json.Marshal(map[string]string{"message": message})
	var buf bytes.Buffer
	err := eventstream.NewEncoder().Encode(&buf, eventstream.Message{Headers: eventstream.Headers{
		{Name: ":exception-type", Value: eventstream.StringValue(streamName)},
		{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		{Name: ":message-type", Value: eventstream.StringValue("exception")},
	}, Payload: b})
	if err != nil {
		f.t.Fatal(err)
	}
	return buf.Bytes()
}
