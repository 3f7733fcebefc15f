package cache

import (
	"context"
	"time"
)

// Store keeps encoded entries under their keys (Key.String). Its methods
// are safe for concurrent use. Every store bounds what it holds: by bytes
// (memory, SQLite) or by Redis's own memory policy, and by each entry's
// TTL, after which Get no longer returns it.
//
// A Get error, a Set error and a value that does not decode are all read by
// the Cache as a miss: a store never makes a call fail. cachetest.Run is
// the conformance suite every store passes.
type Store interface {
	// Get returns the value stored under key, and ok false when there is
	// none or it has expired.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Set stores value under key for ttl (> 0), replacing any value there.
	// A value larger than the store's bound is not stored (no error).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Purge removes every entry.
	Purge(ctx context.Context) error
	// Stats returns what the store holds, as far as it knows.
	Stats(ctx context.Context) (StoreStats, error)
	// Close releases the store's resources.
	Close() error
}

// StoreStats are a store's figures.
type StoreStats struct {
	// Entries and Bytes are what the store holds now (Bytes: the encoded
	// values); -1 when the store cannot count them cheaply (Redis).
	Entries, Bytes int64
	// Evictions counts entries removed to stay within the bound (not
	// those that expired) since the store was opened.
	Evictions int64
}
