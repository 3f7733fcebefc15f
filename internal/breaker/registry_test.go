package breaker

import (
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

func TestRegistry(t *testing.T) {
	fake := clock.NewFake(epoch)
	r, err := NewRegistry(Options{MinCalls: 1, MaxTargets: 3}, fake)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		model, region string
		wantSameAs    *Breaker
		wantNil       bool
	}{
		{name: "first target", model: "claude", region: "us-east-1"},
		{name: "same model, other region", model: "claude", region: "us-west-2"},
		{name: "other model, same region", model: "nova", region: "us-east-1"},
		{name: "registry full", model: "typo", region: "us-east-1", wantNil: true},
	}
	seen := map[*Breaker]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := r.Get(tt.model, tt.region)
			if tt.wantNil {
				if b != nil {
					t.Fatalf("Get(%q, %q) on a full registry = %p, want nil", tt.model, tt.region, b)
				}
				if _, err := b.Allow(); err != nil {
					t.Fatalf("nil breaker refused a call: %v", err)
				}
				return
			}
			if b == nil || b.Model() != tt.model || b.Region() != tt.region {
				t.Fatalf("Get(%q, %q) = %v", tt.model, tt.region, b)
			}
			if prev, dup := seen[b]; dup {
				t.Fatalf("Get(%q, %q) returned the breaker of %s", tt.model, tt.region, prev)
			}
			seen[b] = tt.model + "@" + tt.region
			if again := r.Get(tt.model, tt.region); again != b {
				t.Fatal("second Get returned another breaker")
			}
		})
	}
	if r.Len() != 3 {
		t.Fatalf("Len() = %d, want 3", r.Len())
	}
	// Breakers are independent: opening one leaves the others closed.
	p, _ := r.Get("claude", "us-east-1").Allow()
	p.Done(Failure)
	states := map[string]State{}
	r.Each(func(b *Breaker) bool {
		states[b.Model()+"@"+b.Region()] = b.State()
		return true
	})
	want := map[string]State{"claude@us-east-1": Open, "claude@us-west-2": Closed, "nova@us-east-1": Closed}
	for k, s := range want {
		if states[k] != s {
			t.Fatalf("Each saw %v, want %v", states, want)
		}
	}
	n := 0
	r.Each(func(*Breaker) bool { n++; return false })
	if n != 1 {
		t.Fatalf("Each went on after fn returned false (%d calls)", n)
	}
}

func TestRegistryConcurrentGet(t *testing.T) {
	r, err := NewRegistry(Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([]*Breaker, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = r.Get("claude", "eu-west-1")
			p, err := got[i].Allow()
			if err == nil {
				p.Done(Success)
			}
		}()
	}
	wg.Wait()
	for _, b := range got[1:] {
		if b != got[0] {
			t.Fatal("concurrent first Gets made more than one breaker for a target")
		}
	}
	if s := got[0].Snapshot(); s.Successes != 16 {
		t.Fatalf("Snapshot() = %+v, want 16 successes", s)
	}
}

// TestRegistryTiers: each tier of a target has a breaker of its own, named
// for the tier.
func TestRegistryTiers(t *testing.T) {
	r, err := NewRegistry(Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, flex := r.Get("m", "us-east-1"), r.GetTier("m", "us-east-1", "flex")
	if plain == flex || r.GetTier("m", "us-east-1", "") != plain || r.GetTier("m", "us-east-1", "flex") != flex {
		t.Fatal("a tier does not have a breaker of its own, or Get and GetTier(\"\") differ")
	}
	if plain.Tier() != "" || flex.Tier() != "flex" || flex.name != "m@us-east-1/flex" {
		t.Errorf("tiers %q, %q; flex's name %q", plain.Tier(), flex.Tier(), flex.name)
	}
}

// TestRegistryForgetsIdle: past MaxTargets, a new target takes the place of
// the closed breaker idle longest (no outcome for IdleEvict); an open
// breaker and a recently used one are kept.
func TestRegistryForgetsIdle(t *testing.T) {
	fake := clock.NewFake(epoch)
	r, err := NewRegistry(Options{MinCalls: 1, MaxTargets: 2}, fake)
	if err != nil {
		t.Fatal(err)
	}
	done := func(b *Breaker, o Outcome) {
		p, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		p.Done(o)
	}
	open := r.Get("open", "r")
	done(open, Failure) // MinCalls 1: opens
	if open.State() != Open {
		t.Fatalf("state %v, want open", open.State())
	}
	idle := r.Get("idle", "r")
	done(idle, Success)
	fake.Advance(IdleEvict - time.Second)
	if b := r.Get("new", "r"); b != nil {
		t.Fatal("a breaker idle less than IdleEvict was forgotten")
	}
	fake.Advance(2 * time.Second)
	if b := r.Get("new", "r"); b == nil {
		t.Fatal("no room made: the idle closed breaker was kept")
	}
	if r.Len() != 2 || r.Get("open", "r") != open {
		t.Fatalf("Len %d; the open breaker must be kept", r.Len())
	}
	if b := r.Get("idle", "r"); b != nil && b == idle {
		t.Fatal("the idle breaker is still held")
	}
}
