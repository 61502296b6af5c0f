"""Lua run inside Redis: one signal's state changes as one atomic, de-duplicated step.

The math is `overdrive.domain.decay.DecayedSum` and `overdrive.domain.windows.WindowCounts`
transcribed line for line, so the Redis store folds signals exactly as the memory store does.
Numbers are stored with 17 significant digits (Lua's `tostring` keeps only 14).

The signal script (`SIGNAL_SCRIPT`) has five operations (ARGV[1]):
- `full`   — standalone Redis: marker, user, item, author, global and context-prior parts in one call.
- `user`   — Cluster: the user's slot (marker + counts, session, recent, windows, interests,
             habits, weekly engagement, the signal's context profile).
- `prior`  — Cluster: the signal context's population profile, with its own marker in that slot.
- `entity` — Cluster: an item's or author's slot (marker + engagement and windows).
- `global` — Cluster: the top-engaged and hot sorted sets, updated from an entity's state and
             version so that it is idempotent and order-proof (a stale version is ignored).
Each part with a marker key applies only if `SET marker NX` succeeded, so redelivering a signal
changes nothing. The other scripts are small helpers and the ranking's packed reads. See
`redis_features` for the key layout.
"""

from __future__ import annotations

from overdrive.domain.windows import COARSE_BUCKET_S, COARSE_SPAN_S, FINE_BUCKET_S, FINE_SPAN_S, WINDOWS_S

_COMMON = f"""
local FINE_W, FINE_SPAN, COARSE_W, COARSE_SPAN = {FINE_BUCKET_S}, {FINE_SPAN_S}, {COARSE_BUCKET_S}, {COARSE_SPAN_S}
local HOUR = {WINDOWS_S["1h"]}
local function fmt(x) return string.format('%.17g', x) end

-- DecayedSum.add on (value, t_ref); t_ref nil means empty.
local function decay_add(v, t, w, at, rate)
  if t == nil then return 0 + w, at end
  if at >= t then return v * math.exp(-rate * (at - t)) + w, at end
  return v + w * math.exp(-rate * (t - at)), t
end

local function prune(key, width, span, now, every)
  local last = tonumber(redis.call('HGET', key, '_p') or '')
  if last ~= nil and math.abs(now - last) < every then return end
  redis.call('HSET', key, '_p', fmt(now))
  local oldest = now - span - width
  local dead = {{}}
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local s = tonumber(string.sub(f, 2))
    if s ~= nil and f ~= '_p' and s + width <= oldest then dead[#dead + 1] = f end
    if #dead >= 500 then redis.call('HDEL', key, unpack(dead)); dead = {{}} end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
end

local function bump(key, width, span, ts, w, now)
  local start = string.format('%d', math.floor(ts / width) * width)
  redis.call('HINCRBY', key, 'c' .. start, 1)
  redis.call('HINCRBYFLOAT', key, 'w' .. start, w)
  redis.call('EXPIRE', key, span + width)
  prune(key, width, span, now, width * 6)
end

-- WindowCounts.add
local function windows_add(kf, kc, ts, w, now)
  if ts < now - COARSE_SPAN - COARSE_W then return end
  if ts >= now - FINE_SPAN - FINE_W then bump(kf, FINE_W, FINE_SPAN, ts, w, now) end
  bump(kc, COARSE_W, COARSE_SPAN, ts, w, now)
end

local function first_sighting(marker, ttl)
  if ttl <= 0 then return true end
  return redis.call('SET', marker, '1', 'NX', 'EX', ttl) ~= false
end

-- engagement + windows of an item or author; returns value, t_ref, version
local function entity(ke, kf, kc, ts, w, now, rate)
  local h = redis.call('HMGET', ke, 'v', 't', 'n')
  local v, t = decay_add(tonumber(h[1]) or 0, tonumber(h[2]), w, ts, rate)
  local n = (tonumber(h[3]) or 0) + 1
  redis.call('HSET', ke, 'v', fmt(v), 't', fmt(t), 'n', n)
  windows_add(kf, kc, ts, w, now)
  return v, t, n
end

local function global(ktop, khot, kver, item, v, t, n, rate, hot_ts)
  if n > (tonumber(redis.call('HGET', kver, item) or '0') or 0) then
    redis.call('HSET', kver, item, n)
    if v > 0 then
      redis.call('ZADD', ktop, fmt(math.log(v) + rate * t), item)
    else
      redis.call('ZREM', ktop, item)
    end
  end
  if hot_ts ~= nil then redis.call('ZADD', khot, 'GT', fmt(hot_ts), item) end
end

local function session(ks, ts, gap)
  local h = redis.call('HMGET', ks, 'start', 'last', 'n', 'total')
  local start, last = tonumber(h[1]), tonumber(h[2])
  local n, total = tonumber(h[3]) or 0, tonumber(h[4]) or 0
  if last == nil or ts > last + gap then start, n, total = ts, 0, total + 1 end
  if ts >= start then
    n = n + 1
    if last == nil or ts > last then last = ts end
  end
  redis.call('HSET', ks, 'start', fmt(start), 'last', fmt(last), 'n', n, 'total', total)
end

local function stamp(v) return tonumber(string.match(v, '^(%S+)')) end

-- newest first, ordered by time; a later arrival goes before equal timestamps
local function recent_add(kr, ts, val, maxlen)
  local head = redis.call('LINDEX', kr, 0)
  if not head or ts >= stamp(head) then
    redis.call('LPUSH', kr, val)
  else
    local placed = false
    for _, v in ipairs(redis.call('LRANGE', kr, 0, -1)) do
      if stamp(v) <= ts then
        redis.call('LINSERT', kr, 'BEFORE', v, val)
        placed = true
        break
      end
    end
    if not placed then redis.call('RPUSH', kr, val) end
  end
  redis.call('LTRIM', kr, 0, maxlen - 1)
end

local function interest_add(k, feat, w, ts, rate)
  local cur = redis.call('HGET', k, feat)
  local v, t = 0, nil
  if cur then
    local a, b = string.match(cur, '^(%S+) (%S+)$')
    v, t = tonumber(a), tonumber(b)
  end
  v, t = decay_add(v, t, w, ts, rate)
  redis.call('HSET', k, feat, fmt(v) .. ' ' .. fmt(t))
end

-- KEYS from `first`: counts, session, recent, fine, coarse, long, short, excluded, medium,
-- habits, this week's engagement, the signal's context profile, its device's all-day profile (the
-- context profile again where the device is unknown)
local function user(first, stype, ts, w, now, gap, maxlen, val, lrate, srate, mrate, feats, item, excludes,
                    habits, in_context, week_ttl)
  local k = function(i) return KEYS[first + i] end
  redis.call('HINCRBY', k(0), stype, 1)
  if excludes then redis.call('SADD', k(7), item) end
  windows_add(k(3), k(4), ts, w, now)
  session(k(1), ts, gap)
  recent_add(k(2), ts, val, maxlen)
  for _, h in ipairs(habits) do interest_add(k(9), h, 1, ts, lrate) end
  if w ~= 0 and #feats > 0 then
    for _, f in ipairs(feats) do
      interest_add(k(5), f, w, ts, lrate)
      interest_add(k(6), f, w, ts, srate)
      interest_add(k(8), f, w, ts, mrate)
      redis.call('HINCRBYFLOAT', k(10), f, w)
      if in_context then
        interest_add(k(11), f, w, ts, lrate)
        if k(12) ~= k(11) then interest_add(k(12), f, w, ts, lrate) end
      end
    end
    redis.call('EXPIRE', k(10), week_ttl)
  end
end
"""

# ARGV for full/user/entity: op, marker_ttl, ts, w, now, eng_rate, long_rate, short_rate,
# session_gap, recent_max, signal_type, recent_value, item_id, has_author, excludes, medium_rate,
# week_ttl, n_habits, habit..., in_context, feature...
_MAIN = """
local op = ARGV[1]
if op == 'prior' then
  -- KEYS: marker (in the global slot), the context's population profile, every context's;
  -- ARGV: op, ttl, ts, w, rate, feature...
  if first_sighting(KEYS[1], tonumber(ARGV[2])) then
    for i = 6, #ARGV do
      interest_add(KEYS[2], ARGV[i], tonumber(ARGV[4]), tonumber(ARGV[3]), tonumber(ARGV[5]))
      interest_add(KEYS[3], ARGV[i], tonumber(ARGV[4]), tonumber(ARGV[3]), tonumber(ARGV[5]))
    end
  end
  return 1
end
if op == 'global' then
  -- KEYS: top, hot, ver; ARGV: op, item, value, t_ref, version, rate, hot_ts ('' for none)
  local hot_ts = nil
  if ARGV[7] ~= '' then hot_ts = tonumber(ARGV[7]) end
  global(KEYS[1], KEYS[2], KEYS[3], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), hot_ts)
  return 1
end

local ttl, ts, w, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local eng_rate = tonumber(ARGV[6])
local fresh = first_sighting(KEYS[1], ttl)

if op == 'entity' then
  -- KEYS: marker, engagement, fine, coarse; returns {applied, value, t_ref, version}
  if fresh then
    local v, t, n = entity(KEYS[2], KEYS[3], KEYS[4], ts, w, now, eng_rate)
    return {1, fmt(v), fmt(t), n}
  end
  local h = redis.call('HMGET', KEYS[2], 'v', 't', 'n')
  return {0, h[1] or '0', h[2] or '0', tonumber(h[3] or '0')}
end

if not fresh then return 0 end
local n_habits = tonumber(ARGV[18])
local habits, feats = {}, {}
for i = 19, 18 + n_habits do habits[#habits + 1] = ARGV[i] end
local in_context = ARGV[19 + n_habits] == '1'
for i = 20 + n_habits, #ARGV do feats[#feats + 1] = ARGV[i] end
-- KEYS: marker, user x13 (2..14)
user(2, ARGV[11], ts, w, now, tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[12],
     tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[16]), feats, ARGV[13], ARGV[15] == '1',
     habits, in_context, tonumber(ARGV[17]))
if op == 'full' then
  -- KEYS: item x3 (15..17), author x3 (18..20), top, hot, ver (21..23), context prior, every context's (24, 25)
  local v, t, n = entity(KEYS[15], KEYS[16], KEYS[17], ts, w, now, eng_rate)
  if ARGV[14] == '1' then entity(KEYS[18], KEYS[19], KEYS[20], ts, w, now, eng_rate) end
  local hot_ts = nil
  if ts >= now - HOUR then hot_ts = ts end
  global(KEYS[21], KEYS[22], KEYS[23], ARGV[13], v, t, n, eng_rate, hot_ts)
  if in_context and w ~= 0 then
    for _, f in ipairs(feats) do
      interest_add(KEYS[24], f, w, ts, tonumber(ARGV[7]))
      interest_add(KEYS[25], f, w, ts, tonumber(ARGV[7]))
    end
  end
end
return 1
"""

SIGNAL_SCRIPT = _COMMON + _MAIN

# KEYS[1]: a hash; ARGV: field, value, field, value, ... ; ARGV[last]: TTL seconds (0: none).
# Each field is raised to the value if that is higher (offsets only ever move forward).
MAX_SET_SCRIPT = """
local ttl = tonumber(ARGV[#ARGV])
for i = 1, #ARGV - 1, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '')
  if cur == nil or tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""


# The ranking's reads, answered as packed little-endian doubles: one reply string in place of two
# bulk strings per candidate (for a profile, of one per feature besides its name), each a Python
# bytes object and a float() to parse.

# Many items' engagement: (value, t_ref) per key, NaN for items never engaged with.
ENGAGEMENT_READ_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local r = redis.call('HMGET', key, 'v', 't')
  out[i] = struct.pack('<dd', tonumber(r[1]) or (0 / 0), tonumber(r[2]) or (0 / 0))
end
return table.concat(out)
"""

# Interest profiles (hashes of "value t_ref", all in one user's slot): per key, its feature names
# and their (value, t_ref) pairs.
INTERESTS_READ_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local flat = redis.call('HGETALL', key)
  local names, packed = {}, {}
  for j = 1, #flat, 2 do
    local v, t = string.match(flat[j + 1], '^(%S+) (%S+)$')
    names[#names + 1] = flat[j]
    packed[#packed + 1] = struct.pack('<dd', tonumber(v), tonumber(t))
  end
  out[2 * i - 1] = names
  out[2 * i] = table.concat(packed)
end
return out
"""
