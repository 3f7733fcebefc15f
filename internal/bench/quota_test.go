package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestRunShort runs a short bench (6 s of arrivals, model latency at 1/20,
// a quota of 3M tokens per minute: about 140 calls per contender) and checks
// that every contender's numbers are consistent with each other and with
// the quota. The deadline, 10 s, leaves the learning contender, which starts
// on a spent bucket with a first limit near the floor, room for a probe
// (one every 5 s, see docs/governor.md): with 5 s, a loaded CI machine once
// saw it complete no call at all.
func TestRunShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 16 s")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var progress []Progress // Run calls Progress from one goroutine, ended when it returns
	cfg := Config{Quota: 3_000_000, Duration: 6 * time.Second, Speed: 0.05, Deadline: 10 * time.Second, Seed: 1,
		Progress: func(p Progress) { progress = append(progress, p) }}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkProgress(t, progress, res.Calls*len(res.Contenders), cfg)
	if res.Calls < 100 || res.Offered < 1.95 || res.Offered > 2.1 {
		t.Fatalf("%d calls offering %.2fx the quota; want about 140 offering 2x", res.Calls, res.Offered)
	}
	if res.Wall > cfg.Duration+cfg.Deadline+3*time.Second {
		t.Errorf("the run took %s; arrivals %s + deadline %s should bound it", res.Wall, cfg.Duration, cfg.Deadline)
	}
	byName := map[string]Outcome{}
	for _, o := range res.Contenders {
		byName[o.Name] = o
		refill := float64(o.Refill)
		if nominal := float64(cfg.Quota) * (res.Duration - res.Warmup).Minutes(); math.Abs(refill/nominal-1) > 0.01 {
			t.Errorf("%s: window refill %.0f tokens, want about %.0f", o.Name, refill, nominal)
		}
		// What the window's refill went to: settlements, reservations still
		// in flight, the bucket, and overflow (left unused).
		unused := (refill - float64(o.SettledTokens) - float64(o.InFlight[1]-o.InFlight[0])) / refill
		t.Logf("%-10s goodput %.3f unused %.3f in flight %v bucket %v completed %d failed %d %v 429s/100 %.1f of %d attempts p50 %s p99 %s (replies %s) large %.2f (p99 %s) small %.2f (p99 %s)",
			o.Name, o.Goodput, unused, o.InFlight, o.Bucket, o.Completed, o.Failed, o.Failures, o.ThrottlesPer100, o.Attempts,
			o.P50.Round(time.Millisecond), o.P99.Round(time.Millisecond), o.ReplyP99.Round(time.Millisecond), o.LargeCompleted, o.LargeP99.Round(time.Millisecond),
			o.SmallCompleted, o.SmallP99.Round(time.Millisecond))
		failures := 0
		for _, n := range o.Failures {
			failures += n
		}
		switch {
		case o.Offered != res.Calls || o.Completed+o.Failed != o.Offered || failures != o.Failed:
			t.Errorf("%s: offered %d of %d calls, completed %d + failed %d (%d by cause)", o.Name, o.Offered, res.Calls, o.Completed, o.Failed, failures)
		case o.Completed == 0:
			t.Errorf("%s: no call completed", o.Name)
		case o.ThrottlesPer100 < 0 || o.ThrottlesPer100 > 100 || o.Throttled > o.Attempts || o.Attempts < int64(o.Completed):
			t.Errorf("%s: %d throttled of %d attempts (%.1f per 100) for %d completed calls", o.Name, o.Throttled, o.Attempts, o.ThrottlesPer100, o.Completed)
		case o.P50 <= 0 || o.P50 > o.P99 || o.P99 > cfg.Deadline+time.Second:
			t.Errorf("%s: p50 %s, p99 %s with a %s deadline", o.Name, o.P50, o.P99, cfg.Deadline)
		case o.LargeCompleted < 0 || o.LargeCompleted > 1 || o.SmallCompleted < 0 || o.SmallCompleted > 1:
			t.Errorf("%s: quarters completed %.2f (largest), %.2f (smallest)", o.Name, o.LargeCompleted, o.SmallCompleted)
		case (o.LargeCompleted > 0) != (o.LargeP99 > 0) || (o.SmallCompleted > 0) != (o.SmallP99 > 0) ||
			o.LargeP99 > cfg.Deadline+time.Second || o.SmallP99 > cfg.Deadline+time.Second:
			t.Errorf("%s: p99 %s of the largest quarter (%.2f completed), %s of the smallest (%.2f), with a %s deadline",
				o.Name, o.LargeP99, o.LargeCompleted, o.SmallP99, o.SmallCompleted, cfg.Deadline)
		case o.Failed > 0 && (o.FailP50 <= 0 || o.FailP50 > o.FailP99 || o.FailP99 > cfg.Deadline+time.Second):
			t.Errorf("%s: failed in p50 %s, p99 %s with a %s deadline", o.Name, o.FailP50, o.FailP99, cfg.Deadline)
		}
		// Every request that reached the meter was traced, and every
		// completed call's reply came in its last request, within the call.
		requests := 0
		for _, c := range o.calls {
			requests += c.Requests
			if c.Completed && (c.Reply == nil || c.Requests < 1 || *c.Reply <= 0 || *c.Reply > *c.Latency) {
				t.Errorf("%s: call %d completed after %v with %d requests, the last taking %v", o.Name, c.Index, *c.Latency, c.Requests, c.Reply)
			}
		}
		if len(o.calls) != res.Calls || int64(requests) < o.Attempts || o.ReplyP99 <= 0 || o.ReplyP99 > o.P99 {
			t.Errorf("%s: %d calls traced of %d, %d requests for %d attempts the meter saw, replies p99 %s, p99 %s",
				o.Name, len(o.calls), res.Calls, requests, o.Attempts, o.ReplyP99, o.P99)
		}
		// The meter never settles more than its refill: what the window
		// settled is the refill less what stayed in flight, less what the
		// bucket gained (or plus what it lost), less what overflowed.
		if gained := float64(o.Bucket[1] - o.Bucket[0]); unused*refill < gained-5 {
			t.Errorf("%s: unused %.0f tokens is less than the %.0f the bucket gained", o.Name, unused*refill, gained)
		}
		// Goodput is at most the quota, up to what the window's edges cut
		// in two: reservations in flight and debt in the bucket.
		edges := (math.Abs(float64(o.InFlight[1]-o.InFlight[0])) + math.Max(0, float64(o.Bucket[0]-o.Bucket[1]))) / refill
		if o.Goodput <= 0 || o.Goodput > 1.05+edges {
			t.Errorf("%s: goodput %.3f outside (0, 1.05 + %.3f at the window's edges]", o.Name, o.Goodput, edges)
		}
	}
	// Clients that keep sending take the whole quota. keel learning the
	// quota is not held to this: in a run this short it spends much of the
	// window learning the quota, so its share is logged, not asserted.
	for _, name := range []string{"keel", "standard", "keel-learn"} {
		o := byName[name]
		taken := float64(o.SettledTokens+o.InFlight[1]-o.InFlight[0]) / float64(o.Refill)
		if name == "keel-learn" {
			t.Logf("keel learning the quota took %.0f%% of the quota", 100*taken)
			continue
		}
		if taken < 0.7 {
			t.Errorf("%s took %.0f%% of the quota; a client under 2x load should take nearly all of it", name, 100*taken)
		}
	}
	if kq, std := byName["keel"], byName["standard"]; kq.ThrottlesPer100 >= std.ThrottlesPer100/2 {
		t.Errorf("keel told the quota is throttled %.1f times per 100 attempts, the standard retryer %.1f: the governor should at least halve it",
			kq.ThrottlesPer100, std.ThrottlesPer100)
	}

	checkTable(t, res, "goodput", "429s/100 attempts", "replies p99", "largest 1/4 done", "keel ", "standard ", "adaptive ")
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Calls      int `json:"calls"`
		Contenders []struct {
			Name      string   `json:"name"`
			Completed int      `json:"completed"`
			P99       *float64 `json:"p99Ms"`
		} `json:"contenders"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Calls != res.Calls || len(back.Contenders) != len(res.Contenders) || back.Contenders[0].P99 == nil {
		t.Errorf("JSON %s", b)
	}
}

// checkTable checks that res's table holds each of want.
func checkTable(t *testing.T, res *Result, want ...string) {
	t.Helper()
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !strings.Contains(table.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, table.String())
		}
	}
}

func TestRunCancelled(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := Run(ctx, Config{Quota: 3_000_000, Duration: 30 * time.Second, Speed: 0.05, Deadline: 2 * time.Second, Contenders: []string{"standard"}})
	if err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a cancelled run took %s to return", d)
	}
}

func TestCheck(t *testing.T) {
	ok := Config{Quota: 1_000_000, Duration: 40 * time.Second}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no quota", func(c *Config) { c.Quota = 0 }, "quota 0: want a positive number"},
		{"short duration", func(c *Config) { c.Duration = 500 * time.Millisecond }, "duration 500ms: want from 1s"},
		{"long duration", func(c *Config) { c.Duration = time.Hour }, "duration 1h0m0s: want from 1s to 10m0s"},
		{"warm-up past the end", func(c *Config) { c.Warmup = time.Minute }, "warm-up 1m0s"},
		{"negative load", func(c *Config) { c.Load = -1 }, "load -1"},
		{"huge load", func(c *Config) { c.Load = 100 }, "load 100"},
		{"tiny deadline", func(c *Config) { c.Deadline = time.Millisecond }, "deadline 1ms"},
		{"negative speed", func(c *Config) { c.Speed = -1 }, "speed -1"},
		{"NaN speed", func(c *Config) { c.Speed = math.NaN() }, "speed NaN"},
		{"unknown contender", func(c *Config) { c.Contenders = []string{"keel", "boto3"} }, `unknown contender "boto3"; choose from keel, keel-learn, standard, adaptive, keel-redis, keel-local`},
		{"contender twice", func(c *Config) { c.Contenders = []string{"keel", "keel"} }, `contender "keel" named twice`},
		{"unknown model", func(c *Config) { c.Model = "sonnet" }, `unknown model "sonnet"`},
		{"quota below the largest call", func(c *Config) { c.Quota = 50_000 }, "quota 50000 tokens per minute is below the largest call of the mix (94000 tokens"},
		{"too few calls", func(c *Config) { c.Duration = 2 * time.Second }, "fewer than 20"},
		{"too many calls", func(c *Config) { c.Quota = 2_000_000_000 }, "at most 20000"},
		{"replicas", func(c *Config) { c.Replicas = 4 }, ""},
		{"negative replicas", func(c *Config) { c.Replicas = -1 }, "replicas -1: want from 1 to 16"},
		{"too many replicas", func(c *Config) { c.Replicas = 17 }, "replicas 17: want from 1 to 16"},
		{"redis by URL", func(c *Config) { c.Contenders, c.Redis = []string{"keel-redis"}, "redis://:pw@127.0.0.1:6379/2" }, ""},
		{"redis without keel-redis", func(c *Config) { c.Redis = "local" }, "redis: set, but contender keel-redis"},
		{"redis not a URL", func(c *Config) { c.Contenders, c.Redis = []string{"keel-redis"}, "127.0.0.1:6379" }, "redis: want local or a Redis URL"},
		{"redis URL quoted nowhere", func(c *Config) { c.Contenders, c.Redis = []string{"keel-redis"}, "http://:hunter2@cache" }, "such as redis://127.0.0.1:6379 (rediss:// for TLS)"},
		{"redis outage", func(c *Config) { c.Contenders, c.RedisOutage = []string{"keel-redis"}, 10*time.Second }, ""},
		{"redis outage, replicas' defaults", func(c *Config) { c.Replicas, c.RedisOutage = 2, 10*time.Second }, ""},
		{"redis outage without keel-redis", func(c *Config) { c.RedisOutage = 10 * time.Second }, "redis outage 10s: needs contender keel-redis"},
		{"redis outage of a URL's Redis", func(c *Config) {
			c.Contenders, c.Redis, c.RedisOutage = []string{"keel-redis"}, "redis://127.0.0.1:6379", 10*time.Second
		}, "needs the local Redis"},
		{"redis outage past half the run", func(c *Config) { c.Contenders, c.RedisOutage = []string{"keel-redis"}, 21*time.Second }, "want at most half the duration 40s"},
		{"negative redis outage", func(c *Config) { c.Contenders, c.RedisOutage = []string{"keel-redis"}, -time.Second }, "redis outage -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			err := Check(cfg)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Check = %v, want %q", err, tt.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "hunter2")) {
				t.Fatalf("Check's error quotes a password: %v", err)
			}
		})
	}
}

func TestDefaultWarmup(t *testing.T) {
	tests := []struct {
		name     string
		duration time.Duration
		speed    float64
		want     time.Duration
	}{
		// The longest reply of Sonnet 4.6 takes 0.9 s + 600 tokens at 70 a
		// second (9.47 s, to the nearest tenth), more than a quarter of 30 s.
		{"long run, real time: the longest reply", 30 * time.Second, 1, 9500 * time.Millisecond},
		{"very long run: a quarter", 4 * time.Minute, 1, time.Minute},
		{"short run: at most half", 12 * time.Second, 1, 6 * time.Second},
		{"fast model: a quarter", 6 * time.Second, 0.05, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, _, err := check(Config{Quota: 5_000_000, Duration: tt.duration, Speed: tt.speed})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Warmup != tt.want {
				t.Fatalf("warm-up %s, want %s", cfg.Warmup, tt.want)
			}
		})
	}
}

// checkProgress (issue 15, item 13: keel bench quota was silent for
// minutes) checks what Config.Progress received: reports while it ran, in
// order, the last one counting every call of every contender.
func checkProgress(t *testing.T, got []Progress, calls int, cfg Config) {
	t.Helper()
	if len(got) < 2 {
		t.Fatalf("Progress called %d times in a run of %s; want about once a second", len(got), cfg.Duration)
	}
	for i, p := range got {
		if p.Calls != calls || p.Arrivals != cfg.Duration || p.Limit != cfg.Duration+cfg.Deadline || p.Done > p.Calls ||
			(i > 0 && (p.Done < got[i-1].Done || p.Elapsed < got[i-1].Elapsed)) {
			t.Fatalf("progress report %d of %d: %+v (before: %+v)", i, len(got), p, got[max(i-1, 0)])
		}
	}
	if last := got[len(got)-1]; last.Done != calls {
		t.Fatalf("last progress report %+v; want every one of %d calls done", last, calls)
	}
}

// TestStart: a quota starts spent (the default) or full (FullStart), which
// the meter's bucket shows when goodput starts being measured.
func TestStart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 16 s")
	}
	const q = 3_000_000
	tests := []struct {
		name     string
		full     bool
		min, max float64 // the bucket at the window's start ÷ a minute of quota
	}{
		{name: "spent", full: false, min: 0, max: 0.2},
		{name: "full", full: true, min: 0.8, max: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(context.Background(), Config{Quota: q, Duration: 8 * time.Second, Load: 0.5, Speed: 0.05,
				Deadline: 5 * time.Second, Seed: 1, Contenders: []string{"keel"}, FullStart: tt.full})
			if err != nil {
				t.Fatal(err)
			}
			if res.FullStart != tt.full {
				t.Errorf("result says full start %v, want %v", res.FullStart, tt.full)
			}
			if got := float64(res.Contenders[0].Bucket[0]) / q; got < tt.min || got > tt.max {
				t.Errorf("bucket at the window's start holds %.2f of a minute's quota, want %.2f to %.2f", got, tt.min, tt.max)
			}
		})
	}
}
