package breaker

import (
	"sync"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// Registry holds one Breaker per target (model, region, service tier), made on first use
// with the registry's Options. It is safe for concurrent use; Get takes a
// read lock and does not allocate once the target's breaker exists.
type Registry struct {
	o   Options
	clk clock.Clock

	mu sync.RWMutex
	m  map[target]*Breaker
}

type target struct{ model, region, tier string }

// NewRegistry returns an empty Registry whose breakers use o and clk (nil
// means clock.Real{}). It returns an error naming the first option out of range.
func NewRegistry(o Options, clk clock.Clock) (*Registry, error) {
	o, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if clk == nil {
		clk = clock.Real{}
	}
	return &Registry{o: o, clk: clk, m: make(map[target]*Breaker)}, nil
}

// Get returns the breaker of model in region, making it on first use.
//
// When the registry already holds MaxTargets breakers, a closed one that
// has recorded no outcome for IdleEvict (the one idle longest) is forgotten
// to make room; when none is, Get returns nil for a new target: such a
// target has no breaker, and callers must treat nil as "always allow" (the
// zero Permit's methods do nothing).
func (r *Registry) Get(model, region string) *Breaker { return r.GetTier(model, region, "") }

// GetTier returns the breaker of model in region on a service tier ("":
// none named), as Get does. Each tier has its own breaker: a tier's
// capacity can fail while another's serves.
func (r *Registry) GetTier(model, region, tier string) *Breaker {
	k := target{model, region, tier}
	r.mu.RLock()
	b := r.m[k]
	r.mu.RUnlock()
	if b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.m[k]; b != nil {
		return b
	}
	if len(r.m) >= r.o.MaxTargets {
		k, ok := r.idlest()
		if !ok {
			return nil
		}
		delete(r.m, k)
	}
	b = newBreaker(model, region, tier, r.o, r.clk)
	r.m[k] = b
	return b
}

// Len returns the number of breakers the registry holds.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}

// All returns the breakers the registry holds, in no particular order.
func (r *Registry) All() []*Breaker {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Breaker, 0, len(r.m))
	for _, b := range r.m {
		out = append(out, b)
	}
	return out
}

// IdleEvict is how long a closed breaker must have recorded no outcome to
// be forgotten for a new target once MaxTargets are held, at least: a
// minute, and never less than the breaker's failure window, so that a
// forgotten breaker had nothing left to remember.
const IdleEvict = time.Minute

// idlest returns the key of the closed breaker idle longest, at least
// IdleEvict and the failure window. r.mu must be held.
func (r *Registry) idlest() (target, bool) {
	now, idle := r.clk.Now(), max(IdleEvict, r.o.Window)
	var best target
	var bestAt time.Time
	found := false
	for k, b := range r.m {
		b.mu.Lock()
		last, closed := b.since, b.state == Closed
		if b.used.After(last) {
			last = b.used
		}
		b.mu.Unlock()
		if !closed || now.Sub(last) < idle {
			continue
		}
		if !found || last.Before(bestAt) {
			best, bestAt, found = k, last, true
		}
	}
	return best, found
}
