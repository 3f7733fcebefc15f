// Package storetest checks that an admission.Store keeps the Store
// contract: a backend passes Run, as admission.MemStore does. Every case
// passes its own times to the Store, so no clock is needed.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/admission"
)

// t0 is the time every case starts at; nothing compares it with the wall
// clock.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	keyA = admission.Target{Model: "storetest.model-a", Region: "us-east-1"}
	keyB = admission.Target{Model: "storetest.model-b", Region: "eu-west-1"}
)

// tol is how far a level may be from the case's figure, and tolAt how far
// a Reservation's At from the case's time: float rounding, which backends
// may do in another order.
const (
	tol   = 1e-6
	tolAt = time.Microsecond
)

// step is one operation on keyA at t0+at, and what it must return.
type step struct {
	at  time.Duration
	op  string  // "reserve", "take", "takeif", "give", "end", "drain", "limit", "burst", "level" or "peak"
	n   float64 // reserve, take, takeif, give, end: tokens; limit: tokens per minute; burst: tokens
	req int     // give, end: requests

	lease  uint64        // take, takeif: the lease's ID's N (0: none); end: the lease ended
	until  time.Duration // take, takeif: the lease's Until − t0
	refund float64       // take, takeif: the lease's Refund
	live   bool          // end: the lease was live

	ok     bool          // reserve, takeif: the call fits (takeif: and was taken)
	fitIn  time.Duration // reserve, not ok: At − t0
	want   float64       // drain: tokens taken; level: token level; peak: the peak
	drains uint64        // drain: Drains after it; its DrainedAt is then t0+at (0: not checked)
	wantRq float64       // level: request level (NaN: not checked)
}

// Run checks the Store contract on stores from newStore, one per case.
func Run(t *testing.T, newStore func(t *testing.T) admission.Store) {
	t.Run("Steps", func(t *testing.T) { runSteps(t, newStore) })
	t.Run("Errors", func(t *testing.T) { runErrors(t, newStore) })
	t.Run("Keys", func(t *testing.T) { runKeys(t, newStore) })
	t.Run("Concurrent", func(t *testing.T) { runConcurrent(t, newStore) })
}

func runSteps(t *testing.T, newStore func(t *testing.T) admission.Store) {
	nan := math.NaN()
	inf := math.Inf(1)
	tests := []struct {
		name  string
		open  admission.Buckets
		steps []step
	}{
		{name: "a full bucket grants, refills at limit/60 a second, up to capacity",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 6000},
			steps: []step{
				{op: "reserve", n: 4000, ok: true},
				{op: "level", want: 2000, wantRq: nan},
				{at: 10 * time.Second, op: "level", want: 3000, wantRq: nan},
				{at: 2 * time.Minute, op: "level", want: 6000, wantRq: nan},
			}},
		{name: "a call that does not fit takes nothing and learns when it will",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 1000},
			steps: []step{
				{op: "reserve", n: 2000, fitIn: 9999995 * time.Microsecond},
				{op: "level", want: 1000, wantRq: nan},
				{at: 9999995 * time.Microsecond, op: "reserve", n: 2000, ok: true},
			}},
		{name: "a call within a thousandth of a token fits",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 999.9995},
			steps: []step{
				{op: "reserve", n: 1000, ok: true},
				{op: "level", want: -0.0005, wantRq: nan},
			}},
		{name: "a call larger than the bucket fits when it is full, and leaves a debt",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 5000},
			steps: []step{
				{op: "reserve", n: 10000, fitIn: 9999995 * time.Microsecond},
				{at: 10 * time.Second, op: "reserve", n: 10000, ok: true},
				{at: 10 * time.Second, op: "level", want: -4000, wantRq: nan},
				{at: 10 * time.Second, op: "reserve", n: 100, fitIn: 10*time.Second + 40999995*time.Microsecond},
				{at: 20 * time.Second, op: "level", want: -3000, wantRq: nan},
			}},
		{name: "a refund beyond capacity is lost; a debit has no floor",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 5000},
			steps: []step{
				{op: "give", n: 3000},
				{op: "level", want: 6000, wantRq: nan},
				{op: "give", n: -10000},
				{op: "level", want: -4000, wantRq: nan},
			}},
		{name: "drain takes what the bucket holds and keeps a debt",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 2500},
			steps: []step{
				{op: "drain", want: 2500, drains: 1},
				{op: "level", want: 0, wantRq: nan},
				{op: "give", n: -300},
				{at: time.Millisecond, op: "drain", want: 0, drains: 2},
				{at: time.Millisecond, op: "level", want: -299.9, wantRq: nan},
			}},
		{name: "the request bucket holds a minute of requests and refills",
			open: admission.Buckets{TokensPerMinute: inf, RequestsPerMinute: 2},
			steps: []step{
				{op: "reserve", n: 1e9, ok: true},
				{op: "reserve", n: 1e9, ok: true},
				{op: "level", want: 0, wantRq: 0},
				{op: "reserve", n: 1, fitIn: 29985 * time.Millisecond},
				{at: 15 * time.Second, op: "give", req: 1},
				{at: 15 * time.Second, op: "level", want: 0, wantRq: 1.5},
				{at: 15 * time.Second, op: "give", req: 3},
				{at: 15 * time.Second, op: "level", want: 0, wantRq: 2},
			}},
		{name: "both buckets must have room; the later time is told",
			open: admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 1, Tokens: 6000},
			steps: []step{
				{op: "reserve", n: 5900, ok: true},
				{op: "reserve", n: 100, fitIn: 59970 * time.Millisecond},
				{at: 30 * time.Second, op: "reserve", n: 6000, fitIn: 59970 * time.Millisecond},
				{at: 30 * time.Second, op: "level", want: 3100, wantRq: 0.5},
				{at: 59970 * time.Millisecond, op: "reserve", n: 6000, ok: true},
				{at: 59970 * time.Millisecond, op: "reserve", n: 1, fitIn: 119970 * time.Millisecond},
			}},
		{name: "the token bucket's time is told when it is the later",
			open: admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 60},
			steps: []step{
				{op: "reserve", n: 600, fitIn: 5999995 * time.Microsecond},
				{op: "level", want: 0, wantRq: 60},
			}},
		{name: "unlimited tokens: every call fits and nothing moves",
			open: admission.Buckets{TokensPerMinute: inf},
			steps: []step{
				{op: "reserve", n: 1e12, ok: true},
				{op: "give", n: 5},
				{op: "drain", want: 0},
				{op: "level", want: 0, wantRq: 0},
			}},
		{name: "a first limit starts empty",
			open: admission.Buckets{TokensPerMinute: inf},
			steps: []step{
				{at: time.Second, op: "limit", n: 6000},
				{at: time.Second, op: "level", want: 0, wantRq: nan},
				{at: time.Second, op: "reserve", n: 100, fitIn: time.Second + 999995*time.Microsecond},
				{at: 3 * time.Second, op: "level", want: 200, wantRq: nan},
			}},
		{name: "a lower limit keeps the level until time passes, then cuts it to capacity",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 6000},
			steps: []step{
				{op: "limit", n: 3000},
				{op: "level", want: 6000, wantRq: nan},
				{at: time.Millisecond, op: "level", want: 3000, wantRq: nan},
				{at: time.Millisecond, op: "limit", n: 12000},
				{at: 6001 * time.Millisecond, op: "level", want: 4200, wantRq: nan},
			}},
		{name: "a time before the last refills nothing, and time does not go back",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 0},
			steps: []step{
				{at: 10 * time.Second, op: "level", want: 1000, wantRq: nan},
				{at: 5 * time.Second, op: "reserve", n: 600, ok: true},
				{at: 5 * time.Second, op: "level", want: 400, wantRq: nan},
				{at: 11 * time.Second, op: "level", want: 500, wantRq: nan},
			}},
		{name: "take takes whatever the buckets hold, leaving debts",
			open: admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 1, Tokens: 100},
			steps: []step{
				{op: "take", n: 500},
				{op: "level", want: -400, wantRq: 0},
				{op: "take", n: 10},
				{op: "level", want: -410, wantRq: -1},
				{op: "reserve", n: 1, fitIn: 119970 * time.Millisecond},
			}},
		{name: "take with unlimited tokens takes only the request",
			open: admission.Buckets{TokensPerMinute: inf, RequestsPerMinute: 60},
			steps: []step{
				{op: "take", n: 1e9},
				{op: "level", want: 0, wantRq: 59},
			}},
		{name: "a burst caps the token bucket once time passes; 0 clears it",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 6000},
			steps: []step{
				{op: "burst", n: 1000},
				{op: "level", want: 6000, wantRq: nan},
				{at: time.Millisecond, op: "level", want: 1000, wantRq: nan},
				{at: time.Millisecond, op: "reserve", n: 3000, ok: true},
				{at: time.Millisecond, op: "reserve", n: 3000, fitIn: 30000995 * time.Microsecond},
				{at: 31 * time.Second, op: "level", want: 1000, wantRq: nan},
				{at: 31 * time.Second, op: "burst", n: 0},
				{at: 41 * time.Second, op: "level", want: 2000, wantRq: nan},
			}},
		{name: "a burst above the limit caps nothing",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 5000},
			steps: []step{
				{op: "burst", n: 9000},
				{at: time.Minute, op: "level", want: 6000, wantRq: nan},
			}},
		{name: "the peak is the highest level a refill or give left since the last drain",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 1000},
			steps: []step{
				{op: "peak", want: 0},
				{at: 10 * time.Second, op: "peak", want: 2000},
				{at: 10 * time.Second, op: "reserve", n: 1500, ok: true},
				{at: 10 * time.Second, op: "give", n: 200},
				{at: 10 * time.Second, op: "peak", want: 2000},
				{at: 10 * time.Second, op: "drain", want: 700},
				{at: 10 * time.Second, op: "peak", want: 0},
				{at: 10 * time.Second, op: "give", n: -300},
				{at: 10 * time.Second, op: "peak", want: 0},
				{at: 10 * time.Second, op: "drain", want: 0},
				{at: 10 * time.Second, op: "peak", want: -300},
				{at: 12 * time.Second, op: "peak", want: -100},
			}},
		{name: "unlimited tokens keep no peak",
			open: admission.Buckets{TokensPerMinute: inf},
			steps: []step{
				{op: "give", n: 500},
				{at: time.Minute, op: "peak", want: 0},
			}},
		{name: "a lease that expires gives back its refund, once, and not its request",
			open: admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 60, Tokens: 6000},
			steps: []step{
				{op: "take", n: 5000, lease: 1, until: 10 * time.Second, refund: 4000},
				{at: 10 * time.Second, op: "level", want: 2000, wantRq: 60},
				{at: 10*time.Second + time.Microsecond, op: "level", want: 6000, wantRq: 60},
				{at: 20 * time.Second, op: "take", n: 5000},
				{at: 30 * time.Second, op: "level", want: 2000, wantRq: 60},
				{at: 30 * time.Second, op: "end", lease: 1, n: 5000, req: 1},
				{at: 30 * time.Second, op: "level", want: 2000, wantRq: 60},
			}},
		{name: "take-if-room takes a call that fits, under its lease, and nothing from one that does not",
			open: admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 60, Tokens: 1000},
			steps: []step{
				{op: "takeif", n: 999.9995, lease: 1, until: 10 * time.Second, refund: 900, ok: true},
				{op: "level", want: 0.0005, wantRq: 59},
				{op: "takeif", n: 500, lease: 3, until: 10 * time.Second, refund: 400},
				{op: "level", want: 0.0005, wantRq: 59},
				{at: 5 * time.Second, op: "takeif", n: 500, lease: 2, until: 10 * time.Second, refund: 400, ok: true},
				{at: 5 * time.Second, op: "level", want: 0.0005, wantRq: 59},
				// Leases 1 and 2 expire: their refunds come back. Lease 3,
				// whose call was not taken, was never held: ending it
				// changes nothing.
				{at: 11 * time.Second, op: "end", lease: 3, n: 500, req: 1},
				{at: 11 * time.Second, op: "level", want: 1900.0005, wantRq: 60},
			}},
		{name: "take-if-room: a call larger than the bucket fits when it is full; no request, no room",
			open: admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 1, Tokens: 6000},
			steps: []step{
				{op: "takeif", n: 10000, ok: true},
				{op: "level", want: -4000, wantRq: 0},
				{at: 2 * time.Minute, op: "level", want: 6000, wantRq: 1},
				{at: 2 * time.Minute, op: "reserve", n: 1, ok: true},
				{at: 2 * time.Minute, op: "takeif", n: 1},
				{at: 2 * time.Minute, op: "level", want: 5999, wantRq: 0},
			}},
		{name: "a lease's refund goes back up to the capacity",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 6000},
			steps: []step{
				{op: "take", n: 1000, lease: 1, until: time.Second, refund: 900},
				{at: 2 * time.Second, op: "level", want: 6000, wantRq: nan},
			}},
		{name: "an ended lease is never refunded; ending twice or an unknown lease changes nothing",
			open: admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 6, Tokens: 6000},
			steps: []step{
				{op: "take", n: 5000, lease: 1, until: 10 * time.Second, refund: 4000},
				{at: 5 * time.Second, op: "end", lease: 1, n: 3000, req: 0, live: true},
				{at: 5 * time.Second, op: "level", want: 4500, wantRq: 5.5},
				{at: 5 * time.Second, op: "end", lease: 1, n: 3000, req: 1},
				{at: 5 * time.Second, op: "end", lease: 99, n: 3000, req: 1},
				{at: 5 * time.Second, op: "end", lease: 0, n: 3000, req: 1},
				{at: 5 * time.Second, op: "level", want: 4500, wantRq: 5.5},
				{at: 11 * time.Second, op: "level", want: 5100, wantRq: 6},
			}},
		{name: "an ended lease gives back a debit and requests",
			open: admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 60, Tokens: 6000},
			steps: []step{
				{op: "take", n: 1000, lease: 1, until: time.Minute},
				{op: "end", lease: 1, n: -500, req: 1, live: true},
				{op: "level", want: 4500, wantRq: 60},
			}},
		{name: "many leases expire each at its own time; an ID may be taken again once ended",
			open: admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 60, Tokens: 0},
			steps: []step{
				{op: "take", n: 100, lease: 1, until: 3 * time.Second, refund: 30},
				{op: "take", n: 100, lease: 2, until: time.Second, refund: 10},
				{op: "take", n: 100, lease: 3, until: 2 * time.Second, refund: 20},
				{op: "take", n: 100, lease: 4, until: 4 * time.Second, refund: 40},
				{op: "level", want: -400, wantRq: 56},
				{at: 1500 * time.Millisecond, op: "level", want: -400 + 150 + 10, wantRq: nan},
				{at: 2500 * time.Millisecond, op: "level", want: -400 + 250 + 30, wantRq: nan},
				{at: 2500 * time.Millisecond, op: "end", lease: 2, n: 100},
				{at: 2500 * time.Millisecond, op: "end", lease: 1, n: 100, live: true},
				{at: 2500 * time.Millisecond, op: "take", n: 100, lease: 1, until: 5 * time.Second, refund: 50},
				{at: 2500 * time.Millisecond, op: "level", want: -400 + 250 + 30, wantRq: nan},
				{at: 6 * time.Second, op: "level", want: -400 + 600 + 30 + 40 + 50, wantRq: nan},
			}},
		{name: "a take without a lease holds nothing to expire",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 6000},
			steps: []step{
				{op: "take", n: 1000},
				{at: time.Hour, op: "end", lease: 0, n: 1000},
				{at: time.Hour, op: "level", want: 6000, wantRq: nan},
			}},
		{name: "open puts at most a full bucket in",
			open: admission.Buckets{TokensPerMinute: 6000, Tokens: 9000, RequestsPerMinute: 3},
			steps: []step{
				{op: "level", want: 6000, wantRq: 3},
			}},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if err := s.Open(ctx, keyA, t0, tt.open); err != nil {
				t.Fatalf("Open(%+v): %v", tt.open, err)
			}
			for i, st := range tt.steps {
				now := t0.Add(st.at)
				switch st.op {
				case "reserve":
					r, err := s.Reserve(ctx, keyA, now, st.n)
					want := admission.Reservation{OK: st.ok, At: t0.Add(st.fitIn)}
					if st.ok {
						want.At = now
					}
					if err != nil || r.OK != want.OK || r.At.Sub(want.At).Abs() > tolAt {
						t.Fatalf("step %d: Reserve(%v) at +%v = {%v +%v}, %v; want {%v +%v}", i, st.n, st.at, r.OK, r.At.Sub(t0), err, want.OK, want.At.Sub(t0))
					}
				case "take":
					l := admission.Lease{ID: leaseID(st.lease), Until: t0.Add(st.until), Refund: st.refund}
					b, err := s.Take(ctx, keyA, now, st.n, l)
					changed(t, s, i, fmt.Sprintf("Take(%v, %+v)", st.n, l), now, b, err)
				case "takeif":
					l := admission.Lease{ID: leaseID(st.lease), Until: t0.Add(st.until), Refund: st.refund}
					b, took, err := s.TakeIfRoom(ctx, keyA, now, st.n, l)
					if err == nil && took != st.ok {
						t.Fatalf("step %d: TakeIfRoom(%v) at +%v took %v; want %v", i, st.n, st.at, took, st.ok)
					}
					changed(t, s, i, fmt.Sprintf("TakeIfRoom(%v, %+v)", st.n, l), now, b, err)
				case "end":
					b, live, err := s.End(ctx, keyA, now, leaseID(st.lease), st.n, st.req)
					if err == nil && live != st.live {
						t.Fatalf("step %d: End(%d) at +%v: live %v; want %v", i, st.lease, st.at, live, st.live)
					}
					changed(t, s, i, fmt.Sprintf("End(%d, %v, %d)", st.lease, st.n, st.req), now, b, err)
				case "give":
					b, err := s.Give(ctx, keyA, now, st.n, st.req)
					changed(t, s, i, fmt.Sprintf("Give(%v, %d)", st.n, st.req), now, b, err)
				case "drain":
					got, b, err := s.Drain(ctx, keyA, now)
					if err == nil && math.Abs(got-st.want) > tol {
						t.Fatalf("step %d: Drain at +%v took %v; want %v", i, st.at, got, st.want)
					}
					if err == nil && st.drains > 0 && (b.Drains != st.drains || b.DrainedAt.Sub(now).Abs() > tolAt) {
						t.Fatalf("step %d: Drain at +%v left Drains %d at %v; want %d at +%v", i, st.at, b.Drains, b.DrainedAt, st.drains, st.at)
					}
					changed(t, s, i, "Drain", now, b, err)
				case "limit":
					b, err := s.SetLimit(ctx, keyA, now, st.n)
					changed(t, s, i, fmt.Sprintf("SetLimit(%v)", st.n), now, b, err)
				case "burst":
					b, err := s.SetBurst(ctx, keyA, now, st.n)
					changed(t, s, i, fmt.Sprintf("SetBurst(%v)", st.n), now, b, err)
				case "peak":
					b, err := s.Level(ctx, keyA, now)
					if err != nil || math.Abs(b.Peak-st.want) > tol {
						t.Fatalf("step %d: Level at +%v = %+v, %v; want peak %v", i, st.at, b, err, st.want)
					}
				case "level":
					b, err := s.Level(ctx, keyA, now)
					if err != nil || math.Abs(b.Tokens-st.want) > tol || (!math.IsNaN(st.wantRq) && math.Abs(b.Requests-st.wantRq) > tol) {
						t.Fatalf("step %d: Level at +%v = %+v, %v; want tokens %v, requests %v", i, st.at, b, err, st.want, st.wantRq)
					}
				default:
					t.Fatalf("step %d: unknown op %q", i, st.op)
				}
			}
		})
	}
}

// changed fails the test when the change op at step i failed, or returned
// buckets other than what Level then returns.
func changed(t *testing.T, s admission.Store, i int, op string, now time.Time, b admission.Buckets, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("step %d: %s: %v", i, op, err)
	}
	l, err := s.Level(context.Background(), keyA, now)
	if err != nil {
		t.Fatalf("step %d: Level after %s: %v", i, op, err)
	}
	for _, f := range [][2]float64{{b.TokensPerMinute, l.TokensPerMinute}, {b.RequestsPerMinute, l.RequestsPerMinute},
		{b.Tokens, l.Tokens}, {b.Requests, l.Requests}, {b.Burst, l.Burst}, {b.Peak, l.Peak}} {
		if f[0] != f[1] && !(math.Abs(f[0]-f[1]) <= tol) {
			t.Fatalf("step %d: %s returned %+v; Level then %+v", i, op, b, l)
		}
	}
	if b.Drains != l.Drains || b.DrainedAt.Sub(l.DrainedAt).Abs() > tolAt {
		t.Fatalf("step %d: %s returned %+v; Level then %+v", i, op, b, l)
	}
}

func runErrors(t *testing.T, newStore func(t *testing.T) admission.Store) {
	ctx := context.Background()
	full := admission.Buckets{TokensPerMinute: 6000, Tokens: 6000}
	tests := []struct {
		name      string
		do        func(s admission.Store) error
		noBucket  bool
		unchanged bool // keyA still holds a full bucket
	}{
		{name: "reserve on an unopened key", noBucket: true, do: func(s admission.Store) error {
			_, err := s.Reserve(ctx, keyB, t0, 1)
			return err
		}},
		{name: "take on an unopened key", noBucket: true, do: func(s admission.Store) error { return second(s.Take(ctx, keyB, t0, 1, admission.Lease{})) }},
		{name: "take-if-room on an unopened key", noBucket: true, do: func(s admission.Store) error {
			_, _, err := s.TakeIfRoom(ctx, keyB, t0, 1, admission.Lease{})
			return err
		}},
		{name: "NaN take-if-room", unchanged: true, do: func(s admission.Store) error {
			_, _, err := s.TakeIfRoom(ctx, keyA, t0, math.NaN(), admission.Lease{})
			return err
		}},
		{name: "take-if-room with a lease ID already live", unchanged: true, do: func(s admission.Store) error {
			l := admission.Lease{ID: leaseID(1), Until: t0.Add(time.Minute)}
			if _, err := s.Take(ctx, keyA, t0, 0, l); err != nil {
				return fmt.Errorf("first Take: %v; want no error", err)
			}
			_, _, err := s.TakeIfRoom(ctx, keyA, t0, 0, l)
			return err
		}},
		{name: "take-if-room with a lease ID already live, and no room", do: func(s admission.Store) error {
			keyC := admission.Target{Model: "storetest.model-c", Region: "us-east-1"} // empty
			if err := s.Open(ctx, keyC, t0, admission.Buckets{TokensPerMinute: 6000}); err != nil {
				return fmt.Errorf("Open: %v; want no error", err)
			}
			l := admission.Lease{ID: leaseID(1), Until: t0.Add(time.Minute)}
			if _, err := s.Take(ctx, keyC, t0, 0, l); err != nil {
				return fmt.Errorf("first Take: %v; want no error", err)
			}
			_, _, err := s.TakeIfRoom(ctx, keyC, t0, 1, l)
			return err
		}},
		{name: "end on an unopened key", noBucket: true, do: func(s admission.Store) error {
			_, _, err := s.End(ctx, keyB, t0, leaseID(1), 1, 1)
			return err
		}},
		{name: "a lease without Until", unchanged: true, do: func(s admission.Store) error {
			return second(s.Take(ctx, keyA, t0, 1, admission.Lease{ID: leaseID(1)}))
		}},
		{name: "a lease with a negative refund", unchanged: true, do: func(s admission.Store) error {
			return second(s.Take(ctx, keyA, t0, 1, admission.Lease{ID: leaseID(1), Until: t0.Add(time.Minute), Refund: -1}))
		}},
		{name: "a lease with a NaN refund", unchanged: true, do: func(s admission.Store) error {
			return second(s.Take(ctx, keyA, t0, 1, admission.Lease{ID: leaseID(1), Until: t0.Add(time.Minute), Refund: math.NaN()}))
		}},
		{name: "a lease ID already live", unchanged: true, do: func(s admission.Store) error {
			l := admission.Lease{ID: leaseID(1), Until: t0.Add(time.Minute)}
			if _, err := s.Take(ctx, keyA, t0, 0, l); err != nil {
				return fmt.Errorf("first Take: %v; want no error", err)
			}
			return second(s.Take(ctx, keyA, t0, 0, l))
		}},
		{name: "NaN end", unchanged: true, do: func(s admission.Store) error {
			_, _, err := s.End(ctx, keyA, t0, leaseID(1), math.NaN(), 0)
			return err
		}},
		{name: "negative requests ended", unchanged: true, do: func(s admission.Store) error {
			_, _, err := s.End(ctx, keyA, t0, leaseID(1), 1, -1)
			return err
		}},
		{name: "burst on an unopened key", noBucket: true, do: func(s admission.Store) error { return second(s.SetBurst(ctx, keyB, t0, 1)) }},
		{name: "give on an unopened key", noBucket: true, do: func(s admission.Store) error { return second(s.Give(ctx, keyB, t0, 1, 0)) }},
		{name: "drain on an unopened key", noBucket: true, do: func(s admission.Store) error {
			_, _, err := s.Drain(ctx, keyB, t0)
			return err
		}},
		{name: "limit on an unopened key", noBucket: true, do: func(s admission.Store) error { return second(s.SetLimit(ctx, keyB, t0, 10)) }},
		{name: "level of an unopened key", noBucket: true, do: func(s admission.Store) error {
			_, err := s.Level(ctx, keyB, t0)
			return err
		}},
		{name: "negative reserve", unchanged: true, do: func(s admission.Store) error {
			_, err := s.Reserve(ctx, keyA, t0, -1)
			return err
		}},
		{name: "NaN reserve", unchanged: true, do: func(s admission.Store) error {
			_, err := s.Reserve(ctx, keyA, t0, math.NaN())
			return err
		}},
		{name: "negative take", unchanged: true, do: func(s admission.Store) error { return second(s.Take(ctx, keyA, t0, -1, admission.Lease{})) }},
		{name: "NaN take", unchanged: true, do: func(s admission.Store) error {
			return second(s.Take(ctx, keyA, t0, math.NaN(), admission.Lease{}))
		}},
		{name: "negative burst", unchanged: true, do: func(s admission.Store) error { return second(s.SetBurst(ctx, keyA, t0, -1)) }},
		{name: "NaN burst", unchanged: true, do: func(s admission.Store) error { return second(s.SetBurst(ctx, keyA, t0, math.NaN())) }},
		{name: "NaN give", unchanged: true, do: func(s admission.Store) error { return second(s.Give(ctx, keyA, t0, math.NaN(), 0)) }},
		{name: "negative requests given", unchanged: true, do: func(s admission.Store) error { return second(s.Give(ctx, keyA, t0, -5, -1)) }},
		{name: "zero limit", unchanged: true, do: func(s admission.Store) error { return second(s.SetLimit(ctx, keyA, t0, 0)) }},
		{name: "negative limit", unchanged: true, do: func(s admission.Store) error { return second(s.SetLimit(ctx, keyA, t0, -6000)) }},
		{name: "NaN limit", unchanged: true, do: func(s admission.Store) error { return second(s.SetLimit(ctx, keyA, t0, math.NaN())) }},
		{name: "open with a zero limit", do: func(s admission.Store) error {
			return s.Open(ctx, keyB, t0, admission.Buckets{})
		}},
		{name: "open with negative requests", do: func(s admission.Store) error {
			return s.Open(ctx, keyB, t0, admission.Buckets{TokensPerMinute: 10, RequestsPerMinute: -1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if err := s.Open(ctx, keyA, t0, full); err != nil {
				t.Fatal(err)
			}
			err := tt.do(s)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, admission.ErrNoBucket) != tt.noBucket {
				t.Fatalf("error %q: matches ErrNoBucket %v, want %v", err, !tt.noBucket, tt.noBucket)
			}
			if b, err := s.Level(ctx, keyA, t0); err != nil || b.Tokens != 6000 {
				t.Fatalf("after the error, Level = %+v, %v; want a full bucket", b, err)
			}
			if _, err := s.Level(ctx, keyB, t0); !errors.Is(err, admission.ErrNoBucket) {
				t.Fatalf("after the error, Level(keyB) = %v; want ErrNoBucket", err)
			}
		})
	}
}

// leaseID returns the n-th lease's ID; 0: none.
func leaseID(n uint64) admission.LeaseID {
	if n == 0 {
		return admission.LeaseID{}
	}
	return admission.LeaseID{Owner: 0x5707e, N: n}
}

// second returns a change's error.
func second(_ admission.Buckets, err error) error { return err }

// runKeys checks that keys are independent and that opening a key twice
// keeps its state.
func runKeys(t *testing.T, newStore func(t *testing.T) admission.Store) {
	ctx := context.Background()
	s := newStore(t)
	for _, k := range []admission.Target{keyA, keyB} {
		if err := s.Open(ctx, k, t0, admission.Buckets{TokensPerMinute: 6000, Tokens: 6000}); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := s.Reserve(ctx, keyA, t0, 5000); err != nil || !r.OK {
		t.Fatalf("Reserve = %+v, %v", r, err)
	}
	if err := s.Open(ctx, keyA, t0, admission.Buckets{TokensPerMinute: 100, Tokens: 100}); err != nil {
		t.Fatal(err)
	}
	a, errA := s.Level(ctx, keyA, t0)
	b, errB := s.Level(ctx, keyB, t0)
	if errA != nil || errB != nil || a.Tokens != 1000 || a.TokensPerMinute != 6000 || b.Tokens != 6000 {
		t.Fatalf("levels %+v (%v), %+v (%v); want keyA 1000 of 6000 (a second Open changes nothing), keyB 6000", a, errA, b, errB)
	}
	// Forget drops keyA's buckets, and only those; Open then makes them
	// anew. Forgetting a key without buckets is no error.
	if err := s.Forget(ctx, keyA); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Level(ctx, keyA, t0); !errors.Is(err, admission.ErrNoBucket) {
		t.Fatalf("Level after Forget: %v, want ErrNoBucket", err)
	}
	if err := s.Forget(ctx, keyA); err != nil {
		t.Fatalf("Forget of a forgotten key: %v", err)
	}
	if err := s.Open(ctx, keyA, t0, admission.Buckets{TokensPerMinute: 100, Tokens: 100}); err != nil {
		t.Fatal(err)
	}
	a, errA = s.Level(ctx, keyA, t0)
	b, errB = s.Level(ctx, keyB, t0)
	if errA != nil || errB != nil || a.Tokens != 100 || a.TokensPerMinute != 100 || b.Tokens != 6000 {
		t.Fatalf("after Forget and Open: %+v (%v), %+v (%v); want keyA 100 of 100, keyB 6000", a, errA, b, errB)
	}
}

// runConcurrent reserves from many goroutines at one time: exactly as many
// calls as the bucket holds get through.
func runConcurrent(t *testing.T, newStore func(t *testing.T) admission.Store) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Open(ctx, keyA, t0, admission.Buckets{TokensPerMinute: 6000, RequestsPerMinute: 50, Tokens: 6000}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 100 {
		wg.Go(func() {
			r, err := s.Reserve(ctx, keyA, t0, 100)
			if err != nil {
				t.Error(err)
				return
			}
			if r.OK {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if granted != 50 {
		t.Fatalf("%d of 100 concurrent calls granted; want 50 (the request bucket)", granted)
	}
	if b, err := s.Level(ctx, keyA, t0); err != nil || math.Abs(b.Tokens-1000) > tol || math.Abs(b.Requests) > tol {
		t.Fatalf("Level = %+v, %v; want 1000 tokens, 0 requests", b, err)
	}
}
