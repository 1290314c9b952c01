-- ARGV: prefix, id, worker, lease ms
local id, worker = ARGV[2], ARGV[3]
local f = redis.call('HMGET', job_key(id), 'state', 'worker')
if f[1] ~= STATE.running or f[2] ~= worker then
  return 0
end
local until_ms = NOW + tonumber(ARGV[4])
redis.call('ZADD', K.leases, ms(until_ms), id)
redis.call('HSET', job_key(id), 'lease_until', ms(until_ms), 'updated_at', ms(NOW))
return 1
