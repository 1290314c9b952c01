-- ARGV: prefix, batch size. Expired leases go back to the ready set (the attempt stays counted).
local expired = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', ms(NOW), 'LIMIT', 0, tonumber(ARGV[2]))
local n = 0
for _, id in ipairs(expired) do
  redis.call('ZREM', P .. 'leases', id)
  local k = jk(id)
  local f = redis.call('HMGET', k, 'state', 'worker')
  if f[1] == 'running' then
    redis.call('HSET', k, 'last_error', 'the lease of worker ' .. (f[2] or '?') .. ' expired')
    redis.call('HDEL', k, 'worker', 'lease_until', 'next_attempt_at')
    set_state(id, 'running', 'retrying')
    redis.call('ZADD', P .. 'ready', ms(NOW), id)
    n = n + 1
  end
end
return n
