// Package redisbreaker keeps circuit breakers' states in Redis, so that
// every keel process calling the same targets shares them: a Store is a
// breaker.Shared, set in breaker.Options.Shared.
//
// Each target has three keys in its hash tag (redisx.Client.Key): a hash
// "breaker" with the state, its generation, since when it holds, the end
// of an open state's cool-down and the successful probes of a half-open
// one; a sorted set "probes" of the probe leases held, scored by their
// expiry; and a sorted set "failing" of the processes (redisx.Client.ID)
// whose own judgement opened their breaker (Open), scored by when that
// vote stops counting (their window). The breaker opens for all only when
// Quorum processes are in "failing", or all of them when fewer are alive.
// Every operation is one Lua script, one round trip, timed
// by Redis's clock (TIME), so the processes' clocks do not matter. Keys
// expire redisx.IdleTTL after their last change (an open state's after
// its cool-down too); a forgotten state is closed. A key holding what
// this version does not write is deleted, and the target starts closed.
//
// While Redis fails, every operation fails at once (fallback.Gate) and
// each breaker goes on from its local state.
package redisbreaker

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/fallback"
)

// maxLease bounds a probe lease: a lease scored further ahead is garbage
// (no keel writes it) and is dropped, so that it cannot hold a slot for
// ever. It is the engine's longest attempt timeout with room to spare.
const maxLease = 2 * time.Hour

// DefaultQuorum is how many processes must have judged a target failing
// (their own breaker opened) for its breaker to open for all: one
// process's failures may be its own network path or credentials; two
// agreeing is the least evidence that the target is at fault. A process
// votes by its redisx.Client.ID, so one restarted within its window votes
// twice (docs/redis-breakers.md).
const DefaultQuorum = 2

// Store is a breaker.Shared in Redis. It is safe for concurrent use.
type Store struct {
	g *fallback.Gate
	// Quorum is how many processes must have judged a target failing to
	// open its breaker for all, or all the processes alive (the Client's
	// heartbeat count) when fewer. 0 means DefaultQuorum. Set it before
	// the Store is used.
	Quorum int
}

// New returns a Store that talks to Redis through c; clk (nil:
// clock.Real{}) times the wait before Redis is tried again after a
// failure.
func New(c *redisx.Client, clk clock.Clock) *Store {
	return &Store{g: fallback.New(c, clk)}
}

var _ breaker.Shared = (*Store)(nil)

// prelude, the start of every script, reads the state in KEYS[1] and the
// leases in KEYS[2] after deleting either if it is not what keel writes,
// and defines set (a state change), prune (drops expired and garbage
// leases) and view (the reply).
// KEYS[3] is the failing set. ARGV[1] is redisx.IdleTTL in ms, ARGV[2]
// maxLease in ms, which bounds a failure's window too.
const prelude = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idle, maxlease = tonumber(ARGV[1]), tonumber(ARGV[2])
local maxopen = 7 * 86400000 -- a week in ms; a cool-down set longer is not held open across the fleet past it
local st, gen, since, untl, ok = 0, 0, 0, 0, 0
local kt = redis.call('TYPE', KEYS[1]).ok
if kt == 'hash' then
  local h = redis.call('HMGET', KEYS[1], 's', 'g', 'since', 'until', 'ok')
  st, gen, since, untl, ok = tonumber(h[1]), tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), tonumber(h[5])
  -- An open-until more than maxopen ahead is garbage: it would hold the
  -- fleet's breaker open for as long.
  if not (st and gen and since and untl and ok and (st == 0 or st == 1 or st == 2) and gen >= 1 and gen % 1 == 0 and ok >= 0
      and untl - now <= maxopen) then
    redis.call('DEL', KEYS[1], KEYS[2])
    st, gen, since, untl, ok = 0, 0, 0, 0, 0
  end
elseif kt ~= 'none' then
  redis.call('DEL', KEYS[1], KEYS[2])
end
local lt = redis.call('TYPE', KEYS[2]).ok
if lt ~= 'none' and (lt ~= 'zset' or st ~= 1) then
  redis.call('DEL', KEYS[2])
end
local ft = redis.call('TYPE', KEYS[3]).ok
if ft ~= 'none' and ft ~= 'zset' then
  redis.call('DEL', KEYS[3])
end
local function set(s, u, ttl)
  st, gen, since, untl, ok = s, gen + 1, now, u, 0
  redis.call('HSET', KEYS[1], 's', st, 'g', gen, 'since', since, 'until', untl, 'ok', ok)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('DEL', KEYS[2], KEYS[3])
end
-- failing adds ARGV[4] (a process) to the failing set until ARGV[5] ms
-- from now, drops the expired (and garbage ahead), and returns how many
-- processes it holds.
local function failing()
  local win = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[3], now + win, ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '(' .. (now + maxlease), '+inf')
  if redis.call('PTTL', KEYS[3]) < win then redis.call('PEXPIRE', KEYS[3], win) end
  return redis.call('ZCARD', KEYS[3])
end
local function prune()
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '(' .. (now + maxlease), '+inf')
end
local function view(granted, loc)
  local n = 0
  if st == 1 then
    prune()
    n = redis.call('ZCARD', KEYS[2])
  end
  return {st, gen, since, untl, n, granted, loc or 0}
end
`

// allowScript: ARGV[3] the lease, ARGV[4] the probes allowed, ARGV[5] the
// lease's time to live in ms.
var allowScript = redis.NewScript(prelude + `
if st == 2 and now >= untl then set(1, 0, idle) end
if st ~= 1 then return view(0) end
local ttl = tonumber(ARGV[5])
prune()
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return view(0) end
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
for _, k in ipairs(KEYS) do
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
return view(1)
`)

// openScript: ARGV[3] the cool-down in ms, ARGV[4] the process, ARGV[5]
// its window in ms, ARGV[6] the processes that open for all.
var openScript = redis.NewScript(prelude + `
if st == 0 then
  if failing() < tonumber(ARGV[6]) then return view(0, 1) end
  local cool = tonumber(ARGV[3])
  set(2, now + cool, cool + idle)
end
return view(0)
`)

// endScript: ARGV[3] the lease, ARGV[4] the outcome (breaker.Outcome's
// String), ARGV[5] the successes that close, ARGV[6] the cool-down in ms.
var endScript = redis.NewScript(prelude + `
if st == 1 and redis.call('ZREM', KEYS[2], ARGV[3]) == 1 then
  if ARGV[4] == 'success' then
    ok = ok + 1
    if ok >= tonumber(ARGV[5]) then
      set(0, 0, idle)
    else
      redis.call('HSET', KEYS[1], 'ok', ok)
      if redis.call('PTTL', KEYS[1]) < idle then redis.call('PEXPIRE', KEYS[1], idle) end
    end
  elseif ARGV[4] == 'failure' then
    local cool = tonumber(ARGV[6])
    set(2, now + cool, cool + idle)
  end
end
return view(0)
`)

// Allow implements breaker.Shared.
func (s *Store) Allow(ctx context.Context, target string, lease uint64, probes int, ttl time.Duration) (breaker.View, error) {
	ttl = min(max(ttl, time.Millisecond), maxLease)
	return s.run(ctx, allowScript, target, lease, probes, ttl.Milliseconds())
}

// Open implements breaker.Shared.
func (s *Store) Open(ctx context.Context, target string, cooldown, window time.Duration) (breaker.View, error) {
	c := s.g.Client()
	need := min(cmp.Or(s.Quorum, DefaultQuorum), c.Stats().Replicas)
	return s.run(ctx, openScript, target, cooldown.Milliseconds(), c.ID(), voteTTL(window), max(need, 1))
}

// voteTTL is how long a vote counts toward the quorum: the window of
// the breaker that saw it, within (0, maxLease].
func voteTTL(window time.Duration) int64 {
	return min(max(window, time.Millisecond), maxLease).Milliseconds()
}

// EndProbe implements breaker.Shared.
func (s *Store) EndProbe(ctx context.Context, target string, lease uint64, o breaker.Outcome, successes int, cooldown time.Duration) (breaker.View, error) {
	return s.run(ctx, endScript, target, lease, o.String(), successes, cooldown.Milliseconds())
}

// run runs script on target's keys with the prelude's arguments and args,
// and reads its reply. A lease is passed as its decimal text.
func (s *Store) run(ctx context.Context, script *redis.Script, target string, args ...any) (breaker.View, error) {
	c := s.g.Client()
	keys := []string{c.Key("breaker", target), c.Key("probes", target), c.Key("failing", target)}
	argv := append([]any{redisx.IdleTTL.Milliseconds(), maxLease.Milliseconds()}, args...)
	if l, ok := argv[2].(uint64); ok {
		argv[2] = strconv.FormatUint(l, 10)
	}
	var r []int64
	err := s.g.Do(ctx, func(ctx context.Context, rdb *redis.Client) error {
		var err error
		r, err = script.Run(ctx, rdb, keys, argv...).Int64Slice()
		return err
	})
	if err != nil {
		c.ResetGarbage(ctx, err, keys...)
		return breaker.View{}, err
	}
	if len(r) != 7 {
		return breaker.View{}, fmt.Errorf("redisbreaker: script replied %d values, want 7", len(r))
	}
	v := breaker.View{State: breaker.State(r[0]), Gen: uint64(r[1]), Probes: int(r[4]), Granted: r[5] == 1, Local: r[6] == 1}
	if v.Gen > 0 {
		v.Since = time.UnixMilli(r[2])
	}
	if v.State == breaker.Open {
		v.ProbeAt = time.UnixMilli(r[3])
	}
	return v, nil
}
