-- ARGV: prefix, id, site, operation, object_key, coalesce_key|'', payload (without usages),
--       usages JSON object|'', idempotency key|'', fingerprint
local id, site, op, okey, ckey = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local payload, usages, ikey, ifp = ARGV[7], ARGV[8], ARGV[9], ARGV[10]

if ikey ~= '' then
  local idem = P .. 'idem:' .. #site .. ':' .. site .. ':' .. ikey
  local ex = redis.call('HMGET', idem, 'id', 'fp')
  if ex[1] and redis.call('EXISTS', jk(ex[1])) == 1 then
    if ex[2] == ifp then
      return with_status('existing', ex[1])
    end
    return { 'conflict', ex[1] }
  end
  redis.call('HSET', idem, 'id', id, 'fp', ifp)
end

local line = line_key(okey)

-- Coalescing: a pending (not running) job of this object with the same key is absorbed. The
-- bookkeeping of set_state and finish is inlined (fewer calls: this runs on nearly every report).
local absorbed = false
if ckey ~= '' then
  local ids = redis.call('LRANGE', line, 0, -1)
  for _, old in ipairs(ids) do
    local f = redis.call('HMGET', jk(old), 'state', 'coalesce_key', 'usages')
    if f[2] == ckey and (f[1] == 'queued' or f[1] == 'retrying') then
      if f[3] then
        local merged = cjson.decode(f[3])
        if usages ~= '' then
          for k, v in pairs(cjson.decode(usages)) do
            merged[k] = v
          end
        end
        usages = cjson.encode(merged)
      end
      redis.call('LREM', line, 0, old)
      redis.call('ZREM', P .. 'ready', old)
      redis.call('HINCRBY', P .. 'counts', f[1], -1)
      redis.call('HINCRBY', P .. 'counts', 'superseded', 1)
      redis.call('HSET', jk(old), 'superseded_by', id, 'state', 'superseded',
        'updated_at', ms(NOW), 'finished_at', ms(NOW))
      redis.call('HDEL', jk(old), 'worker', 'lease_until', 'next_attempt_at')
      redis.call('ZADD', P .. 'terminal', ms(NOW), old)
      absorbed = true
    end
  end
end

local fields = { 'id', id, 'site', site, 'operation', op, 'object_key', okey, 'payload', payload,
  'state', 'queued', 'attempts', '0', 'created_at', ms(NOW), 'updated_at', ms(NOW) }
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
local k = jk(id)
redis.call('HSET', k, unpack(fields))
redis.call('HINCRBY', P .. 'counts', 'queued', 1)
redis.call('ZADD', P .. 'all', 0, id)
redis.call('ZADD', P .. 'site:' .. site, 0, id)
-- Alone in its line, the new job is the head: due now. Otherwise the head is unchanged unless a
-- job was absorbed (it may have been the head).
if redis.call('RPUSH', line, id) == 1 then
  redis.call('ZADD', P .. 'ready', ms(NOW), id)
elseif absorbed then
  promote_head(okey)
end
return with_status('created', id)
