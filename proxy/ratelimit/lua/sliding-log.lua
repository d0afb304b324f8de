-- sliding-log: exact. One ZSET per window (KEYS[j]); score = epoch ms of a counted hit.
-- ARGV[1]: '1' counts the request when every window admits it, '0' only looks (peek).
-- ARGV[2]: epoch ms to use as now, or '' for the server's TIME (so proxies with skewed clocks agree).
-- ARGV[1 + 2j], ARGV[2 + 2j]: window j's length in ms and its limit.
-- Returns {allowed, now, then per window: remaining, reset_at (ms), retry_after (ms)}; the same
-- arithmetic as memory-store.ts decideLog.
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

local n = #KEYS
local counts, cutoffs = {}, {}
local allowed = true
for j = 1, n do
  -- A window of W ms at time t holds the hits in (t - W, t].
  local cutoff = string.format('%.0f', now - tonumber(ARGV[1 + 2 * j]))
  local c
  if hit then
    redis.call('ZREMRANGEBYSCORE', KEYS[j], '-inf', cutoff)
    c = redis.call('ZCARD', KEYS[j])
  else
    c = redis.call('ZCOUNT', KEYS[j], '(' .. cutoff, '+inf')
  end
  counts[j], cutoffs[j] = c, cutoff
  if c >= tonumber(ARGV[2 + 2 * j]) then allowed = false end
end

local out = { allowed and 1 or 0, now }
local score = string.format('%.0f', now)
-- The member only has to be unique among the key's live hits. The microsecond clock modulo 10^11 (27.7 h)
-- is, for any window up to a day, and at 11 digits its string fits a 16-byte allocation once the ZSET
-- outgrows listpack encoding (a full 16-digit timestamp takes 24): 8 bytes less per hit.
local member = string.format('%.0f', us % 100000000000)
for j = 1, n do
  local key, w, limit, c = KEYS[j], tonumber(ARGV[1 + 2 * j]), tonumber(ARGV[2 + 2 * j]), counts[j]
  if allowed and hit then
    -- When the member is taken (two hits in one microsecond, a pinned test clock, a window over 27.7 h),
    -- suffix the count, which only grows while the time stands still.
    local m, k = member, c
    while redis.call('ZADD', key, 'NX', score, m) == 0 do
      m = member .. '-' .. k
      k = k + 1
    end
    redis.call('PEXPIRE', key, w)
    c = c + 1
  end
  local remaining, reset_at, retry = 0, now, 0
  if c < limit then remaining = limit - c end
  if c > 0 then
    -- Full: the (c - limit)-th oldest hit must leave before one more fits (c > limit after a lowered limit).
    local need = 0
    if c >= limit then need = c - limit end
    local r = redis.call('ZRANGEBYSCORE', key, '(' .. cutoffs[j], '+inf', 'WITHSCORES', 'LIMIT', 0, need + 1)
    reset_at = tonumber(r[2]) + w
    if c >= limit then retry = tonumber(r[2 * need + 2]) + w - now end
  end
  out[#out + 1] = remaining
  out[#out + 1] = reset_at
  out[#out + 1] = retry
end
return out
