package admission

import (
	"context"
	"math"
	"testing"
	"time"
)

// leaseStore is a MemStore that records the leases taken and ended, and
// the tokens given back outside them; with expired, every lease has
// expired (End finds none live).
type leaseStore struct {
	MemStore
	expired bool
	taken   []Lease
	ended   []LeaseID
	endTok  []float64
	given   []float64
}

func (s *leaseStore) Take(ctx context.Context, key Target, now time.Time, tokens float64, lease Lease) (Buckets, error) {
	s.taken = append(s.taken, lease)
	return s.MemStore.Take(ctx, key, now, tokens, lease)
}

func (s *leaseStore) TakeIfRoom(ctx context.Context, key Target, now time.Time, tokens float64, lease Lease) (Buckets, bool, error) {
	b, took, err := s.MemStore.TakeIfRoom(ctx, key, now, tokens, lease)
	if took {
		s.taken = append(s.taken, lease)
	}
	return b, took, err
}

func (s *leaseStore) End(ctx context.Context, key Target, now time.Time, id LeaseID, tokens float64, requests int) (Buckets, bool, error) {
	s.ended = append(s.ended, id)
	s.endTok = append(s.endTok, tokens)
	if s.expired {
		b, err := s.MemStore.Level(ctx, key, now)
		return b, false, err
	}
	return s.MemStore.End(ctx, key, now, id, tokens, requests)
}

func (s *leaseStore) Give(ctx context.Context, key Target, now time.Time, tokens float64, requests int) (Buckets, error) {
	s.given = append(s.given, tokens)
	return s.MemStore.Give(ctx, key, now, tokens, requests)
}

// TestTicketLease: each Ticket holds its call under a lease of its own,
// whose Refund is its hold less its input, and which lasts LeaseDefault
// without a deadline; each end of the Ticket ends the lease, and when the
// lease had expired (and given back its Refund) only the rest is given
// back.
func TestTicketLease(t *testing.T) {
	const hold, input = 1250 + 4096, 1250 // Haiku's default max tokens; the input corrected up at first
	tests := []struct {
		name      string
		end       func(tk *Ticket)
		expired   bool
		wantEnd   float64 // tokens End gives back
		wantGiven []float64
	}{
		{name: "settle", end: func(tk *Ticket) { tk.Settle(Usage{InputTokens: 1000, OutputTokens: 500}) }, wantEnd: hold - 1500},
		{name: "cancel", end: func(tk *Ticket) { tk.Cancel() }, wantEnd: hold},
		{name: "throttled", end: func(tk *Ticket) { tk.Throttled() }, wantEnd: hold},
		{name: "settle after expiry: the output's cost is taken", expired: true,
			end: func(tk *Ticket) { tk.Settle(Usage{InputTokens: 1000, OutputTokens: 500}) }, wantEnd: hold - 1500,
			wantGiven: []float64{(hold - 1500) - (hold - input)}},
		{name: "cancel after expiry: the input comes back", expired: true,
			end: func(tk *Ticket) { tk.Cancel() }, wantEnd: hold, wantGiven: []float64{input}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, clk := newGov(t, known(60000))
			s := &leaseStore{expired: tt.expired}
			g.store = s
			a := mustTry(t, g, haiku, Estimate{InputTokens: 1000})
			b := mustTry(t, g, haiku, Estimate{InputTokens: 1000})
			if len(s.taken) != 2 || s.taken[0].ID == s.taken[1].ID || s.taken[0].ID.IsZero() {
				t.Fatalf("leases taken %+v; want two of their own", s.taken)
			}
			if l := s.taken[0]; !l.Until.Equal(clk.Now().Add(LeaseDefault)) || math.Abs(l.Refund-(hold-input)) > 1e-9 {
				t.Fatalf("lease %+v; want Until now+%v, Refund %v", l, LeaseDefault, hold-input)
			}
			tt.end(&a)
			a.Cancel() // a second end does nothing
			if len(s.ended) != 1 || s.ended[0] != s.taken[0].ID || math.Abs(s.endTok[0]-tt.wantEnd) > 1e-9 {
				t.Fatalf("ended %v giving %v; want lease %v giving %v", s.ended, s.endTok, s.taken[0].ID, tt.wantEnd)
			}
			if len(s.given) != len(tt.wantGiven) || (len(s.given) > 0 && math.Abs(s.given[0]-tt.wantGiven[0]) > 1e-9) {
				t.Fatalf("given outside the lease %v; want %v", s.given, tt.wantGiven)
			}
			b.Cancel()
		})
	}
}

// TestTicketLeaseDeadline: a call with a deadline holds a lease until the
// deadline and LeaseMargin.
func TestTicketLeaseDeadline(t *testing.T) {
	t.Run("deadline", bubble(func(t *testing.T) {
		g, _ := newBubbleGov(t, known(60000))
		s := &leaseStore{}
		g.store = s
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, _ := ctx.Deadline()
		tk, err := g.Admit(ctx, haiku, Estimate{InputTokens: 1000}, Interactive)
		if err != nil {
			t.Fatal(err)
		}
		defer tk.Cancel()
		if len(s.taken) != 1 || !s.taken[0].Until.Equal(d.Add(LeaseMargin)) {
			t.Fatalf("leases %+v; want one until %v", s.taken, d.Add(LeaseMargin))
		}
	}))
}
