package quota

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// tokensLeft is a step that checks what the tokens-per-minute bucket holds,
// as Snapshot reports it.
func tokensLeft(n int64) step { return step{left: &n} }

// touch is a step that makes the pair's buckets (as its first request
// does) without taking tokens.
var touch = admit(0, 0, "")

func shape(burst time.Duration, start float64, every time.Duration) *Shape {
	return &Shape{Burst: burst, StartLevel: start, RefillEvery: every}
}

// TestMeterShapes runs each bucket shape the table of shapes names
// (and a few edges) on the fake clock. t0 is 03:04:05, 55 s before a
// minute boundary.
func TestMeterShapes(t *testing.T) {
	runWindowCases(t, []windowCase{
		{
			name:   "a full minute starting full (the default)",
			limits: Limits{TokensPerMinute: 600, Shape: shape(time.Minute, 1, 0)},
			steps: []step{
				touch,
				tokensLeft(600),
				admit(100, 500, ""),
				admit(0, 1, msgTokens),
				wait(time.Second), // +10
				tokensLeft(10),
				wait(time.Hour), // back to capacity, no further
				tokensLeft(600),
				admit(0, 601, msgTokens),
			},
		},
		{
			name:   "a 10 s burst starting empty",
			limits: Limits{TokensPerMinute: 600, Shape: shape(10*time.Second, 0, 0)},
			steps: []step{
				touch,
				tokensLeft(0),
				admit(0, 1, msgTokens),
				wait(5 * time.Second), // +50
				admit(20, 30, ""),
				tokensLeft(0),
				wait(time.Minute), // capacity is 100
				tokensLeft(100),
				admit(1, 100, msgTokens), // more than the capacity: every time
				wait(time.Hour),
				admit(1, 100, msgTokens),
				admit(0, 100, ""),
			},
		},
		{
			name:   "a 1 s burst",
			limits: Limits{TokensPerMinute: 6000, Shape: shape(time.Second, 1, 0)},
			steps: []step{
				touch,
				tokensLeft(100),
				admit(0, 101, msgTokens),
				admit(50, 50, ""),
				admit(0, 1, msgTokens),
				wait(500 * time.Millisecond), // +50: the rate is still 6000 a minute
				admit(0, 50, ""),
				wait(time.Minute),
				admit(0, 101, msgTokens),
			},
		},
		{
			name:   "refill on minute boundaries",
			limits: Limits{TokensPerMinute: 600, Shape: shape(time.Minute, 1, time.Minute)},
			steps: []step{
				admit(0, 600, ""),
				wait(54 * time.Second), // 03:04:59: no boundary crossed yet
				tokensLeft(0),
				admit(0, 1, msgTokens),
				wait(time.Second), // 03:05:00: a whole minute at once
				tokensLeft(600),
				admit(0, 600, ""),
				wait(59*time.Second + 999*time.Millisecond),
				admit(0, 1, msgTokens),
				wait(time.Millisecond), // 03:06:00
				wait(3 * time.Minute),  // three more boundaries: capped at capacity
				tokensLeft(600),
			},
		},
		{
			name:   "refill in steps smaller than the burst",
			limits: Limits{TokensPerMinute: 600, Shape: shape(time.Minute, 0, 10*time.Second)},
			steps: []step{
				touch,
				wait(4 * time.Second), // 03:04:09
				tokensLeft(0),
				wait(time.Second), // 03:04:10
				tokensLeft(100),
				wait(25 * time.Second), // 03:04:35: two boundaries more
				tokensLeft(300),
			},
		},
		{
			name:   "a step larger than the burst fills it and no more",
			limits: Limits{TokensPerMinute: 600, Shape: shape(10*time.Second, 0, time.Minute)},
			steps: []step{
				touch,
				wait(54 * time.Second),
				tokensLeft(0),
				wait(time.Second),
				tokensLeft(100),
			},
		},
		{
			name:   "a half-full start",
			limits: Limits{TokensPerMinute: 600, Shape: shape(20*time.Second, 0.5, 0)},
			steps:  []step{touch, tokensLeft(100), admit(0, 101, msgTokens), admit(0, 100, "")},
		},
		{
			name:   "refunds are capped at the capacity",
			limits: Limits{TokensPerMinute: 600, Shape: shape(10*time.Second, 1, 0)},
			steps: []step{
				admit(0, 100, ""),
				settle(0, 0, 0, 100, 1), // all 100 back
				tokensLeft(100),
				admit(0, 100, ""),
				admit(0, 1, msgTokens),
			},
		},
		{
			name:   "over-use under stepped refill is paid back at the steps",
			limits: Limits{TokensPerMinute: 600, Shape: shape(time.Minute, 1, time.Minute)},
			steps: []step{
				admit(0, 100, ""),         // 500 left
				settle(0, 0, 200, 100, 5), // used 1000: -400
				wait(54 * time.Second),    // 03:04:59
				admit(0, 1, msgTokens),    // still -400
				wait(time.Second),         // +600
				tokensLeft(200),
				admit(0, 200, ""),
			},
		},
		{
			name:   "the shape applies to requests per minute",
			limits: Limits{RequestsPerMinute: 60, Shape: shape(2*time.Second, 0.5, 0)},
			steps: []step{
				admit(1, 1, ""), // one of two
				admit(1, 1, msgRequests),
				wait(time.Second),
				admit(1, 1, ""),
			},
		},
		{
			name:   "a burst below one request's worth admits no request",
			limits: Limits{RequestsPerMinute: 30, Shape: shape(time.Second, 1, 0)},
			steps:  []step{admit(1, 1, msgRequests), wait(time.Hour), admit(1, 1, msgRequests)},
		},
		{
			name:   "the daily bucket keeps its shape",
			limits: Limits{TokensPerDay: 1000, TokensPerMinute: 1_000_000, Shape: shape(time.Second, 0.5, time.Minute)},
			steps: []step{
				admit(0, 1000, ""), // the day starts full
				admit(0, 1, msgDay),
			},
		},
	})
}

func TestMeterShapeReset(t *testing.T) {
	clk := clock.NewFake(t0)
	m := NewMeter(clk, Table{{Limits: Limits{TokensPerMinute: 600, Shape: shape(10*time.Second, 0.5, 0)}}})
	run(t, clk, m, []step{admit(0, 50, ""), tokensLeft(0), wait(3 * time.Second), tokensLeft(30)})
	m.Reset()
	run(t, clk, m, []step{admit(0, 50, ""), admit(0, 1, msgTokens)})
}

func TestMeterSetShape(t *testing.T) {
	tests := []struct {
		name  string
		after Limits
		steps []step // run after the table is replaced
	}{
		{
			name:  "a smaller burst cuts the level",
			after: Limits{TokensPerMinute: 1000, Shape: shape(6*time.Second, 1, 0)},
			steps: []step{tokensLeft(100), wait(time.Hour), tokensLeft(100)},
		},
		{
			name:  "a new shape keeps the level of a limited bucket",
			after: Limits{TokensPerMinute: 1000, Shape: shape(time.Minute, 0, time.Minute)},
			steps: []step{tokensLeft(500), wait(54 * time.Second), tokensLeft(500), wait(time.Second), tokensLeft(1000)},
		},
		{
			name:  "a bucket limited for the first time starts at the start level",
			after: Limits{TokensPerMinute: 1000, RequestsPerMinute: 10, Shape: shape(time.Minute, 0, 0)},
			steps: []step{admit(0, 1, msgRequests), wait(6 * time.Second), admit(0, 1, "")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			m := NewMeter(clk, Table{{Limits: Limits{TokensPerMinute: 1000}}})
			run(t, clk, m, []step{admit(0, 500, "")})
			m.SetTable(Table{{Limits: tt.after}})
			run(t, clk, m, tt.steps)
		})
	}
}

func TestSnapshotReportsShape(t *testing.T) {
	clk := clock.NewFake(t0)
	m := NewMeter(clk, Table{
		{Model: "shaped", Limits: Limits{TokensPerMinute: 600, RequestsPerMinute: 120, Shape: shape(time.Second, 1, 0)}},
		{Model: "daily", Limits: Limits{TokensPerDay: 600}},
		{Model: "plain", Limits: Limits{TokensPerMinute: 600}},
	})
	for _, mod := range []string{"shaped", "daily", "plain"} {
		m.Admit(AdmitRequest{Model: mod, Region: region, MaxTokens: 5})
	}
	got := m.Snapshot()
	if len(got) != 3 {
		t.Fatalf("Snapshot() = %+v, want 3 entries", got)
	}
	daily, plain, shaped := got[0], got[1], got[2]
	if daily.Shape != nil || daily.TokensCapacity != nil || daily.RequestsCapacity != nil {
		t.Errorf("daily: shape %v, capacities %v %v; want none: no per-minute bucket", daily.Shape, daily.TokensCapacity, daily.RequestsCapacity)
	}
	if plain.Shape == nil || *plain.Shape != DefaultShape() || *plain.TokensCapacity != 600 || *plain.TokensAvailable != 595 {
		t.Errorf("plain = %+v, want the default shape, capacity 600, 595 available", plain)
	}
	if shaped.Shape == nil || *shaped.Shape != *shape(time.Second, 1, 0) ||
		*shaped.TokensCapacity != 10 || *shaped.TokensAvailable != 5 ||
		*shaped.RequestsCapacity != 2 || *shaped.RequestsAvailable != 1 {
		t.Errorf("shaped = %+v %v, want a 1 s burst: 10 tokens and 2 requests", shaped, *shaped.Shape)
	}

	b, err := json.Marshal(shaped)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"shape":{"burst":"1s","start_level":1,"refill_every":"0s"}`,
		`"tokens_capacity":10`, `"requests_capacity":2`, `"limits":{"tokens_per_minute":600,"requests_per_minute":120}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back Usage
	if err := json.Unmarshal(b, &back); err != nil || back.Shape == nil || *back.Shape != *shaped.Shape {
		t.Errorf("the shape did not survive JSON: %v, %v", back.Shape, err)
	}
}

func TestShapeValidate(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		want   string
	}{
		{name: "nil is the default", limits: Limits{TokensPerMinute: 1}},
		{name: "bounds are allowed", limits: Limits{RequestsPerMinute: 1, Shape: shape(MinBurst, 0, MaxRefillEvery)}},
		{name: "upper bounds", limits: Limits{TokensPerMinute: 1, Shape: shape(MaxBurst, 1, MinRefillEvery)}},
		{name: "zero burst", limits: Limits{TokensPerMinute: 1, Shape: shape(0, 1, 0)},
			want: "quota: rule 0: burst 0s is not between 1s and 1h0m0s"},
		{name: "burst too long", limits: Limits{TokensPerMinute: 1, Shape: shape(2*time.Hour, 1, 0)},
			want: "quota: rule 0: burst 2h0m0s is not between 1s and 1h0m0s"},
		{name: "start level above 1", limits: Limits{TokensPerMinute: 1, Shape: shape(time.Minute, 1.5, 0)},
			want: "quota: rule 0: start level 1.5 is not between 0 and 1"},
		{name: "start level NaN", limits: Limits{TokensPerMinute: 1, Shape: shape(time.Minute, math.NaN(), 0)},
			want: "quota: rule 0: start level NaN is not between 0 and 1"},
		{name: "negative start level", limits: Limits{TokensPerMinute: 1, Shape: shape(time.Minute, -0.1, 0)},
			want: "quota: rule 0: start level -0.1 is not between 0 and 1"},
		{name: "refill too fine", limits: Limits{TokensPerMinute: 1, Shape: shape(time.Minute, 1, time.Millisecond)},
			want: "quota: rule 0: refill every 1ms is neither 0 (continuous) nor between 1s and 1h0m0s"},
		{name: "negative refill", limits: Limits{TokensPerMinute: 1, Shape: shape(time.Minute, 1, -time.Second)},
			want: "quota: rule 0: refill every -1s is neither 0 (continuous) nor between 1s and 1h0m0s"},
		{name: "a shape with no per-minute limit", limits: Limits{TokensPerDay: 1, Shape: shape(time.Minute, 1, 0)},
			want: "quota: rule 0: a shape applies to the per-minute buckets, and the rule limits neither tokens nor requests per minute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := (Table{{Limits: tt.limits}}).Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}
