-- ARGV: prefix, id. An operator's retry: failed or dead -> queued, at the back of its line.
local id = ARGV[2]
local k = job_key(id)
local f = redis.call('HMGET', k, 'state', 'object_key')
if not f[1] then
  return { 'notfound' }
end
if f[1] ~= STATE.failed and f[1] ~= STATE.dead then
  return { 'invalid', f[1] }
end
redis.call('HSET', k, 'attempts', '0')
redis.call('HDEL', k, 'finished_at', 'next_attempt_at', 'worker', 'lease_until')
set_state(id, f[1], STATE.queued)
redis.call('RPUSH', line_key(f[2]), id)
promote_head(f[2])
return with_status('ok', id)
