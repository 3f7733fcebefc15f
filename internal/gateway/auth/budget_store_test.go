package auth

import (
	"context"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/admission/redisstore"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// leaseStore is a MemStore that records the leases taken and ended; with
// expired, every lease has expired (End finds none live).
type leaseStore struct {
	admission.MemStore
	expired bool
	taken   []admission.Lease
	ended   []float64 // what each End gave back
	given   []float64 // what each Give gave back
}

func (s *leaseStore) Take(ctx context.Context, key admission.Target, now time.Time, tokens float64, l admission.Lease) (admission.Buckets, error) {
	s.taken = append(s.taken, l)
	return s.MemStore.Take(ctx, key, now, tokens, l)
}

func (s *leaseStore) End(ctx context.Context, key admission.Target, now time.Time, id admission.LeaseID, tokens float64, requests int) (admission.Buckets, bool, error) {
	s.ended = append(s.ended, tokens)
	if s.expired {
		b, err := s.MemStore.Level(ctx, key, now)
		return b, false, err
	}
	return s.MemStore.End(ctx, key, now, id, tokens, requests)
}

func (s *leaseStore) Give(ctx context.Context, key admission.Target, now time.Time, tokens float64, requests int) (admission.Buckets, error) {
	s.given = append(s.given, tokens)
	return s.MemStore.Give(ctx, key, now, tokens, requests)
}

// TestBudgetLease: each reservation is held under a lease of its own:
// Reserve's gives nothing back at expiry, ReserveInput's the max tokens;
// release ends it, and gives only what is still due when it expired.
func TestBudgetLease(t *testing.T) {
	tests := []struct {
		name       string
		input      int // -1: Reserve(400)
		expired    bool
		wantRefund float64
		wantGiven  []float64
	}{
		{name: "reserve", input: -1, wantRefund: 0},
		{name: "reserve with its input", input: 100, wantRefund: 300},
		{name: "expired: the rest given back", input: 100, expired: true, wantRefund: 300, wantGiven: []float64{400 - 150 - 300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(now)
			s := &leaseStore{expired: tt.expired}
			b, err := NewBudgetsIn(budgetCallers(), clk, s)
			if err != nil {
				t.Fatal(err)
			}
			var release func(int)
			if tt.input < 0 {
				release, err = b.Reserve(context.Background(), "small", 400)
			} else {
				release, err = b.ReserveInput(context.Background(), "small", tt.input, 400-tt.input)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.taken) != 1 || s.taken[0].ID.IsZero() || s.taken[0].Refund != tt.wantRefund || !s.taken[0].Until.Equal(now.Add(admission.LeaseDefault)) {
				t.Fatalf("leases %+v; want one with Refund %v until now+%v", s.taken, tt.wantRefund, admission.LeaseDefault)
			}
			release(150)
			release(0)
			if len(s.ended) != 1 || s.ended[0] != 250 || len(s.given) != len(tt.wantGiven) || (len(s.given) == 1 && s.given[0] != tt.wantGiven[0]) {
				t.Fatalf("ended giving %v, then gave %v; want 250, then %v", s.ended, s.given, tt.wantGiven)
			}
		})
	}
}

// TestBudgetsShared: two processes' Budgets on one Redis draw on one
// budget per caller.
func TestBudgetsShared(t *testing.T) {
	srv := redistest.Start(t)
	clk := clock.NewFake(now)
	var bs [2]*Budgets
	for i := range bs {
		c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if bs[i], err = NewBudgetsIn(budgetCallers(), clk, redisstore.New(c, redisstore.Options{CallerTime: true})); err != nil {
			t.Fatal(err)
		}
	}
	reserveNow(t, bs[0], 600)
	granted := make(chan error, 1)
	go func() {
		_, err := bs[1].Reserve(context.Background(), "small", 100) // the other's budget is spent: 10 s
		granted <- err
	}()
	clk.WaitForTimers(1)
	if got := level(bs[0], "small"); got != -100 {
		t.Fatalf("level %v seen by the first while the second waits; want -100", got)
	}
	clk.Advance(10 * time.Second)
	if err := <-granted; err != nil {
		t.Fatal(err)
	}
}
