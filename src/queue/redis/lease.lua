-- ARGV: prefix, worker, lease ms, max in flight (0: no limit), max per second (0: no limit)
local worker, lease_ms = ARGV[2], tonumber(ARGV[3])
local max_flight, max_rate = tonumber(ARGV[4]), tonumber(ARGV[5])
local ready = P .. 'ready'

-- The earliest due head; drop stale entries (should not exist) on the way.
local id, f
for _ = 1, 16 do
  local due = redis.call('ZRANGEBYSCORE', ready, '-inf', ms(NOW), 'LIMIT', 0, 1)
  if #due == 0 then
    break
  end
  f = redis.call('HMGET', jk(due[1]), 'state', 'attempts')
  if f[1] == 'queued' or f[1] == 'retrying' then
    id = due[1]
    break
  end
  redis.call('ZREM', ready, due[1])
end

if not id then
  local nxt = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
  if #nxt == 0 then
    return { 'idle', '-1' }
  end
  return { 'idle', ms(math.max(0, tonumber(nxt[2]) - NOW)) }
end

if max_flight > 0 and redis.call('ZCARD', P .. 'leases') >= max_flight then
  return { 'throttled', '100' }
end
-- Starts are spaced evenly with no burst (see "Delivery limits" in mod.rs): `rate:next` is the
-- next free slot. Below 20 per second each start restarts the spacing; from 20 on, a late start
-- keeps the grid (late wake-ups cost no throughput) and the grid has one slot fewer per second.
-- The spacing also leaves 10 ms a second for the calls' arrival at Puhuri to jitter.
if max_rate > 0 then
  local rk = P .. 'rate:next'
  local keep_grid = max_rate >= 20
  local spacing = math.ceil(1010000 / (keep_grid and (max_rate - 1) or max_rate))
  local slot = tonumber(redis.call('GET', rk) or '0')
  if slot > NOW_US then
    return { 'throttled', ms(math.max(1, math.ceil((slot - NOW_US) / 1000))) }
  end
  if not keep_grid or NOW_US - slot >= spacing then
    slot = NOW_US
  end
  redis.call('SET', rk, string.format('%d', slot + spacing), 'PX', math.ceil(spacing / 1000) + 1000)
end

local until_ms = NOW + lease_ms
redis.call('ZREM', ready, id)
redis.call('ZADD', P .. 'leases', ms(until_ms), id)
redis.call('HSET', jk(id), 'worker', worker, 'lease_until', ms(until_ms),
  'attempts', ms(tonumber(f[2]) + 1))
redis.call('HDEL', jk(id), 'next_attempt_at')
set_state(id, f[1], 'running')
local reply = with_status('leased', id)
-- The values last delivered for the job's coalesce key (read from the record just fetched), so
-- the worker needs no second call.
local ck
for i = 2, #reply, 2 do
  if reply[i] == 'coalesce_key' then
    ck = reply[i + 1]
  end
end
if ck then
  local d = redis.call('HGETALL', P .. 'delivered:' .. ck)
  local m = {}
  for i = 1, #d, 2 do
    m[d[i]] = d[i + 1]
  end
  table.insert(reply, '__delivered')
  table.insert(reply, #d == 0 and '{}' or cjson.encode(m))
end
return reply
