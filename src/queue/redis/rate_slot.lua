-- ARGV: prefix, spacing of starts in us, 1 when a late start keeps the grid (both from
--       protocol::start_spacing_us).
-- Takes one start slot of the shared rate limit, as lease.lua does for a job: 0 when taken,
-- otherwise the milliseconds until the next free slot.
local spacing, keep_grid = tonumber(ARGV[2]), ARGV[3] == '1'
local rk = key(K_rate_next)
local slot = tonumber(redis.call('GET', rk) or '0')
if slot > NOW_US then
  return math.max(1, math.ceil((slot - NOW_US) / 1000))
end
if not keep_grid or NOW_US - slot >= spacing then
  slot = NOW_US
end
redis.call('SET', rk, string.format('%d', slot + spacing), 'PX', math.ceil(spacing / 1000) + 1000)
return 0
