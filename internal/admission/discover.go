package admission

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Limit sources, as Stats.Source reports them.
const (
	SourceConfigured = "configured" // a known quota from Options (Targets, or Default)
	SourceDiscovered = "discovered" // a known quota read by Options.Discover, or set by SetQuota
	SourceLearned    = "learned"    // learned from throttles, or a first guess that may grow
)

// discovery is the quota reads of one model in one region (Options.Discover),
// shared by the limiters of its tiers.
type discovery struct {
	first   chan struct{} // closed when the first read has ended
	once    sync.Once
	next    atomic.Int64 // when the next read is due, in Unix nanoseconds
	running atomic.Bool  // a read is under way
	quota   int          // the last positive read; 0: none. Guarded by Governor.mu.
}

func (d *discovery) ended() { d.once.Do(func() { close(d.first) }) }

// discovered returns q with tokensPerMinute as its known quota: the
// request quota stays, the floor and ceiling follow the new quota.
func discovered(q Quota, tokensPerMinute int) Quota {
	return Quota{TokensPerMinute: tokensPerMinute, RequestsPerMinute: q.RequestsPerMinute}
}

// discoveryOf returns the discovery of t's model and region, making it if
// need be; nil when Targets configures it (a configured quota wins), or
// when MaxTargets models and regions are being discovered already (the
// learner governs the rest).
func (g *Governor) discoveryOf(t Target) *discovery {
	if l, ok := (*g.targets.Load())[t]; ok {
		return l.disc
	}
	base := Target{Model: t.Model, Region: t.Region}
	if _, ok := g.opts.Targets[base]; ok {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if d, ok := g.disc[base]; ok {
		return d
	}
	if len(g.disc) >= g.opts.MaxTargets {
		g.sweepDiscoveries()
		if len(g.disc) >= g.opts.MaxTargets {
			return nil
		}
	}
	return g.newDiscovery(base)
}

// newDiscovery makes the discovery of base, a model in a region, its first
// read not yet started. g.mu must be held.
func (g *Governor) newDiscovery(base Target) *discovery {
	if g.disc == nil {
		g.disc = map[Target]*discovery{}
	}
	d := &discovery{first: make(chan struct{})}
	g.disc[base] = d
	return d
}

// sweepDiscoveries forgets the discoveries whose reads have ended and that
// no limiter uses (those of calls the Governor did not govern, past
// MaxTargets). g.mu must be held.
func (g *Governor) sweepDiscoveries() {
	used := map[*discovery]bool{}
	for _, l := range *g.targets.Load() {
		used[l.disc] = true
	}
	for t, d := range g.disc {
		if !used[d] && !d.running.Load() {
			delete(g.disc, t)
		}
	}
}

// dropDiscovery forgets the discovery of a forgotten target's model and
// region when no limiter left in next uses it. g.mu must be held.
func (g *Governor) dropDiscovery(t Target, next map[Target]*limiter) {
	base := Target{Model: t.Model, Region: t.Region}
	for k := range next {
		if k.Model == base.Model && k.Region == base.Region {
			return
		}
	}
	delete(g.disc, base)
}

// awaitQuota starts a read of t's quota when one is due, and waits for the
// first read of t's model and region to end, at most DiscoverWait (and
// MaxWait) or until ctx ends.
func (g *Governor) awaitQuota(ctx context.Context, t Target) {
	d := g.discoveryOf(t)
	if d == nil {
		return
	}
	if g.clk.Now().UnixNano() >= d.next.Load() && d.running.CompareAndSwap(false, true) {
		go g.read(d, Target{Model: t.Model, Region: t.Region})
	}
	select {
	case <-d.first:
		return
	default:
	}
	wait := g.opts.DiscoverWait
	if g.opts.MaxWait > 0 {
		wait = min(wait, g.opts.MaxWait) // the wait for quota starts with this one
	}
	tm := g.clk.NewTimer(wait)
	defer tm.Stop()
	select {
	case <-d.first:
	case <-tm.C():
	case <-ctx.Done():
	}
}

// read reads the quota of base, a model in a region, and sets it when
// Discover gives one.
func (g *Governor) read(d *discovery, base Target) {
	ctx, cancel := context.WithTimeout(context.Background(), discoverTimeout)
	tpm, err := g.opts.Discover(ctx, base)
	cancel()
	every := g.opts.DiscoverEvery
	if err != nil || tpm <= 0 {
		every = min(every, discoverRetry)
	}
	d.next.Store(g.clk.Now().Add(every).UnixNano())
	if err == nil && tpm > 0 {
		g.SetQuota(base, tpm)
	}
	d.running.Store(false)
	d.ended()
}

// SetQuota makes tokensPerMinute the known quota of t's model in t's
// region, on every tier (t's Tier is ignored), as a read of
// Options.Discover does: its targets' limits start there, come down when a
// minute of throttles shows Bedrock gives less, and grow back, never
// above it; Stats.Source reports "discovered". A target that has already
// called starts its new limit with what its bucket holds (an empty bucket
// when its quota was unknown). Setting the quota a target already has
// changes nothing: what throttles taught stays. SetQuota does nothing for
// a model and region Targets configures (a configured quota wins), or when
// tokensPerMinute is not positive.
func (g *Governor) SetQuota(t Target, tokensPerMinute int) {
	if g == nil || tokensPerMinute <= 0 {
		return
	}
	base := Target{Model: t.Model, Region: t.Region}
	if _, ok := g.opts.Targets[base]; ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.disc[base]
	if d == nil {
		// Set from outside: the next read, if any, is DiscoverEvery away.
		d = g.newDiscovery(base)
		d.next.Store(g.clk.Now().Add(g.opts.DiscoverEvery).UnixNano())
		d.ended()
		g.disc[base] = d
	}
	d.quota = tokensPerMinute
	for k, l := range *g.targets.Load() {
		if k.Model == base.Model && k.Region == base.Region {
			l.setQuota(tokensPerMinute)
		}
	}
}

// setQuota makes tokensPerMinute l's known, discovered quota (see
// SetQuota).
func (l *limiter) setQuota(tokensPerMinute int) {
	now := l.g.clk.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	p := discovered(Quota{RequestsPerMinute: int(l.p.rpm)}, tokensPerMinute).policy()
	if l.source == SourceDiscovered && l.p == p {
		return
	}
	l.source = SourceDiscovered
	l.p = p
	l.load(now)
	// As when another Governor sharing the Store sets the limit (see
	// follow): the quota is the plateau the limit holds.
	l.wmax = p.limit
	l.epoch = now.Add(-time.Duration(l.g.recovery * float64(time.Second)))
	l.climb.active = false
	l.slow = false
	l.warmGap = 0
	if l.view.TokensPerMinute != p.limit {
		l.resize(p.limit, now)
	}
	l.dispatch(now, true)
}

// limitSource is where l's limit comes from (Stats.Source). l.mu must be
// held.
func (l *limiter) limitSource() string {
	switch {
	case l.view.unlimited():
		return ""
	case l.source != "":
		return l.source
	case l.p.learn:
		return SourceLearned
	}
	return SourceConfigured
}
