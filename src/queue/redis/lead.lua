-- ARGV: prefix, lease name, holder, time to live in ms.
-- Takes the lease when it is free (or expired), renews it when the holder has it; 0 otherwise.
local k, holder = key(K_leader, ARGV[2]), ARGV[3]
local held = redis.call('GET', k)
if held and held ~= holder then
  return 0
end
redis.call('SET', k, holder, 'PX', ARGV[4])
return 1
