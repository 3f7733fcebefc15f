package admission

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// MemStore is a Store in memory, for the Governors of one process; each
// Governor keeps its targets' buckets in a MemStore of its own. The zero
// MemStore is empty and ready to use; it is safe for concurrent use.
type MemStore struct {
	mu sync.Mutex
	m  map[Target]*memKey
}

// memKey is one key's buckets and leases in a MemStore.
type memKey struct {
	bucket
	leases  map[LeaseID]Lease
	soonest time.Time // no lease expires before it
}

// expire gives back the Refund of each lease whose Until is before now,
// and drops it.
func (k *memKey) expire(now time.Time) {
	if len(k.leases) == 0 || !now.After(k.soonest) {
		return
	}
	k.soonest = time.Time{}
	for id, l := range k.leases {
		if now.After(l.Until) {
			k.give(l.Refund)
			delete(k.leases, id)
		} else if k.soonest.IsZero() || l.Until.Before(k.soonest) {
			k.soonest = l.Until
		}
	}
}

var _ Store = (*MemStore)(nil)

// Open implements Store.
func (s *MemStore) Open(_ context.Context, key Target, now time.Time, b Buckets) error {
	if err := CheckOpen(key, b); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[Target]*memKey)
	}
	if _, ok := s.m[key]; !ok {
		nb := newBucket(now, b.TokensPerMinute, b.RequestsPerMinute, 0)
		if !nb.unlimited() {
			nb.Tokens = min(b.Tokens, b.TokensPerMinute)
		}
		s.m[key] = &memKey{bucket: nb}
	}
	return nil
}

// at returns key's buckets refilled up to now, its expired leases given
// back. s.mu must be held.
func (s *MemStore) at(op string, key Target, now time.Time) (*memKey, error) {
	k, ok := s.m[key]
	if !ok {
		return nil, fmt.Errorf("admission: Store.%s(%s): %w", op, key, ErrNoBucket)
	}
	k.refill(now)
	k.expire(now)
	return k, nil
}

// Reserve implements Store.
func (s *MemStore) Reserve(_ context.Context, key Target, now time.Time, tokens float64) (Reservation, error) {
	if err := CheckReserve(key, tokens); err != nil {
		return Reservation{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.at("Reserve", key, now)
	if err != nil {
		return Reservation{}, err
	}
	if !b.room(tokens) {
		return Reservation{At: b.fitAt(tokens, now, now)}, nil
	}
	b.reserve(tokens)
	return Reservation{OK: true, At: now}, nil
}

// change applies f to key's buckets refilled up to now, and returns them
// after it.
func (s *MemStore) change(op string, key Target, now time.Time, f func(k *memKey) error) (Buckets, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.at(op, key, now)
	if err != nil {
		return Buckets{}, err
	}
	if err := f(k); err != nil {
		return Buckets{}, err
	}
	return k.Buckets, nil
}

// Give implements Store.
func (s *MemStore) Give(_ context.Context, key Target, now time.Time, tokens float64, requests int) (Buckets, error) {
	if err := CheckGive("Give", key, tokens, requests); err != nil {
		return Buckets{}, err
	}
	return s.change("Give", key, now, func(k *memKey) error {
		k.giveBack(tokens, requests)
		return nil
	})
}

// giveBack gives back tokens and requests.
func (k *memKey) giveBack(tokens float64, requests int) {
	k.give(tokens)
	for range requests {
		k.giveRequest()
	}
}

// Take implements Store.
func (s *MemStore) Take(_ context.Context, key Target, now time.Time, tokens float64, lease Lease) (Buckets, error) {
	if err := CheckTake(key, tokens, lease); err != nil {
		return Buckets{}, err
	}
	return s.change("Take", key, now, func(k *memKey) error {
		_, err := k.take(key, tokens, lease, false)
		return err
	})
}

// TakeIfRoom implements Store.
func (s *MemStore) TakeIfRoom(_ context.Context, key Target, now time.Time, tokens float64, lease Lease) (Buckets, bool, error) {
	if err := CheckTake(key, tokens, lease); err != nil {
		return Buckets{}, false, err
	}
	var took bool
	b, err := s.change("TakeIfRoom", key, now, func(k *memKey) (err error) {
		took, err = k.take(key, tokens, lease, true)
		return err
	})
	return b, took, err
}

// take takes tokens and one request, holding them under lease, and reports
// whether it did: with ifRoom, only if the call fits. A lease ID already
// live is an error, room or not.
func (k *memKey) take(key Target, tokens float64, lease Lease, ifRoom bool) (bool, error) {
	if _, dup := k.leases[lease.ID]; dup && !lease.ID.IsZero() {
		return false, fmt.Errorf("admission: Store.Take(%s): lease %v is already live", key, lease.ID)
	}
	if ifRoom && !k.room(tokens) {
		return false, nil
	}
	if !lease.ID.IsZero() {
		if k.leases == nil {
			k.leases = make(map[LeaseID]Lease)
		}
		k.leases[lease.ID] = lease
		if k.soonest.IsZero() || lease.Until.Before(k.soonest) {
			k.soonest = lease.Until
		}
	}
	k.reserve(tokens)
	return true, nil
}

// End implements Store.
func (s *MemStore) End(_ context.Context, key Target, now time.Time, id LeaseID, tokens float64, requests int) (Buckets, bool, error) {
	if err := CheckGive("End", key, tokens, requests); err != nil {
		return Buckets{}, false, err
	}
	var live bool
	b, err := s.change("End", key, now, func(k *memKey) error {
		if _, live = k.leases[id]; live {
			delete(k.leases, id)
			k.giveBack(tokens, requests)
		}
		return nil
	})
	return b, live, err
}

// Drain implements Store.
func (s *MemStore) Drain(_ context.Context, key Target, now time.Time) (float64, Buckets, error) {
	var took float64
	b, err := s.change("Drain", key, now, func(k *memKey) error {
		if !k.unlimited() {
			took = k.drain()
			k.Drains++
			k.DrainedAt = now
		}
		return nil
	})
	return took, b, err
}

// SetLimit implements Store.
func (s *MemStore) SetLimit(_ context.Context, key Target, now time.Time, tokensPerMinute float64) (Buckets, error) {
	if err := CheckLimit(key, tokensPerMinute); err != nil {
		return Buckets{}, err
	}
	return s.change("SetLimit", key, now, func(k *memKey) error { k.resize(tokensPerMinute); return nil })
}

// SetBurst implements Store.
func (s *MemStore) SetBurst(_ context.Context, key Target, now time.Time, tokens float64) (Buckets, error) {
	if err := CheckBurst(key, tokens); err != nil {
		return Buckets{}, err
	}
	return s.change("SetBurst", key, now, func(k *memKey) error { k.Burst = tokens; return nil })
}

// Level implements Store.
func (s *MemStore) Level(_ context.Context, key Target, now time.Time) (Buckets, error) {
	return s.change("Level", key, now, func(*memKey) error { return nil })
}

// Forget implements Store.
func (s *MemStore) Forget(_ context.Context, key Target) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}
