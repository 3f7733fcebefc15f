package keel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keel-run/keel/internal/cache"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/redisx"
)

// CacheOptions configure the response cache (docs/cache.md): a reply to a
// request keel has answered before is served from the store, and identical
// requests in flight share one upstream call. Zero (Mode empty): off.
type CacheOptions struct {
	// Mode is "off", "deterministic" (only requests that ask for
	// deterministic output: temperature 0) or "all" (every request whose
	// body is JSON). Empty: the configuration file's, else off.
	Mode string
	// TTL is how long a reply is served. 0: 1 h.
	TTL time.Duration
	// MaxBytes bounds the memory and SQLite stores. 0: 256 MiB.
	MaxBytes int64
	// Store is "memory" (this process), "sqlite:PATH" (a file that
	// survives restarts) or "redis" (Options.Redis, shared by every
	// process). Empty: memory.
	Store string
	// Shared makes callers share entries (the gateway's callers); false
	// keeps each caller's apart.
	Shared bool
}

// CacheMode is one call's use of the response cache (WithCache).
type CacheMode int

// Cache modes of a call.
const (
	// CacheDefault: the configuration decides.
	CacheDefault = CacheMode(engine.CacheDefault)
	// CacheBypass: the call neither reads nor writes the cache, nor joins
	// identical calls in flight.
	CacheBypass = CacheMode(engine.CacheBypass)
	// CacheRefresh: the call goes upstream, and its reply replaces the
	// stored one.
	CacheRefresh = CacheMode(engine.CacheRefresh)
)

// WithCache returns a context whose Bedrock calls through keel use the
// response cache as m says:
//
//	out, err := client.Converse(keel.WithCache(ctx, keel.CacheBypass), input)
func WithCache(ctx context.Context, m CacheMode) context.Context {
	return engine.WithCache(ctx, engine.CacheMode(m))
}

// openCache opens the cache c configures, on the shared Redis connection
// when its store is redis; nil when c is off.
func openCache(c config.Cache, shared *redisx.Client, log *slog.Logger, clk clock.Clock) (*cache.Cache, error) {
	mode, err := cache.ParseMode(c.Mode)
	if err != nil || mode == cache.ModeOff {
		return nil, err
	}
	max, err := c.MaxBytes.Bytes()
	if err != nil {
		return nil, fmt.Errorf("keel: cache.max_bytes: %w", err)
	}
	if max == 0 {
		max = cache.DefaultMaxBytes
	}
	kind, path, err := config.CacheStore(c.Store)
	if err != nil {
		return nil, fmt.Errorf("keel: cache.store: %w", err)
	}
	var st cache.Store
	switch kind {
	case "memory":
		st = cache.NewMemory(max, clk)
	case "sqlite":
		if st, err = cache.OpenSQLite(path, max, clk, log); err != nil {
			return nil, fmt.Errorf("keel: %w", err)
		}
	case "redis":
		if shared == nil {
			return nil, errors.New("keel: cache.store: is redis, but no redis.url is set (Options.Redis.URL, or the file's redis:)")
		}
		st = cache.NewRedis(shared)
	}
	return cache.New(cache.Options{Mode: mode, TTL: c.TTL.D(), Store: st, Shared: c.Shared, Clock: clk, Logger: log})
}

// CacheStats are the response cache's figures (Keel.Cache).
type CacheStats struct {
	// Mode is "deterministic" or "all".
	Mode string
	// Hits, Misses, Coalesced and Bypassed count calls by how the cache
	// served them.
	Hits, Misses, Coalesced, Bypassed int64
	// Stored counts the replies this process stored, StoredBytes their
	// size; Failures the store operations that failed (each a miss).
	Stored, StoredBytes, Failures int64
	// Entries and Bytes are what the store holds now, -1 when it cannot
	// count them (Redis); Evictions the entries it evicted to stay within
	// its bound.
	Entries, Bytes, Evictions int64
	// Waiting counts the calls waiting now for an identical call in flight.
	Waiting int
}

// Cache returns the response cache's figures; ok is false when the cache
// is off.
func (k *Keel) Cache(ctx context.Context) (s CacheStats, ok bool) {
	if k.cache == nil {
		return s, false
	}
	st := k.cache.Stats(ctx)
	return CacheStats{Mode: st.Mode.String(), Hits: st.Hits, Misses: st.Misses, Coalesced: st.Coalesced, Bypassed: st.Bypassed,
		Stored: st.Stored, StoredBytes: st.StoredBytes, Failures: st.Failures,
		Entries: st.Store.Entries, Bytes: st.Store.Bytes, Evictions: st.Store.Evictions, Waiting: k.eng.CacheWaiting()}, true
}
