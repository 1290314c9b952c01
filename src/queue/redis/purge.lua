-- ARGV: prefix, retention ms, batch size. Removes terminal jobs finished before now - retention,
-- working from the head of `finished` (oldest first). Returns { jobs removed, entries consumed }.
local cutoff = NOW - tonumber(ARGV[2])
local entries = redis.call('LRANGE', P .. 'finished', 0, tonumber(ARGV[3]) - 1)
local removed, consumed = 0, 0
for _, e in ipairs(entries) do
  local sep = string.find(e, ':', 1, true)
  local at, id = string.sub(e, 1, sep - 1), string.sub(e, sep + 1)
  if tonumber(at) > cutoff then
    break
  end
  consumed = consumed + 1
  local k = jk(id)
  local f = redis.call('HMGET', k, 'finished_at', 'state', 'site', 'idempotency_key')
  -- otherwise stale: the job was retried since (and has, or will have, a later entry)
  if f[1] == at then
    redis.call('HINCRBY', P .. 'counts', f[2], -1)
    redis.call('ZREM', P .. 'site:' .. f[3], id)
    if f[4] then
      local idem = P .. 'idem:' .. #f[3] .. ':' .. f[3] .. ':' .. f[4]
      if redis.call('HGET', idem, 'id') == id then
        redis.call('DEL', idem)
      end
    end
    redis.call('DEL', k)
    removed = removed + 1
  end
end
if consumed > 0 then
  redis.call('LTRIM', P .. 'finished', consumed, -1)
end
return { removed, consumed }
