-- ARGV: prefix, retention ms, batch size. Removes terminal jobs finished before now - retention,
-- working from the head of `finished` (oldest first). Returns { jobs removed, entries consumed }.
local cutoff = NOW - tonumber(ARGV[2])
local batch = tonumber(ARGV[3])

-- Stores written before `finished` and `sites` existed kept finished jobs in the zset `terminal`
-- (score: finish time) and every id in the zset `all`. A run that finds either moves a batch over
-- and reports a full batch consumed, so the caller runs again until both are gone.
local legacy = redis.call('ZREVRANGE', key(K_legacy_terminal), 0, batch - 1, 'WITHSCORES')
local all = redis.call('ZRANGE', key(K_legacy_all), 0, batch - 1)
if #legacy > 0 or #all > 0 then
  if #legacy > 0 then
    local ids, moved = {}, {}
    for i = 1, #legacy, 2 do
      ids[#ids + 1] = legacy[i]
      moved[#moved + 1] = finished_entry(ms(tonumber(legacy[i + 1])), legacy[i])
    end
    -- newest first, each pushed in front: the oldest ends at the head, before every entry
    -- written since (those finished later)
    redis.call('LPUSH', key(K_finished), unpack(moved))
    redis.call('ZREM', key(K_legacy_terminal), unpack(ids))
  end
  if #all > 0 then
    local seen = {}
    for _, id in ipairs(all) do
      local site = redis.call('HGET', key(K_job, id), 'site')
      if site and not seen[site] then
        seen[site] = true
        redis.call('SADD', key(K_sites), site)
      end
    end
    redis.call('ZREM', key(K_legacy_all), unpack(all))
  end
  return { 0, batch }
end

local entries = redis.call('LRANGE', key(K_finished), 0, batch - 1)
local removed, consumed = 0, 0
for _, e in ipairs(entries) do
  local sep = string.find(e, ':', 1, true)
  local at, id = string.sub(e, 1, sep - 1), string.sub(e, sep + 1)
  if tonumber(at) > cutoff then
    break
  end
  consumed = consumed + 1
  local k = key(K_job, id)
  local f = redis.call('HMGET', k, 'finished_at', 'state', 'site', 'idempotency_key')
  -- otherwise stale: the job was retried since (and has, or will have, a later entry)
  if f[1] == at then
    redis.call('HINCRBY', key(K_counts), f[2], -1)
    redis.call('ZREM', key(K_site, f[3]), id)
    if f[4] then
      local idem = idem_key(f[3], f[4])
      if redis.call('HGET', idem, 'id') == id then
        redis.call('DEL', idem)
      end
    end
    redis.call('DEL', k)
    removed = removed + 1
  end
end
if consumed > 0 then
  redis.call('LTRIM', key(K_finished), consumed, -1)
end
return { removed, consumed }
