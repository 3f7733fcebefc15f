// Package redisbudget keeps a retry budget's counts in Redis, so that
// every keel process spending the same budget shares them: a Store is a
// budget.Shared, set in budget.Options.Shared.
//
// A budget is one hash (redisx.Client.Key("budget", name)) with a field
// per window slot and count: "q<slot>" first attempts, "r<slot>" retries,
// slot being Redis's time divided by the slot width, which the field "w"
// holds. Each operation is one Lua script, one round trip, timed by
// Redis's clock (TIME); it drops the slots that slid out of the window.
// The key expires redisx.IdleTTL (or the window, if longer) after its
// last count. A key holding what this version does not write (a count
// that is not an integer from 0 to 2^53: "1.5", "inf"), counts of another
// window or of slots more than a window ahead is deleted, and the budget
// starts empty.
//
// While Redis fails, every operation fails at once (fallback.Gate) and
// the budget decides with its local counts and the process's share.
package redisbudget

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/fallback"
)

// DefaultName names the budget when New is given none: the engine has one
// retry budget for all its calls.
const DefaultName = "retries"

// slots is the number of slots a window is divided into, as in the local
// budget.
const slots = 10

// Store is a budget.Shared in Redis. It is safe for concurrent use.
type Store struct {
	g   *fallback.Gate
	key string
}

// New returns a Store for the budget name (empty: DefaultName) that talks
// to Redis through c; clk (nil: clock.Real{}) times the wait before Redis
// is tried again after a failure.
func New(c *redisx.Client, name string, clk clock.Clock) *Store {
	if name == "" {
		name = DefaultName
	}
	return &Store{g: fallback.New(c, clk), key: c.Key("budget", name)}
}

var _ budget.Shared = (*Store)(nil)

// script counts a first attempt (ARGV[1] "request") or a retry
// ("acquire") and replies {granted, first attempts, retries}.
// ARGV[2] is the slot width in ms, ARGV[3] the slots, ARGV[4] Ratio,
// ARGV[5] the reserve, ARGV[6] the key's time to live in ms.
var script = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local cur = math.floor(now / w)
local maxcount = 9007199254740992 -- 2^53: counts above lose their units in Lua's doubles
local q, r = 0, 0
local kt = redis.call('TYPE', KEYS[1]).ok
local reset = kt ~= 'none' and kt ~= 'hash'
if kt == 'hash' then
  local h = redis.call('HGETALL', KEYS[1])
  local stale = {}
  for i = 1, #h, 2 do
    local f, v = h[i], tonumber(h[i + 1])
    if f == 'w' then
      if v ~= w then reset = true end
    else
      local kind, slot = string.sub(f, 1, 1), tonumber(string.sub(f, 2))
      if not string.match(h[i + 1], '^%d+$') or v >= maxcount or not slot or slot % 1 ~= 0
          or (kind ~= 'q' and kind ~= 'r') or slot > cur + n then
        -- (a count HINCRBY refuses: not digits alone, such as a fraction,
        -- 5.0, 0x10, 1e3, inf or nan, or beyond 2^53; a window ahead: no
        -- clock steps back that far; it would hold for ever)
        reset = true
      elseif slot <= cur - n then
        stale[#stale + 1] = f
      elseif kind == 'q' then
        q = q + v
      else
        r = r + v
      end
    end
    if reset then break end
  end
  if not reset then
    for _, f in ipairs(stale) do redis.call('HDEL', KEYS[1], f) end
  end
end
if reset then
  redis.call('DEL', KEYS[1])
  q, r = 0, 0
end
local field
if ARGV[1] == 'request' then
  field, q = 'q' .. cur, q + 1
else
  if r + 1 > tonumber(ARGV[4]) * q + tonumber(ARGV[5]) then return {0, q, r} end
  field, r = 'r' .. cur, r + 1
end
redis.call('HINCRBY', KEYS[1], field, 1)
redis.call('HSET', KEYS[1], 'w', w)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {1, q, r}
`)

// Request implements budget.Shared.
func (s *Store) Request(ctx context.Context, window time.Duration) error {
	_, _, err := s.run(ctx, "request", window, 0, 0)
	return err
}

// TryAcquire implements budget.Shared.
func (s *Store) TryAcquire(ctx context.Context, window time.Duration, ratio, reserve float64) (budget.Counts, bool, error) {
	return s.run(ctx, "acquire", window, ratio, reserve)
}

// Share implements budget.Shared: the Client's share.
func (s *Store) Share() float64 { return s.g.Client().Share() }

func (s *Store) run(ctx context.Context, op string, window time.Duration, ratio, reserve float64) (budget.Counts, bool, error) {
	width := max(window/slots, time.Millisecond).Milliseconds()
	ttl := max(redisx.IdleTTL, window).Milliseconds()
	var r []int64
	err := s.g.Do(ctx, func(ctx context.Context, rdb *redis.Client) error {
		var err error
		r, err = script.Run(ctx, rdb, []string{s.key}, op, width, slots,
			strconv.FormatFloat(ratio, 'g', -1, 64), strconv.FormatFloat(reserve, 'g', -1, 64), ttl).Int64Slice()
		return err
	})
	if err != nil {
		s.g.Client().ResetGarbage(ctx, err, s.key)
		return budget.Counts{}, false, err
	}
	if len(r) != 3 {
		return budget.Counts{}, false, fmt.Errorf("redisbudget: script replied %d values, want 3", len(r))
	}
	return budget.Counts{Requests: r[1], Retries: r[2]}, r[0] == 1, nil
}
