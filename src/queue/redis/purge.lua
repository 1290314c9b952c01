-- ARGV: prefix, retention ms, batch size. Removes terminal jobs finished before now - retention.
local cutoff = NOW - tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', P .. 'terminal', '-inf', ms(cutoff), 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local k = jk(id)
  local f = redis.call('HMGET', k, 'state', 'site', 'idempotency_key')
  if f[1] then
    redis.call('HINCRBY', P .. 'counts', f[1], -1)
    redis.call('ZREM', P .. 'site:' .. f[2], id)
    if f[3] then
      local idem = P .. 'idem:' .. #f[2] .. ':' .. f[2] .. ':' .. f[3]
      if redis.call('HGET', idem, 'id') == id then
        redis.call('DEL', idem)
      end
    end
  end
  redis.call('DEL', k)
  redis.call('ZREM', P .. 'all', id)
  redis.call('ZREM', P .. 'terminal', id)
end
return #ids
