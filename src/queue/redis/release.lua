-- ARGV: prefix, id, worker. The attempt counted by `lease` is given back.
local id, worker = ARGV[2], ARGV[3]
local k = key(K_job, id)
local f = redis.call('HMGET', k, 'state', 'worker', 'attempts')
if f[1] ~= STATE_running or f[2] ~= worker then
  return 0
end
local attempts = math.max(0, tonumber(f[3]) - 1)
redis.call('ZREM', key(K_leases), id)
redis.call('HSET', k, 'attempts', ms(attempts))
redis.call('HDEL', k, 'worker', 'lease_until', 'next_attempt_at')
if attempts > 0 then
  set_state(id, STATE_running, STATE_retrying)
else
  set_state(id, STATE_running, STATE_queued)
end
redis.call('ZADD', key(K_ready), ms(NOW), id)
return 1
