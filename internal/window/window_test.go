package window_test

import (
	"testing"
	"time"

	"github.com/keel-run/keel/internal/window"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestRing(t *testing.T) {
	type step struct {
		at     time.Duration
		add    float64
		reset  bool
		sum    float64       // Sum at `at` (after add); -1: not checked
		recent time.Duration // Recent over this span...
		rsum   float64       // ...sums this
		cover  time.Duration // ...covering this
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "values in one slot sum", steps: []step{
			{at: 0, add: 1, sum: 1},
			{at: 999 * time.Millisecond, add: 2, sum: 3, recent: time.Second, rsum: 3, cover: 999 * time.Millisecond},
		}},
		{name: "a slot is forgotten once the window has slid past it", steps: []step{
			{at: 0, add: 1, sum: 1},
			{at: 2500 * time.Millisecond, add: 2, sum: 3, recent: 2 * time.Second, rsum: 2, cover: 1500 * time.Millisecond},
			{at: 3999 * time.Millisecond, sum: 3, recent: 4 * time.Second, rsum: 3, cover: 3999 * time.Millisecond},
			{at: 4 * time.Second, sum: 2}, // slot 0 gone
			{at: 5 * time.Second, sum: 2},
			{at: 6 * time.Second, sum: 0}, // slot 2 gone
		}},
		{name: "a long gap clears every slot", steps: []step{
			{at: 0, add: 1, sum: -1},
			{at: time.Second, add: 1, sum: -1},
			{at: time.Hour, add: 5, sum: 5, recent: time.Hour, rsum: 5, cover: 3 * time.Second},
		}},
		{name: "a clock that steps back stands still", steps: []step{
			{at: 3 * time.Second, add: 1, sum: 1},
			{at: 1 * time.Second, add: 2, sum: 3},
			{at: -time.Hour, add: 4, sum: 7},
		}},
		{name: "recent of nothing", steps: []step{
			{at: 0, add: 1, sum: 1, recent: -time.Second, rsum: 0, cover: 0},
		}},
		{name: "reset", steps: []step{
			{at: 0, add: 1, sum: 1},
			{at: 1500 * time.Millisecond, add: 1, reset: true},
			{at: 1600 * time.Millisecond, add: 2, sum: 2},
			{at: 4 * time.Second, sum: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := window.New[float64](4, time.Second, t0)
			if r.Len() != 4*time.Second {
				t.Fatalf("Len %v", r.Len())
			}
			for i, s := range tt.steps {
				now := at(s.at)
				if s.add != 0 {
					r.Add(now, s.add)
				}
				if s.reset {
					r.Reset(now)
					continue
				}
				if got := r.Sum(now); s.sum >= 0 && got != s.sum {
					t.Errorf("step %d: Sum %v, want %v", i, got, s.sum)
				}
				if s.recent != 0 {
					got, cover := r.Recent(now, s.recent)
					if got != s.rsum || cover != s.cover {
						t.Errorf("step %d: Recent(%v) = %v over %v, want %v over %v", i, s.recent, got, cover, s.rsum, s.cover)
					}
				}
			}
		})
	}
}

// Admission's use: slots counted from the Unix epoch, so that a Ring made at
// any time slides on the same boundaries.
func TestRingEpoch(t *testing.T) {
	r := window.New[int64](12, 5*time.Second, time.Unix(0, 0))
	now := time.Unix(1_000_000_002, 0) // 2 s into a 5 s slot
	r.Add(now, 3)
	r.Add(now.Add(-10*time.Second), 100) // a step back: the newest slot
	got, cover := r.Recent(now, 5*time.Second)
	if got != 103 || cover != 2*time.Second {
		t.Errorf("Recent = %d over %v, want 103 over 2s", got, cover)
	}
	if got := r.Sum(now.Add(60 * time.Second)); got != 0 {
		t.Errorf("Sum a minute on = %d, want 0", got)
	}
}

func TestNewPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New with no slots did not panic")
		}
	}()
	window.New[int](0, time.Second, t0)
}
