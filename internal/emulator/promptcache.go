package emulator

import (
	"sync"
	"time"
)

// PromptCacheTTL is how long a cached prompt prefix lives after its last use,
// as Bedrock's prompt cache keeps one for five minutes.
const PromptCacheTTL = 5 * time.Minute

// maxPromptCacheEntries bounds the prompt cache: far more prefixes than a
// test keeps warm at once, and a few megabytes at most. When it is full,
// expired entries go, and if that is not an eighth of it, live ones too (a
// miss later, as when Bedrock evicts a prefix early), so each sweep of the
// whole map makes room for many inserts.
const maxPromptCacheEntries = 1 << 16

// promptCache remembers the prompt prefixes requests asked to cache, per
// model and region, so a second request with the same prefix within the TTL
// reads it instead of writing it. Only requests with a cache point touch it.
type promptCache struct {
	mu sync.Mutex
	m  map[promptKey]time.Time // expiry
}

type promptKey struct {
	model, region string
	hash          uint64
}

// use reports whether k is cached at now, and (re)starts its TTL.
func (c *promptCache) use(k promptKey, now time.Time) (hit bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[promptKey]time.Time)
	}
	exp, ok := c.m[k]
	hit = ok && now.Before(exp)
	if !ok && len(c.m) >= maxPromptCacheEntries {
		for key, e := range c.m { // drop what has expired before growing further
			if !now.Before(e) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) <= maxPromptCacheEntries-maxPromptCacheEntries/8 {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = now.Add(PromptCacheTTL)
	return hit
}
