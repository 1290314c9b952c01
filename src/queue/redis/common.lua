-- Shared helpers of every script (prepended in Rust, after the generated protocol.lua).

local function ms(x)
  return string.format('%d', x)
end

-- Redis's clock, so every replica agrees on "now".
local NOW, NOW_US
do
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  NOW_US = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function with_status(status, id)
  local r = redis.call('HGETALL', key(K_job, id))
  table.insert(r, 1, status)
  return r
end

-- Whether a job in `state` waits for a worker (coalescing, cancel and lease take only these).
local function is_pending(state)
  return state == STATE_queued or state == STATE_retrying
end

-- Change a job's state, keeping the per-state counters in step.
local function set_state(id, old, new)
  if old ~= new then
    local counts = key(K_counts)
    redis.call('HINCRBY', counts, old, -1)
    redis.call('HINCRBY', counts, new, 1)
  end
  redis.call('HSET', key(K_job, id), 'state', new, 'updated_at', ms(NOW))
end

-- Only the head of an object's line may be in the ready set: put it there if it is pending.
local function promote_head(object_key)
  local head = redis.call('LINDEX', key(K_line, object_key), 0)
  if not head then
    return
  end
  local f = redis.call('HMGET', key(K_job, head), 'state', 'next_attempt_at')
  local ready = key(K_ready)
  if is_pending(f[1]) and not redis.call('ZSCORE', ready, head) then
    local due = tonumber(f[2]) or NOW
    redis.call('ZADD', ready, ms(due), head)
  end
end

-- A job leaves its object's line (terminal, or re-queued elsewhere); the next one moves up.
local function leave_line(id, object_key)
  redis.call('LREM', key(K_line, object_key), 0, id)
  redis.call('ZREM', key(K_ready), id)
  redis.call('ZREM', key(K_leases), id)
  promote_head(object_key)
end

-- An entry of `finished`, the purge queue: finish time (ms) and id. The list is in finish order
-- (scripts run one at a time on Redis's clock), so appending costs O(1) where a sorted set insert
-- walks a large skiplist. An entry whose job was retried since is stale: its time no longer
-- matches the job's `finished_at`, and purge drops it.
local function finished_entry(at, id)
  return at .. ':' .. id
end

-- Bookkeeping for a job that just reached a terminal state (purge works from `finished`).
local function finish(id)
  local k = key(K_job, id)
  redis.call('RPUSH', key(K_finished), finished_entry(ms(NOW), id))
  redis.call('HSET', k, 'finished_at', ms(NOW))
  redis.call('HDEL', k, 'worker', 'lease_until', 'next_attempt_at')
end


-- An operator's retry is refused when a newer job of the same coalesce key carries one of its
-- components (retry.lua). A job still in its object's line is found there; a job that ended is
-- noted here, when it ends: per component of its usages, the newest ended job carrying it. The
-- map lives `ttl` ms after its last write, like the delivered map. Noting at the end rather than
-- at enqueue keeps the accepting path (one script call per request) free of it.
--
-- Only a failed, dead or canceled job can be retried or refused, so only those create the map
-- (`always`); a job that succeeded is noted only in a map that exists. That misses nothing: a
-- newer job that succeeded before an older one of its key failed would have to have run before
-- it, and jobs of an object run in acceptance order (a canceled one, which can end first, is
-- always noted).
local function note_newest(id, ckey, usages, ttl, always)
  if not ckey or not usages then
    return
  end
  local nk = key(K_newest, ckey)
  if not always and redis.call('EXISTS', nk) == 0 then
    return
  end
  local names = {}
  for name in pairs(cjson.decode(usages)) do
    names[#names + 1] = name
  end
  if #names == 0 then
    return
  end
  local noted = redis.call('HMGET', nk, unpack(names))
  local newer = {}
  for i, name in ipairs(names) do
    -- ids sort by creation time; a retried job can end after a newer one
    if not noted[i] or noted[i] < id then
      newer[#newer + 1] = name
      newer[#newer + 1] = id
    end
  end
  if #newer > 0 then
    redis.call('HSET', nk, unpack(newer))
  end
  redis.call('PEXPIRE', nk, ttl)
end
