"""The Lua scripts of the Redis backend: one EVALSHA admits, one settles a batch.

Kept as module constants (not package data) so an installed wheel always carries them. Both
scripts read the clock with ``redis.call('TIME')`` so replicas with skewed clocks agree, and
both give every key they write a TTL so idle tenants leave nothing behind.

Key layout (``P`` is ``RedisConfig.key_prefix`` + ``rl:``, ``S`` a scope key such as
``{acme}:m:gpt-4o``; the braces are a Redis Cluster hash tag on the tenant):

- ``P S:w``  sorted set, the sliding-window log: member = reservation id, score = admission ms
- ``P S:n``  hash, the tokens of each window entry, and their running total in field ``#``
- ``P S:c``  sorted set, concurrency leases: member = reservation id, score = expiry ms
- ``P {t}:b:d:YYYYMMDD`` / ``P {t}:b:m:YYYYMM``  budget counters in micro-dollars (spent +
  reserved), derived inside the script from the declared base key ``P {t}:b`` and the server's
  date; they share its hash tag, hence its slot.
"""

from __future__ import annotations

from typing import Final

# Shared helpers: the clock, the calendar (Howard Hinnant's civil-from-days), chunked commands.
_PRELUDE: Final = r"""
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local SUM = '#'
local DAY = 86400000

local function numbers(text)
  local out = {}
  for value in string.gmatch(text, '%-?%d+') do out[#out + 1] = tonumber(value) end
  return out
end

local function chunked(command, key, list)
  for i = 1, #list, 1000 do
    redis.call(command, key, unpack(list, i, math.min(i + 999, #list)))
  end
end

local function civil(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function month_days(y, m)
  if m == 2 then
    if (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 then return 29 end
    return 28
  end
  if m == 4 or m == 6 or m == 9 or m == 11 then return 30 end
  return 31
end
"""

ADMIT: Final = (
    _PRELUDE
    + r"""
-- KEYS: each scope's base key (its window, tokens and leases keys append :w, :n, :c), then
--       the budget base key when there is a budget.
-- ARGV: id, tokens, cost_micro, window_ms, lease_ms, and a spec of space-separated integers:
--       n_scopes has_budget, per scope rpm tpm concurrency (-1: none), then daily monthly.
-- Returns: admitted, refused limit code (1 rpm, 2 tpm, 3 concurrency, 4 daily, 5 monthly),
--          refused scope index (0-based, -1 budget), used, retry_ms,
--          day, month, day_end_ms, month_end_ms,
--          then per scope: requests, tokens, reset_ms (-1 when the scope has no window).
local id = ARGV[1]
local tokens = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local window_ms = tonumber(ARGV[4])
local lease_ms = tonumber(ARGV[5])
local spec = numbers(ARGV[6])
local n = spec[1]
local has_budget = spec[2] == 1
local cutoff = now - window_ms

local code, refused, used, retry = 0, -1, 0, 0
local state = {}

for s = 1, n do
  local w, h, c = KEYS[s] .. ':w', KEYS[s] .. ':n', KEYS[s] .. ':c'
  local rpm, tpm, conc = spec[3 * s], spec[3 * s + 1], spec[3 * s + 2]
  local st = {w = w, h = h, c = c, windowed = rpm >= 0 or tpm >= 0, tpm = tpm >= 0,
              conc = conc >= 0, requests = 0, tokens = 0}
  if st.windowed then
    if st.tpm then
      local expired = redis.call('ZRANGEBYSCORE', w, '-inf', cutoff)
      if #expired > 0 then
        local freed = 0
        for i = 1, #expired, 1000 do
          local values = redis.call('HMGET', h, unpack(expired, i, math.min(i + 999, #expired)))
          for _, v in ipairs(values) do
            if v then freed = freed + tonumber(v) end
          end
        end
        chunked('HDEL', h, expired)
        if freed ~= 0 then redis.call('HINCRBY', h, SUM, -freed) end
      end
      st.tokens = math.max(0, tonumber(redis.call('HGET', h, SUM) or '0'))
    end
    redis.call('ZREMRANGEBYSCORE', w, '-inf', cutoff)
    st.requests = redis.call('ZCARD', w)
    if code == 0 and rpm >= 0 and st.requests >= rpm then
      code, refused, used = 1, s - 1, st.requests
      local entry = redis.call('ZRANGE', w, st.requests - rpm, st.requests - rpm, 'WITHSCORES')
      retry = tonumber(entry[2]) + window_ms - now
    elseif code == 0 and st.tpm and st.tokens + tokens > tpm then
      code, refused, used = 2, s - 1, st.tokens
      local need = st.tokens + tokens - tpm
      local entries = redis.call('ZRANGE', w, 0, 255, 'WITHSCORES')
      retry = window_ms
      if #entries > 0 then
        local ids = {}
        for i = 1, #entries, 2 do ids[#ids + 1] = entries[i] end
        local values = redis.call('HMGET', h, unpack(ids))
        local freed = 0
        for i, v in ipairs(values) do
          if v then freed = freed + tonumber(v) end
          retry = tonumber(entries[2 * i]) + window_ms - now
          if freed >= need then break end
        end
      end
    end
  end
  if st.conc then
    redis.call('ZREMRANGEBYSCORE', c, '-inf', now)
    local leases = redis.call('ZCARD', c)
    if code == 0 and leases >= conc then
      code, refused, used, retry = 3, s - 1, leases, 1000
    end
  end
  state[s] = st
end

local day_id, month_id, day_end, month_end = 0, 0, 0, 0
local budget = {}
if has_budget then
  local base = KEYS[n + 1]
  local days = math.floor(now / DAY)
  local y, m, d = civil(days)
  day_id = y * 10000 + m * 100 + d
  month_id = y * 100 + m
  day_end = (days + 1) * DAY
  month_end = (days - d + 1 + month_days(y, m)) * DAY
  local daily, monthly = spec[3 * n + 3], spec[3 * n + 4]
  if daily >= 0 then
    budget[#budget + 1] = {4, base .. ':d:' .. day_id, daily, day_end}
  end
  if monthly >= 0 then
    budget[#budget + 1] = {5, base .. ':m:' .. month_id, monthly, month_end}
  end
  if code == 0 then
    for _, b in ipairs(budget) do
      local spent = tonumber(redis.call('GET', b[2]) or '0')
      if spent >= b[3] or spent + cost > b[3] then
        code, refused, used, retry = b[1], -1, spent, b[4] - now
        break
      end
    end
  end
end

if code == 0 then
  for s = 1, n do
    local st = state[s]
    local w, h, c = st.w, st.h, st.c
    if st.windowed then
      redis.call('ZADD', w, now, id)
      redis.call('PEXPIRE', w, window_ms + 1000)
      st.requests = st.requests + 1
      if st.tpm then
        redis.call('HSET', h, id, ARGV[2])
        redis.call('HINCRBY', h, SUM, ARGV[2])
        redis.call('PEXPIRE', h, window_ms + 1000)
        st.tokens = st.tokens + tokens
      end
    end
    if st.conc then
      redis.call('ZADD', c, now + lease_ms, id)
      redis.call('PEXPIRE', c, lease_ms + 1000)
    end
  end
  if cost > 0 then
    for _, b in ipairs(budget) do
      redis.call('INCRBY', b[2], ARGV[3])
      redis.call('PEXPIREAT', b[2], b[4] + DAY)
    end
  end
end

local out = {code == 0 and 1 or 0, code, refused, used, retry,
             day_id, month_id, day_end, month_end}
for s = 1, n do
  local st = state[s]
  if st.windowed then
    local oldest = redis.call('ZRANGE', st.w, 0, 0, 'WITHSCORES')
    local reset = 0
    if #oldest > 0 then reset = math.max(0, tonumber(oldest[2]) + window_ms - now) end
    out[#out + 1] = st.requests
    out[#out + 1] = st.tokens
    out[#out + 1] = reset
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = -1
  end
end
return out
"""
)

SETTLE: Final = (
    _PRELUDE
    + r"""
-- Settles a batch. KEYS: per settlement, its scopes' base keys, then its budget base key when
-- it has one. ARGV: count, then per settlement its id and a spec of space-separated integers:
--   n_scopes has_budget tokens cost_delta_micro day month day_end month_end,
--   then per scope flags (1: tokens are tracked, 2: holds a lease; summed).
-- day / month are 0 when the budget has no daily / monthly ceiling.
local count = tonumber(ARGV[1])
local k = 1
for i = 1, count do
  local id = ARGV[2 * i]
  local spec = numbers(ARGV[2 * i + 1])
  local n, has_budget, tokens, delta = spec[1], spec[2] == 1, spec[3], spec[4]
  local day, month, day_end, month_end = spec[5], spec[6], spec[7], spec[8]
  for s = 1, n do
    local flags = spec[8 + s]
    if flags % 2 == 1 then
      local h = KEYS[k] .. ':n'
      local old = redis.call('HGET', h, id)
      if old then  -- still in the window: count the real tokens instead of the estimate
        redis.call('HSET', h, id, tokens)
        redis.call('HINCRBY', h, SUM, tokens - tonumber(old))
      end
    end
    if flags >= 2 then
      redis.call('ZREM', KEYS[k] .. ':c', id)
    end
    k = k + 1
  end
  if has_budget then
    local base = KEYS[k]
    k = k + 1
    if delta ~= 0 then
      if day ~= 0 then
        redis.call('INCRBY', base .. ':d:' .. day, delta)
        redis.call('PEXPIREAT', base .. ':d:' .. day, day_end + DAY)
      end
      if month ~= 0 then
        redis.call('INCRBY', base .. ':m:' .. month, delta)
        redis.call('PEXPIREAT', base .. ':m:' .. month, month_end + DAY)
      end
    end
  end
end
return count
"""
)
