package engine

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/window"
)

// This file answers "what is the engine doing to each target now?" for a
// status page: Snapshot gathers each target's breaker, the quota governor's
// figures and the attempts that failed in the last minutes by catalog code.
// The failures are counted as they happen (noteError, on the failure path
// only, so a success costs nothing); everything else is read at Snapshot.

// RecentErrorWindow is how far back ErrorCount.Recent counts: long enough to
// still show the burst an operator was paged about when they open the page,
// short enough that a fault that has passed leaves it soon.
const RecentErrorWindow = 5 * time.Minute

// recentErrorSlots divides RecentErrorWindow into 30 s steps: a failure
// leaves Recent between 4.5 and 5 minutes after it happened.
const recentErrorSlots = 10

// maxErrorTargets bounds the targets failures are counted for, as the breaker
// registry bounds its breakers: calls naming ever new model ids cannot grow
// the engine without end.
const maxErrorTargets = breaker.DefaultMaxTargets

// maxErrorCodes bounds the codes counted per target; the catalog has fewer,
// so it binds only if codes ever came from outside it.
const maxErrorCodes = 64

// TargetStatus is what the engine knows of one target it has sent to, or
// tried to.
type TargetStatus struct {
	Target attempt.Target
	// Breaker is the target's circuit breaker; nil when it has none (the
	// engine's DisableBreaker, or its registry was full).
	Breaker *breaker.Snapshot
	// Quota holds the quota governor's figures for the target: the limit
	// (configured or learned; see LimitSource), what the last minute's
	// calls reserved and settled, what calls in flight hold, the queue
	// depth per class (Quota.Classes[admission.Interactive].Queued, ...).
	// Nil without a governor, or before it admitted a call to the target.
	Quota *admission.Stats
	// Errors counts the target's failed attempts by catalog code, those
	// keel did not send included (CircuitOpen, NoQuotaBeforeDeadline, ...):
	// the codes with the most recent failures first. Nil when none failed.
	Errors []ErrorCount
}

// Limit sources, as TargetStatus.LimitSource reports them.
const (
	LimitConfigured = "configured" // a known quota, from the configuration
	LimitLearned    = "learned"    // learned from throttles, or a first guess that may grow
	LimitDiscovered = "discovered" // a known quota read from Service Quotas (admission.Options.Discover)
)

// LimitSource says where the quota limit in force comes from: LimitConfigured,
// LimitDiscovered, LimitLearned, or "" when there is none (no governor, or
// no throttle seen on a target of unknown quota).
func (s TargetStatus) LimitSource() string {
	switch {
	case s.Quota == nil || s.Quota.Limit <= 0:
		return ""
	case s.Quota.Learning:
		return LimitLearned
	default:
		return cmp.Or(s.Quota.Source, LimitConfigured)
	}
}

// ErrorCount is how often a target's attempts failed with one catalog code.
type ErrorCount struct {
	Code string
	// Recent counts the failures in the last RecentErrorWindow; Total
	// those since the engine started.
	Recent, Total int64
	// Last is when the latest happened.
	Last time.Time
}

// Snapshot returns the status of every target the engine has a breaker,
// quota figures or failures for, ordered by model, region and tier. It
// takes each part's lock in turn, never two at once, so calls go on while
// it runs; the parts may differ by the calls that ended meanwhile.
func (e *Engine) Snapshot() []TargetStatus {
	now := e.clk.Now()
	byTarget := map[attempt.Target]*TargetStatus{}
	get := func(t attempt.Target) *TargetStatus {
		s := byTarget[t]
		if s == nil {
			s = &TargetStatus{Target: t}
			byTarget[t] = s
		}
		return s
	}
	if e.breakers != nil {
		for _, b := range e.breakers.All() {
			snap := b.Snapshot()
			get(attempt.Target{Model: b.Model(), Region: b.Region(), Tier: b.Tier()}).Breaker = &snap
		}
	}
	for _, st := range e.gov.Snapshot() {
		get(st.Target).Quota = &st
	}
	for t, counts := range e.errs.counts(now) {
		get(t).Errors = counts
	}
	out := make([]TargetStatus, 0, len(byTarget))
	for _, s := range byTarget {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b TargetStatus) int {
		return cmp.Or(cmp.Compare(a.Target.Model, b.Target.Model), cmp.Compare(a.Target.Region, b.Target.Region),
			cmp.Compare(a.Target.Tier, b.Target.Tier))
	})
	return out
}

// noteError counts a failed attempt on t under its catalog code.
func (e *Engine) noteError(t attempt.Target, code string) {
	if code != "" {
		e.errs.add(t, code, e.clk.Now())
	}
}

// errorLog counts failures per target and code. Its zero value is empty and
// ready; it is safe for concurrent use.
type errorLog struct {
	mu sync.Mutex
	m  map[attempt.Target]map[string]*codeErrors
}

type codeErrors struct {
	recent window.Ring[int64]
	total  int64
	last   time.Time
}

func (l *errorLog) add(t attempt.Target, code string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	codes := l.m[t]
	if codes == nil {
		if len(l.m) >= maxErrorTargets {
			return
		}
		if l.m == nil {
			l.m = make(map[attempt.Target]map[string]*codeErrors)
		}
		codes = make(map[string]*codeErrors)
		l.m[t] = codes
	}
	c := codes[code]
	if c == nil {
		if len(codes) >= maxErrorCodes {
			return
		}
		c = &codeErrors{recent: window.New[int64](recentErrorSlots, RecentErrorWindow/recentErrorSlots, now)}
		codes[code] = c
	}
	c.recent.Add(now, 1)
	c.total++
	c.last = now
}

// counts returns each target's counts as of now, the most recent failures
// first (then the latest, then by code).
func (l *errorLog) counts(now time.Time) map[attempt.Target][]ErrorCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[attempt.Target][]ErrorCount, len(l.m))
	for t, codes := range l.m {
		list := make([]ErrorCount, 0, len(codes))
		for code, c := range codes {
			list = append(list, ErrorCount{Code: code, Recent: c.recent.Sum(now), Total: c.total, Last: c.last})
		}
		slices.SortFunc(list, func(a, b ErrorCount) int {
			return cmp.Or(cmp.Compare(b.Recent, a.Recent), b.Last.Compare(a.Last), cmp.Compare(a.Code, b.Code))
		})
		out[t] = list
	}
	return out
}
