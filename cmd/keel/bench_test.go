package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/bench"
)

func TestBenchUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"no benchmark", []string{"bench"}, 2, "Usage: keel bench quota"},
		{"help", []string{"bench", "-h"}, 0, "Contenders:"},
		{"quota help", []string{"bench", "quota", "-h"}, 0, "-contenders LIST"},
		{"unknown benchmark", []string{"bench", "latency"}, 2, `unknown benchmark "latency"`},
		{"quota not a number", []string{"bench", "quota", "--quota", "lots"}, 2, `want a positive whole number of tokens per minute, got "lots"`},
		{"quota zero", []string{"bench", "quota", "--quota", "0"}, 2, `got "0"`},
		{"quota too small for the mix", []string{"bench", "quota", "--quota", "20_000"}, 2, "below the largest call of the mix"},
		{"bad duration", []string{"bench", "quota", "--duration", "forever"}, 2, `invalid value "forever" for flag -duration`},
		{"duration too long", []string{"bench", "quota", "--duration", "1h"}, 2, "duration 1h0m0s: want from 1s to 10m0s"},
		{"load zero", []string{"bench", "quota", "--load", "0"}, 2, "--load 0: want more than 0"},
		{"negative warm-up", []string{"bench", "quota", "--warmup", "-1s"}, 2, "--warmup -1s"},
		{"deadline zero", []string{"bench", "quota", "--deadline", "0s"}, 2, "--deadline 0s: want more than 0"},
		{"load huge", []string{"bench", "quota", "--load", "500"}, 2, "load 500: want more than 0 and at most 20"},
		{"speed zero", []string{"bench", "quota", "--speed", "0"}, 2, "--speed 0: want more than 0"},
		{"speed too fast", []string{"bench", "quota", "--speed", "11"}, 2, "speed 11: want more than 0"},
		{"deadline tiny", []string{"bench", "quota", "--deadline", "1ms"}, 2, "deadline 1ms"},
		{"warm-up past the end", []string{"bench", "quota", "--warmup", "4m"}, 2, "warm-up 4m0s: want at least 0 and less than the duration 3m0s"},
		{"unknown contender", []string{"bench", "quota", "--contenders", "keel,boto3"}, 2, `unknown contender "boto3"`},
		{"no contender", []string{"bench", "quota", "--contenders", " , "}, 2, "--contenders names no contender"},
		{"unknown model", []string{"bench", "quota", "--model", "gpt"}, 2, `unknown model "gpt"`},
		{"profile-only model without a profile", []string{"bench", "quota", "--model", "anthropic.claude-sonnet-4-5-20250929-v1:0"}, 2, "try us.anthropic.claude-sonnet-4-5"},
		{"too few calls", []string{"bench", "quota", "--quota", "100000", "--duration", "2s"}, 2, "fewer than 20; raise the quota, the load or the duration"},
		{"stray argument", []string{"bench", "quota", "now"}, 2, `unexpected argument "now"`},
		{"bad progress", []string{"bench", "quota", "--progress", "loud"}, 2, `--progress "loud": want auto, on or off`},
		{"calls file in no directory", []string{"bench", "quota", "--calls", "/nonexistent/keel/calls.jsonl"}, 2, "--calls: open /nonexistent/keel/calls.jsonl"},
		{"replicas zero", []string{"bench", "quota", "--replicas", "0"}, 2, "--replicas 0: want from 1 to 16"},
		{"replicas past the bound", []string{"bench", "quota", "--replicas", "17"}, 2, "--replicas 17: want from 1 to 16"},
		{"replicas not a number", []string{"bench", "quota", "--replicas", "four"}, 2, `invalid value "four" for flag -replicas`},
		{"redis without keel-redis", []string{"bench", "quota", "--redis", "local"}, 2, "redis: set, but contender keel-redis, the one that shares state through it, does not run"},
		{"redis with replicas of other contenders", []string{"bench", "quota", "--replicas", "4", "--contenders", "keel-local", "--redis", "local"}, 2, "contender keel-redis"},
		{"redis not a URL", []string{"bench", "quota", "--replicas", "2", "--redis", "http://:pw@cache:6379"}, 2, "redis: want local or a Redis URL"},
		{"redis outage without keel-redis", []string{"bench", "quota", "--redis-outage", "10s"}, 2, "redis outage 10s: needs contender keel-redis"},
		{"redis outage of a Redis named by URL", []string{"bench", "quota", "--replicas", "2", "--redis", "redis://127.0.0.1:6379", "--redis-outage", "10s"}, 2, "redis outage 10s: needs the local Redis"},
		{"redis outage too long", []string{"bench", "quota", "--replicas", "2", "--redis-outage", "100s"}, 2, "redis outage 1m40s: want at most half the duration 3m0s"},
		{"redis outage negative", []string{"bench", "quota", "--replicas", "2", "--redis-outage", "-1s"}, 2, "redis outage -1s: want 0 (none) or more"},
		{"quota help names the replicas' contenders", []string{"bench", "quota", "-h"}, 0, "keel-redis"},
		{"outage: help", []string{"bench", "outage", "-h"}, 0, "-scenario FILE"},
		{"outage: help names the contenders", []string{"bench", "outage", "--help"}, 0, "no-attempt-timeout"},
		{"bench help points to outage", []string{"bench", "-h"}, 0, "keel bench outage"},
		{"outage: no scenario file", []string{"bench", "outage", "--scenario", "/nonexistent/keel/outage.yaml"}, 2, "--scenario: scenario: open /nonexistent/keel/outage.yaml"},
		{"outage: rate zero", []string{"bench", "outage", "--rate", "0"}, 2, "--rate 0: want more than 0"},
		{"outage: rate huge", []string{"bench", "outage", "--rate", "1000"}, 2, "rate 1000: want more than 0 and at most 100"},
		{"outage: duration zero", []string{"bench", "outage", "--duration", "0s"}, 2, "--duration 0s: want more than 0"},
		{"outage: duration too long", []string{"bench", "outage", "--duration", "1h"}, 2, "duration 1h0m0s: want from 1s to 10m0s"},
		{"outage: deadline tiny", []string{"bench", "outage", "--deadline", "1ms"}, 2, "deadline 1ms"},
		{"outage: max tokens zero", []string{"bench", "outage", "--max-tokens", "0"}, 2, "--max-tokens 0: want more than 0"},
		{"outage: max tokens past the model", []string{"bench", "outage", "--max-tokens", "5000"}, 2, "max tokens 5000: want from 1 to 4096"},
		{"outage: speed zero", []string{"bench", "outage", "--speed", "0"}, 2, "--speed 0: want more than 0"},
		{"outage: unknown contender", []string{"bench", "outage", "--contenders", "keel,boto3"}, 2, `unknown contender "boto3"; choose from keel, no-attempt-timeout`},
		{"outage: quota contender", []string{"bench", "outage", "--contenders", "standard"}, 2, `unknown contender "standard"`},
		{"outage: no contender", []string{"bench", "outage", "--contenders", ","}, 2, "--contenders names no contender"},
		{"outage: model not in us-east-1", []string{"bench", "outage", "--model", "eu.anthropic.claude-3-haiku-20240307-v1:0"}, 2, "is not called in us-east-1"},
		{"outage: unknown model", []string{"bench", "outage", "--model", "gpt"}, 2, `unknown model "gpt"`},
		{"outage: bad progress", []string{"bench", "outage", "--progress", "loud"}, 2, `--progress "loud": want auto, on or off`},
		{"outage: stray argument", []string{"bench", "outage", "now"}, 2, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			got := errb.String()
			if tt.code == 0 {
				got = out.String() // help goes to stdout
			}
			if !strings.Contains(got, tt.wantErr) {
				t.Fatalf("output lacks %q:\n%s", tt.wantErr, got)
			}
		})
	}
}

// TestBenchQuotaJSON runs a three-second bench of one contender through the
// command line.
func TestBenchQuotaJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 5 s")
	}
	var out, errb bytes.Buffer
	callsPath := filepath.Join(t.TempDir(), "calls.jsonl")
	code := run([]string{"bench", "quota", "--quota", "3_000_000", "--duration", "3s", "--speed", "0.05", "--deadline", "2s",
		"--seed", "4", "--contenders", "keel", "--json", "--calls", callsPath}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	var res struct {
		Model      string  `json:"model"`
		Quota      int64   `json:"quotaTokensPerMinute"`
		Offered    float64 `json:"offeredLoad"`
		Calls      int     `json:"calls"`
		Seed       int64   `json:"seed"`
		DurationS  float64 `json:"durationSeconds"`
		Contenders []struct {
			Name            string   `json:"name"`
			Goodput         float64  `json:"goodput"`
			Completed       int      `json:"completed"`
			Failed          int      `json:"failed"`
			ThrottlesPer100 float64  `json:"throttlesPer100Attempts"`
			P50             *float64 `json:"p50Ms"`
			ReplyP99        *float64 `json:"replyP99Ms"`
		} `json:"contenders"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if res.Model != bench.DefaultModel || res.Quota != 3_000_000 || res.Seed != 4 || res.DurationS != 3 || res.Calls < 40 ||
		res.Offered < 1.95 || len(res.Contenders) != 1 {
		t.Fatalf("result %+v", res)
	}
	c := res.Contenders[0]
	if c.Name != "keel" || c.Completed == 0 || c.Completed+c.Failed != res.Calls || c.P50 == nil || c.Goodput <= 0 ||
		c.ThrottlesPer100 < 0 || c.ThrottlesPer100 > 100 || c.ReplyP99 == nil || *c.ReplyP99 <= 0 {
		t.Fatalf("contender %+v of %d calls", c, res.Calls)
	}
	checkCallsFile(t, callsPath, res.Calls, c.Completed)
	if errb.Len() != 0 {
		t.Errorf("stderr with --json: %s", errb.String())
	}
}

// checkCallsFile checks the --calls file of a one-contender run of calls
// calls, completed of which completed: a line per call, in order, each
// consistent with itself.
func checkCallsFile(t *testing.T, path string, calls, completed int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != calls {
		t.Fatalf("--calls wrote %d lines for %d calls", len(lines), calls)
	}
	done := 0
	for i, line := range lines {
		var r struct {
			Contender string   `json:"contender"`
			Call      int      `json:"call"`
			At        *float64 `json:"atMs"`
			Reserve   int      `json:"reserveTokens"`
			Completed bool     `json:"completed"`
			Failure   string   `json:"failure"`
			Latency   *float64 `json:"latencyMs"`
			Reply     *float64 `json:"replyMs"`
			Requests  int      `json:"requests"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, line)
		}
		ok := r.Contender == "keel" && r.Call == i && r.At != nil && r.Reserve > 0 && r.Latency != nil
		if r.Completed {
			done++
			// The reply came in the call's last request, within the call.
			ok = ok && r.Failure == "" && r.Requests >= 1 && r.Reply != nil && *r.Reply > 0 && *r.Reply <= *r.Latency
		} else {
			ok = ok && r.Failure != ""
		}
		if !ok {
			t.Fatalf("line %d: %s", i+1, line)
		}
	}
	if done != completed {
		t.Fatalf("--calls has %d completed calls, the result %d", done, completed)
	}
}

// TestBenchOutageJSON runs a three-second outage bench of keel alone
// through the command line, on the bench's short scenario, and reads its
// JSON: camelCase keys, a phase per window, every call counted once.
func TestBenchOutageJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 5 s")
	}
	var out, errb bytes.Buffer
	code := run([]string{"bench", "outage", "--scenario", "../../internal/bench/testdata/outage-short.yaml", "--duration", "3s",
		"--rate", "10", "--deadline", "2s", "--speed", "0.05", "--seed", "2", "--contenders", "keel", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	if snake := regexp.MustCompile(`"[a-z0-9]+_[a-z0-9_]*":`).FindString(out.String()); snake != "" {
		t.Errorf("snake_case key %s in:\n%s", snake, out.String())
	}
	var res struct {
		Scenario  string  `json:"scenario"`
		Primary   string  `json:"primaryRegion"`
		Fallback  string  `json:"fallbackRegion"`
		Calls     int     `json:"calls"`
		Seed      int64   `json:"seed"`
		DurationS float64 `json:"durationSeconds"`
		Phases    []struct {
			Name  string  `json:"name"`
			FromS float64 `json:"fromSeconds"`
			ToS   float64 `json:"toSeconds"`
		} `json:"phases"`
		Contenders []struct {
			Name   string `json:"name"`
			Phases []struct {
				Phase     string         `json:"phase"`
				Calls     int            `json:"calls"`
				Completed int            `json:"completed"`
				Failed    int            `json:"failed"`
				Failures  map[string]int `json:"failures"`
				P50       *float64       `json:"p50Ms"`
				Max       *float64       `json:"maxMs"`
				Timeouts  int            `json:"attemptTimeouts"`
				Longest   *float64       `json:"longestTimedOutAttemptMs"`
			} `json:"phases"`
		} `json:"contenders"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if res.Primary != "us-east-1" || res.Fallback != "us-west-2" || res.Seed != 2 || res.DurationS != 3 || res.Calls < 10 ||
		len(res.Phases) != 2 || res.Phases[0].Name != "healthy" || res.Phases[1].Name != "hang" || res.Phases[1].ToS != 3 ||
		len(res.Contenders) != 1 || res.Contenders[0].Name != "keel" || len(res.Contenders[0].Phases) != 2 {
		t.Fatalf("result %+v", res)
	}
	total := 0
	for _, p := range res.Contenders[0].Phases {
		total += p.Calls
		if p.Completed+p.Failed != p.Calls || (p.Completed > 0) != (p.P50 != nil && p.Max != nil) || (p.Timeouts > 0) != (p.Longest != nil) {
			t.Errorf("phase %+v", p)
		}
	}
	if total != res.Calls {
		t.Errorf("the phases hold %d calls of %d", total, res.Calls)
	}
	if errb.Len() != 0 {
		t.Errorf("stderr with --json: %s", errb.String())
	}
}
