package admission

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// MemStore is a Store in memory, for the Governors of one process; each
// Governor keeps its targets' buckets in a MemStore of its own. The zero
// MemStore is empty and ready to use; it is safe for concurrent use.
type MemStore struct {
	mu sync.Mutex
	m  map[Target]*bucket
}

var _ Store = (*MemStore)(nil)

// Open implements Store.
func (s *MemStore) Open(_ context.Context, key Target, now time.Time, b Buckets) error {
	switch {
	case !(b.TokensPerMinute > 0):
		return fmt.Errorf("admission: Store.Open(%s): TokensPerMinute %v is not positive", key, b.TokensPerMinute)
	case b.RequestsPerMinute < 0 || math.IsNaN(b.RequestsPerMinute) || math.IsInf(b.RequestsPerMinute, 1):
		return fmt.Errorf("admission: Store.Open(%s): RequestsPerMinute %v is not a count", key, b.RequestsPerMinute)
	case math.IsNaN(b.Tokens) || math.IsInf(b.Tokens, 0):
		return fmt.Errorf("admission: Store.Open(%s): Tokens %v is not a number of tokens", key, b.Tokens)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[Target]*bucket)
	}
	if _, ok := s.m[key]; !ok {
		nb := newBucket(now, b.TokensPerMinute, b.RequestsPerMinute, 0)
		if !nb.unlimited() {
			nb.Tokens = min(b.Tokens, b.TokensPerMinute)
		}
		s.m[key] = &nb
	}
	return nil
}

// at returns key's buckets refilled up to now. s.mu must be held.
func (s *MemStore) at(op string, key Target, now time.Time) (*bucket, error) {
	b, ok := s.m[key]
	if !ok {
		return nil, fmt.Errorf("admission: Store.%s(%s): %w", op, key, ErrNoBucket)
	}
	b.refill(now)
	return b, nil
}

// Reserve implements Store.
func (s *MemStore) Reserve(_ context.Context, key Target, now time.Time, tokens float64) (Reservation, error) {
	if !(tokens >= 0) || math.IsInf(tokens, 1) {
		return Reservation{}, fmt.Errorf("admission: Store.Reserve(%s): tokens %v is not a count", key, tokens)
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
func (s *MemStore) change(op string, key Target, now time.Time, f func(b *bucket)) (Buckets, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.at(op, key, now)
	if err != nil {
		return Buckets{}, err
	}
	f(b)
	return b.Buckets, nil
}

// Give implements Store.
func (s *MemStore) Give(_ context.Context, key Target, now time.Time, tokens float64, requests int) (Buckets, error) {
	switch {
	case math.IsNaN(tokens) || math.IsInf(tokens, 0):
		return Buckets{}, fmt.Errorf("admission: Store.Give(%s): tokens %v is not a number of tokens", key, tokens)
	case requests < 0:
		return Buckets{}, fmt.Errorf("admission: Store.Give(%s): requests %d is negative", key, requests)
	}
	return s.change("Give", key, now, func(b *bucket) {
		b.give(tokens)
		for range requests {
			b.giveRequest()
		}
	})
}

// Take implements Store.
func (s *MemStore) Take(_ context.Context, key Target, now time.Time, tokens float64) (Buckets, error) {
	if !(tokens >= 0) || math.IsInf(tokens, 1) {
		return Buckets{}, fmt.Errorf("admission: Store.Take(%s): tokens %v is not a count", key, tokens)
	}
	return s.change("Take", key, now, func(b *bucket) { b.reserve(tokens) })
}

// Drain implements Store.
func (s *MemStore) Drain(_ context.Context, key Target, now time.Time) (float64, Buckets, error) {
	var took float64
	b, err := s.change("Drain", key, now, func(b *bucket) { took = b.drain() })
	return took, b, err
}

// SetLimit implements Store.
func (s *MemStore) SetLimit(_ context.Context, key Target, now time.Time, tokensPerMinute float64) (Buckets, error) {
	if !(tokensPerMinute > 0) {
		return Buckets{}, fmt.Errorf("admission: Store.SetLimit(%s): tokensPerMinute %v is not positive", key, tokensPerMinute)
	}
	return s.change("SetLimit", key, now, func(b *bucket) { b.resize(tokensPerMinute) })
}

// SetBurst implements Store.
func (s *MemStore) SetBurst(_ context.Context, key Target, now time.Time, tokens float64) (Buckets, error) {
	if !(tokens >= 0) || math.IsInf(tokens, 1) {
		return Buckets{}, fmt.Errorf("admission: Store.SetBurst(%s): tokens %v is neither 0 nor a capacity", key, tokens)
	}
	return s.change("SetBurst", key, now, func(b *bucket) { b.Burst = tokens })
}

// Level implements Store.
func (s *MemStore) Level(_ context.Context, key Target, now time.Time) (Buckets, error) {
	return s.change("Level", key, now, func(*bucket) {})
}

// Forget implements Store.
func (s *MemStore) Forget(_ context.Context, key Target) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}
