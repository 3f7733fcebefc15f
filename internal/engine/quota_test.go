package engine

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/hostile"
	"github.com/keel-run/keel/internal/route"
)

func TestBodyUsage(t *testing.T) {
	tests := []struct {
		name string
		body string
		want admission.Usage
	}{
		{name: "converse", want: admission.Usage{InputTokens: 12, OutputTokens: 34},
			body: `{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":34,"totalTokens":46},"metrics":{"latencyMs":1}}`},
		{name: "converse with the prompt cache", want: admission.Usage{InputTokens: 5, OutputTokens: 7, CacheReadInputTokens: 3000, CacheWriteInputTokens: 200},
			body: `{"output":{},"usage":{"inputTokens":5,"outputTokens":7,"totalTokens":3212,"cacheReadInputTokens":3000,"cacheWriteInputTokens":200}}`},
		{name: "anthropic messages, nested objects skipped", want: admission.Usage{InputTokens: 10, OutputTokens: 20, CacheReadInputTokens: 30, CacheWriteInputTokens: 40},
			body: `{"id":"msg_1","type":"message","content":[{"type":"text","text":"usage: {\"input_tokens\": 999}"}],"usage":{"input_tokens":10,"cache_creation":{"input_tokens":777,"ephemeral_5m_input_tokens":40},"cache_creation_input_tokens":40,"cache_read_input_tokens":30,"output_tokens":20,"service_tier":"standard"}}`},
		{name: "nova", want: admission.Usage{InputTokens: 8, OutputTokens: 9},
			body: "{\n  \"output\": {\"message\": {\"content\": [{\"text\": \"x\"}]}},\n  \"usage\" : { \"inputTokens\" : 8 , \"outputTokens\" : 9 }\n}"},
		{name: "a usage key deeper down does not count",
			body: `{"output":{"usage":{"inputTokens":5}},"stopReason":"end_turn"}`},
		{name: "usage that is not an object", body: `{"usage":null,"x":{"usage":{"inputTokens":5}}}`},
		{name: "no usage", body: `{"completion":"hi"}`},
		{name: "counts out of range are clamped", want: admission.Usage{OutputTokens: maxUsageCount},
			body: `{"usage":{"inputTokens":-3,"outputTokens":1e300}}`},
		{name: "what was read before a syntax error counts", want: admission.Usage{InputTokens: 4},
			body: `{"usage":{"inputTokens":4,"outputTokens":}}`},
		{name: "not JSON", body: `<html>usage</html>`},
		{name: "escaped quotes in keys and strings", want: admission.Usage{InputTokens: 1, OutputTokens: 2},
			body: `{"a\"usage":{"inputTokens":99},"b":"\\","usage":{"inputTokens":1,"outputTokens":2}}`},
		{name: "long keys", want: admission.Usage{OutputTokens: 3},
			body: `{"` + strings.Repeat("k", 100) + `":1,"usage":{"` + strings.Repeat("inputTokens", 5) + `":1,"outputTokens":3}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bodyUsage([]byte(tt.body)); got != tt.want {
				t.Errorf("usage %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBodyUsageDoesNotAllocate(t *testing.T) {
	body := []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"hello there"}]}},"stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":34,"totalTokens":46},"metrics":{"latencyMs":1}}`)
	if n := testing.AllocsPerRun(100, func() {
		if bodyUsage(body).OutputTokens != 34 {
			t.Fatal("no usage")
		}
	}); n != 0 {
		t.Errorf("%v allocations per scan", n)
	}
}

// quotaUpstream is a scripted Bedrock Runtime for the governor's tests. The
// n-th request (from 0, all targets) gets codes[n] ("" or past the end:
// success); it records every request's target and prompt. With gate > 0,
// the first gate requests are held until gate of them have arrived, so
// that they are all in flight at once. With release > 0, a success is
// held until release requests have arrived, so that every throttle
// reaches the client before any call settles.
type quotaUpstream struct {
	codes   []string
	gate    int
	release int

	mu       sync.Mutex
	n        int
	seen     []string // target + " " + prompt
	arrived  chan struct{}
	released chan struct{}
}

func (u *quotaUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	model, op, _ := attempt.ParsePath(r.URL.EscapedPath())
	body, _ := io.ReadAll(r.Body)
	target := model + "@" + attempt.RegionFromAuthorization(r.Header.Get("Authorization"))
	u.mu.Lock()
	n := u.n
	u.n++
	u.seen = append(u.seen, target+" "+promptOf(body))
	if u.gate > 0 && u.n == u.gate {
		close(u.arrived)
	}
	if u.release > 0 && u.n == u.release {
		close(u.released)
	}
	u.mu.Unlock()
	if n < u.gate {
		<-u.arrived
	}
	code := ""
	if n < len(u.codes) {
		code = u.codes[n]
	}
	if code == "" && u.release > 0 {
		<-u.released
	}
	if code != "" {
		e := catalog.Must(code)
		w.Header().Set("X-Amzn-ErrorType", e.WireCode())
		w.WriteHeader(e.Status)
		fmt.Fprintf(w, `{"message":%q}`, e.DefaultMessage)
		return
	}
	if op == attempt.Invoke {
		w.Header().Set(hdrInputTokens, "11")
		w.Header().Set(hdrOutputTokens, "22")
		io.WriteString(w, `{"content":[{"type":"text","text":"hi"}]}`)
		return
	}
	io.WriteString(w, `{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":11,"outputTokens":22,"totalTokens":33}}`)
}

func promptOf(body []byte) string {
	s := string(body)
	if i := strings.Index(s, `"text":"`); i >= 0 {
		s = s[i+8:]
		return s[:strings.IndexByte(s, '"')]
	}
	return ""
}

func (u *quotaUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

type quotaHarness struct {
	eng *Engine
	gov *admission.Governor
	up  *quotaUpstream
}

// newQuotaHarness starts, in the current synctest bubble, up and an engine
// with a governor of options o, both on clock.Real, which reads the
// bubble's clock: time moves only when every goroutine of the bubble is
// blocked, and real context deadlines follow the same time. up is served
// over in-memory connections (hostile.Pipe), so a request in flight blocks
// durably and does not hold bubble time still.
func newQuotaHarness(t *testing.T, up *quotaUpstream, o admission.Options, routes *route.Table) *quotaHarness {
	t.Helper()
	if up.gate > 0 {
		up.arrived = make(chan struct{})
	}
	if up.release > 0 {
		up.released = make(chan struct{})
	}
	srv := hostile.Pipe(up)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	o.Clock = clock.Real{}
	o.Rand = func() float64 { return 0.5 } // the pause after a throttle is exactly CoolDown
	gov, err := admission.New(o)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := New(Options{Endpoints: attempt.FixedEndpoint{URL: u}, Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient: srv.Client(), Region: "us-east-1", Clock: clock.Real{}, Routes: routes, Governor: gov}) // calls run concurrently: the default Rand
	if err != nil {
		t.Fatal(err)
	}
	return &quotaHarness{eng: eng, gov: gov, up: up}
}

// bubble returns f to run in a synctest bubble: t.Run(name, bubble(f)).
func bubble(f func(t *testing.T)) func(t *testing.T) {
	return func(t *testing.T) { synctest.Test(t, f) }
}

// advance lets d of bubble time pass: the test's goroutine sleeps, which in
// a bubble takes no real time (the clock jumps to each timer as soon as
// every goroutine is blocked), then waits until the goroutines woken on the
// way are blocked again.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// body is a Converse body whose prompt names the call: about 100 tokens of
// input estimate with maxTokens.
func quotaBody(name string, maxTokens int) []byte {
	return []byte(fmt.Sprintf(`{"messages":[{"role":"user","content":[{"text":"%s"}]}],"inferenceConfig":{"maxTokens":%d}}`, name, maxTokens))
}

func (h *quotaHarness) call(ctx context.Context, model, name string, maxTokens int, p Priority) (*Report, error) {
	resp, rep, err := h.eng.Do(ctx, &Call{Op: attempt.Converse, Model: model, Body: quotaBody(name, maxTokens), Priority: p})
	if resp != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return rep, err
}

func (h *quotaHarness) stats(t *testing.T, target string) admission.Stats {
	t.Helper()
	m, r, _ := strings.Cut(target, "@")
	s, ok := h.gov.Stats(admission.Target{Model: m, Region: r})
	if !ok {
		t.Fatalf("the governor has no state for %s", target)
	}
	return s
}

// waitQueued waits until every goroutine of the test's bubble is blocked,
// then checks that the governor has n calls of class p queued for target.
func (h *quotaHarness) waitQueued(t *testing.T, target string, p Priority, n int) {
	t.Helper()
	synctest.Wait()
	if q := h.stats(t, target).Classes[p].Queued; q != n {
		t.Fatalf("%d calls of class %v queued for %s, want %d", q, p, target, n)
	}
}

// TestQuotaReserveAndSettle checks that an attempt holds its input estimate
// plus its max tokens, and settles to the usage the response reports once
// it has read the reply: a refund when it used less, a debit when the burndown made it
// cost more (Sonnet 4.5: output counts 5 times).
func TestQuotaReserveAndSettle(t *testing.T) {
	const in, out = 11, 22 // what quotaUpstream reports
	tests := []struct {
		name      string
		op        attempt.Op
		model     string
		maxTokens int
		cost      int64 // in + out × burndown
	}{
		{name: "converse: refund", op: attempt.Converse, model: m1, maxTokens: 500, cost: in + out},
		{name: "converse: debit at burndown 5", op: attempt.Converse, model: sonnet, maxTokens: 20, cost: in + 5*out},
		{name: "invoke: usage headers", op: attempt.Invoke, model: m1, maxTokens: 500, cost: in + out},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			// A full start, so that what settles shows in what the bucket holds.
			h := newQuotaHarness(t, &quotaUpstream{}, admission.Options{Default: admission.Quota{TokensPerMinute: 60000}, FullStart: true}, nil)
			body := quotaBody("hello", tt.maxTokens)
			if tt.op == attempt.Invoke {
				body = []byte(fmt.Sprintf(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":%d,"messages":[{"role":"user","content":[{"type":"text","text":"hello"}]}]}`, tt.maxTokens))
			}
			est, err := admission.EstimateBody(body)
			if err != nil {
				t.Fatal(err)
			}
			hold := int64(float64(est.InputTokens)*1.25+0.999) + int64(tt.maxTokens) // untrained margin: 25%
			resp, rep, err := h.eng.Do(context.Background(), &Call{Op: tt.op, Model: tt.model, Body: body})
			if err != nil {
				t.Fatal(err)
			}
			target := tt.model + "@us-east-1"
			// The attempt read the whole reply before Do returned: it is
			// settled already, whenever the caller reads the body.
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			s := h.stats(t, target)
			if s.InFlight != 0 || s.Settled != 1 || s.Cancelled != 0 || s.ReservedPerMinute != hold || s.SettledPerMinute != tt.cost || s.Available != 60000-tt.cost {
				t.Fatalf("after: in flight %d, settled %d, cancelled %d, reserved/min %d, settled/min %d, available %d; want 0, 1, 0, %d, %d, %d",
					s.InFlight, s.Settled, s.Cancelled, s.ReservedPerMinute, s.SettledPerMinute, s.Available, hold, tt.cost, 60000-tt.cost)
			}
			if a := rep.Attempts[0]; a.QuotaTokens != int(hold) || a.QuotaWait != 0 {
				t.Fatalf("attempt %+v, want %d tokens held and no wait", a, hold)
			}
		}))
	}
}

// TestQuotaThrottleResyncsTheBurst sends five calls at once; Bedrock
// throttles three. The second throttle confirms the first (a call granted
// with it was throttled too): the governor empties its bucket, keeps the
// known limit, and does not pause for a first confirmed throttle; the
// throttled calls' retries wait in the governor's queue (for the refill, or
// the refunds of the calls that succeeded), not in a backoff of their own,
// and all five calls succeed. The successes are held until the three
// retries have arrived: otherwise calls that settled before a throttle came
// back could clear the throttles before it as noise (two of them, in 2 of
// 300 runs with -race, and 1-2 of 100 on main before this change).
func TestQuotaThrottleResyncsTheBurst(t *testing.T) {
	synctest.Test(t, testQuotaThrottleResyncsTheBurst)
}

func testQuotaThrottleResyncsTheBurst(t *testing.T) {
	up := &quotaUpstream{gate: 5, release: 8, codes: []string{catalog.CodeThrottling, catalog.CodeThrottling, catalog.CodeThrottling}}
	h := newQuotaHarness(t, up, admission.Options{Default: admission.Quota{TokensPerMinute: 60000}}, nil)
	var wg sync.WaitGroup
	reps := make([]*Report, 5)
	errs := make([]error, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = h.call(context.Background(), m1, fmt.Sprint("call", i), 100, Interactive)
		}()
	}
	target := m1 + "@us-east-1"
	synctest.Wait()
	s := h.stats(t, target)
	if s.Throttles != 3 || s.Resyncs != 1 || s.Decreases != 0 || s.Limit != 60000 || s.PausedFor != 0 {
		t.Fatalf("after the throttles: throttles %d, resyncs %d, decreases %d, limit %d, paused %v; want 3, 1, 0, 60000, 0s",
			s.Throttles, s.Resyncs, s.Decreases, s.Limit, s.PausedFor)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := len(up.requests()); n != 8 {
		t.Fatalf("%d requests in all, want 8", n)
	}
	retries := 0
	for _, rep := range reps {
		if rep.Sent() == 2 {
			retries++
			if a := rep.Attempts[1]; a.Delay != a.QuotaWait {
				t.Fatalf("retry %+v: want no backoff of its own, only the governor's wait", a)
			}
		}
	}
	if s := h.stats(t, target); retries != 3 || s.InFlight != 0 || s.Settled != 5 {
		t.Fatalf("after: %d retries; %+v", retries, s)
	}
}

func TestReplyUsage(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		body string
		want Usage
	}{
		{"InvokeModel's headers", http.Header{hdrInputTokens: {"12"}, hdrOutputTokens: {"34"}, hdrCacheReadTokens: {"5"}}, `{"usage":{"input_tokens":1}}`,
			Usage{InputTokens: 12, OutputTokens: 34, CacheReadInputTokens: 5}},
		{"Converse's body", http.Header{}, `{"output":{},"usage":{"inputTokens":7,"outputTokens":9,"totalTokens":16}}`, Usage{InputTokens: 7, OutputTokens: 9}},
		{"an Anthropic body", http.Header{}, `{"usage":{"input_tokens":3,"output_tokens":4,"cache_creation_input_tokens":2}}`,
			Usage{InputTokens: 3, OutputTokens: 4, CacheWriteInputTokens: 2}},
		{"no usage", http.Header{}, `not json`, Usage{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReplyUsage(tt.h, []byte(tt.body)); got != tt.want {
				t.Fatalf("ReplyUsage = %+v, want %+v", got, tt.want)
			}
		})
	}
}
