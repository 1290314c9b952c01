-- ARGV: prefix, id. queued or retrying -> canceled; the next job of the object moves up.
local id = ARGV[2]
local k = key(K_job, id)
local f = redis.call('HMGET', k, 'state', 'object_key')
if not f[1] then
  return { 'notfound' }
end
if not is_pending(f[1]) then
  return { 'invalid', f[1] }
end
set_state(id, f[1], STATE_canceled)
finish(id)
leave_line(id, f[2])
return with_status('ok', id)
