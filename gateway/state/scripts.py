"""The Lua scripts of the Redis store: each runs atomically on the server, so gateway
processes sharing a Redis never see each other's half-done updates.

Integers go to Redis as the strings they arrived as (ARGV): a Lua number turned back into
a string may come out as "1e+15", which HINCRBY and PEXPIRE refuse. Comparisons use Lua
numbers (doubles): counters and amounts stay exact below 2^53 (9e15 nano-USD, $9M).
Times of in-flight slots and pending jobs come from the server's clock (TIME), one clock
for every process.
"""

from __future__ import annotations

# KEYS[1]: the principal's in-flight zset (member: slot id, score: lease end, ms);
# KEYS[2..]: one counter hash per window period (req, tok, tok_r, usd, usd_r).
# ARGV: cap (-1: not counted), lease ms, slot id, tokens, cost, number of checks,
# then each counter's TTL in ms, then per check: counter number, kind (r, t, b), amount.
# Returns the failed checks (0: concurrency, n: the n-th check); empty when admitted.
ADMIT = """
local nc = #KEYS - 1
local cap = tonumber(ARGV[1])
local cost = tonumber(ARGV[5])
local failed = {}
local now_ms = 0
if cap >= 0 then
  local t = redis.call('TIME')
  now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[1]) >= cap then failed[#failed + 1] = 0 end
end
local values = {}
for i = 1, nc do
  values[i] = redis.call('HMGET', KEYS[i + 1], 'req', 'tok', 'tok_r', 'usd', 'usd_r')
end
local base = 6 + nc
for j = 1, tonumber(ARGV[6]) do
  local at = base + 3 * (j - 1)
  local v = values[tonumber(ARGV[at + 1])]
  local kind = ARGV[at + 2]
  local amount = tonumber(ARGV[at + 3])
  local ok
  if kind == 'r' then
    ok = (tonumber(v[1]) or 0) < amount
  elseif kind == 't' then
    ok = (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0) < amount
  else
    local spent = (tonumber(v[4]) or 0) + (tonumber(v[5]) or 0)
    ok = spent < amount and spent + cost <= amount
  end
  if not ok then failed[#failed + 1] = j end
end
if #failed > 0 then return failed end
if cap >= 0 then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
for i = 1, nc do
  local k = KEYS[i + 1]
  redis.call('HINCRBY', k, 'req', 1)
  if ARGV[4] ~= '0' then redis.call('HINCRBY', k, 'tok_r', ARGV[4]) end
  if ARGV[5] ~= '0' then redis.call('HINCRBY', k, 'usd_r', ARGV[5]) end
  redis.call('PEXPIRE', k, ARGV[6 + i])
end
return failed
"""

# KEYS as ADMIT's. ARGV: slot id ("" when not counted), estimated tokens, estimated cost,
# tokens used, cost. A counter whose period expired is left alone: recreating it would
# make a key without a TTL, for a period nobody reads any more.
SETTLE = """
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
for i = 2, #KEYS do
  local k = KEYS[i]
  if redis.call('EXISTS', k) == 1 then
    if ARGV[2] ~= '0' and redis.call('HINCRBY', k, 'tok_r', '-' .. ARGV[2]) < 0 then
      redis.call('HSET', k, 'tok_r', '0')
    end
    if ARGV[3] ~= '0' and redis.call('HINCRBY', k, 'usd_r', '-' .. ARGV[3]) < 0 then
      redis.call('HSET', k, 'usd_r', '0')
    end
    if ARGV[4] ~= '0' then redis.call('HINCRBY', k, 'tok', ARGV[4]) end
    if ARGV[5] ~= '0' then redis.call('HINCRBY', k, 'usd', ARGV[5]) end
  end
end
return 0
"""

# KEYS[1]: pending jobs zset (member: job id, score: TTL end, ms); KEYS[2]: the job hash.
# ARGV: job id, owner, record, TTL ms, max pending. Returns 1 when created.
JOB_CREATE = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then return 0 end
redis.call('HSET', KEYS[2], 'owner', ARGV[2], 'record', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[4]), ARGV[1])
return 1
"""

# KEYS as JOB_CREATE's. ARGV: job id, record, TTL ms, finished (1/0). ZREM is the guard
# against a double finish: a job leaves the pending set once, however often it is told.
JOB_UPDATE = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[2], 'record', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[1], 'XX', now_ms + tonumber(ARGV[3]), ARGV[1])
end
return 1
"""

# KEYS[1]: id -> record, KEYS[2]: secret hash -> id, KEYS[3]: id -> secret hash.
# ARGV: key id, secret hash, record. A key's old secret hash stops finding it.
KEY_PUT = """
local old = redis.call('HGET', KEYS[3], ARGV[1])
if old and old ~= ARGV[2] and redis.call('HGET', KEYS[2], old) == ARGV[1] then
  redis.call('HDEL', KEYS[2], old)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return 1
"""

# KEYS and ARGV as KEY_PUT's. Returns 0 (and changes nothing) when the key id exists.
KEY_CREATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return 1
"""

# KEYS as KEY_PUT's. ARGV: secret hash. Returns the record or nil.
KEY_BY_HASH = """
local id = redis.call('HGET', KEYS[2], ARGV[1])
if not id then return false end
return redis.call('HGET', KEYS[1], id)
"""

# KEYS as KEY_PUT's. ARGV: key id. Returns 1 when the key existed.
KEY_DELETE = """
local h = redis.call('HGET', KEYS[3], ARGV[1])
if h and redis.call('HGET', KEYS[2], h) == ARGV[1] then redis.call('HDEL', KEYS[2], h) end
redis.call('HDEL', KEYS[3], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
"""
