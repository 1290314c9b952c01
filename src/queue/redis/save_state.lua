-- ARGV: prefix, lease name, holder, state key, value.
-- Saves the value only while the holder holds the lease (a former leader cannot overwrite).
if redis.call('GET', key(K_leader, ARGV[2])) ~= ARGV[3] then
  return 0
end
redis.call('SET', key(K_state, ARGV[4]), ARGV[5])
return 1
