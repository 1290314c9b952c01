-- ARGV: prefix, id, worker, the job's new state (succeeded, failed, dead or retrying, or
--       'following': retrying with the attempt given back and the progress as the result),
--       status|'', error, result JSON, retry at ms, time to live ms of the delivered and newest
--       maps (for an outcome that ends the job), failure code|'', then delivered pairs (name,
--       value, ...)
local id, worker, new_state, status, err = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local k = key(K_job, id)
local f = redis.call('HMGET', k, 'state', 'worker', 'object_key', 'coalesce_key', 'usages')
if f[1] ~= STATE_running or f[2] ~= worker then
  return 0
end
redis.call('ZREM', key(K_leases), id)
if status ~= '' then
  redis.call('HSET', k, 'last_status', status)
else
  redis.call('HDEL', k, 'last_status')
end
if ARGV[10] ~= '' then
  redis.call('HSET', k, 'failure_code', ARGV[10])
else
  redis.call('HDEL', k, 'failure_code')
end

if new_state == 'following' then
  local at = tonumber(ARGV[8])
  local attempts = math.max(0, (tonumber(redis.call('HGET', k, 'attempts')) or 1) - 1)
  redis.call('HSET', k, 'result', ARGV[7], 'next_attempt_at', ms(at), 'attempts', ms(attempts))
  redis.call('HDEL', k, 'worker', 'lease_until', 'last_error')
  set_state(id, STATE_running, STATE_retrying)
  redis.call('ZADD', key(K_ready), ms(at), id)
  return 1
end

if new_state == STATE_retrying then
  local at = tonumber(ARGV[8])
  redis.call('HSET', k, 'last_error', err, 'next_attempt_at', ms(at))
  redis.call('HDEL', k, 'worker', 'lease_until')
  set_state(id, STATE_running, STATE_retrying)
  -- still the head of its line: back in the ready set, due at `at`
  redis.call('ZADD', key(K_ready), ms(at), id)
  return 1
end

if new_state == STATE_succeeded then
  redis.call('HSET', k, 'result', ARGV[7])
  redis.call('HDEL', k, 'last_error')
  if f[4] and #ARGV > 10 then
    local dk = key(K_delivered, f[4])
    redis.call('HSET', dk, unpack(ARGV, 11))
    -- a map is only useful while its period can still be reported: expire it after the last write
    redis.call('PEXPIRE', dk, ARGV[9])
  end
elseif new_state == STATE_failed or new_state == STATE_dead then
  redis.call('HSET', k, 'last_error', err)
else
  error('complete: ' .. tostring(new_state) .. ' is not an outcome')
end
set_state(id, STATE_running, new_state)
finish(id)
note_newest(id, f[4], f[5], ARGV[9], new_state ~= STATE_succeeded)
leave_line(id, f[3])
return 1
