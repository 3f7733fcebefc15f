package emulator

import (
	"sync"
	"time"
)

// PromptCacheTTL is how long a cached prompt prefix lives after its last use,
// as Bedrock's prompt cache keeps one for five minutes.
const PromptCacheTTL = 5 * time.Minute

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
	if !ok && len(c.m) >= 1<<16 {
		for key, e := range c.m { // drop what has expired before growing further
			if !now.Before(e) {
				delete(c.m, key)
			}
		}
	}
	c.m[k] = now.Add(PromptCacheTTL)
	return hit
}
