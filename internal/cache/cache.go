package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keel-run/keel/internal/clock"
)

// Defaults of the configuration's cache: section.
const (
	// DefaultTTL is how long an entry is served: long enough for a rerun
	// of an evaluation or a resumed batch, short enough that a model
	// update behind one id is not hidden for days.
	DefaultTTL = time.Hour
	// DefaultMaxBytes bounds the memory and SQLite stores: about a
	// thousand long replies, or a hundred thousand short ones.
	DefaultMaxBytes = 256 << 20
)

// Options configure a Cache.
type Options struct {
	// Mode says which requests are cached; ModeOff makes New return nil.
	Mode Mode
	// TTL is how long an entry is served. 0: DefaultTTL.
	TTL time.Duration
	// Store keeps the entries. Required unless Mode is ModeOff.
	Store Store
	// Shared makes callers share entries: Request.Caller is left out of
	// the key. false: a call that names a caller is keyed by it.
	Shared bool
	// Clock stamps entries; nil: the wall clock.
	Clock clock.Clock
	// Logger hears of a failing store, once per episode. Nil:
	// slog.Default().
	Logger *slog.Logger
}

// Cache is the response cache the engine consults: a Store, the rule of
// what is cached, and counters. It is safe for concurrent use. A nil *Cache
// caches nothing.
type Cache struct {
	mode   Mode
	ttl    time.Duration
	store  Store
	shared bool
	clk    clock.Clock
	log    *slog.Logger

	hits, misses, coalesced, bypassed, stored, storedBytes, failures atomic.Int64

	mu      sync.Mutex
	failing bool // the store's last operation failed (one log line per episode)
}

// New returns a Cache, or nil (caching nothing) when o.Mode is ModeOff.
func New(o Options) (*Cache, error) {
	if o.Mode == ModeOff {
		return nil, nil
	}
	if o.Store == nil {
		return nil, errors.New("cache: a mode is set but no store")
	}
	if o.TTL < 0 {
		return nil, fmt.Errorf("cache: ttl %v is negative", o.TTL)
	}
	c := &Cache{mode: o.Mode, ttl: o.TTL, store: o.Store, shared: o.Shared, clk: o.Clock, log: o.Logger}
	if c.ttl == 0 {
		c.ttl = DefaultTTL
	}
	if c.clk == nil {
		c.clk = clock.Real{}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// Mode returns the cache's mode.
func (c *Cache) Mode() Mode { return c.mode }

// Store returns the cache's store.
func (c *Cache) Store() Store { return c.store }

// Now returns the cache clock's time, which stamps entries.
func (c *Cache) Now() time.Time { return c.clk.Now() }

// Key returns the key of r, and false when r is not cached: its body is
// not JSON (ErrNotJSON), or the mode is deterministic and r does not ask
// for deterministic output.
func (c *Cache) Key(r Request) (Key, bool) {
	if c.mode == ModeDeterministic && !Deterministic(r.Family, r.Body) {
		return Key{}, false
	}
	if c.shared {
		r.Caller = ""
	}
	k, err := KeyOf(r)
	return k, err == nil
}

// Get returns the entry stored under k. A store error or an entry that
// does not decode is a miss (logged once per episode).
func (c *Cache) Get(ctx context.Context, k Key) (*Entry, bool) {
	v, ok, err := c.store.Get(ctx, k.String())
	if err != nil {
		if ctx.Err() == nil { // the caller leaving is not the store failing
			c.fail("reading", err)
		}
		return nil, false
	}
	c.healthy()
	if !ok {
		return nil, false
	}
	e, err := Decode(v)
	if err != nil {
		c.fail("decoding an entry", err)
		return nil, false
	}
	return e, true
}

// Put stores e under k for the cache's TTL. A store error is logged once
// per episode; the call it came from is not affected.
func (c *Cache) Put(ctx context.Context, k Key, e *Entry) {
	v := e.Encode()
	if err := c.store.Set(ctx, k.String(), v, c.ttl); err != nil {
		if ctx.Err() == nil {
			c.fail("writing", err)
		}
		return
	}
	c.healthy()
	c.stored.Add(1)
	c.storedBytes.Add(int64(len(v)))
}

func (c *Cache) fail(what string, err error) {
	c.failures.Add(1)
	c.mu.Lock()
	first := !c.failing
	c.failing = true
	c.mu.Unlock()
	if first {
		c.log.Warn("cache: store failed; calls go upstream as on a miss", "op", what, "err", err.Error())
	}
}

func (c *Cache) healthy() {
	c.mu.Lock()
	was := c.failing
	c.failing = false
	c.mu.Unlock()
	if was {
		c.log.Info("cache: store answering again")
	}
}

// Outcome is how a call met the cache, as Report.Cache gives it.
type Outcome string

// Outcomes. The zero Outcome is "": the cache is off.
const (
	// Hit: the reply came from the store.
	Hit Outcome = "hit"
	// Miss: the call went upstream (its reply stored if it could be).
	Miss Outcome = "miss"
	// Coalesced: the call shared the reply of an identical call in flight.
	Coalesced Outcome = "coalesced"
	// Bypass: the cache was not consulted: the request is not cacheable
	// (not JSON, not deterministic, a count), or the call asked to bypass
	// it.
	Bypass Outcome = "bypass"
)

// Count records one call's outcome in the counters.
func (c *Cache) Count(o Outcome) {
	switch o {
	case Hit:
		c.hits.Add(1)
	case Miss:
		c.misses.Add(1)
	case Coalesced:
		c.coalesced.Add(1)
	case Bypass:
		c.bypassed.Add(1)
	}
}

// Stats are a Cache's figures.
type Stats struct {
	Mode                              Mode
	Hits, Misses, Coalesced, Bypassed int64
	// Stored counts the entries this process stored, StoredBytes their
	// encoded size; Failures the store operations that failed.
	Stored, StoredBytes, Failures int64
	// Store is the store's own account (Entries and Bytes -1 when it
	// cannot count them).
	Store StoreStats
}

// Stats returns the cache's figures; the store's are left zero when it
// fails to give them.
func (c *Cache) Stats(ctx context.Context) Stats {
	st := Stats{Mode: c.mode, Hits: c.hits.Load(), Misses: c.misses.Load(), Coalesced: c.coalesced.Load(),
		Bypassed: c.bypassed.Load(), Stored: c.stored.Load(), StoredBytes: c.storedBytes.Load(), Failures: c.failures.Load()}
	st.Store, _ = c.store.Stats(ctx)
	return st
}

// Collectors returns the cache's Prometheus metrics: keel_cache_calls_total
// by outcome (hit, miss, coalesced, bypass), keel_cache_stored_bytes_total,
// keel_cache_store_failures_total, and the store's keel_cache_bytes and
// keel_cache_evictions_total (read from its Stats at each scrape).
func (c *Cache) Collectors() []prometheus.Collector {
	calls := func(o Outcome, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keel_cache_calls_total",
			Help: "Calls by how they met the response cache.", ConstLabels: prometheus.Labels{"outcome": string(o)}},
			func() float64 { return float64(v.Load()) })
	}
	store := func() StoreStats {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, _ := c.store.Stats(ctx)
		return st
	}
	return []prometheus.Collector{
		calls(Hit, &c.hits), calls(Miss, &c.misses), calls(Coalesced, &c.coalesced), calls(Bypass, &c.bypassed),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keel_cache_stored_bytes_total",
			Help: "Bytes of replies this process stored in the response cache."}, func() float64 { return float64(c.storedBytes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keel_cache_store_failures_total",
			Help: "Response cache store operations that failed (each read as a miss)."}, func() float64 { return float64(c.failures.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keel_cache_bytes",
			Help: "Bytes the response cache's store holds (-1: the store cannot count them)."}, func() float64 { return float64(store().Bytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keel_cache_evictions_total",
			Help: "Entries the response cache's store evicted to stay within its bound."}, func() float64 { return float64(store().Evictions) }),
	}
}
