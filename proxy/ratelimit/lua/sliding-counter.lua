-- sliding-counter: bounded memory. ONE hash per identity (KEYS[1]) holds every window: fields
-- 3j-2, 3j-1, 3j are window j's fixed-window index (epoch ms / W), current count and previous count.
-- Integer field names and values keep the hash a small listpack (about 140 bytes for two windows).
-- ARGV[1]: '1' counts the request when every window admits it, '0' only looks (peek).
-- ARGV[2]: epoch ms to use as now, or '' for the server's TIME (so proxies with skewed clocks agree).
-- ARGV[1 + 2j], ARGV[2 + 2j]: window j's length in ms and its limit.
-- Returns {allowed, now, then per window: remaining, reset_at (ms), retry_after (ms)}; the same
-- arithmetic as memory-store.ts decideCounter (integers scaled by W, exact in doubles below 2^53).
local key = KEYS[1]
local hit = ARGV[1] == '1'
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = math.floor((tonumber(t[1]) * 1000000 + tonumber(t[2])) / 1000)
else
  now = tonumber(ARGV[2])
end

local n = (#ARGV - 2) / 2
local fields = {}
for f = 1, 3 * n do fields[f] = f end
local stored = redis.call('HMGET', key, unpack(fields))

local idx, cur, prev = {}, {}, {}
local allowed = true
for j = 1, n do
  local w, limit = tonumber(ARGV[1 + 2 * j]), tonumber(ARGV[2 + 2 * j])
  local i = math.floor(now / w)
  local si = tonumber(stored[3 * j - 2])
  local c, p = tonumber(stored[3 * j - 1]) or 0, tonumber(stored[3 * j]) or 0
  if si ~= i then
    -- Roll lazily: the current window becomes the previous one, or both are out of reach.
    if si == i - 1 then p = c else p = 0 end
    c = 0
  end
  idx[j], cur[j], prev[j] = i, c, p
  if p * (w - (now - i * w)) + (c + 1) * w > limit * w then allowed = false end
end

local count = allowed and hit
local out = { allowed and 1 or 0, now }
local writes, ttl = {}, 0
for j = 1, n do
  local w, limit = tonumber(ARGV[1 + 2 * j]), tonumber(ARGV[2 + 2 * j])
  local i, c, p = idx[j], cur[j], prev[j]
  local e = now - i * w
  if count then c = c + 1 end
  local scaled = p * (w - e) + c * w
  local remaining, retry, reset_at = 0, 0, now
  if scaled < limit * w then remaining = math.floor((limit * w - scaled) / w) end
  if scaled + w > limit * w then
    -- Room comes back either as the previous window's weight fades, or only after the next roll.
    if c + 1 <= limit then
      retry = w - math.floor(((limit - c - 1) * w) / p) - e
    else
      retry = w - e + w - math.floor(((limit - 1) * w) / c)
    end
  end
  if c > 0 then reset_at = (i + 2) * w elseif p > 0 then reset_at = (i + 1) * w end
  out[#out + 1] = remaining
  out[#out + 1] = reset_at
  out[#out + 1] = retry
  if count then
    writes[#writes + 1] = 3 * j - 2
    writes[#writes + 1] = string.format('%.0f', i)
    writes[#writes + 1] = 3 * j - 1
    writes[#writes + 1] = c
    writes[#writes + 1] = 3 * j
    writes[#writes + 1] = p
    -- The hash is useless once every window has rolled twice past its last count.
    if (i + 2) * w - now > ttl then ttl = (i + 2) * w - now end
  end
end
if count then
  redis.call('HSET', key, unpack(writes))
  redis.call('PEXPIRE', key, string.format('%.0f', ttl))
end
return out
