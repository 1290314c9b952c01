-- ARGV: prefix, id, worker, lease ms
local id, worker = ARGV[2], ARGV[3]
local k = key(K_job, id)
local f = redis.call('HMGET', k, 'state', 'worker')
if f[1] ~= STATE_running or f[2] ~= worker then
  return 0
end
local until_ms = NOW + tonumber(ARGV[4])
redis.call('ZADD', key(K_leases), ms(until_ms), id)
redis.call('HSET', k, 'lease_until', ms(until_ms), 'updated_at', ms(NOW))
return 1
