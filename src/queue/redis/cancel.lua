-- ARGV: prefix, id, time to live ms of the newest map. queued or retrying -> canceled; the next
-- job of the object moves up.
local id = ARGV[2]
local k = key(K_job, id)
local f = redis.call('HMGET', k, 'state', 'object_key', 'coalesce_key', 'usages')
if not f[1] then
  return { 'notfound' }
end
if not is_pending(f[1]) then
  return { 'invalid', f[1] }
end
set_state(id, f[1], STATE_canceled)
finish(id)
-- a canceled report is still one the site sent: an older one is not retried over it
note_newest(id, f[3], f[4], ARGV[3], true)
leave_line(id, f[2])
return with_status('ok', id)
