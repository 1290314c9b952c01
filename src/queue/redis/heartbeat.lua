-- ARGV: prefix, id, worker, lease ms
local id, worker = ARGV[2], ARGV[3]
local f = redis.call('HMGET', jk(id), 'state', 'worker')
if f[1] ~= 'running' or f[2] ~= worker then
  return 0
end
local until_ms = NOW + tonumber(ARGV[4])
redis.call('ZADD', P .. 'leases', ms(until_ms), id)
redis.call('HSET', jk(id), 'lease_until', ms(until_ms), 'updated_at', ms(NOW))
return 1
