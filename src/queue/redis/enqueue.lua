-- ARGV: prefix, id, site, operation, object_key, coalesce_key|'', payload (without usages),
--       usages JSON object|'', idempotency key|'', fingerprint
-- Returns { 'created', id, created_at ms, merged usages|'', jobs superseded } for a new job (the
-- caller knows the rest of the record), { 'existing', field, value, ... } or { 'conflict', id }.
-- This runs once per accepted request: every redis.call costs about a microsecond on top of the
-- command itself, so the bookkeeping of set_state and finish is inlined and netted out.
local id, site, op, okey, ckey = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local payload, usages, ikey, ifp = ARGV[7], ARGV[8], ARGV[9], ARGV[10]

if ikey ~= '' then
  local idem = idem_key(site, ikey)
  local ex = redis.call('HMGET', idem, 'id', 'fp')
  if ex[1] and redis.call('EXISTS', key(K_job, ex[1])) == 1 then
    if ex[2] == ifp then
      return with_status('existing', ex[1])
    end
    return { 'conflict', ex[1] }
  end
  redis.call('HSET', idem, 'id', id, 'fp', ifp)
end

local line = key(K_line, okey)
local now = ms(NOW)
-- Changes to the per-state counters, applied once at the end. The new job is queued.
local queued_delta, retrying_delta, superseded = 1, 0, 0
-- Where the new job goes in its line: appended, or in the place of the last absorbed job when
-- that one was last (the same order, one call fewer).
local replaced_last = false
local ready_removed = false
local line_length = 0
local finished = {}

-- Coalescing: a pending (not running) job of this object with the same key is absorbed. Its
-- usages are kept where the new job has none, older jobs' values under newer ones.
local absorbed_usages = nil
if ckey ~= '' then
  local ids = redis.call('LRANGE', line, 0, -1)
  line_length = #ids
  local ready = key(K_ready)
  for i, old in ipairs(ids) do
    local ok = key(K_job, old)
    local f = redis.call('HMGET', ok, 'state', 'coalesce_key', 'usages')
    if f[2] == ckey and is_pending(f[1]) then
      if f[3] then
        absorbed_usages = absorbed_usages or {}
        for k, v in pairs(cjson.decode(f[3])) do
          absorbed_usages[k] = v
        end
      end
      if i == #ids then
        redis.call('LSET', line, -1, id)
        replaced_last = true
      else
        redis.call('LREM', line, 1, old)
      end
      if redis.call('ZREM', ready, old) == 1 then
        ready_removed = true
      end
      if f[1] == STATE_queued then
        queued_delta = queued_delta - 1
      else
        retrying_delta = retrying_delta - 1
        -- the only lease-era field a pending job can hold
        redis.call('HDEL', ok, 'next_attempt_at')
      end
      superseded = superseded + 1
      redis.call('HSET', ok, 'superseded_by', id, 'state', STATE_superseded,
        'updated_at', now, 'finished_at', now)
      finished[#finished + 1] = finished_entry(now, old)
    end
  end
end

if absorbed_usages then
  if usages ~= '' then
    for k, v in pairs(cjson.decode(usages)) do
      absorbed_usages[k] = v
    end
  end
  usages = cjson.encode(absorbed_usages)
end

local fields = { 'id', id, 'site', site, 'operation', op, 'object_key', okey, 'payload', payload,
  'state', STATE_queued, 'attempts', '0', 'created_at', now, 'updated_at', now }
local function field(name, value)
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
if ckey ~= '' then
  field('coalesce_key', ckey)
end
if usages ~= '' then
  field('usages', usages)
end
if ikey ~= '' then
  field('idempotency_key', ikey)
  field('idempotency_fp', ifp)
end
redis.call('HSET', key(K_job, id), unpack(fields))

local counts = key(K_counts)
if queued_delta ~= 0 then
  redis.call('HINCRBY', counts, STATE_queued, queued_delta)
end
if retrying_delta ~= 0 then
  redis.call('HINCRBY', counts, STATE_retrying, retrying_delta)
end
if superseded ~= 0 then
  redis.call('HINCRBY', counts, STATE_superseded, superseded)
  redis.call('RPUSH', key(K_finished), unpack(finished))
end
redis.call('SADD', key(K_sites), site)
redis.call('ZADD', key(K_site, site), 0, id)

-- Only the head of a line is ever in the ready set.
if replaced_last then
  if line_length == 1 then
    -- the line was the absorbed job alone: its replacement is the head, due now
    redis.call('ZADD', key(K_ready), now, id)
  elseif ready_removed then
    -- the head was absorbed: whichever job is first now moves up
    promote_head(okey)
  end
elseif redis.call('RPUSH', line, id) == 1 then
  redis.call('ZADD', key(K_ready), now, id)
elseif superseded > 0 then
  promote_head(okey)
end
return { 'created', id, now, absorbed_usages and usages or '', tostring(superseded) }
