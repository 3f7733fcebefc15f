package breaker

import (
	"slices"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// TestSnapshotSince checks that a Snapshot says since when the breaker has
// been in its state, through each transition.
func TestSnapshotSince(t *testing.T) {
	fake := clock.NewFake(epoch)
	r, err := NewRegistry(Options{MinCalls: 1, FailureRate: 0.5, Cooldown: 10 * time.Second, Probes: 1, Successes: 1}, fake)
	if err != nil {
		t.Fatal(err)
	}
	b := r.Get("claude", "us-east-1")
	steps := []struct {
		name      string
		do        func()
		wantState State
		wantSince time.Duration // after epoch
	}{
		{name: "made", do: func() {}, wantState: Closed, wantSince: 0},
		{name: "a success later changes nothing", do: func() {
			fake.Advance(time.Second)
			p, _ := b.Allow()
			p.Done(Success)
		}, wantState: Closed, wantSince: 0},
		{name: "failures open it", do: func() {
			fake.Advance(time.Second)
			for range 3 {
				p, _ := b.Allow()
				p.Done(Failure)
			}
		}, wantState: Open, wantSince: 2 * time.Second},
		{name: "the cool-down over, a call makes it half-open", do: func() {
			fake.Advance(11 * time.Second)
			p, err := b.Allow()
			if err != nil {
				t.Fatalf("probe refused: %v", err)
			}
			if s := b.Snapshot(); s.State != HalfOpen || !s.Since.Equal(epoch.Add(13*time.Second)) {
				t.Fatalf("during the probe: %+v", s)
			}
			fake.Advance(time.Second)
			p.Done(Success)
		}, wantState: Closed, wantSince: 14 * time.Second},
	}
	for _, st := range steps {
		st.do()
		s := b.Snapshot()
		if s.State != st.wantState || !s.Since.Equal(epoch.Add(st.wantSince)) {
			t.Fatalf("%s: state %v since %v, want %v since epoch+%v", st.name, s.State, s.Since.Sub(epoch), st.wantState, st.wantSince)
		}
	}
}

func TestRegistryAll(t *testing.T) {
	r, err := NewRegistry(Options{}, clock.NewFake(epoch))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.All()); n != 0 {
		t.Fatalf("empty registry: All has %d", n)
	}
	r.Get("a", "us-east-1")
	r.GetTier("a", "us-east-1", "flex")
	r.Get("b", "eu-west-1")
	r.Get("a", "us-east-1") // again: no new breaker
	var got []string
	for _, b := range r.All() {
		got = append(got, b.Model()+"@"+b.Region()+"/"+b.Tier())
	}
	slices.Sort(got)
	want := []string{"a@us-east-1/", "a@us-east-1/flex", "b@eu-west-1/"}
	if !slices.Equal(got, want) {
		t.Fatalf("All = %v, want %v", got, want)
	}
}
