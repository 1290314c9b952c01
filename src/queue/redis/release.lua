-- ARGV: prefix, id, worker. The attempt counted by `lease` is given back.
local id, worker = ARGV[2], ARGV[3]
local k = job_key(id)
local f = redis.call('HMGET', k, 'state', 'worker', 'attempts')
if f[1] ~= STATE.running or f[2] ~= worker then
  return 0
end
local attempts = math.max(0, tonumber(f[3]) - 1)
redis.call('ZREM', K.leases, id)
redis.call('HSET', k, 'attempts', ms(attempts))
redis.call('HDEL', k, 'worker', 'lease_until', 'next_attempt_at')
if attempts > 0 then
  set_state(id, STATE.running, STATE.retrying)
else
  set_state(id, STATE.running, STATE.queued)
end
redis.call('ZADD', K.ready, ms(NOW), id)
return 1
