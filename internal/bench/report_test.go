package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestWriteTable(t *testing.T) {
	res := &Result{Model: DefaultModel, Region: "us-east-1", Burndown: 5, Quota: 1_000_000, Load: 2, Offered: 2.004, Calls: 290,
		Seed: 1, Speed: 1, Duration: 40 * time.Second, Warmup: 10 * time.Second, Deadline: 15 * time.Second, Wall: 54321 * time.Millisecond,
		Contenders: []Outcome{
			{Name: "keel", Goodput: 0.987, Spent: 1.012, Offered: 290, Completed: 190, Failed: 100,
				Failures: map[string]int{"ThrottlingException": 90, "deadline": 10}, Attempts: 350, Throttled: 160, ThrottlesPer100: 45.71,
				P50: 5100 * time.Millisecond, P99: 10400 * time.Millisecond, FailP50: 2300 * time.Microsecond, FailP99: 4200 * time.Millisecond,
				LargeCompleted: 0.25, LargeP99: 14700 * time.Millisecond, SmallCompleted: 0.99, SmallP99: 9900 * time.Millisecond,
				ReplyP99: 10200 * time.Millisecond},
			{Name: "adaptive", Offered: 290, Failed: 290, Failures: map[string]int{"deadline": 290}, FailP50: 15 * time.Second, FailP99: 15 * time.Second},
			{Name: "standard", Offered: 290, Completed: 289, Failed: 1, P50: time.Second, P99: 2 * time.Second, FailP50: 400 * time.Microsecond, FailP99: 400 * time.Microsecond,
				SmallCompleted: 1, SmallP99: 1500 * time.Millisecond, ReplyP99: 1900 * time.Millisecond},
			{Name: "keel-learn", Offered: 290, Completed: 290, P50: time.Second, P99: 2 * time.Second},
		}}
	var b bytes.Buffer
	if err := res.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"quota 1,000,000 tokens/min, offered 2.00x (asked 2x)",
		"290 calls over 40s (goodput measured after a 10s warm-up), deadline 15s per call, quota starting spent, seed 1, model latency x1, run took 54.3s",
		"contender  goodput   spent  completed  failed  429s/100 attempts  attempts   p50    p99  replies p99  failed in p50/p99  largest 1/4 done, p99  smallest 1/4 done, p99",
		"keel    98.7%  101.2%        190     100               45.7       350  5.1s  10.4s        10.2s           2ms/4.2s             25%  14.7s              99%   9.9s",
		"adaptive     0.0%    0.0%          0     290                0.0         0     -      -            -        15.0s/15.0s              0%      -               0%      -",
		"standard     0.0%    0.0%        289       1                0.0         0  1.0s   2.0s         1.9s          <1ms/<1ms              0%      -             100%   1.5s",
		"keel-learn     0.0%    0.0%        290       0                0.0         0  1.0s   2.0s            -                  -              0%      -               0%      -",
		"keel        ThrottlingException 90, deadline 10",
		"adaptive    deadline 290",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	j, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"quotaTokensPerMinute":1000000`, `"durationSeconds":40`, `"wallSeconds":54.321`, `"p50Ms":5100`, `"p99Ms":null`, `"failedP50Ms":2.3`, `"failedP50Ms":null`, `"failedP99Ms":4200`,
		`"largeQuarterP99Ms":14700`, `"largeQuarterP99Ms":null`, `"smallQuarterP99Ms":1500`, `"replyP99Ms":10200`, `"replyP99Ms":null`,
		`"throttlesPer100Attempts":45.71`, `"goodput":0.987`, `"quotaSpent":1.012`, `"failures":{"ThrottlingException":90,"deadline":10}`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("JSON lacks %s:\n%s", want, j)
		}
	}
}

// TestWriteCalls: one JSON line per call, contenders in table order, times
// in milliseconds and null where there is none.
func TestWriteCalls(t *testing.T) {
	lat, reply := 10400*time.Millisecond, 9600*time.Millisecond
	refused := 1200 * time.Microsecond
	res := &Result{Contenders: []Outcome{
		{Name: "keel", calls: []CallRecord{
			{Contender: "keel", Index: 0, At: 1500 * time.Millisecond, InputTokens: 900, MaxTokens: 1024, Reserve: 1924, Cost: 2400,
				Completed: true, Latency: &lat, Reply: &reply, Requests: 1},
			{Contender: "keel", Index: 1, At: 2 * time.Second, InputTokens: 30000, Reserve: 94000, Cost: 31000,
				Failure: "TargetOverloaded", Latency: &refused},
		}},
		{Name: "standard", calls: []CallRecord{
			{Contender: "standard", Index: 0, At: 1500 * time.Millisecond, Failure: "not sent"},
		}},
	}}
	var b bytes.Buffer
	if err := res.WriteCalls(&b); err != nil {
		t.Fatal(err)
	}
	want := `{"contender":"keel","call":0,"inputTokens":900,"maxTokens":1024,"reserveTokens":1924,"costTokens":2400,"completed":true,"requests":1,"atMs":1500,"latencyMs":10400,"replyMs":9600}
{"contender":"keel","call":1,"inputTokens":30000,"maxTokens":0,"reserveTokens":94000,"costTokens":31000,"completed":false,"failure":"TargetOverloaded","requests":0,"atMs":2000,"latencyMs":1.2,"replyMs":null}
{"contender":"standard","call":0,"inputTokens":0,"maxTokens":0,"reserveTokens":0,"costTokens":0,"completed":false,"failure":"not sent","requests":0,"atMs":1500,"latencyMs":null,"replyMs":null}
`
	if b.String() != want {
		t.Errorf("WriteCalls wrote\n%s\nwant\n%s", b.String(), want)
	}
}

func TestThousands(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {2_000_000, "2,000,000"}, {-12345, "-12,345"}}
	for _, tt := range tests {
		if got := thousands(tt.n); got != tt.want {
			t.Errorf("thousands(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestProgressString (issue 15, item 13): the line keel bench quota
// redraws on a terminal while it runs.
func TestProgressString(t *testing.T) {
	tests := []struct {
		name string
		p    Progress
		want string
	}{
		{"arriving", Progress{Elapsed: 72 * time.Second, Arrivals: 3 * time.Minute, Limit: 195 * time.Second, Calls: 4880, Done: 1203},
			"1m12s of at most 3m15s: arrivals 40% done, 1,203 of 4,880 calls ended"},
		{"last deadlines", Progress{Elapsed: 187*time.Second + 400*time.Millisecond, Arrivals: 3 * time.Minute, Limit: 195 * time.Second, Calls: 4880, Done: 4870},
			"3m7s of at most 3m15s: arrivals 100% done, 4,870 of 4,880 calls ended"},
		{"start", Progress{Arrivals: 40 * time.Second, Limit: 55 * time.Second, Calls: 300}, "0s of at most 55s: arrivals 0% done, 0 of 300 calls ended"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
