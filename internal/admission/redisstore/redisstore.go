// Package redisstore keeps the quota governor's buckets in Redis, so that
// the Governors of several processes that share a Bedrock quota share its
// buckets (docs/redis.md). Store implements admission.Store on a
// *redisx.Client; Failover adds the fall-back to local buckets while Redis
// fails.
//
// Each key (a target) has two Redis keys in one hash slot (their hash tag is
// the target): a hash with the buckets (limits, levels, burst, peak, the
// time of the last refill, the drain count and time, and each live lease's
// refund) and a sorted set of the live leases by expiry. Every operation is
// one run of one Lua script (bucket.lua, by EVALSHA), so it is atomic and
// costs one round trip; every run that writes sets both keys to expire
// after redisx.IdleTTL without use.
//
// Time: by default the script reads Redis's clock (TIME), so that the
// replicas' clocks need not agree; the caller's now matters only as the
// origin of what the Store returns (a Reservation's At is now plus the
// wait Redis computed; a lease's Until is sent as Until − now). With
// Options.CallerTime the script uses the caller's now instead, as
// MemStore does: the conformance suite, which drives time, runs so.
//
// A key that holds something else (another type, another layout, fields
// missing or not numbers) is dropped by the script and made anew, never an
// error; Resets counts such keys. A key whose buckets are gone (expired
// after IdleTTL, dropped as garbage, FLUSHALL, a restarted Redis) is made
// again by the next operation from what this process last saw of it
// (Open's figures before anything): every operation sends them along. So a
// limit the fleet learned survives (a learning quota whose limit this
// process saw finite never comes back unlimited), and the level is no
// higher than the one last seen, which had the holds of the calls then in
// flight taken out. This process's live leases are then held again in the
// new buckets (Remakes counts the times), so that its calls in flight give
// back what they hold when they end; the leases of other processes are
// lost with the buckets (their calls give back only what exceeds their
// Refund: the fleet errs towards holding too much).
package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/redisx"
)

//go:embed bucket.lua
var bucketLua string

var bucketScript = redis.NewScript(bucketLua)

// Options configure a Store. The zero value reads Redis's clock.
type Options struct {
	// CallerTime makes every operation use the caller's now rather than
	// Redis's clock: for tests that drive time, and for replicas whose
	// clocks are known to agree.
	CallerTime bool
}

// Store is an admission.Store in Redis. It is safe for concurrent use.
// Its errors from Redis wrap redisx.ErrUnavailable.
type Store struct {
	c          *redisx.Client
	callerTime bool

	mu     sync.Mutex
	opened map[admission.Target]admission.Buckets // what Open gave, by key
	// seen is what the last answer for a key held: the figures a key
	// whose buckets are gone is made again from (see remakeFrom).
	seen map[admission.Target]admission.Buckets
	// leases are the live leases this Store took, by key: held again in
	// buckets made anew (see relet).
	leases map[admission.Target]map[admission.LeaseID]admission.Lease
	takes  int // Takes since the leases were last pruned (see prune)

	// relets is held shared by every operation's round trip and alone by
	// relet, so that a lease that End ends is not held again after it.
	relets sync.RWMutex

	resets, remakes atomic.Uint64
}

var (
	_ admission.Store  = (*Store)(nil)
	_ admission.Sharer = (*Store)(nil)
)

// New returns a Store on c.
func New(c *redisx.Client, o Options) *Store {
	return &Store{c: c, callerTime: o.CallerTime, opened: make(map[admission.Target]admission.Buckets),
		seen: make(map[admission.Target]admission.Buckets), leases: make(map[admission.Target]map[admission.LeaseID]admission.Lease)}
}

// Share returns the part of each limit this process can expect while every
// process sharing the buckets asks for more than its own
// (redisx.Client.Share).
func (s *Store) Share() float64 { return s.c.Share() }

// Resets returns how many keys held garbage that the Store dropped.
func (s *Store) Resets() uint64 { return s.resets.Load() }

// Remakes returns how many times an operation of this Store found a key's
// buckets gone and made them again from what it last saw.
func (s *Store) Remakes() uint64 { return s.remakes.Load() }

// pruneEvery is how many Takes pass between two prunings of the leases
// past their Until from the Store's record of its live leases: a Ticket
// never ended (a leaked one) would otherwise stay there for ever.
const pruneEvery = 1024

// keys returns key's two Redis keys: the buckets and the leases.
func (s *Store) keys(key admission.Target) []string {
	t := key.String()
	return []string{s.c.Key("bucket", t), s.c.Key("leases", t)}
}

// answer is the script's answer.
type answer struct {
	b     admission.Buckets
	extra string
	made  bool // the buckets were gone and this operation made them again
}

// errDup is the script's answer to a lease ID already live.
var errDup = errors.New("lease already live")

// run runs op on key at now with args, the key made from what the Store
// last saw of it if it has no buckets (see remakeFrom); then, if op made
// them, this Store's live leases are held in them again (see relet).
// before, when set, runs under s.mu just before the round trip.
func (s *Store) run(ctx context.Context, op string, key admission.Target, now time.Time, before func(), args ...any) (answer, error) {
	s.relets.RLock()
	s.mu.Lock()
	open, ok := s.remakeFrom(key)
	if ok && before != nil {
		before()
	}
	s.mu.Unlock()
	if !ok {
		s.relets.RUnlock()
		return answer{}, fmt.Errorf("admission: Store.%s(%s): %w", opName(op), key, admission.ErrNoBucket)
	}
	a, err := s.eval(ctx, op, key, now, open, args...)
	s.relets.RUnlock()
	if err == nil && a.made {
		s.remakes.Add(1)
		s.relet(ctx, key, now)
	}
	return a, err
}

// remakeFrom returns the figures key's buckets are made again from when
// they are gone: Open's, with what the last answer held in their place —
// its limit unless unlimited (the learned limit; a limit once seen finite
// is not forgotten), its burst with it, and its level — and false when key
// was not opened. s.mu must be held.
func (s *Store) remakeFrom(key admission.Target) (admission.Buckets, bool) {
	b, ok := s.opened[key]
	if !ok {
		return b, false
	}
	if seen, ok := s.seen[key]; ok && !math.IsInf(seen.TokensPerMinute, 1) {
		b.TokensPerMinute, b.Burst, b.Tokens = seen.TokensPerMinute, seen.Burst, seen.Tokens
	}
	return b, true
}

// relet holds this Store's live leases of key again in its buckets, made
// anew: without it, the calls in flight when the buckets were lost would
// end with their leases not live and give back only what exceeds their
// Refund (see admission.Store's End). It takes nothing: the level the
// buckets were made with had those holds taken out. A failure leaves the
// leases lost.
func (s *Store) relet(ctx context.Context, key admission.Target, now time.Time) {
	s.relets.Lock()
	defer s.relets.Unlock()
	s.mu.Lock()
	open, ok := s.remakeFrom(key)
	var args []any
	for id, l := range s.leases[key] {
		ttl := l.Until.Sub(now).Microseconds()
		if ttl <= 0 {
			delete(s.leases[key], id) // expired: its refund was given (or lost with the buckets)
			continue
		}
		args = append(args, id.String(), ttl, num(l.Refund))
	}
	s.mu.Unlock()
	if !ok || len(args) == 0 {
		return
	}
	s.eval(ctx, "relet", key, now, open, args...) // a failure: the leases stay lost, as before
}

// prune drops the leases past their Until from the record of key's live
// leases. s.mu must be held.
func (s *Store) prune(key admission.Target, now time.Time) {
	for id, l := range s.leases[key] {
		if l.Until.Before(now) {
			delete(s.leases[key], id)
		}
	}
}

func (s *Store) eval(ctx context.Context, op string, key admission.Target, now time.Time, open admission.Buckets, args ...any) (answer, error) {
	at := ""
	if s.callerTime {
		at = strconv.FormatInt(now.UnixMicro(), 10)
	}
	argv := append([]any{op, at, redisx.IdleTTL.Milliseconds(), num(open.TokensPerMinute), num(open.RequestsPerMinute), num(open.Tokens),
		num(open.Burst)}, args...)
	var reply []any
	err := s.c.Do(ctx, func(ctx context.Context, rdb *redis.Client) error {
		r, err := bucketScript.Run(ctx, rdb, s.keys(key), argv...).Slice()
		reply = r
		return err
	})
	if err != nil {
		return answer{}, fmt.Errorf("admission: Store.%s(%s): %w", opName(op), key, err)
	}
	if len(reply) > 1 && reply[1] == "1" {
		s.resets.Add(1)
	}
	a, err := parse(reply, now)
	if err != nil {
		return answer{}, fmt.Errorf("admission: Store.%s(%s): %w", opName(op), key, err)
	}
	if len(reply) > 2 {
		s.mu.Lock()
		if _, ok := s.opened[key]; ok {
			s.seen[key] = a.b
		}
		s.mu.Unlock()
	}
	return a, nil
}

// parse reads the script's answer; now is the caller's.
func parse(reply []any, now time.Time) (answer, error) {
	str := make([]string, len(reply))
	for i, v := range reply {
		s, ok := v.(string)
		if !ok {
			return answer{}, fmt.Errorf("the script answered %v, not strings", reply)
		}
		str[i] = s
	}
	if len(str) < 2 {
		return answer{}, fmt.Errorf("the script answered %v", reply)
	}
	switch str[0] {
	case "ok":
	case "dup":
		return answer{}, errDup
	default:
		return answer{}, fmt.Errorf("the script answered %q", str[0])
	}
	a := answer{}
	if len(str) == 2 {
		return a, nil // open
	}
	if len(str) != 12 {
		return answer{}, fmt.Errorf("the script answered %v", reply)
	}
	var f [8]float64
	for i := range f {
		x, err := strconv.ParseFloat(str[2+i], 64)
		if err != nil {
			return answer{}, fmt.Errorf("the script answered %q for field %d", str[2+i], 2+i)
		}
		f[i] = x
	}
	a.b = admission.Buckets{TokensPerMinute: f[0], RequestsPerMinute: f[1], Tokens: f[2], Requests: f[3], Burst: f[4], Peak: f[5], Drains: uint64(f[6])}
	if a.b.Drains > 0 {
		a.b.DrainedAt = now.Add(-time.Duration(f[7]) * time.Microsecond)
	}
	a.extra, a.made = str[10], str[11] == "1"
	return a, nil
}

// num formats x for the script: "inf" for +Inf.
func num(x float64) string {
	if math.IsInf(x, 1) {
		return "inf"
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// opName returns the Store method that runs op.
func opName(op string) string {
	switch op {
	case "limit":
		return "SetLimit"
	case "burst":
		return "SetBurst"
	}
	return string(op[0]-'a'+'A') + op[1:]
}

// Open implements admission.Store.
func (s *Store) Open(ctx context.Context, key admission.Target, now time.Time, b admission.Buckets) error {
	if err := admission.CheckOpen(key, b); err != nil {
		return err
	}
	open := admission.Buckets{TokensPerMinute: b.TokensPerMinute, RequestsPerMinute: b.RequestsPerMinute, Tokens: b.Tokens}
	s.mu.Lock()
	if prev, ok := s.opened[key]; ok {
		open = prev // a second Open keeps the first's figures, as it keeps the buckets
	}
	s.mu.Unlock()
	if _, err := s.eval(ctx, "open", key, now, open); err != nil {
		return err
	}
	s.mu.Lock()
	if _, ok := s.opened[key]; !ok {
		s.opened[key] = open
	}
	s.mu.Unlock()
	return nil
}

// Reserve implements admission.Store.
func (s *Store) Reserve(ctx context.Context, key admission.Target, now time.Time, tokens float64) (admission.Reservation, error) {
	if err := admission.CheckReserve(key, tokens); err != nil {
		return admission.Reservation{}, err
	}
	a, err := s.run(ctx, "reserve", key, now, nil, num(tokens))
	if err != nil {
		return admission.Reservation{}, err
	}
	if a.extra == "fit" {
		return admission.Reservation{OK: true, At: now}, nil
	}
	wait, err := strconv.ParseFloat(a.extra, 64)
	if err != nil {
		return admission.Reservation{}, fmt.Errorf("admission: Store.Reserve(%s): the script answered a wait of %q", key, a.extra)
	}
	return admission.Reservation{At: admission.WaitEnd(now, wait)}, nil
}

// Give implements admission.Store.
func (s *Store) Give(ctx context.Context, key admission.Target, now time.Time, tokens float64, requests int) (admission.Buckets, error) {
	if err := admission.CheckGive("Give", key, tokens, requests); err != nil {
		return admission.Buckets{}, err
	}
	a, err := s.run(ctx, "give", key, now, nil, num(tokens), requests)
	return a.b, err
}

// Take implements admission.Store.
func (s *Store) Take(ctx context.Context, key admission.Target, now time.Time, tokens float64, lease admission.Lease) (admission.Buckets, error) {
	b, _, err := s.take(ctx, key, now, tokens, lease, false)
	return b, err
}

// TakeIfRoom implements admission.Store.
func (s *Store) TakeIfRoom(ctx context.Context, key admission.Target, now time.Time, tokens float64, lease admission.Lease) (admission.Buckets, bool, error) {
	return s.take(ctx, key, now, tokens, lease, true)
}

// take is Take, or with ifRoom TakeIfRoom, and reports whether it took.
func (s *Store) take(ctx context.Context, key admission.Target, now time.Time, tokens float64, lease admission.Lease, ifRoom bool) (admission.Buckets, bool, error) {
	if err := admission.CheckTake(key, tokens, lease); err != nil {
		return admission.Buckets{}, false, err
	}
	id, ttl := "", int64(0)
	if !lease.ID.IsZero() {
		id, ttl = lease.ID.String(), lease.Until.Sub(now).Microseconds()
	}
	cond := "0"
	if ifRoom {
		cond = "1"
	}
	a, err := s.run(ctx, "take", key, now, nil, num(tokens), id, ttl, num(lease.Refund), cond)
	if errors.Is(err, errDup) {
		return admission.Buckets{}, false, fmt.Errorf("admission: Store.Take(%s): lease %v is already live", key, lease.ID)
	}
	took := err == nil && a.extra == "1"
	if took && !lease.ID.IsZero() {
		s.mu.Lock()
		if _, ok := s.opened[key]; ok {
			if s.leases[key] == nil {
				s.leases[key] = make(map[admission.LeaseID]admission.Lease)
			}
			s.leases[key][lease.ID] = lease
		}
		if s.takes++; s.takes >= pruneEvery {
			s.takes = 0
			for k := range s.leases {
				s.prune(k, now)
			}
		}
		s.mu.Unlock()
	}
	return a.b, took, err
}

// End implements admission.Store.
func (s *Store) End(ctx context.Context, key admission.Target, now time.Time, id admission.LeaseID, tokens float64, requests int) (admission.Buckets, bool, error) {
	if err := admission.CheckGive("End", key, tokens, requests); err != nil {
		return admission.Buckets{}, false, err
	}
	name := "" // no lease: nothing in the set is named so
	if !id.IsZero() {
		name = id.String()
	}
	a, err := s.run(ctx, "end", key, now, func() { delete(s.leases[key], id) }, name, num(tokens), requests)
	return a.b, err == nil && a.extra == "1", err
}

// Drain implements admission.Store.
func (s *Store) Drain(ctx context.Context, key admission.Target, now time.Time) (float64, admission.Buckets, error) {
	a, err := s.run(ctx, "drain", key, now, nil)
	if err != nil {
		return 0, admission.Buckets{}, err
	}
	took, err := strconv.ParseFloat(a.extra, 64)
	if err != nil {
		return 0, admission.Buckets{}, fmt.Errorf("admission: Store.Drain(%s): the script answered %q taken", key, a.extra)
	}
	return took, a.b, nil
}

// SetLimit implements admission.Store.
func (s *Store) SetLimit(ctx context.Context, key admission.Target, now time.Time, tokensPerMinute float64) (admission.Buckets, error) {
	if err := admission.CheckLimit(key, tokensPerMinute); err != nil {
		return admission.Buckets{}, err
	}
	a, err := s.run(ctx, "limit", key, now, nil, num(tokensPerMinute))
	return a.b, err
}

// SetBurst implements admission.Store.
func (s *Store) SetBurst(ctx context.Context, key admission.Target, now time.Time, tokens float64) (admission.Buckets, error) {
	if err := admission.CheckBurst(key, tokens); err != nil {
		return admission.Buckets{}, err
	}
	a, err := s.run(ctx, "burst", key, now, nil, num(tokens))
	return a.b, err
}

// Level implements admission.Store.
func (s *Store) Level(ctx context.Context, key admission.Target, now time.Time) (admission.Buckets, error) {
	a, err := s.run(ctx, "level", key, now, nil)
	return a.b, err
}

// Forget implements admission.Store: it drops key's buckets and leases
// from Redis too, for every process that shares them (the next operation
// of another process makes them anew).
func (s *Store) Forget(ctx context.Context, key admission.Target) error {
	s.mu.Lock()
	delete(s.opened, key)
	delete(s.seen, key)
	delete(s.leases, key)
	s.mu.Unlock()
	err := s.c.Do(ctx, func(ctx context.Context, rdb *redis.Client) error {
		return rdb.Del(ctx, s.keys(key)...).Err()
	})
	if err != nil {
		return fmt.Errorf("admission: Store.Forget(%s): %w", key, err)
	}
	return nil
}
