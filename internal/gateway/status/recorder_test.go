package status

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
)

var epoch = time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)

const haiku = "anthropic.claude-3-haiku-20240307-v1:0"

func ok(caller string, in, out int) Event {
	return Event{Caller: caller, Op: "converse", Model: haiku, Status: 200, Attempts: 1, Duration: 20 * time.Millisecond,
		InputTokens: in, OutputTokens: out}
}

func throttled(caller string) Event {
	return Event{Caller: caller, Op: "converse-stream", Model: haiku, Status: 429, Code: catalog.CodeThrottling, Attempts: 3,
		Duration: 40 * time.Millisecond}
}

func refused(caller, code string) Event {
	return Event{Caller: caller, Op: "invoke", Model: haiku, Status: 503, Code: code, Refused: true}
}

// summary renders what a test checks of a CallerStatus.
func summary(c CallerStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s req=%d failed=%d refused=%d tokens=%d/%d mean=%v", c.Name, c.Requests, c.Failures, c.Refused,
		c.InputTokens, c.OutputTokens, c.MeanDuration)
	for _, r := range c.Refusals {
		fmt.Fprintf(&b, " refusal:%s=%d", r.Code, r.Count)
	}
	for _, r := range c.Recent {
		fmt.Fprintf(&b, " recent:%s/%d/%s", r.Op, r.Status, r.Code)
	}
	return b.String()
}

func TestRecorder(t *testing.T) {
	tests := []struct {
		name       string
		maxCallers int
		events     []Event
		want       []string // summaries, by caller name
		metrics    string   // the gateway metrics in the text format, all of them
	}{
		{
			name:   "a success",
			events: []Event{ok("team-a", 10, 5)},
			want:   []string{"team-a req=1 failed=0 refused=0 tokens=10/5 mean=20ms"},
			metrics: `
keel_gateway_requests_total{caller="team-a",operation="converse",status="200"} 1
keel_gateway_tokens_total{caller="team-a",direction="input"} 10
keel_gateway_tokens_total{caller="team-a",direction="output"} 5
`,
		},
		{
			name:   "a throttle, two refusals, two callers",
			events: []Event{ok("team-a", 10, 5), throttled("team-a"), refused("team-b", catalog.CodeCircuitOpen), refused("team-b", "NoQuotaBeforeDeadline"), refused("team-b", catalog.CodeCircuitOpen)},
			want: []string{
				"team-a req=2 failed=1 refused=0 tokens=10/5 mean=30ms recent:converse-stream/429/ThrottlingException",
				"team-b req=3 failed=3 refused=3 tokens=0/0 mean=0s refusal:CircuitOpen=2 refusal:NoQuotaBeforeDeadline=1 recent:invoke/503/CircuitOpen recent:invoke/503/NoQuotaBeforeDeadline recent:invoke/503/CircuitOpen",
			},
			metrics: `
keel_gateway_refusals_total{caller="team-b",code="CircuitOpen"} 2
keel_gateway_refusals_total{caller="team-b",code="NoQuotaBeforeDeadline"} 1
keel_gateway_requests_total{caller="team-a",operation="converse",status="200"} 1
keel_gateway_requests_total{caller="team-a",operation="converse-stream",status="429"} 1
keel_gateway_requests_total{caller="team-b",operation="invoke",status="503"} 3
keel_gateway_tokens_total{caller="team-a",direction="input"} 10
keel_gateway_tokens_total{caller="team-a",direction="output"} 5
keel_gateway_tokens_total{caller="team-b",direction="input"} 0
keel_gateway_tokens_total{caller="team-b",direction="output"} 0
`,
		},
		{
			name: "odd values are counted under bounded labels",
			events: []Event{
				{Op: "converse", Status: 200, InputTokens: -5, OutputTokens: -1},                       // no caller, negative tokens
				{Caller: "team-a", Op: "drop-tables", Status: 999, Code: "NoSuchCode", Refused: true},  // unknown op, status, code
				{Caller: "team-a", Op: "count-tokens", Status: 0, Code: "throttlingexception"},         // client gone; code folded
				{Caller: "team-a", Op: "converse", Status: 400, Refused: true, Duration: -time.Second}, // a refusal without a code
			},
			want: []string{
				"anonymous req=1 failed=0 refused=0 tokens=0/0 mean=0s",
				"team-a req=3 failed=3 refused=2 tokens=0/0 mean=0s refusal:other=2 recent:converse/400/other recent:count-tokens/0/ThrottlingException recent:other/999/other",
			},
			metrics: `
keel_gateway_refusals_total{caller="team-a",code="other"} 2
keel_gateway_requests_total{caller="anonymous",operation="converse",status="200"} 1
keel_gateway_requests_total{caller="team-a",operation="converse",status="400"} 1
keel_gateway_requests_total{caller="team-a",operation="count-tokens",status="0"} 1
keel_gateway_requests_total{caller="team-a",operation="other",status="other"} 1
keel_gateway_tokens_total{caller="anonymous",direction="input"} 0
keel_gateway_tokens_total{caller="anonymous",direction="output"} 0
keel_gateway_tokens_total{caller="team-a",direction="input"} 0
keel_gateway_tokens_total{caller="team-a",direction="output"} 0
`,
		},
		{
			name:       "callers past MaxCallers are counted as other",
			maxCallers: 2,
			events:     []Event{ok("a", 1, 1), ok("b", 1, 1), ok("c", 1, 1), ok("d", 2, 2)},
			want: []string{
				"a req=1 failed=0 refused=0 tokens=1/1 mean=20ms",
				"b req=1 failed=0 refused=0 tokens=1/1 mean=20ms",
				"other req=2 failed=0 refused=0 tokens=3/3 mean=20ms",
			},
			metrics: `
keel_gateway_requests_total{caller="a",operation="converse",status="200"} 1
keel_gateway_requests_total{caller="b",operation="converse",status="200"} 1
keel_gateway_requests_total{caller="other",operation="converse",status="200"} 2
keel_gateway_tokens_total{caller="a",direction="input"} 1
keel_gateway_tokens_total{caller="a",direction="output"} 1
keel_gateway_tokens_total{caller="b",direction="input"} 1
keel_gateway_tokens_total{caller="b",direction="output"} 1
keel_gateway_tokens_total{caller="other",direction="input"} 3
keel_gateway_tokens_total{caller="other",direction="output"} 3
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			r, err := NewRecorder(Options{Registerer: reg, Clock: clock.NewFake(epoch), MaxCallers: tt.maxCallers})
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range tt.events {
				r.Observe(ev)
			}
			var got []string
			for _, c := range r.Callers() {
				got = append(got, summary(c))
			}
			if g, w := strings.Join(got, "\n"), strings.Join(tt.want, "\n"); g != w {
				t.Errorf("Callers:\n%s\nwant:\n%s", g, w)
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(metricsText(tt.metrics))); err != nil {
				t.Error(err)
			}
		})
	}
}

// metricsText adds the HELP and TYPE lines of the metrics samples names.
func metricsText(samples string) string {
	help := map[string]string{
		"keel_gateway_refusals_total": "Requests keel refused itself (no quota before the deadline, breaker open, retry budget spent, overloaded), by caller and catalog code.",
		"keel_gateway_requests_total": "Requests the gateway answered, by caller, operation and the HTTP status the caller got.",
		"keel_gateway_tokens_total":   "Tokens the gateway's callers used, by caller and direction (input, output).",
	}
	var b strings.Builder
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(samples), "\n") {
		name, _, _ := strings.Cut(line, "{")
		if !seen[name] {
			seen[name] = true
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", name, help[name], name)
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// TestRecentKeepsTheLatest checks that a caller's recent failures are the
// newest recentErrors, newest first, stamped by the Recorder's clock.
func TestRecentKeepsTheLatest(t *testing.T) {
	clk := clock.NewFake(epoch)
	r, err := NewRecorder(Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	const n = recentErrors + 5
	for i := range n {
		r.Observe(Event{Caller: "team-a", Op: "converse", Model: fmt.Sprint("m", i), Status: 500, Code: catalog.CodeInternalServer})
		clk.Advance(time.Second)
	}
	cs := r.Callers()
	if len(cs) != 1 || len(cs[0].Recent) != recentErrors {
		t.Fatalf("Callers = %+v, want one caller with %d recent failures", cs, recentErrors)
	}
	for i, re := range cs[0].Recent {
		k := n - 1 - i
		if re.Model != fmt.Sprint("m", k) || !re.Time.Equal(epoch.Add(time.Duration(k)*time.Second)) {
			t.Fatalf("Recent[%d] = %+v, want model m%d at epoch+%ds", i, re, k, k)
		}
	}
	long := []struct {
		name, model string
		wantLen     int
	}{
		{name: "ASCII", model: strings.Repeat("x", 10_000), wantLen: maxModelLen},
		// 'é' is 2 bytes: the cut falls inside one at an odd bound.
		{name: "not splitting a character", model: "x" + strings.Repeat("é", 5_000), wantLen: maxModelLen - 1},
	}
	for _, tt := range long {
		r.Observe(Event{Caller: "team-a", Op: "converse", Model: tt.model, Status: 500})
		m := r.Callers()[0].Recent[0].Model
		if len(m) != tt.wantLen || !utf8.ValidString(m) || !strings.HasPrefix(tt.model, m) {
			t.Errorf("%s: a long model id is kept as %d bytes (valid UTF-8 %v), want a prefix of %d", tt.name, len(m), utf8.ValidString(m), tt.wantLen)
		}
	}
}

func TestNewRecorderErrors(t *testing.T) {
	if _, err := NewRecorder(Options{MaxCallers: -1}); err == nil || !strings.Contains(err.Error(), "MaxCallers") {
		t.Fatalf("MaxCallers -1: err %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := NewRecorder(Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRecorder(Options{Registerer: reg}); err == nil || !strings.Contains(err.Error(), "register") {
		t.Fatalf("a second Recorder on the same registry: err %v", err)
	}
}

// TestRecorderConcurrent observes from many goroutines while the figures
// are read (the race detector checks the locking) and checks the sums.
func TestRecorderConcurrent(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, err := NewRecorder(Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			name := fmt.Sprint("team-", w%3)
			for i := range each {
				if i%10 == 0 {
					r.Observe(refused(name, catalog.CodeCircuitOpen))
					r.Callers()
				} else {
					r.Observe(ok(name, 2, 1))
				}
			}
		})
	}
	wg.Wait()
	var req, in, refusals int64
	for _, c := range r.Callers() {
		req += c.Requests
		in += c.InputTokens
		refusals += c.Refused
	}
	if req != workers*each || in != workers*each*9/10*2 || refusals != workers*each/10 {
		t.Fatalf("requests %d, input tokens %d, refusals %d", req, in, refusals)
	}
	if n := testutil.ToFloat64(r.refusals.WithLabelValues("team-0", catalog.CodeCircuitOpen)); n != 3*each/10 {
		t.Fatalf("team-0's refusals metric = %v, want %d", n, 3*each/10)
	}
}
