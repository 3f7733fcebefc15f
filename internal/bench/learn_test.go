package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/emulator/scenario"
)

func f(v float64) *float64 { return &v }

func sameRatio(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return math.Abs(*a-*b) < 1e-9
}

func TestLimitRatios(t *testing.T) {
	s := time.Second
	samples := []limitSample{{1 * s, 0, 0}, {2 * s, 100, 0}, {30 * s, 400, 0}, {61 * s, 180, 0}, {90 * s, 250, 0}, {120 * s, 220, 0}}
	tests := []struct {
		name      string
		samples   []limitSample
		at        time.Duration
		want      *float64
		wantTaken bool
	}{
		{name: "no limit yet", samples: samples, at: time.Second, want: nil, wantTaken: true},
		{name: "the first sample at or after", samples: samples, at: 3 * s, want: f(2), wantTaken: true},
		{name: "exactly on a sample", samples: samples, at: 30 * s, want: f(2), wantTaken: true},
		{name: "after the last sample", samples: samples, at: 121 * s, wantTaken: false},
		{name: "no samples", at: s, wantTaken: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ratioAt(tt.samples, tt.at, 200)
			if ok != tt.wantTaken || (ok && (!sameRatio(got.Ratio, tt.want) || got.Seconds != tt.at.Seconds())) {
				t.Errorf("ratioAt(%s) = %+v, %v; want ratio %v, %v", tt.at, got, ok, tt.want, tt.wantTaken)
			}
		})
	}

	ranges := []struct {
		name    string
		samples []limitSample
		from    time.Duration
		lo, hi  *float64
		below   bool
	}{
		{name: "after a minute", samples: samples, from: time.Minute, lo: f(0.9), hi: f(1.25), below: false},
		{name: "from the start", samples: samples, from: 0, lo: f(0.5), hi: f(2), below: false},
		{name: "none after", samples: samples, from: time.Hour, lo: nil, hi: nil, below: false},
		{name: "never a limit", samples: []limitSample{{s, 0, 0}, {2 * s, 0, 0}}, from: 0, lo: nil, hi: nil, below: false},
		{name: "exactly half is not below", samples: []limitSample{{s, 100, 0}}, from: 0, lo: f(0.5), hi: f(0.5), below: false},
		{name: "just below half", samples: []limitSample{{s, 99, 0}, {2 * s, 300, 0}}, from: 0, lo: f(0.495), hi: f(1.5), below: true},
	}
	for _, tt := range ranges {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := ratioRange(tt.samples, tt.from, 200)
			if !sameRatio(lo, tt.lo) || !sameRatio(hi, tt.hi) {
				t.Errorf("ratioRange = %v, %v; want %v, %v", ratioText(lo), ratioText(hi), ratioText(tt.lo), ratioText(tt.hi))
			}
			if got := belowHalf(tt.samples, 200); got != tt.below {
				t.Errorf("belowHalf = %v, want %v", got, tt.below)
			}
		})
	}
}

func TestLearnArithmetic(t *testing.T) {
	per := []struct {
		n, attempts int64
		want        float64
	}{{3, 100, 3}, {155, 469, 33.04904051172}, {0, 0, 0}, {5, 0, 0}, {0, 7, 0}}
	for _, tt := range per {
		if got := per100(tt.n, tt.attempts); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("per100(%d, %d) = %v, want %v", tt.n, tt.attempts, got, tt.want)
		}
	}
	ratios := []struct{ a, b, want float64 }{{3, 2, 1.5}, {0, 2, 0}, {3, 0, 0}, {0, 0, 0}, {1, -1, 0}}
	for _, tt := range ratios {
		if got := ratio(tt.a, tt.b); got != tt.want {
			t.Errorf("ratio(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	ideals := []struct {
		name                    string
		settled, quota, initial int64
		want                    time.Duration
	}{
		{name: "a minute's worth beyond the bucket", settled: 100_000, quota: 50_000, initial: 50_000, want: time.Minute},
		{name: "all within the bucket", settled: 40_000, quota: 50_000, initial: 50_000, want: 0},
		{name: "no bucket to start with", settled: 150_000, quota: 300_000, initial: 0, want: 30 * time.Second},
		{name: "no quota", settled: 150_000, quota: 0, want: 0},
	}
	for _, tt := range ideals {
		if got := idealTime(tt.settled, tt.quota, tt.initial); got != tt.want {
			t.Errorf("%s: idealTime = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestNthEnd(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ends := []time.Time{t0.Add(3 * time.Second), t0.Add(time.Second), t0.Add(2 * time.Second)}
	tests := []struct {
		n    int
		want time.Duration
		ok   bool
	}{{1, time.Second, true}, {3, 3 * time.Second, true}, {4, 0, false}, {0, 0, false}}
	for _, tt := range tests {
		if got, ok := nthEnd(t0, ends, tt.n); got != tt.want || ok != tt.ok {
			t.Errorf("nthEnd(%d) = %s, %v; want %s, %v", tt.n, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLongestGap(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s ...float64) []time.Time {
		var ts []time.Time
		for _, v := range s {
			ts = append(ts, t0.Add(time.Duration(v*float64(time.Second))))
		}
		return ts
	}
	tests := []struct {
		name string
		ends []time.Time
		end  float64
		want time.Duration
	}{
		{name: "nothing finished", ends: nil, end: 10, want: 10 * time.Second},
		{name: "the wait for the first", ends: at(4, 5, 6), end: 6, want: 4 * time.Second},
		{name: "between two, unsorted", ends: at(8, 1, 2), end: 9, want: 6 * time.Second},
		{name: "after the last (a stall)", ends: at(1, 2), end: 30, want: 28 * time.Second},
		{name: "outside the span ignored", ends: at(-5, 3, 40), end: 10, want: 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := longestGap(t0, tt.ends, t0.Add(time.Duration(tt.end*float64(time.Second)))); got != tt.want {
				t.Errorf("longestGap = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestNoiseResult checks which moments a noise run reports, its series and
// its throttle shares.
func TestNoiseResult(t *testing.T) {
	var samples []limitSample
	for i := 1; i <= 90; i++ {
		limit := int64(0)
		if i >= 5 {
			limit = int64(100_000 + 1000*i)
		}
		samples = append(samples, limitSample{at: time.Duration(i) * time.Second, limit: limit, throttled: int64(i / 4)}) // one every 4 s
	}
	// A run as long as a mark reports it once, as the end.
	if r := noiseResult(200_000, time.Minute, samples, 400, 12, 20, batchOutcome{}); len(r.At) != 2 || r.At[1].Seconds != 60 {
		t.Errorf("a 1-minute run reports at %+v; want 30 s and the end", r.At)
	}
	// A run whose records ran out at 45 s reports 30 s and its end.
	if r := noiseResult(200_000, 2*time.Minute, samples[:45], 400, 12, 20, batchOutcome{}); len(r.At) != 2 || r.At[1].Seconds != 45 || r.TrafficSeconds != 45 {
		t.Errorf("a run that ran out at 45 s reports at %+v, traffic %vs; want 30 s and the end at 45 s", r.At, r.TrafficSeconds)
	} else {
		var b strings.Builder
		(&LearnResult{Noise: r}).WriteTable(&b)
		if !strings.Contains(b.String(), "  the records ran out after 45s") || !strings.Contains(b.String(), "30s 0.65  end 0.72") {
			t.Errorf("table of a run that ran out:\n%s", b.String())
		}
	}
	r := noiseResult(200_000, 90*time.Second, samples, 400, 12, 20, batchOutcome{sum: &batch.Summary{Succeeded: 300, Failed: 2,
		FailedByCode: map[string]int{"ThrottlingException": 2}}})
	var at []float64
	for _, a := range r.At {
		at = append(at, a.Seconds)
	}
	if want := []float64{30, 60, 90}; !equalFloats(at, want) {
		t.Errorf("At at %v, want %v (2 min is past the run)", at, want)
	}
	if !sameRatio(r.At[0].Ratio, f(0.65)) || !sameRatio(r.At[2].Ratio, f(0.95)) {
		t.Errorf("At ratios %s, %s; want 0.65, 0.95", ratioText(r.At[0].Ratio), ratioText(r.At[2].Ratio))
	}
	if len(r.Series) != 9 || r.Series[0].Seconds != 10 || !sameRatio(r.Series[0].Ratio, f(0.55)) {
		t.Errorf("Series = %d entries from %v; want 9 from 10 s at 0.55", len(r.Series), r.Series[0])
	}
	if want := []int64{2, 3, 2, 3, 2, 3, 2, 3, 2}; !slices.Equal(r.ThrottleSeries, want) {
		t.Errorf("ThrottleSeries = %v, want %v", r.ThrottleSeries, want)
	}
	if !sameRatio(r.MinAfterMinute, f(0.8)) || !sameRatio(r.MaxAfterMinute, f(0.95)) || r.BelowHalf {
		t.Errorf("after a minute %s-%s, below half %v; want 0.80-0.95, false", ratioText(r.MinAfterMinute), ratioText(r.MaxAfterMinute), r.BelowHalf)
	}
	if r.InjectedPer100 != 3 || r.QuotaPer100 != 5 || r.Succeeded != 300 || r.FinalLimit != 190_000 {
		t.Errorf("injected %v, quota %v per 100, succeeded %d, final %d; want 3, 5, 300, 190000", r.InjectedPer100, r.QuotaPer100, r.Succeeded, r.FinalLimit)
	}
	var b strings.Builder
	if err := (&LearnResult{Seed: 1, Noise: r}).WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"30s 0.65  1m 0.80  end 0.95", "min 0.80, max 0.95", "injected 3.0, quota 5.0", "records succeeded 300, failed 2 (ThrottlingException 2);", "every 10s: 0.55 ", "quota throttles in each 10s: 2 3 2 "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("JSON: %v", err)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCheckLearn(t *testing.T) {
	tests := []struct {
		name string
		cfg  LearnConfig
		want string // "" for no error
	}{
		{name: "defaults", cfg: LearnConfig{}},
		{name: "some cases", cfg: LearnConfig{Cases: []string{CaseTight, CaseNoise}, Duration: time.Minute}},
		{name: "unknown case", cfg: LearnConfig{Cases: []string{"noisy"}}, want: `unknown case "noisy"; choose from noise, resume, tight, shapes`},
		{name: "some shapes and a keel", cfg: LearnConfig{Shapes: []string{"1s", "full"}, Keels: []string{KeelLearning}}},
		{name: "unknown shape", cfg: LearnConfig{Shapes: []string{"2s"}}, want: `unknown bucket shape "2s"; choose from full, 10s-empty, 1s, minute-refill`},
		{name: "unknown keel", cfg: LearnConfig{Keels: []string{"guessing"}}, want: `unknown keel "guessing"; choose from told, learning`},
		{name: "too short", cfg: LearnConfig{Duration: time.Second}, want: "duration 1s: want from 10s to 30m0s"},
		{name: "too long", cfg: LearnConfig{Duration: time.Hour}, want: "duration 1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLearn(tt.cfg)
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("CheckLearn = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestLearnScenarios checks the shapes' settings as the table writes them,
// that the quick start's scenario is batch-quickstart.yaml's, and that the
// tight scenario parses.
func TestLearnScenarios(t *testing.T) {
	want := map[string]string{"1m burst, full": "none", "10s burst, empty": "burst: 10s, start_level: 0",
		"1s burst": "burst: 1s", "refill each minute": "refill_every: 1m"}
	for _, s := range BucketShapes {
		if got := oneLine(s.Settings); got != want[s.Name] {
			t.Errorf("%s: oneLine = %q, want %q", s.Name, got, want[s.Name])
		}
	}
	qs, err := scenario.Parse([]byte(quickstartScenario))
	if err != nil {
		t.Fatalf("the quick start's scenario: %v", err)
	}
	file, err := scenario.Load("../../examples/scenarios/batch-quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Rules remember their line in the file (unexported): compare what
	// they say.
	line := regexp.MustCompile(`line:[0-9]+`)
	rules := func(s *scenario.Scenario) string { return line.ReplaceAllString(fmt.Sprintf("%+v", s.Rules), "") }
	if !reflect.DeepEqual(qs.Quotas, file.Quotas) || rules(qs) != rules(file) {
		t.Errorf("the noise and resume cases' scenario differs from batch-quickstart.yaml's quotas and rules:\n%+v %s\n%+v %s",
			qs.Quotas, rules(qs), file.Quotas, rules(file))
	}
	if _, err := scenario.Parse([]byte(tightScenario)); err != nil {
		t.Errorf("the tight scenario: %v", err)
	}
}

// TestLearnShort runs the noise, resume and tight cases in miniature
// against real emulators: every measure is filled in and sane.
func TestLearnShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real-time batches for about 15 s")
	}
	cfg := LearnConfig{Cases: []string{CaseNoise, CaseResume, CaseTight}, Duration: MinLearnDuration, Seed: 3,
		Prompts: "../../examples/prompts.jsonl",
		sizes: learnSizes{noiseDrain: 5 * time.Second, resumeKill: 300 * time.Millisecond, resumeAfter: 10, resumeRecords: 40,
			tightRecords: 20, shapeRecords: 5, shapeSpeed: 0.01, runCap: 20 * time.Second}}
	var progress int
	cfg.Progress = func(LearnProgress) { progress++ }
	res, err := RunLearn(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Noise; n == nil || n.Attempts == 0 || n.Succeeded == 0 || len(n.Series) != 1 || n.Stalled {
		t.Errorf("noise = %+v; want attempts, successes, one series entry, no stall", n)
	} else if n.InjectedThrottles == 0 && n.Attempts > 300 {
		t.Errorf("noise: no injected throttle in %d attempts at 3 %%", n.Attempts)
	}
	if r := res.Resume; r == nil || r.Records != 40 || r.AllSeconds <= 0 || len(r.Kills) != 2 {
		t.Errorf("resume = %+v; want 40 records, an unbroken time, two kills", r)
	} else {
		for _, k := range r.Kills {
			if k.Remaining <= 0 || k.Remaining > 40 || k.ResumedSeconds <= 0 || k.TailSeconds <= 0 || k.Ratio <= 0 || k.Attempts < int64(k.Remaining) || k.Stalled {
				t.Errorf("resume, killed %s: %+v; want records left, resumed, a tail and a ratio", k.Kill, k)
			}
		}
		if k := r.Kills[1]; k.Kill != "after 10 records" || k.Remaining > 30 {
			t.Errorf("killed %s with %d records left; want after 10 records, at most 30 left", k.Kill, k.Remaining)
		}
	}
	if x := res.Tight; x == nil || x.Records != 20 || x.Succeeded+x.Failed != 20 || x.SettledTokens <= 0 || x.LongestGapSeconds <= 0 || x.Stalled {
		t.Errorf("tight = %+v; want 20 records ended, tokens settled, no stall", x)
	}
	if res.Shapes != nil {
		t.Errorf("shapes ran: not asked for")
	}
	if progress == 0 {
		t.Error("Progress was never called")
	}
	var b strings.Builder
	if err := res.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nnoise: ", "\nresume: the quick start (40 records)", "\n  killed at 300ms (", "\n  killed after 10 records (", "\ntight: 50,000 tokens/min"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestLearnShapesShort runs the shapes case in miniature: every shape is
// taken by the emulator and gives a row, told and learning.
func TestLearnShapesShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs eight real-time batches for about 20 s")
	}
	cfg := LearnConfig{Cases: []string{CaseShapes}, Seed: 2, Prompts: "../../examples/prompts.jsonl",
		sizes: learnSizes{shapeRecords: 4, shapeSpeed: 0.01, runCap: 30 * time.Second}}
	res, err := RunLearn(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Shapes
	if s == nil || len(s.Rows) != 2*len(BucketShapes) {
		t.Fatalf("shapes = %+v; want %d rows", s, 2*len(BucketShapes))
	}
	for i, r := range s.Rows {
		want := BucketShapes[i/2].Name
		keel := []string{"told", "learning"}[i%2]
		if r.Shape != want || r.Keel != keel || r.Succeeded != 4 || r.Attempts < 4 || r.NeedSeconds <= 0 || r.Ratio <= 0 || r.Stalled {
			t.Errorf("row %d = %+v; want %s, %s, 4 records succeeded, a need and a ratio", i, r, want, keel)
		}
		if keel == "told" && r.FinalLimit != shapesQuota {
			t.Errorf("row %d: told keel's limit %d, want %d", i, r.FinalLimit, shapesQuota)
		}
	}
}

// TestLearnShapesChosen runs the rows a config's Shapes and Keels name,
// and only those.
func TestLearnShapesChosen(t *testing.T) {
	cfg := LearnConfig{Cases: []string{CaseShapes}, Seed: 2, Prompts: "../../examples/prompts.jsonl",
		Shapes: []string{"minute-refill", "1s"}, Keels: []string{KeelLearning},
		sizes: learnSizes{shapeRecords: 2, shapeSpeed: 0.01, runCap: 30 * time.Second}}
	res, err := RunLearn(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Shapes.Rows {
		got = append(got, r.Shape+", "+r.Keel)
	}
	if want := []string{"1s burst, learning", "refill each minute, learning"}; !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q (table order)", got, want)
	}
}

func TestIdleWithRoom(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sec := func(v float64) time.Time { return t0.Add(time.Duration(v * float64(time.Second))) }
	// levels: one sample a second from 0, with these levels.
	levels := func(v ...int64) []levelSample {
		var s []levelSample
		for i, l := range v {
			s = append(s, levelSample{at: sec(float64(i)), level: l})
		}
		return s
	}
	arr := func(hold int64, at ...float64) []arrival {
		var a []arrival
		for _, v := range at {
			a = append(a, arrival{at: sec(v), hold: hold})
		}
		return a
	}
	tests := []struct {
		name     string
		samples  []levelSample
		arrivals []arrival
		want     time.Duration
	}{
		{name: "no request", samples: levels(100, 100), want: 0},
		{name: "a debt is no stall", samples: levels(100, -50, -40, -30, 100), arrivals: arr(10, 0.5, 4.5), want: 0},
		{name: "room and nothing sent", samples: levels(100, 100, 100, 100, 100, 100), arrivals: arr(10, 0.5, 4.5), want: 3 * time.Second},
		{name: "room too small for the largest call", samples: levels(100, 5, 5, 5, 5, 100),
			arrivals: append(arr(10, 0.5), arr(4, 4.5)...), want: 0},
		{name: "after the last request: nothing left to send", samples: levels(100, 100, 100, 100), arrivals: arr(10, 0.5), want: 0},
		{name: "room returns mid-gap", samples: levels(100, -5, 100, 100, 100, 100, 100), arrivals: arr(10, 0.5, 6.5), want: 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := idleWithRoom(tt.samples, tt.arrivals); got != tt.want {
				t.Errorf("idleWithRoom = %s, want %s", got, tt.want)
			}
		})
	}
}
