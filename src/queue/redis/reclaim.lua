-- ARGV: prefix, batch size. Expired leases go back to the ready set (the attempt stays counted).
local expired = redis.call('ZRANGEBYSCORE', key(K_leases), '-inf', ms(NOW), 'LIMIT', 0, tonumber(ARGV[2]))
local n = 0
for _, id in ipairs(expired) do
  redis.call('ZREM', key(K_leases), id)
  local k = key(K_job, id)
  local f = redis.call('HMGET', k, 'state', 'worker')
  if f[1] == STATE_running then
    redis.call('HSET', k, 'last_error', 'the lease of worker ' .. (f[2] or '?') .. ' expired',
      'failure_code', 'lease_expired') -- queue::LEASE_EXPIRED
    redis.call('HDEL', k, 'worker', 'lease_until', 'next_attempt_at')
    set_state(id, STATE_running, STATE_retrying)
    redis.call('ZADD', key(K_ready), ms(NOW), id)
    n = n + 1
  end
end
return n
