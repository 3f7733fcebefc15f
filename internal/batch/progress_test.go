package batch

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/clock"
)

// syncBuffer is a bytes.Buffer safe for the progress goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressPlainLines(t *testing.T) {
	clk := clock.NewFake(t0)
	var out syncBuffer
	p := NewProgress(&out, ProgressOptions{Clock: clk, Every: 10 * time.Second})
	p.begin(1000, 100, map[string]int{"ValidationException": 1})
	for i := range 300 {
		p.finished(true, "", 1000, 0)
		if i%100 == 0 {
			p.finished(false, "ThrottlingException", 0, 0)
		}
	}
	p.requeue()
	clk.WaitForTimers(1)
	clk.Advance(10 * time.Second) // 303 records in 10 s
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 1 })
	clk.WaitForTimers(1)
	p.end()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want one per interval and a last one:\n%s", len(lines), out.String())
	}
	want := "batch: 403/1000 done (40.3%), 4 failed, 30.3 records/s, ETA 20s, 1.8M tokens/min, 1 requeued, failed by code: ThrottlingException=3 ValidationException=1"
	if lines[0] != want {
		t.Errorf("line\n got %q\nwant %q", lines[0], want)
	}
	if strings.Contains(out.String(), "\r") || strings.Contains(out.String(), "\x1b") {
		t.Error("plain output has terminal control characters")
	}
}

// TestProgressRateFollowsTheLastMinute: after a fast first minute and an idle
// second one, the rate is about the last minute, not the average.
func TestProgressRateFollowsTheLastMinute(t *testing.T) {
	clk := clock.NewFake(t0)
	p := NewProgress(nil, ProgressOptions{Clock: clk})
	p.begin(1000, 0, nil)
	for range 6 {
		for range 100 {
			p.finished(true, "", 10, 0)
		}
		clk.Advance(10 * time.Second)
		p.Line(clk.Now())
	}
	if got := p.Line(clk.Now()); !strings.Contains(got, "10.0 records/s") || !strings.Contains(got, "ETA 40s") || !strings.Contains(got, "6.0k tokens/min") {
		t.Errorf("after a steady minute: %s", got)
	}
	for range 6 {
		clk.Advance(10 * time.Second)
		p.Line(clk.Now())
	}
	if got := p.Line(clk.Now()); !strings.Contains(got, "600/1000") || !strings.Contains(got, "0.0 records/s") || !strings.Contains(got, "ETA --") {
		t.Errorf("after an idle minute: %s", got)
	}
	p.end()
}

func TestProgressTerminal(t *testing.T) {
	clk := clock.NewFake(t0)
	var out syncBuffer
	p := NewProgress(&out, ProgressOptions{Clock: clk, TTY: true})
	p.begin(10, 0, nil)
	for range 5 {
		p.finished(true, "", 120, 0)
	}
	p.finished(false, "ValidationException", 0, 0)
	clk.WaitForTimers(1)
	clk.Advance(time.Second) // a terminal is redrawn every second
	waitFor(t, func() bool { return strings.Contains(out.String(), "\r") })
	clk.WaitForTimers(1)
	p.end()
	s := out.String()
	if !strings.HasPrefix(s, "\r[##############..........] 6/10  60%  6.0/s  ETA 1s  36k tok/min  failed 1: ValidationException=1") {
		t.Errorf("terminal line %q", s)
	}
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\r") != 2 {
		t.Errorf("want two redraws and a final newline, got %q", s)
	}
}

func TestProgressNil(t *testing.T) {
	var p *Progress
	p.begin(1, 0, nil)
	p.finished(true, "", 1, 0)
	p.requeue()
	p.end()
	q := NewProgress(nil, ProgressOptions{})
	q.begin(1, 0, nil)
	q.finished(true, "", 1, 0)
	q.end()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		name   string
		op     attempt.Op
		header http.Header
		body   string
		text   string
		stop   string
		usage  Usage
	}{
		{name: "converse", op: attempt.Converse,
			body: `{"output":{"message":{"role":"assistant","content":[{"text":"Hello"},{"text":" there"}]}},"stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":3,"totalTokens":15}}`,
			text: "Hello there", stop: "end_turn", usage: Usage{12, 3, 15}},
		{name: "anthropic, headers win", op: attempt.Invoke,
			header: http.Header{"X-Amzn-Bedrock-Input-Token-Count": {"20"}, "X-Amzn-Bedrock-Output-Token-Count": {"7"}},
			body:   `{"content":[{"type":"text","text":"Ahoy"},{"type":"tool_use","id":"t"}],"stop_reason":"max_tokens","usage":{"input_tokens":19,"output_tokens":6}}`,
			text:   "Ahoy", stop: "max_tokens", usage: Usage{20, 7, 27}},
		{name: "anthropic without headers", op: attempt.Invoke,
			body: `{"content":[{"type":"text","text":"Ahoy"}],"stop_reason":"end_turn","usage":{"input_tokens":19,"output_tokens":6}}`,
			text: "Ahoy", stop: "end_turn", usage: Usage{19, 6, 25}},
		{name: "nova", op: attempt.Invoke,
			body: `{"output":{"message":{"content":[{"text":"Hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":4,"outputTokens":1}}`,
			text: "Hi", stop: "end_turn", usage: Usage{4, 1, 5}},
		{name: "llama", op: attempt.Invoke,
			body: `{"generation":"Yo","prompt_token_count":5,"generation_token_count":2,"stop_reason":"stop"}`,
			text: "Yo", stop: "stop", usage: Usage{5, 2, 7}},
		{name: "titan", op: attempt.Invoke,
			body: `{"inputTextTokenCount":3,"results":[{"tokenCount":4,"outputText":"Hey","completionReason":"FINISH"}]}`,
			text: "Hey", stop: "FINISH", usage: Usage{3, 4, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			r, err := ParseReply(tt.op, h, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.Text != tt.text || r.StopReason != tt.stop || r.Usage != tt.usage {
				t.Errorf("got %q %q %+v; want %q %q %+v", r.Text, r.StopReason, r.Usage, tt.text, tt.stop, tt.usage)
			}
		})
	}
	if _, err := ParseReply(attempt.Converse, http.Header{}, []byte(`[1]`)); err == nil {
		t.Error("a JSON array was read as a reply")
	}
}

// TestProgressETAWhileTheLastRecordsRun: with a few records left, each of
// which takes seconds, the ETA is the time a record takes, not the few
// records over the rate, which read 0 s for the last seconds of a run
// (issue 15, item 13).
func TestProgressETAWhileTheLastRecordsRun(t *testing.T) {
	tests := []struct {
		name string
		took time.Duration // each record, from its first send to its checkpoint
		left int
		want string
	}{
		{name: "four left, 5 s each", took: 5 * time.Second, left: 4, want: "ETA 5s"},
		{name: "one left, 8 s each", took: 8 * time.Second, left: 1, want: "ETA 8s"},
		{name: "one left, 300 ms each", took: 300 * time.Millisecond, left: 1, want: "ETA 1s"},
		{name: "many left: the rate decides", took: 5 * time.Second, left: 200, want: "ETA 10s"},
		{name: "none left", took: 5 * time.Second, left: 0, want: "ETA 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			p := NewProgress(nil, ProgressOptions{Clock: clk})
			p.begin(400+tt.left, 0, nil)
			for range 20 { // 20 records a second for 20 s
				for range 20 {
					p.finished(true, "", 10, tt.took)
				}
				clk.Advance(time.Second)
				p.Line(clk.Now())
			}
			if got := p.Line(clk.Now()); !strings.Contains(got, tt.want) {
				t.Errorf("line %q lacks %q", got, tt.want)
			}
			p.end()
		})
	}
}
