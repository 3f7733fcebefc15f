package admission

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// MemStore is a Store in memory, for the Governors of one process. The zero
// MemStore is empty and ready to use; it is safe for concurrent use. Its
// arithmetic is the one a Governor applies to its own buckets.
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

// Give implements Store.
func (s *MemStore) Give(_ context.Context, key Target, now time.Time, tokens float64, requests int) error {
	switch {
	case math.IsNaN(tokens) || math.IsInf(tokens, 0):
		return fmt.Errorf("admission: Store.Give(%s): tokens %v is not a number of tokens", key, tokens)
	case requests < 0:
		return fmt.Errorf("admission: Store.Give(%s): requests %d is negative", key, requests)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.at("Give", key, now)
	if err != nil {
		return err
	}
	b.give(tokens)
	for range requests {
		b.giveRequest()
	}
	return nil
}

// Take implements Store.
func (s *MemStore) Take(_ context.Context, key Target, now time.Time, tokens float64) error {
	if !(tokens >= 0) || math.IsInf(tokens, 1) {
		return fmt.Errorf("admission: Store.Take(%s): tokens %v is not a count", key, tokens)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.at("Take", key, now)
	if err != nil {
		return err
	}
	b.reserve(tokens)
	return nil
}

// Drain implements Store.
func (s *MemStore) Drain(_ context.Context, key Target, now time.Time) (float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.at("Drain", key, now)
	if err != nil {
		return 0, err
	}
	return b.drain(), nil
}

// SetLimit implements Store.
func (s *MemStore) SetLimit(_ context.Context, key Target, now time.Time, tokensPerMinute float64) error {
	if !(tokensPerMinute > 0) {
		return fmt.Errorf("admission: Store.SetLimit(%s): tokensPerMinute %v is not positive", key, tokensPerMinute)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.at("SetLimit", key, now)
	if err != nil {
		return err
	}
	b.resize(tokensPerMinute)
	return nil
}

// SetBurst implements Store.
func (s *MemStore) SetBurst(_ context.Context, key Target, now time.Time, tokens float64) error {
	if !(tokens >= 0) || math.IsInf(tokens, 1) {
		return fmt.Errorf("admission: Store.SetBurst(%s): tokens %v is neither 0 nor a capacity", key, tokens)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.at("SetBurst", key, now)
	if err != nil {
		return err
	}
	b.Burst = tokens
	return nil
}

// Level implements Store.
func (s *MemStore) Level(_ context.Context, key Target, now time.Time) (Buckets, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.at("Level", key, now)
	if err != nil {
		return Buckets{}, err
	}
	return b.Buckets, nil
}
