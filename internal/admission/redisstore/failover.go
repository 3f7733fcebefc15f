package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/redisx"
)

// RetryEvery is how often a Failover whose Redis failed tries it again:
// meanwhile every operation goes to the local buckets at once, so a Redis
// that is down costs one timeout (redisx's, 50 ms by default) a second at
// most, not one per call.
const RetryEvery = time.Second

// Failover is an admission.Store that keeps the buckets in Redis (a Store)
// and, while Redis fails (an error matching redisx.ErrUnavailable), in
// local buckets that hold the client's Share of each limit
// (redisx.Client.Share). It is safe for concurrent use.
//
// At the first failure each key's local buckets are made from the last
// buckets Redis returned for it (or Open's figures), every limit, level
// and burst times the share; SetLimit and SetBurst are scaled likewise
// while Redis fails, and the buckets returned carry the share (Share).
// While Redis fails, one operation every RetryEvery (by the callers'
// clock) tries it again; the first that succeeds goes back to the shared
// buckets. What the local buckets took meanwhile is not copied back to
// Redis (its calls are mostly settled by then, and Redis's own buckets
// went on refilling): the local buckets are dropped. A lease is ended
// where it was taken: a call taken locally and ended after Redis is back
// (or taken in Redis and ended while it fails) ends with nothing given
// back, and reports live; a lease taken in Redis expires there and gives
// back its Refund.
type Failover struct {
	shared *Store
	c      *redisx.Client

	mu      sync.Mutex
	down    bool      // Redis failed, and has not answered since
	lastTry time.Time // the last try of Redis while down
	episode uint64    // counts the falls back to local buckets
	local   *admission.MemStore
	inLocal map[admission.Target]float64           // the keys with local buckets, and their share
	opened  map[admission.Target]admission.Buckets // what Open gave
	seen    map[admission.Target]admission.Buckets // what Redis last returned
	leases  map[admission.LeaseID]where            // the live leases: where they were taken
}

// where is where a lease was taken: in the local buckets of an episode, or
// in Redis.
type where struct {
	local   bool
	episode uint64
}

var (
	_ admission.Store  = (*Failover)(nil)
	_ admission.Sharer = (*Failover)(nil)
)

// Share returns the part of each limit this process can expect while every
// process sharing the buckets asks for more than its own:
// redisx.Client.Share, the same part its local buckets hold while Redis
// fails.
func (f *Failover) Share() float64 { return f.c.Share() }

// NewFailover returns a Failover on c: a Store with o, and local buckets
// while Redis fails.
func NewFailover(c *redisx.Client, o Options) *Failover {
	return &Failover{shared: New(c, o), c: c, local: &admission.MemStore{},
		inLocal: make(map[admission.Target]float64), opened: make(map[admission.Target]admission.Buckets),
		seen: make(map[admission.Target]admission.Buckets), leases: make(map[admission.LeaseID]where)}
}

// Shared returns the Store in Redis.
func (f *Failover) Shared() *Store { return f.shared }

// Degraded reports whether the Failover uses its local buckets.
func (f *Failover) Degraded() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

// useShared reports whether an operation at now tries Redis: always while
// it answers, and once every RetryEvery while it fails.
func (f *Failover) useShared(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.down {
		return true
	}
	// A now a little behind the last try's is a caller that read its clock
	// before that try took the lock; only a clock gone back by more than
	// RetryEvery is taken as time going back.
	if now.Sub(f.lastTry) >= RetryEvery || now.Before(f.lastTry.Add(-RetryEvery)) {
		f.lastTry = now
		return true
	}
	return false
}

// shared runs op on Redis for key, opening key again when Redis lost it
// (see Store), and records the outcome: the buckets op saw, or Redis's
// failure. It reports false when Redis failed: the caller goes local. Only
// an outage takes Redis for down (one try a second); a caller's ended
// context or an error reply sends that one operation local.
func (f *Failover) sharedOp(ctx context.Context, key admission.Target, now time.Time, op func() (admission.Buckets, error)) (admission.Buckets, bool, error) {
	b, err := op()
	if errors.Is(err, admission.ErrNoBucket) {
		f.mu.Lock()
		open, ok := f.opened[key]
		f.mu.Unlock()
		if ok {
			if err = f.shared.Open(ctx, key, now, open); err == nil {
				b, err = op()
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if errors.Is(err, redisx.ErrCallerDone) || errors.Is(err, redisx.ErrReply) {
		// Redis is not down: the caller went away, or Redis answered this
		// key with an error (the Client reports a Redis that answers
		// nothing else). This operation alone goes local.
		return admission.Buckets{}, false, err
	}
	if errors.Is(err, redisx.ErrUnavailable) {
		if !f.down {
			f.down, f.lastTry = true, now
			f.episode++
			// Local buckets made for single operations before (a caller
			// gone, an error reply) go: an outage starts from what Redis
			// last showed.
			f.local, f.inLocal = &admission.MemStore{}, make(map[admission.Target]float64)
		}
		return admission.Buckets{}, false, err
	}
	if f.down {
		// Back: the local buckets are dropped.
		f.down = false
		f.local, f.inLocal = &admission.MemStore{}, make(map[admission.Target]float64)
		f.episode++
	}
	if err == nil && b.TokensPerMinute > 0 {
		f.seen[key] = b
	}
	return b, true, err
}

// localFor returns the local buckets, with key's made if they are not
// yet, and key's share.
func (f *Failover) localFor(key admission.Target, now time.Time) (*admission.MemStore, float64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if share, ok := f.inLocal[key]; ok {
		return f.local, share, nil
	}
	base, ok := f.seen[key]
	if !ok {
		if base, ok = f.opened[key]; !ok {
			return nil, 0, errNotOpened
		}
	}
	share := f.c.Share()
	b := admission.Buckets{TokensPerMinute: base.TokensPerMinute * share, RequestsPerMinute: base.RequestsPerMinute * share,
		Tokens: base.Tokens * share}
	if b.RequestsPerMinute > 0 {
		b.RequestsPerMinute = max(b.RequestsPerMinute, 1) // a request bucket holds one request at least
	}
	ctx := context.Background()
	if err := f.local.Open(ctx, key, now, b); err != nil {
		return nil, 0, err
	}
	if base.Burst > 0 && !math.IsInf(base.TokensPerMinute, 1) {
		if _, err := f.local.SetBurst(ctx, key, now, base.Burst*share); err != nil {
			return nil, 0, err
		}
	}
	f.inLocal[key] = share
	return f.local, share, nil
}

// errNotOpened is localFor's answer for a key never opened.
var errNotOpened = errors.New("not opened")

// do runs op on Redis, or on the local buckets while Redis fails, and
// returns the buckets it left; the local buckets' carry their share and
// count Redis's drains on.
func (f *Failover) do(ctx context.Context, key admission.Target, now time.Time,
	shared func() (admission.Buckets, error),
	local func(m *admission.MemStore, share float64) (admission.Buckets, error)) (admission.Buckets, error) {
	if f.useShared(now) {
		b, ok, err := f.sharedOp(ctx, key, now, shared)
		if ok {
			return b, err
		}
	}
	m, share, err := f.localFor(key, now)
	if err == errNotOpened {
		return admission.Buckets{}, fmt.Errorf("admission: Store(%s): %w", key, admission.ErrNoBucket)
	}
	if err != nil {
		return admission.Buckets{}, err
	}
	b, err := local(m, share)
	if err != nil {
		return b, err
	}
	f.mu.Lock()
	b.Drains += f.seen[key].Drains
	f.mu.Unlock()
	b.Share = share
	return b, nil
}

// Open implements admission.Store.
func (f *Failover) Open(ctx context.Context, key admission.Target, now time.Time, b admission.Buckets) error {
	if err := admission.CheckOpen(key, b); err != nil {
		return err
	}
	f.mu.Lock()
	if _, ok := f.opened[key]; !ok {
		f.opened[key] = admission.Buckets{TokensPerMinute: b.TokensPerMinute, RequestsPerMinute: b.RequestsPerMinute, Tokens: b.Tokens}
	}
	f.mu.Unlock()
	_, err := f.do(ctx, key, now, func() (admission.Buckets, error) {
		return admission.Buckets{}, f.shared.Open(ctx, key, now, b)
	}, func(m *admission.MemStore, _ float64) (admission.Buckets, error) {
		return admission.Buckets{}, nil // localFor opened it
	})
	return err
}

// Reserve implements admission.Store.
func (f *Failover) Reserve(ctx context.Context, key admission.Target, now time.Time, tokens float64) (admission.Reservation, error) {
	var r admission.Reservation
	_, err := f.do(ctx, key, now, func() (admission.Buckets, error) {
		var err error
		r, err = f.shared.Reserve(ctx, key, now, tokens)
		return admission.Buckets{}, err
	}, func(m *admission.MemStore, _ float64) (admission.Buckets, error) {
		var err error
		r, err = m.Reserve(ctx, key, now, tokens)
		return admission.Buckets{}, err
	})
	return r, err
}

// Give implements admission.Store.
func (f *Failover) Give(ctx context.Context, key admission.Target, now time.Time, tokens float64, requests int) (admission.Buckets, error) {
	return f.do(ctx, key, now, func() (admission.Buckets, error) {
		return f.shared.Give(ctx, key, now, tokens, requests)
	}, func(m *admission.MemStore, _ float64) (admission.Buckets, error) {
		return m.Give(ctx, key, now, tokens, requests)
	})
}

// Take implements admission.Store.
func (f *Failover) Take(ctx context.Context, key admission.Target, now time.Time, tokens float64, lease admission.Lease) (admission.Buckets, error) {
	b, _, err := f.take(ctx, key, now, tokens, lease, false)
	return b, err
}

// TakeIfRoom implements admission.Store.
func (f *Failover) TakeIfRoom(ctx context.Context, key admission.Target, now time.Time, tokens float64, lease admission.Lease) (admission.Buckets, bool, error) {
	return f.take(ctx, key, now, tokens, lease, true)
}

// take is Take, or with ifRoom TakeIfRoom, and reports whether it took.
func (f *Failover) take(ctx context.Context, key admission.Target, now time.Time, tokens float64, lease admission.Lease, ifRoom bool) (admission.Buckets, bool, error) {
	var w where
	took := true
	takeIn := func(s admission.Store) (admission.Buckets, error) {
		if !ifRoom {
			return s.Take(ctx, key, now, tokens, lease)
		}
		b, ok, err := s.TakeIfRoom(ctx, key, now, tokens, lease)
		took = ok
		return b, err
	}
	b, err := f.do(ctx, key, now, func() (admission.Buckets, error) {
		w = where{}
		return takeIn(f.shared)
	}, func(m *admission.MemStore, _ float64) (admission.Buckets, error) {
		f.mu.Lock()
		w = where{local: true, episode: f.episode}
		f.mu.Unlock()
		return takeIn(m)
	})
	took = took && err == nil
	if took && !lease.ID.IsZero() {
		f.mu.Lock()
		f.leases[lease.ID] = w
		f.mu.Unlock()
	}
	return b, took, err
}

// End implements admission.Store.
func (f *Failover) End(ctx context.Context, key admission.Target, now time.Time, id admission.LeaseID, tokens float64, requests int) (admission.Buckets, bool, error) {
	if err := admission.CheckGive("End", key, tokens, requests); err != nil {
		return admission.Buckets{}, false, err
	}
	f.mu.Lock()
	w, known := f.leases[id]
	delete(f.leases, id)
	f.mu.Unlock()
	var live bool
	b, err := f.do(ctx, key, now, func() (admission.Buckets, error) {
		if known && w.local {
			live = true // taken in buckets since dropped
			return f.shared.Level(ctx, key, now)
		}
		b, l, err := f.shared.End(ctx, key, now, id, tokens, requests)
		live = l
		return b, err
	}, func(m *admission.MemStore, _ float64) (admission.Buckets, error) {
		f.mu.Lock()
		episode := f.episode
		f.mu.Unlock()
		if known && (!w.local || w.episode != episode) {
			live = true // taken in Redis, where it expires, or in buckets since dropped
			return m.Level(ctx, key, now)
		}
		b, l, err := m.End(ctx, key, now, id, tokens, requests)
		live = l
		return b, err
	})
	return b, live && err == nil, err
}

// Drain implements admission.Store.
func (f *Failover) Drain(ctx context.Context, key admission.Target, now time.Time) (float64, admission.Buckets, error) {
	var took float64
	b, err := f.do(ctx, key, now, func() (admission.Buckets, error) {
		t, b, err := f.shared.Drain(ctx, key, now)
		took = t
		return b, err
	}, func(m *admission.MemStore, _ float64) (admission.Buckets, error) {
		t, b, err := m.Drain(ctx, key, now)
		took = t
		return b, err
	})
	return took, b, err
}

// SetLimit implements admission.Store; while Redis fails it sets the
// share of tokensPerMinute.
func (f *Failover) SetLimit(ctx context.Context, key admission.Target, now time.Time, tokensPerMinute float64) (admission.Buckets, error) {
	return f.do(ctx, key, now, func() (admission.Buckets, error) {
		return f.shared.SetLimit(ctx, key, now, tokensPerMinute)
	}, func(m *admission.MemStore, share float64) (admission.Buckets, error) {
		return m.SetLimit(ctx, key, now, tokensPerMinute*share)
	})
}

// SetBurst implements admission.Store; while Redis fails it sets the
// share of tokens.
func (f *Failover) SetBurst(ctx context.Context, key admission.Target, now time.Time, tokens float64) (admission.Buckets, error) {
	return f.do(ctx, key, now, func() (admission.Buckets, error) {
		return f.shared.SetBurst(ctx, key, now, tokens)
	}, func(m *admission.MemStore, share float64) (admission.Buckets, error) {
		return m.SetBurst(ctx, key, now, tokens*share)
	})
}

// Level implements admission.Store.
func (f *Failover) Level(ctx context.Context, key admission.Target, now time.Time) (admission.Buckets, error) {
	return f.do(ctx, key, now, func() (admission.Buckets, error) {
		return f.shared.Level(ctx, key, now)
	}, func(m *admission.MemStore, _ float64) (admission.Buckets, error) {
		return m.Level(ctx, key, now)
	})
}

// Forget implements admission.Store: it drops key's local buckets, and
// its shared ones unless Redis is failing (they expire after
// redisx.IdleTTL).
func (f *Failover) Forget(ctx context.Context, key admission.Target) error {
	f.mu.Lock()
	delete(f.opened, key)
	delete(f.seen, key)
	delete(f.inLocal, key)
	local, down := f.local, f.down
	f.mu.Unlock()
	local.Forget(ctx, key)
	if down {
		return nil
	}
	return f.shared.Forget(ctx, key)
}
