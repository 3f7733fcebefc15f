package cache

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/redisx"
)

// redisPurgeBatch is how many keys one SCAN step of Purge asks for.
const redisPurgeBatch = 500

// Redis is a Store in the Redis keel's replicas share (redis: in the
// configuration): every replica reads what any one stored. Each value is
// stored with its TTL (PX), so Redis drops it when it expires; Redis's own
// maxmemory policy bounds the whole, and the store's Stats count only this
// process's evictions (none). A Redis error is returned (wrapping
// redisx.ErrUnavailable), which the Cache reads as a miss. It is safe for
// concurrent use.
type Redis struct {
	c      *redisx.Client
	prefix string // every key: the client's prefix, "cache:", then the hash
}

// NewRedis returns a Redis store on c. Close does not close c.
func NewRedis(c *redisx.Client) *Redis {
	return &Redis{c: c, prefix: c.Key("cache", "") + ":"}
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	var v []byte
	err := r.c.Do(ctx, func(ctx context.Context, rdb *redis.Client) error {
		var err error
		v, err = rdb.Get(ctx, r.prefix+key).Bytes()
		return err
	})
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return v, true, nil
}

// Set implements Store.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	return r.c.Do(ctx, func(ctx context.Context, rdb *redis.Client) error {
		return rdb.Set(ctx, r.prefix+key, value, ttl).Err()
	})
}

// Purge implements Store: it deletes every key of the cache under the
// client's prefix, a batch at a time.
func (r *Redis) Purge(ctx context.Context) error {
	var cursor uint64
	for {
		var keys []string
		err := r.c.Do(ctx, func(ctx context.Context, rdb *redis.Client) error {
			var err error
			keys, cursor, err = rdb.Scan(ctx, cursor, r.prefix+"*", redisPurgeBatch).Result()
			if err == nil && len(keys) > 0 {
				err = rdb.Unlink(ctx, keys...).Err()
			}
			return err
		})
		if err != nil {
			return err
		}
		if cursor == 0 {
			return nil
		}
	}
}

// Stats implements Store: Redis does not count one prefix's keys cheaply,
// so Entries and Bytes are -1.
func (r *Redis) Stats(context.Context) (StoreStats, error) {
	return StoreStats{Entries: -1, Bytes: -1}, nil
}

// Close implements Store; the client stays open.
func (r *Redis) Close() error { return nil }
