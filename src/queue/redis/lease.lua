-- ARGV: prefix, worker, lease ms, max in flight (0: no limit), spacing of starts in us (0: no
--       rate limit), 1 when a late start keeps the grid (both from protocol::start_spacing_us),
--       the call's fencing number (0: not fenced; see "Fenced leases" in queue/mod.rs), 1 when
--       the worker got no answer to its previous call
local worker, lease_ms = ARGV[2], tonumber(ARGV[3])
local max_flight, spacing, keep_grid = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1'
local fence, previous_lost = tonumber(ARGV[7] or '0'), ARGV[8] == '1'
local ready = key(K_ready)

-- Fencing: `worker:<w>` holds "<number>:<job id or empty>" of the worker's latest lease call.
-- A call with a number not above it is one the worker gave up on: it changes nothing. When the
-- worker lost the previous call's answer, a job that call leased and that still runs under the
-- worker is a lease it never heard of: it goes back in line, its attempt given back.
local wk
if fence > 0 then
  wk = key(K_worker, worker)
  local held = redis.call('GET', wk)
  if held then
    local sep = string.find(held, ':', 1, true)
    local held_fence, held_id = tonumber(string.sub(held, 1, sep - 1)), string.sub(held, sep + 1)
    if held_fence >= fence then
      return { 'idle', '-1' }
    end
    if previous_lost and held_id ~= '' then
      local hk = key(K_job, held_id)
      local h = redis.call('HMGET', hk, 'state', 'worker', 'attempts')
      if h[1] == STATE_running and h[2] == worker then
        local attempts = math.max(0, tonumber(h[3]) - 1)
        redis.call('ZREM', key(K_leases), held_id)
        redis.call('HSET', hk, 'attempts', ms(attempts))
        redis.call('HDEL', hk, 'worker', 'lease_until', 'next_attempt_at')
        set_state(held_id, STATE_running, attempts > 0 and STATE_retrying or STATE_queued)
        redis.call('ZADD', ready, ms(NOW), held_id)
      end
    end
  end
  -- Kept well past any lease, so a late call still finds the number it is fenced by.
  redis.call('SET', wk, ms(fence) .. ':', 'PX', ms(math.max(4 * lease_ms, 600000)))
end

-- The earliest due head; drop stale entries (should not exist) on the way.
local id, f
for _ = 1, 16 do
  local due = redis.call('ZRANGEBYSCORE', ready, '-inf', ms(NOW), 'LIMIT', 0, 1)
  if #due == 0 then
    break
  end
  f = redis.call('HMGET', key(K_job, due[1]), 'state', 'attempts')
  if is_pending(f[1]) then
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

if max_flight > 0 and redis.call('ZCARD', key(K_leases)) >= max_flight then
  return { 'throttled', '100' }
end
-- Starts are spaced evenly with no burst, by the rule of protocol::start_spacing_us: `rate_next`
-- is the next free slot; without `keep_grid` each start restarts the spacing, with it a late
-- start keeps the grid (late wake-ups cost no throughput).
if spacing > 0 then
  local rk = key(K_rate_next)
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
if wk then
  redis.call('SET', wk, ms(fence) .. ':' .. id, 'PX', ms(math.max(4 * lease_ms, 600000)))
end
redis.call('ZREM', ready, id)
local k = key(K_job, id)
redis.call('ZADD', key(K_leases), ms(until_ms), id)
redis.call('HSET', k, 'worker', worker, 'lease_until', ms(until_ms),
  'attempts', ms(tonumber(f[2]) + 1))
redis.call('HDEL', k, 'next_attempt_at')
set_state(id, f[1], STATE_running)
local reply = with_status('leased', id)
-- What is known about the job's coalesce key (read from the record just fetched), so the worker
-- needs no second call. The attempt that starts now may change the job's components without a
-- definite answer, so they are forgotten until its success is recorded (see "The last total
-- wins" in queue/mod.rs).
local ck, usages
for i = 2, #reply, 2 do
  if reply[i] == 'coalesce_key' then
    ck = reply[i + 1]
  elseif reply[i] == 'usages' then
    usages = reply[i + 1]
  end
end
if ck then
  local dk = key(K_delivered, ck)
  local d = redis.call('HGETALL', dk)
  local m = {}
  for i = 1, #d, 2 do
    m[d[i]] = d[i + 1]
  end
  table.insert(reply, '__delivered')
  table.insert(reply, #d == 0 and '{}' or cjson.encode(m))
  if usages and #d > 0 then
    local names = {}
    for name in pairs(cjson.decode(usages)) do
      if m[name] then
        names[#names + 1] = name
      end
    end
    if #names > 0 then
      redis.call('HDEL', dk, unpack(names))
    end
  end
end
return reply
