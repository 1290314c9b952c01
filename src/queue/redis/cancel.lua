-- ARGV: prefix, id. queued or retrying -> canceled; the next job of the object moves up.
local id = ARGV[2]
local k = jk(id)
local f = redis.call('HMGET', k, 'state', 'object_key')
if not f[1] then
  return { 'notfound' }
end
if f[1] ~= 'queued' and f[1] ~= 'retrying' then
  return { 'invalid', f[1] }
end
set_state(id, f[1], 'canceled')
finish(id)
leave_line(id, f[2])
return with_status('ok', id)
