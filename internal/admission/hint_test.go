package admission

import (
	"testing"

	"github.com/keel-run/keel/internal/clock"
)

func TestHint(t *testing.T) {
	tier := Target{Model: haiku.Model, Region: haiku.Region, Tier: "flex"}
	cases := []struct {
		name      string
		opts      Options
		seenFirst bool // a call reaches the target before the hint
		hint      int
		target    Target // where the hint goes; the call goes to haiku
		wantLimit int64
		wantSrc   string
		wantLearn bool
	}{
		{name: "an unknown quota starts from the hint", hint: 120_000, target: haiku,
			wantLimit: 120_000, wantSrc: SourceLearned, wantLearn: true},
		{name: "a configured quota wins", opts: known(50_000), hint: 120_000, target: haiku,
			wantLimit: 50_000, wantSrc: SourceConfigured},
		{name: "a target already seen keeps what it has", seenFirst: true, hint: 120_000, target: haiku,
			wantLimit: 0, wantSrc: "", wantLearn: true},
		{name: "no hint for a nonpositive limit", hint: 0, target: haiku, wantLearn: true},
		{name: "another tier's hint is not this one's", hint: 120_000, target: tier, wantLearn: true},
		{name: "the ceiling bounds the hint", opts: Options{Default: Quota{Learn: true, MaxTokensPerMinute: 90_000}}, hint: 120_000, target: haiku,
			wantLimit: 90_000, wantSrc: SourceLearned, wantLearn: true},
		{name: "the floor bounds the hint", opts: Options{Default: Quota{Learn: true, MinTokensPerMinute: 20_000}}, hint: 5_000, target: haiku,
			wantLimit: 20_000, wantSrc: SourceLearned, wantLearn: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, _ := newGov(t, c.opts)
			if c.seenFirst {
				tk := mustTry(t, g, haiku, Estimate{InputTokens: 10, MaxTokens: 10})
				tk.Settle(Usage{InputTokens: 10, OutputTokens: 10})
			}
			g.Hint(c.target, c.hint)
			tk := mustTry(t, g, haiku, Estimate{InputTokens: 10, MaxTokens: 10})
			tk.Settle(Usage{InputTokens: 10, OutputTokens: 10})
			s := stats(t, g, haiku)
			if s.Limit != c.wantLimit || s.Source != c.wantSrc || s.Learning != c.wantLearn {
				t.Errorf("limit %d from %q, learning %v; want %d from %q, learning %v", s.Limit, s.Source, s.Learning, c.wantLimit, c.wantSrc, c.wantLearn)
			}
		})
	}
}

// TestHintStartsWarm: a hinted target starts as a told one does without
// FullStart, from a second of its quota, not from a full minute, even with
// FullStart: the bucket an earlier process used may still be spent.
func TestHintStartsWarm(t *testing.T) {
	for _, full := range []bool{false, true} {
		g, err := New(Options{Clock: clock.NewFake(t0), FullStart: full})
		if err != nil {
			t.Fatal(err)
		}
		g.Hint(haiku, 120_000)
		tk := mustTry(t, g, haiku, Estimate{InputTokens: 10, MaxTokens: 10})
		if s := stats(t, g, haiku); s.Limit != 120_000 || s.Available > 120_000*int64(startBurst.Seconds())/60 {
			t.Errorf("FullStart %v: limit %d, available %d at the start; want 120,000 and at most a second of it", full, s.Limit, s.Available)
		}
		tk.Cancel()
	}
}
