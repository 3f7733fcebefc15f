-- One operation on one key's buckets (see package redisstore's doc).
-- KEYS[1]: the buckets, a hash; KEYS[2]: the leases, a sorted set of lease
-- IDs scored by their expiry (µs). Lease refunds are the hash's fields
-- "l:<id>".
-- ARGV[1]: the operation; ARGV[2]: now in µs, or "" for Redis's TIME;
-- ARGV[3]: the idle TTL in ms; ARGV[4], ARGV[5], ARGV[6], ARGV[7]: the
-- limits, tokens and burst the key is made with when it has no buckets
-- ("" : none, and the answer is "nobucket"); ARGV[8...]: the operation's
-- arguments.
-- The answer: {status, reset, tpm, rpm, tokens, requests, burst, peak,
-- drains, µs since the last drain, extra, made}, every number a string,
-- since Redis cuts a Lua number to an integer. status: "ok", "nobucket" or
-- "dup" (a lease ID already live); reset: "1" when garbage under the keys
-- (another layout, type or version) was dropped; extra: reserve's "fit", or
-- the wait in seconds until the call fits, drain's tokens taken, end's "1"
-- when the lease was live, take's "1" when it took; made: "1" when this run
-- made the buckets (they were gone) for an operation other than open. Open
-- answers {status, reset}. take's arguments are the tokens, the lease ID
-- ("": none), µs until it expires, its refund, and "1" to take only if the
-- call fits (as reserve would), "0" to take whatever the buckets hold.
-- relet's arguments are triples (lease ID, µs until it expires, refund): it
-- holds each lease not live already, taking nothing.
local LAYOUT = 'b1'
local EPS = 0.001 -- admission's eps: a call fits within a thousandth of a token
local INF = math.huge
local FIELDS = {'v', 'tpm', 'rpm', 'tok', 'req', 'burst', 'peak', 'last', 'drains', 'drained'}

local function fmt(x)
  if x == INF then return 'inf' end
  return string.format('%.17g', x)
end

-- num parses a stored number: nil for anything but a finite number or "inf".
local function num(s)
  if s == 'inf' then return INF end
  if type(s) ~= 'string' or not string.find(s, '^[-+]?[0-9.eE+-]+$') then return nil end
  local x = tonumber(s)
  if x == nil or x ~= x or x == INF or x == -INF then return nil end
  return x
end

local op, ttl = ARGV[1], tonumber(ARGV[3])
local now
-- AHEAD: on Redis's clock, a last refill further ahead than this is
-- garbage (or a failover to a Redis whose clock was behind) and would
-- stop the refill for as long; the buckets are reset.
local AHEAD = 60000000
local redisTime = ARGV[2] == ''
if redisTime then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end

-- load returns the buckets, or nil; and whether garbage was found.
local function load()
  local kt = redis.call('TYPE', KEYS[1]).ok
  local lt = redis.call('TYPE', KEYS[2]).ok
  if kt == 'none' then
    if lt ~= 'none' then return nil, true end -- leases without buckets
    return nil, false
  end
  if kt ~= 'hash' or (lt ~= 'none' and lt ~= 'zset') then return nil, true end
  local r = redis.call('HMGET', KEYS[1], unpack(FIELDS))
  if r[1] ~= LAYOUT then return nil, true end
  local b = {}
  for i = 2, #FIELDS do
    local x = num(r[i])
    if x == nil then return nil, true end
    b[FIELDS[i]] = x
  end
  if not (b.tpm > 0) or b.rpm < 0 or b.rpm == INF or b.burst < 0 or b.burst == INF or
     b.tok == INF or b.req == INF or b.peak == INF or b.last == INF or b.drains < 0 or
     (redisTime and b.last > now + AHEAD) then
    return nil, true
  end
  return b, false
end

local function unlimited(b) return b.tpm == INF end

local function capacity(b)
  if b.burst > 0 then return math.min(b.burst, b.tpm) end
  return b.tpm
end

local function refill(b)
  local d = now - b.last
  if d <= 0 then return end
  b.last = now
  local s = d / 1000000
  if not unlimited(b) then
    b.tok = math.min(capacity(b), b.tok + s * b.tpm / 60)
    b.peak = math.max(b.peak, b.tok)
  end
  if b.rpm > 0 then b.req = math.min(b.rpm, b.req + s * b.rpm / 60) end
end

local function give(b, tokens, requests)
  if not unlimited(b) then
    b.tok = math.min(capacity(b), b.tok + tokens)
    b.peak = math.max(b.peak, b.tok)
  end
  if b.rpm > 0 then b.req = math.min(b.rpm, b.req + requests) end
end

local function take(b, tokens)
  if not unlimited(b) then b.tok = b.tok - tokens end
  if b.rpm > 0 then b.req = b.req - 1 end
end

-- expire gives back the refunds of the leases that expired before now.
local function expire(b)
  local past = '(' .. fmt(now)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', past)
  if #ids == 0 then return end
  for _, id in ipairs(ids) do
    local f = 'l:' .. id
    local r = num(redis.call('HGET', KEYS[1], f))
    if r ~= nil and r > 0 then give(b, r, 0) end
    redis.call('HDEL', KEYS[1], f)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', past)
end

local function save(b)
  redis.call('HSET', KEYS[1], 'v', LAYOUT, 'tpm', fmt(b.tpm), 'rpm', fmt(b.rpm), 'tok', fmt(b.tok),
    'req', fmt(b.req), 'burst', fmt(b.burst), 'peak', fmt(b.peak), 'last', fmt(b.last),
    'drains', fmt(b.drains), 'drained', fmt(b.drained))
  redis.call('PEXPIRE', KEYS[1], ttl)
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ttl) end
end

local b, garbage = load()
local reset, made = '0', '0'
if garbage then
  redis.call('DEL', KEYS[1], KEYS[2])
  reset = '1'
end
if b == nil then
  if ARGV[4] == '' then return {'nobucket', reset} end
  local tpm, rpm, tok, burst = num(ARGV[4]), num(ARGV[5]), num(ARGV[6]), num(ARGV[7])
  b = {tpm = tpm, rpm = rpm, tok = 0, req = rpm, burst = 0, peak = 0, last = now, drains = 0, drained = 0}
  if not unlimited(b) then
    b.burst = burst
    b.tok = math.min(tok, capacity(b))
  end
  if op == 'open' then
    save(b)
  else
    made = '1'
  end
end
if op == 'open' then return {'ok', reset} end

refill(b)
expire(b)
local extra = '0'
-- room reports whether a call holding hold tokens and one request fits.
local function room(hold)
  local reqRoom = b.rpm == 0 or b.req >= 1 - EPS
  return reqRoom and (unlimited(b) or b.tok >= math.min(hold, capacity(b)) - EPS), reqRoom
end

if op == 'reserve' then
  local hold = tonumber(ARGV[8])
  local fits, reqRoom = room(hold)
  if fits then
    take(b, hold)
    extra = 'fit'
  else
    local wait = 0
    if not reqRoom then wait = (1 - EPS / 2 - b.req) / (b.rpm / 60) end
    if not unlimited(b) then
      local need = math.min(hold, capacity(b)) - EPS / 2
      if b.tok < need then wait = math.max(wait, (need - b.tok) / (b.tpm / 60)) end
    end
    extra = fmt(wait)
  end
elseif op == 'take' then
  local id, tokens = ARGV[9], tonumber(ARGV[8])
  if id ~= '' and redis.call('ZSCORE', KEYS[2], id) then return {'dup', reset} end
  if ARGV[12] ~= '1' or room(tokens) then
    if id ~= '' then
      redis.call('ZADD', KEYS[2], fmt(now + tonumber(ARGV[10])), id)
      redis.call('HSET', KEYS[1], 'l:' .. id, ARGV[11])
    end
    take(b, tokens)
    extra = '1'
  end
elseif op == 'end' then
  if redis.call('ZREM', KEYS[2], ARGV[8]) == 1 then
    redis.call('HDEL', KEYS[1], 'l:' .. ARGV[8])
    give(b, tonumber(ARGV[9]), tonumber(ARGV[10]))
    extra = '1'
  end
elseif op == 'give' then
  give(b, tonumber(ARGV[8]), tonumber(ARGV[9]))
elseif op == 'drain' then
  if not unlimited(b) then
    extra = fmt(math.max(b.tok, 0))
    b.tok = math.min(b.tok, 0)
    b.peak = b.tok
    b.drains = b.drains + 1
    b.drained = now
  end
elseif op == 'limit' then
  if unlimited(b) then b.tok = 0 end
  b.tpm = num(ARGV[8])
elseif op == 'relet' then
  for i = 8, #ARGV - 2, 3 do
    local id = ARGV[i]
    if not redis.call('ZSCORE', KEYS[2], id) then
      redis.call('ZADD', KEYS[2], fmt(now + tonumber(ARGV[i + 1])), id)
      redis.call('HSET', KEYS[1], 'l:' .. id, ARGV[i + 2])
    end
  end
elseif op == 'burst' then
  b.burst = tonumber(ARGV[8])
elseif op ~= 'level' then
  return redis.error_reply('keel bucket script: unknown operation ' .. tostring(op))
end
save(b)
local since = 0
if b.drains > 0 then since = now - b.drained end
return {'ok', reset, fmt(b.tpm), fmt(b.rpm), fmt(b.tok), fmt(b.req), fmt(b.burst), fmt(b.peak),
  fmt(b.drains), fmt(since), extra, made}
