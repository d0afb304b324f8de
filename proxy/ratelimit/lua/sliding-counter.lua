-- sliding-counter: bounded memory. ONE short string per identity holds every window, as decimal integers
-- separated by spaces: window j's fixed-window index (epoch ms / W), current count and previous count,
-- e.g. "493616 57 0 20567 812 0" for two windows (about 100 bytes of Redis memory in all; a hash of the
-- same fields takes a third more, and its commands cost Redis twice the CPU of GET and SET).
-- A batch: KEYS[d] is decision d's string, decided in order (the same key twice sees its first count).
-- ARGV[1]: '1' counts each request when every window admits it, '0' only looks (peek).
-- ARGV[2]: epoch ms to use as now, or '' for the server's TIME (so proxies with skewed clocks agree).
-- ARGV[1 + 2j], ARGV[2 + 2j]: window j's length in ms and its limit.
-- The last #KEYS ARGV: decision d's cost, a positive integer (1 for a peek): it is admitted only when
-- every window has that many left, and then counts that many.
-- Returns {now, then per decision: allowed, then per window: remaining, reset_at (ms), retry_after (ms)};
-- the same arithmetic as memory-store.ts decideCounter, operation for operation (integers scaled by W, in
-- doubles: exact below 2^53, and rounded alike in both beyond it).
local hit = ARGV[1] == '1'
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = math.floor((tonumber(t[1]) * 1000000 + tonumber(t[2])) / 1000)
else
  now = tonumber(ARGV[2])
end

local n = (#ARGV - 2 - #KEYS) / 2
local W, L = {}, {}
for j = 1, n do W[j], L[j] = tonumber(ARGV[1 + 2 * j]), tonumber(ARGV[2 + 2 * j]) end
local format = string.rep(' %d', 3 * n):sub(2)
local out, o = { now }, 1
-- Window j's index, current and previous count at 3j-2, 3j-1, 3j; reused across decisions.
local state = {}

local function decide(key, cost)
  local stored, f = redis.call('GET', key), 0
  if stored then
    for x in string.gmatch(stored, '%d+') do
      f = f + 1
      state[f] = tonumber(x)
    end
  end
  -- Missing or written for fewer windows (a reload added one): the rest start empty.
  for k = f + 1, 3 * n do state[k] = -1 end

  local allowed = true
  for j = 1, n do
    local w = W[j]
    local i = math.floor(now / w)
    local si, c, p = state[3 * j - 2], state[3 * j - 1], state[3 * j]
    if si ~= i then
      -- Roll lazily: the current window becomes the previous one, or both are out of reach.
      if si == i - 1 then p = c else p = 0 end
      c = 0
    end
    state[3 * j - 2], state[3 * j - 1], state[3 * j] = i, c, p
    if p * (w - (now - i * w)) + (c + cost) * w > L[j] * w then allowed = false end
  end

  local count = allowed and hit
  o = o + 1
  out[o] = allowed and 1 or 0
  local ttl = 0
  for j = 1, n do
    local w, limit = W[j], L[j]
    local i, c, p = state[3 * j - 2], state[3 * j - 1], state[3 * j]
    local e = now - i * w
    if count then
      c = c + cost
      state[3 * j - 1] = c
      -- The string is useless once every window has rolled twice past its last count.
      if (i + 2) * w - now > ttl then ttl = (i + 2) * w - now end
    end
    local scaled = p * (w - e) + c * w
    local remaining, retry, reset_at = 0, 0, now
    if scaled < limit * w then remaining = math.floor((limit * w - scaled) / w) end
    if scaled + cost * w > limit * w then
      -- Room for `cost` comes back either as the previous window's weight fades, or only after the next
      -- roll; a cost above the limit never fits.
      if cost > limit then
        retry = w
      elseif c + cost <= limit then
        retry = w - math.floor(((limit - c - cost) * w) / p) - e
      else
        retry = w - e + w - math.floor(((limit - cost) * w) / c)
      end
    end
    if c > 0 then reset_at = (i + 2) * w elseif p > 0 then reset_at = (i + 1) * w end
    out[o + 1], out[o + 2], out[o + 3] = remaining, reset_at, retry
    o = o + 3
  end
  if count then
    redis.call('SET', key, string.format(format, unpack(state, 1, 3 * n)), 'PX', string.format('%.0f', ttl))
  end
end

local costs = 2 + 2 * n
for d = 1, #KEYS do decide(KEYS[d], tonumber(ARGV[costs + d])) end
return out
