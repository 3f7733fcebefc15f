package admission

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

var errBackend = errors.New("backend down")

// failingStore is a MemStore whose operation named fail returns errBackend
// and changes nothing.
type failingStore struct {
	MemStore
	fail string
}

func (s *failingStore) Take(ctx context.Context, key Target, now time.Time, tokens float64, lease Lease) (Buckets, error) {
	if s.fail == "Take" {
		return Buckets{}, errBackend
	}
	return s.MemStore.Take(ctx, key, now, tokens, lease)
}

func (s *failingStore) TakeIfRoom(ctx context.Context, key Target, now time.Time, tokens float64, lease Lease) (Buckets, bool, error) {
	if s.fail == "Take" {
		return Buckets{}, false, errBackend
	}
	return s.MemStore.TakeIfRoom(ctx, key, now, tokens, lease)
}

func (s *failingStore) Give(ctx context.Context, key Target, now time.Time, tokens float64, requests int) (Buckets, error) {
	if s.fail == "Give" {
		return Buckets{}, errBackend
	}
	return s.MemStore.Give(ctx, key, now, tokens, requests)
}

func (s *failingStore) End(ctx context.Context, key Target, now time.Time, id LeaseID, tokens float64, requests int) (Buckets, bool, error) {
	if s.fail == "End" {
		return Buckets{}, false, errBackend
	}
	return s.MemStore.End(ctx, key, now, id, tokens, requests)
}

func (s *failingStore) Level(ctx context.Context, key Target, now time.Time) (Buckets, error) {
	if s.fail == "Level" {
		return Buckets{}, errBackend
	}
	return s.MemStore.Level(ctx, key, now)
}

// TestStoreHoldsTheBuckets: what a limiter takes and gives back is in the
// Governor's Store, keyed by the target, and a Store's failure is counted
// and told by StoreErr, not hidden, while the limiter goes on with the
// buckets it last read.
func TestStoreHoldsTheBuckets(t *testing.T) {
	tests := []struct {
		name  string
		fail  string  // the Store operation that fails; "": none
		after float64 // the store's token level after Admit and Settle
		errs  int64   // failures StoreErr counts
	}{
		{name: "no failure: the hold is taken, the unused part given back", after: 60000 - 1500},
		{name: "Take fails: nothing taken, nothing given back", fail: "Take", after: 60000, errs: 1},
		{name: "End fails: the hold stays taken", fail: "End", after: 60000 - 5346, errs: 1},                  // the input corrected up at first
		{name: "Level fails: the changes still reach the store", fail: "Level", after: 60000 - 1500, errs: 3}, // at New, TryAdmit and Settle; the dispatch after End reads none
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, known(60000))
			s := &failingStore{fail: tt.fail}
			g.store = s
			tk := mustTry(t, g, haiku, Estimate{InputTokens: 1000}) // holds 1250 + 4096
			tk.Settle(Usage{InputTokens: 1000, OutputTokens: 500})
			s.fail = ""
			b, err := s.Level(context.Background(), haiku, clk.Now())
			if err != nil || math.Abs(b.Tokens-tt.after) > 1e-9 {
				t.Errorf("store's level %+v, %v; want %v tokens", b, err, tt.after)
			}
			n, err := g.StoreErr()
			if n != tt.errs || (tt.errs > 0) != errors.Is(err, errBackend) {
				t.Errorf("StoreErr() = %d, %v; want %d failures of %v", n, err, tt.errs, errBackend)
			}
		})
	}
}
