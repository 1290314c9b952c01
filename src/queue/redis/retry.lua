-- ARGV: prefix, id. An operator's retry: failed or dead -> queued, at the back of its line.
-- Refused ({ 'outdated', newer id }) when a newer job of the same coalesce key carries one of
-- its components: delivered now, its older total would replace the newer one in Puhuri.
local id = ARGV[2]
local k = key(K_job, id)
local f = redis.call('HMGET', k, 'state', 'object_key', 'coalesce_key', 'usages')
if not f[1] then
  return { 'notfound' }
end
if f[1] ~= STATE_failed and f[1] ~= STATE_dead then
  return { 'invalid', f[1] }
end
if f[3] and f[4] then
  local names, mine = {}, {}
  for name in pairs(cjson.decode(f[4])) do
    names[#names + 1] = name
    mine[name] = true
  end
  if #names > 0 then
    -- a newer job of the key that ended (noted by note_newest)
    for _, newer in ipairs(redis.call('HMGET', key(K_newest, f[3]), unpack(names))) do
      if newer and newer > id then
        return { 'outdated', newer }
      end
    end
    -- a newer job of the key still in the object's line
    for _, other in ipairs(redis.call('LRANGE', key(K_line, f[2]), 0, -1)) do
      if other > id then
        local g = redis.call('HMGET', key(K_job, other), 'coalesce_key', 'usages')
        if g[1] == f[3] and g[2] then
          for name in pairs(cjson.decode(g[2])) do
            if mine[name] then
              return { 'outdated', other }
            end
          end
        end
      end
    end
  end
end
redis.call('HSET', k, 'attempts', '0')
redis.call('HDEL', k, 'finished_at', 'next_attempt_at', 'worker', 'lease_until')
set_state(id, f[1], STATE_queued)
redis.call('RPUSH', key(K_line, f[2]), id)
promote_head(f[2])
return with_status('ok', id)
