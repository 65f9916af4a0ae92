"""The Lua scripts of the Redis backend: one EVALSHA admits a batch, one settles a batch.

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
-- Admits a batch of asks in order, each all-or-nothing against the state the previous ones
-- left (one ask is a batch of one). KEYS: per ask, its scopes' base keys (their window, tokens
-- and leases keys append :w, :n, :c), then its budget base key when it has a budget.
-- ARGV: window_ms, lease_ms, count, then per ask its id and a spec of space-separated
--       integers: tokens cost_micro n_scopes has_budget, per scope rpm tpm concurrency
--       (-1: none), then daily monthly.
-- Returns, per ask in order: admitted, refused limit code (1 rpm, 2 tpm, 3 concurrency,
--          4 daily, 5 monthly), refused scope index (0-based, -1 budget), used, retry_ms,
--          day, month, day_end_ms, month_end_ms,
--          then per scope: requests, tokens, reset_ms (-1 when the scope has no window).
--
-- Every ask of a batch sees the same clock, so each key is pruned and read once per batch and
-- its state kept here (`keys`); admissions write their own entries at once (refusals read the
-- sets), while running totals, budget counters and TTLs are written once, at the end.
local window_ms = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local cutoff = now - window_ms
local out = {}
local keys = {}
local spent = {}

local days = math.floor(now / DAY)
local y, m, d = civil(days)
local day_id = y * 10000 + m * 100 + d
local month_id = y * 100 + m
local day_end = (days + 1) * DAY
local month_end = (days - d + 1 + month_days(y, m)) * DAY

-- The state of one scope's keys in this batch: requests and the oldest entry of the window,
-- the raw token total (`sum`, nil until read), leases (nil until read).
local function window(base)
  local st = keys[base]
  if st == nil then
    st = {w = base .. ':w', h = base .. ':n', c = base .. ':c', pruned = false, requests = 0,
          added = 0}
    keys[base] = st
  end
  return st
end

local function prune(st, tpm)
  if tpm and st.sum == nil then
    if not st.pruned then
      local expired = redis.call('ZRANGEBYSCORE', st.w, '-inf', cutoff)
      if #expired > 0 then
        local freed = 0
        for i = 1, #expired, 1000 do
          local values = redis.call('HMGET', st.h, unpack(expired, i, math.min(i + 999, #expired)))
          for _, v in ipairs(values) do
            if v then freed = freed + tonumber(v) end
          end
        end
        chunked('HDEL', st.h, expired)
        if freed ~= 0 then redis.call('HINCRBY', st.h, SUM, -freed) end
      end
    end
    st.sum = tonumber(redis.call('HGET', st.h, SUM) or '0')
    st.delta = 0
  end
  if not st.pruned then
    redis.call('ZREMRANGEBYSCORE', st.w, '-inf', cutoff)
    st.requests = redis.call('ZCARD', st.w)
    local oldest = redis.call('ZRANGE', st.w, 0, 0, 'WITHSCORES')
    if #oldest > 0 then st.oldest = tonumber(oldest[2]) end
    st.pruned = true
  end
end

local function admit(k, id, text)
  local tokens_arg = string.match(text, '^(%d+) ')
  local spec = numbers(text)
  local tokens, cost, n = spec[1], spec[2], spec[3]
  local has_budget = spec[4] == 1
  local code, refused, used, retry = 0, -1, 0, 0
  local scopes = {}

  for s = 1, n do
    local st = window(KEYS[k + s])
    local rpm, tpm, conc = spec[3 * s + 2], spec[3 * s + 3], spec[3 * s + 4]
    local view = {st = st, windowed = rpm >= 0 or tpm >= 0, tpm = tpm >= 0, conc = conc >= 0,
                  tokens = 0}
    if view.windowed then
      prune(st, view.tpm)
      if view.tpm then view.tokens = math.max(0, st.sum) end
      if code == 0 and rpm >= 0 and st.requests >= rpm then
        code, refused, used = 1, s - 1, st.requests
        local entry = redis.call('ZRANGE', st.w, st.requests - rpm, st.requests - rpm,
                                 'WITHSCORES')
        retry = tonumber(entry[2]) + window_ms - now
      elseif code == 0 and view.tpm and view.tokens + tokens > tpm then
        code, refused, used = 2, s - 1, view.tokens
        local need = view.tokens + tokens - tpm
        local entries = redis.call('ZRANGE', st.w, 0, 255, 'WITHSCORES')
        retry = window_ms
        if #entries > 0 then
          local ids = {}
          for i = 1, #entries, 2 do ids[#ids + 1] = entries[i] end
          local values = redis.call('HMGET', st.h, unpack(ids))
          local freed = 0
          for i, v in ipairs(values) do
            if v then freed = freed + tonumber(v) end
            retry = tonumber(entries[2 * i]) + window_ms - now
            if freed >= need then break end
          end
        end
      end
    end
    if view.conc then
      if st.leases == nil then
        redis.call('ZREMRANGEBYSCORE', st.c, '-inf', now)
        st.leases = redis.call('ZCARD', st.c)
      end
      if code == 0 and st.leases >= conc then
        code, refused, used, retry = 3, s - 1, st.leases, 1000
      end
    end
    scopes[s] = view
  end

  local budget = {}
  local day, month, ends_day, ends_month = 0, 0, 0, 0
  if has_budget then
    local base = KEYS[k + n + 1]
    day, month, ends_day, ends_month = day_id, month_id, day_end, month_end
    local daily, monthly = spec[3 * n + 5], spec[3 * n + 6]
    if daily >= 0 then
      budget[#budget + 1] = {4, base .. ':d:' .. day_id, daily, day_end}
    end
    if monthly >= 0 then
      budget[#budget + 1] = {5, base .. ':m:' .. month_id, monthly, month_end}
    end
    for _, b in ipairs(budget) do
      local counter = spent[b[2]]
      if counter == nil then
        counter = {value = tonumber(redis.call('GET', b[2]) or '0'), added = 0, ends = b[4]}
        spent[b[2]] = counter
      end
      b[5] = counter
      if code == 0 and (counter.value >= b[3] or counter.value + cost > b[3]) then
        code, refused, used, retry = b[1], -1, counter.value, b[4] - now
      end
    end
  end

  if code == 0 then
    for s = 1, n do
      local view = scopes[s]
      local st = view.st
      if view.windowed then
        redis.call('ZADD', st.w, now, id)
        st.requests = st.requests + 1
        st.added = st.added + 1
        if st.oldest == nil or now < st.oldest then st.oldest = now end
        if view.tpm then
          redis.call('HSET', st.h, id, tokens_arg)
          st.sum = st.sum + tokens
          st.delta = st.delta + tokens
          st.hashed = true
          view.tokens = view.tokens + tokens
        end
      end
      if view.conc then
        redis.call('ZADD', st.c, now + lease_ms, id)
        st.leases = st.leases + 1
        st.leased = true
      end
    end
    if cost > 0 then
      for _, b in ipairs(budget) do
        b[5].value = b[5].value + cost
        b[5].added = b[5].added + cost
      end
    end
  end

  local o = #out
  out[o + 1] = code == 0 and 1 or 0
  out[o + 2] = code
  out[o + 3] = refused
  out[o + 4] = used
  out[o + 5] = retry
  out[o + 6] = day
  out[o + 7] = month
  out[o + 8] = ends_day
  out[o + 9] = ends_month
  o = o + 9
  for s = 1, n do
    local view = scopes[s]
    if view.windowed then
      local reset = 0
      if view.st.oldest ~= nil then reset = math.max(0, view.st.oldest + window_ms - now) end
      out[o + 1] = view.st.requests
      out[o + 2] = view.tokens
      out[o + 3] = reset
    else
      out[o + 1] = 0
      out[o + 2] = 0
      out[o + 3] = -1
    end
    o = o + 3
  end
  return k + n + (has_budget and 1 or 0)
end

local k = 0
for a = 1, count do
  k = admit(k, ARGV[2 + 2 * a], ARGV[3 + 2 * a])
end

-- What the admissions added to running totals and budgets, and the keys' TTLs, once per key.
for _, st in pairs(keys) do
  if st.added > 0 then redis.call('PEXPIRE', st.w, window_ms + 1000) end
  if st.hashed then
    redis.call('HINCRBY', st.h, SUM, string.format('%.0f', st.delta))
    redis.call('PEXPIRE', st.h, window_ms + 1000)
  end
  if st.leased then redis.call('PEXPIRE', st.c, lease_ms + 1000) end
end
for key, counter in pairs(spent) do
  if counter.added > 0 then
    redis.call('INCRBY', key, string.format('%.0f', counter.added))
    redis.call('PEXPIREAT', key, counter.ends + DAY)
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
-- Settlements are grouped by key first, so each key is written once per batch.
local count = tonumber(ARGV[1])
local k = 1
local hashes, leases, budgets = {}, {}, {}

local function group(map, key)
  local entry = map[key]
  if entry == nil then
    entry = {ids = {}, values = {}, delta = 0, touched = false}
    map[key] = entry
  end
  return entry
end

local function spend(key, delta, expire_at)
  local entry = group(budgets, key)
  entry.delta = entry.delta + delta
  entry.touched = true
  entry.expire_at = expire_at
end

for i = 1, count do
  local id = ARGV[2 * i]
  local spec = numbers(ARGV[2 * i + 1])
  local n, has_budget, tokens, delta = spec[1], spec[2] == 1, spec[3], spec[4]
  local day, month, day_end, month_end = spec[5], spec[6], spec[7], spec[8]
  for s = 1, n do
    local flags = spec[8 + s]
    if flags % 2 == 1 then
      local entry = group(hashes, KEYS[k] .. ':n')
      entry.ids[#entry.ids + 1] = id
      entry.values[#entry.values + 1] = tokens
    end
    if flags >= 2 then
      local entry = group(leases, KEYS[k] .. ':c')
      entry.ids[#entry.ids + 1] = id
    end
    k = k + 1
  end
  if has_budget then
    local base = KEYS[k]
    k = k + 1
    if delta ~= 0 then
      if day ~= 0 then spend(base .. ':d:' .. day, delta, day_end + DAY) end
      if month ~= 0 then spend(base .. ':m:' .. month, delta, month_end + DAY) end
    end
  end
end

for h, entry in pairs(hashes) do
  -- Entries still in the window count their real tokens instead of the estimate.
  local change, fields = 0, {}
  for i = 1, #entry.ids, 1000 do
    local last = math.min(i + 999, #entry.ids)
    local old = redis.call('HMGET', h, unpack(entry.ids, i, last))
    for j = i, last do
      local value = old[j - i + 1]
      if value then
        change = change + entry.values[j] - tonumber(value)
        fields[#fields + 1] = entry.ids[j]
        fields[#fields + 1] = entry.values[j]
      end
    end
  end
  if #fields > 0 then
    for i = 1, #fields, 1000 do
      redis.call('HSET', h, unpack(fields, i, math.min(i + 999, #fields)))
    end
    redis.call('HINCRBY', h, SUM, string.format('%.0f', change))
  end
end
for c, entry in pairs(leases) do
  chunked('ZREM', c, entry.ids)
end
for key, entry in pairs(budgets) do
  if entry.touched then
    redis.call('INCRBY', key, string.format('%.0f', entry.delta))
    redis.call('PEXPIREAT', key, entry.expire_at)
  end
end
return count
"""
)
