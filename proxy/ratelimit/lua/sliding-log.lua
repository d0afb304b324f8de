-- sliding-log: exact. ONE ZSET per identity holds the hits of its longest window (score = epoch ms of a
-- counted hit); a shorter window counts the tail of the same log. A hit counted in every window is one
-- entry, not one per window (as the memory store keeps it), so hourly + daily costs the daily log alone.
-- A batch: KEYS[d] is decision d's log, decided in order (the same identity twice sees its first hit).
-- ARGV[1]: '1' counts each request when every window admits it, '0' only looks (peek).
-- ARGV[2]: epoch ms to use as now, or '' for the server's TIME (so proxies with skewed clocks agree).
-- ARGV[1 + 2j], ARGV[2 + 2j]: window j's length in ms and its limit.
-- The last #KEYS ARGV: decision d's cost, a positive integer (1 for a peek): it is admitted only when
-- every window has that many left, and then adds that many entries with the same score, so every count
-- stays a ZCOUNT and the log never outgrows the largest limit.
-- Returns {now, then per decision: allowed, then per window: remaining, reset_at (ms), retry_after (ms)};
-- the same arithmetic as memory-store.ts decideLog.
local hit = ARGV[1] == '1'
local now, us
if ARGV[2] == '' then
  local t = redis.call('TIME')
  us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  now = math.floor(us / 1000)
else
  now = tonumber(ARGV[2])
  us = now * 1000
end

local n = (#ARGV - 2 - #KEYS) / 2
local W, L, after = {}, {}, {}
local longest = 1
for j = 1, n do
  W[j], L[j] = tonumber(ARGV[1 + 2 * j]), tonumber(ARGV[2 + 2 * j])
  -- A window of W ms at time t holds the hits in (t - W, t]: scores above now - W.
  after[j] = '(' .. string.format('%.0f', now - W[j])
  if W[j] > W[longest] then longest = j end
end
local expired = string.format('%.0f', now - W[longest])
local score = string.format('%.0f', now)
-- The member only has to be unique among the key's live hits. The microsecond clock modulo 10^11 (27.7 h)
-- is, for any window up to a day, and at 11 digits its string fits a 16-byte allocation once the ZSET
-- outgrows listpack encoding (a full 16-digit timestamp takes 24): 8 bytes less per hit.
local member = string.format('%.0f', us % 100000000000)
local out, o = { now }, 1
local ZADD_CHUNK = 1000

local function decide(key, cost)
  -- Counting trims the log first, so the longest window is all of it; a peek changes nothing.
  if hit then redis.call('ZREMRANGEBYSCORE', key, '-inf', expired) end
  local counts, allowed = {}, true
  for j = 1, n do
    local c
    if hit and j == longest then c = redis.call('ZCARD', key) else c = redis.call('ZCOUNT', key, after[j], '+inf') end
    counts[j] = c
    if c + cost > L[j] then allowed = false end
  end
  if allowed and hit then
    -- When a member is taken (two hits in one microsecond or one batch, a pinned test clock, a
    -- window over 27.7 h), suffix the count, which only grows while the time stands still. A cost of
    -- N adds N members, in as few ZADDs as collisions allow (at most ZADD_CHUNK per call: unpack's
    -- stack is bounded).
    local m, k, need = member, counts[longest], cost
    while need > 0 do
      if need == 1 then
        -- The usual case (cost 1, or the last member): no argument table to build.
        if redis.call('ZADD', key, 'NX', score, m) == 1 then break end
        m = member .. '-' .. k
        k = k + 1
      else
        local args, a = { 'NX' }, 1
        for _ = 1, math.min(need, ZADD_CHUNK) do
          args[a + 1], args[a + 2] = score, m
          a = a + 2
          m = member .. '-' .. k
          k = k + 1
        end
        need = need - redis.call('ZADD', key, unpack(args))
      end
    end
    redis.call('PEXPIRE', key, W[longest])
    for j = 1, n do counts[j] = counts[j] + cost end
  end

  o = o + 1
  out[o] = allowed and 1 or 0
  for j = 1, n do
    local w, limit, c = W[j], L[j], counts[j]
    local remaining, reset_at, retry = 0, now, 0
    if c < limit then remaining = limit - c end
    if cost > limit then
      -- Never fits.
      retry = w
    end
    if c > 0 then
      -- Short of room: the (c + cost - limit)-th oldest hit must leave before `cost` more fit (c may
      -- exceed the limit after a lowered limit).
      local drop = 1
      if c + cost > limit and cost <= limit then drop = c + cost - limit end
      local r = redis.call('ZRANGEBYSCORE', key, after[j], '+inf', 'WITHSCORES', 'LIMIT', 0, drop)
      reset_at = tonumber(r[2]) + w
      if c + cost > limit and cost <= limit then retry = tonumber(r[2 * drop]) + w - now end
    end
    out[o + 1], out[o + 2], out[o + 3] = remaining, reset_at, retry
    o = o + 3
  end
end

local costs = 2 + 2 * n
for d = 1, #KEYS do decide(KEYS[d], tonumber(ARGV[costs + d])) end
return out
