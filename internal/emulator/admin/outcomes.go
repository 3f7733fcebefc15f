package admin

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
)

// OK is the code under which Outcomes counts a normal reply.
const OK = "OK"

// MaxOutcomeKeys caps how many (model, region, code) counters an Outcomes
// keeps: a real run needs tens, and a client inventing model ids or regions
// must not grow the counters without bound. Responses for a new key beyond
// it are counted under model and region Other, with their code, so totals
// stay exact.
const MaxOutcomeKeys = 2048

// Other is the model and region of the counter that takes what
// MaxOutcomeKeys leaves out.
const Other = "(other)"

// Outcomes counts the emulator's responses per model, region and code. The
// zero Outcomes is ready to use. It is safe for concurrent use, and Add
// neither locks nor allocates once a (model, region, code) has been seen.
// It keeps at most MaxOutcomeKeys counters, plus one per code under Other.
type Outcomes struct {
	mu sync.Mutex // serialises adding keys and Reset
	// m is never modified once published; adding a key copies it.
	m atomic.Pointer[map[outcomeKey]*atomic.Int64]
}

type outcomeKey struct{ model, region, code string }

// Outcome is one counter of an Outcomes snapshot.
type Outcome struct {
	Model  string
	Region string
	Code   string
	Count  int64
}

// Add counts one response to model in region. code is the catalog code the
// response carried (ThrottlingException, ConnectionReset, ...), or OK (or
// "") for a normal reply.
func (o *Outcomes) Add(model, region, code string) {
	if code == "" {
		code = OK
	}
	k := outcomeKey{model, region, code}
	if m := o.m.Load(); m != nil {
		if c, ok := (*m)[k]; ok {
			c.Add(1)
			return
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var cur map[outcomeKey]*atomic.Int64
	if m := o.m.Load(); m != nil {
		cur = *m
	}
	c, ok := cur[k]
	if !ok && len(cur) >= MaxOutcomeKeys {
		k = outcomeKey{Other, Other, code}
		c, ok = cur[k]
	}
	if !ok {
		next := make(map[outcomeKey]*atomic.Int64, len(cur)+1)
		for k, v := range cur {
			next[k] = v
		}
		c = new(atomic.Int64)
		next[k] = c
		o.m.Store(&next)
	}
	c.Add(1)
}

// Snapshot returns every counter, sorted by model, region and code.
func (o *Outcomes) Snapshot() []Outcome {
	m := o.m.Load()
	if m == nil {
		return nil
	}
	out := make([]Outcome, 0, len(*m))
	for k, c := range *m {
		out = append(out, Outcome{Model: k.model, Region: k.region, Code: k.code, Count: c.Load()})
	}
	slices.SortFunc(out, func(a, b Outcome) int {
		return cmp.Or(cmp.Compare(a.Model, b.Model), cmp.Compare(a.Region, b.Region), cmp.Compare(a.Code, b.Code))
	})
	return out
}

// Reset sets every counter to zero by forgetting them.
func (o *Outcomes) Reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m.Store(nil)
}
