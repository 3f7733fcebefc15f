package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/reply"
)

const sonnetProfile = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

func TestConverseQuickStart(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"converse", "--emulator", "--scenario", "../../examples/scenarios/quickstart.yaml",
		"--model", sonnetProfile, "--fallback", sonnetProfile + "@us-west-2", "--prompt", "Why do ships have keels?", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	var res struct {
		Reply     string `json:"reply"`
		Target    string `json:"target"`
		Fallbacks int    `json:"fallbacks"`
		Usage     struct {
			InputTokens, OutputTokens int
		} `json:"usage"`
		Attempts []struct {
			Target      string `json:"target"`
			Status      int    `json:"status"`
			Code        string `json:"code"`
			DelayMs     int64  `json:"delayMs"`
			QuotaWaitMs int64  `json:"quotaWaitMs"`
			QuotaTokens int    `json:"quotaTokens"`
		} `json:"attempts"`
		Quota []struct {
			Target     string         `json:"target"`
			Limit      int64          `json:"limitTokensPerMinute"`
			Learning   bool           `json:"learning"`
			Reserved   int64          `json:"reservedTokensPerMinute"`
			Settled    int64          `json:"settledTokensPerMinute"`
			QueueDepth map[string]int `json:"queueDepth"`
			Throttles  int64          `json:"throttles"`
			WaitedMs   int64          `json:"waitedMs"`
			HeldTokens int            `json:"heldTokens"`
		} `json:"quota"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	// The quota governor is on by default, learning: the second throttle of
	// us-east-1 confirms the first, and the limit it learns there (what was
	// taken over a minute and the time watched) is below the call's 64,000
	// tokens; the third attempt would wait past the throttle cap, so it is
	// not sent (NoQuotaBeforeDeadline) and the call falls back at once.
	if len(res.Quota) != 2 {
		t.Fatalf("quota view %+v, want one entry per target", res.Quota)
	}
	east, west := res.Quota[0], res.Quota[1]
	if !strings.HasSuffix(east.Target, "@us-east-1") || east.Throttles != 2 || !east.Learning || east.Limit == 0 ||
		east.HeldTokens == 0 || east.Reserved == 0 || len(east.QueueDepth) != 2 {
		t.Fatalf("us-east-1 quota %+v", east)
	}
	if !strings.HasSuffix(west.Target, "@us-west-2") || west.Throttles != 0 || west.Limit != 0 || west.Settled == 0 {
		t.Fatalf("us-west-2 quota %+v", west)
	}
	for i, a := range res.Attempts {
		if i == 2 { // refused by the governor before it was sent, at once (a millisecond or so on a loaded machine)
			if a.QuotaTokens != 0 || a.DelayMs > 100 || a.QuotaWaitMs > 100 {
				t.Fatalf("attempt %d %+v", i, a)
			}
			continue
		}
		if a.QuotaTokens == 0 || a.QuotaWaitMs > a.DelayMs || (i == 1 && a.DelayMs == 0) {
			t.Fatalf("attempt %d %+v", i, a)
		}
	}
	var codes []string
	for _, a := range res.Attempts {
		codes = append(codes, a.Target[strings.LastIndexByte(a.Target, '@')+1:]+":"+a.Code)
	}
	want := "us-east-1:ThrottlingException us-east-1:ThrottlingException us-east-1:NoQuotaBeforeDeadline us-west-2:ModelNotReadyException us-west-2:"
	if strings.Join(codes, " ") != want {
		t.Fatalf("attempts %v\nwant     %s", codes, want)
	}
	if res.Reply == "" || res.Target != sonnetProfile+"@us-west-2" || res.Fallbacks != 1 || res.Usage.OutputTokens == 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestConverseFailureExplains(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "deny.yaml")
	os.WriteFile(sc, []byte("description: deny\nrules:\n  - outages:\n      - answer: ValidationException\n"), 0o600)
	tests := []struct {
		name string
		json bool
		want []string
	}{
		{"human", false, []string{"ValidationException", "attempts", "fix:"}},
		{"json", true, []string{`"code": "ValidationException"`, `"retry": "never"`, `"attempts"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"converse", "--emulator", "--scenario", sc, "--model", "anthropic.claude-3-haiku-20240307-v1:0", "--prompt", "hi"}
			if tt.json {
				args = append(args, "--json")
			}
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1\n%s\n%s", code, out.String(), errb.String())
			}
			got := out.String() + errb.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			if strings.Count(got, "HTTP 400")+strings.Count(got, `"status": 400`) < 1 {
				t.Errorf("output does not show the one 400 attempt:\n%s", got)
			}
		})
	}
}

// TestConverseQuotaRefusal: a request larger than its target's configured
// quota is refused before it is sent, with the catalog's explanation.
func TestConverseQuotaRefusal(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "keel.yaml")
	os.WriteFile(cfg, []byte("quotas:\n  targets:\n    - model: "+sonnetProfile+"\n      tokens_per_minute: 10000\n"), 0o600)
	tests := []struct {
		name string
		json bool
		want []string
	}{
		{"human", false, []string{"RequestTooLargeForQuota", "not sent:", "can never fit 10000 tokens per minute", "fix:"}},
		{"json", true, []string{`"code": "RequestTooLargeForQuota"`, `"skipped": true`, `"limitTokensPerMinute": 10000`, `"retry": "never"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"converse", "--emulator", "--config", cfg, "--model", sonnetProfile, "--prompt", "hi", "--max-tokens", "20000"}
			if tt.json {
				args = append(args, "--json")
			}
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1\n%s\n%s", code, out.String(), errb.String())
			}
			got := out.String() + errb.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestConverseBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no model", []string{"--prompt", "hi", "--emulator"}, "--model and --prompt are required"},
		{"no prompt", []string{"--model", "m", "--emulator"}, "--model and --prompt are required"},
		{"stray argument", []string{"--model", "m", "--prompt", "hi", "extra"}, "unexpected argument"},
		{"both endpoints", []string{"--model", "m", "--prompt", "hi", "--emulator", "--endpoint", "http://127.0.0.1:1"}, "choose one"},
		{"scenario alone", []string{"--model", "m", "--prompt", "hi", "--scenario", "x.yaml"}, "--scenario needs --emulator"},
		{"bad fallback", []string{"--model", "m", "--prompt", "hi", "--emulator", "--fallback", "m@nowhere"}, "bad region"},
		{"missing scenario", []string{"--model", "m", "--prompt", "hi", "--emulator", "--scenario", "/nonexistent.yaml"}, "nonexistent.yaml"},
		{"bad config", []string{"--model", "m", "--prompt", "hi", "--emulator", "--config", "/nonexistent.yaml"}, "nonexistent.yaml"},
		{"negative max tokens", []string{"--model", "m", "--prompt", "hi", "--max-tokens", "-3"}, "--max-tokens"},
		{"negative temperature", []string{"--model", "m", "--prompt", "hi", "--temperature", "-1"}, `want a number, 0 or more, got "-1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(append([]string{"converse"}, tt.args...), &out, &errb); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("stderr %q lacks %q", errb.String(), tt.want)
			}
		})
	}
}

// streamEmulator serves ConverseStream, breaking the n-th request (from 0)
// as plan(n) says; it returns the emulator's URL and a config file with
// quick backoffs.
func streamEmulator(t *testing.T, plan func(n int) fault.Plan) (string, string) {
	t.Helper()
	var n atomic.Int64
	rn, err := emulator.Start(emulator.Options{Seed: 5, Planner: func(fault.Request) fault.Plan { return plan(int(n.Add(1) - 1)) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rn.Close() })
	cfg := filepath.Join(t.TempDir(), "keel.yaml")
	os.WriteFile(cfg, []byte("retry:\n  base: 1ms\n  cap: 2ms\n"), 0o600)
	return rn.URL, cfg
}

const streamQuestion = "How deep does a keel go?"

func streamReply() reply.Reply {
	return reply.Generate(&reply.Request{Seed: 5, Model: strings.TrimPrefix(sonnetProfile, "us."),
		Messages: []reply.Message{{Role: "user", Text: streamQuestion}}, MaxTokens: 40})
}

func TestConverseStream(t *testing.T) {
	breakFirst := func(n int) fault.Plan {
		if n == 0 {
			return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 8, Code: catalog.CodeModelStreamError}}
		}
		return fault.Plan{}
	}
	breakAll := func(int) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 6, Code: catalog.CodeModelStreamError}}
	}
	want := streamReply()
	tests := []struct {
		name  string
		plan  func(int) fault.Plan
		json  bool
		code  int
		check func(t *testing.T, stdout, stderr string)
	}{
		{name: "resumed, text as it arrives", plan: breakFirst, code: 0, check: func(t *testing.T, stdout, stderr string) {
			if stdout != want.Text+"\n" {
				t.Errorf("stdout %q, want the unbroken reply %q", stdout, want.Text)
			}
			if !strings.Contains(stderr, "2 attempt(s), 1 resume(s)") || !strings.Contains(stderr, fmt.Sprintf("%d output tokens over all attempts", want.OutputTokens)) {
				t.Errorf("stderr %q", stderr)
			}
		}},
		{name: "resumed, json", plan: breakFirst, json: true, code: 0, check: func(t *testing.T, stdout, stderr string) {
			var res struct {
				Reply    string `json:"reply"`
				Streamed bool   `json:"streamed"`
				Resumes  int    `json:"resumes"`
				Usage    struct{ OutputTokens int }
				Attempts []struct {
					Code           string `json:"code"`
					Resume         bool   `json:"resume"`
					ResumeMode     string `json:"resumeMode"`
					OverlapDropped int    `json:"overlapDropped"`
					Events         int    `json:"events"`
					Usage          *struct{ OutputTokens int }
				} `json:"attempts"`
				Quota []struct {
					Settled int64 `json:"settledTokensPerMinute"`
				} `json:"quota"`
			}
			if err := json.Unmarshal([]byte(stdout), &res); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, stdout)
			}
			if res.Reply != want.Text || !res.Streamed || res.Resumes != 1 || res.Usage.OutputTokens != want.OutputTokens || len(res.Attempts) != 2 ||
				len(res.Quota) != 1 || res.Quota[0].Settled < int64(5*want.OutputTokens) { // Sonnet 4.5: each output token costs 5
				t.Fatalf("result %+v", res)
			}
			a0, a1 := res.Attempts[0], res.Attempts[1]
			if a0.Code != catalog.CodeModelStreamError || a0.Resume || a0.ResumeMode != "" || !a1.Resume || a1.ResumeMode != "prefill" || a1.OverlapDropped != 0 || a0.Usage == nil || a1.Usage == nil || a0.Usage.OutputTokens+a1.Usage.OutputTokens != want.OutputTokens {
				t.Fatalf("attempts %+v", res.Attempts)
			}
		}},
		{name: "broken past the resume limit", plan: breakAll, code: 1, check: func(t *testing.T, stdout, stderr string) {
			partial := strings.TrimSuffix(stdout, "\n")
			if partial == "" || !strings.HasPrefix(want.Text, partial) || partial == want.Text {
				t.Errorf("stdout %q, want a part of %q", stdout, want.Text)
			}
			for _, w := range []string{"ModelStreamErrorException", "2 resume(s)", "limit of 2 resumes", "fix:"} {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		}},
		{name: "broken past the resume limit, json", plan: breakAll, json: true, code: 1, check: func(t *testing.T, stdout, stderr string) {
			var res struct {
				Reply    string `json:"reply"`
				Complete bool   `json:"complete"`
				Resumes  int    `json:"resumes"`
				Error    struct {
					Explanation struct{ Code string } `json:"explanation"`
				} `json:"error"`
				Attempts []json.RawMessage `json:"attempts"`
			}
			if err := json.Unmarshal([]byte(stdout), &res); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, stdout)
			}
			if res.Complete || res.Resumes != 2 || res.Error.Explanation.Code != catalog.CodeModelStreamError || len(res.Attempts) != 3 || !strings.HasPrefix(want.Text, res.Reply) || res.Reply == "" {
				t.Fatalf("result %+v", res)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, cfg := streamEmulator(t, tt.plan)
			args := []string{"converse", "--stream", "--endpoint", url, "--config", cfg, "--model", sonnetProfile, "--prompt", streamQuestion, "--max-tokens", "40"}
			if tt.json {
				args = append(args, "--json")
			}
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			tt.check(t, out.String(), errb.String())
		})
	}
}

// TestConverseSetupErrorJSON: with --json, a failure before any call (here a
// bad config file) is a JSON error document on stdout too, exit 2.
func TestConverseSetupErrorJSON(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "keel.yaml")
	if err := os.WriteFile(cfg, []byte("retry:\n  max_attempt: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"converse", "--emulator", "--config", cfg, "--model", sonnetProfile, "--prompt", "hi", "--json"}, &out, &errb)
	var doc struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if code != 2 || json.Unmarshal(out.Bytes(), &doc) != nil || !strings.Contains(doc.Error.Message, `unknown key "max_attempt"`) {
		t.Fatalf("exit %d, stdout %q; want 2 and a JSON error naming the key", code, out.String())
	}
}
