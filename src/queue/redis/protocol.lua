-- Generated from src/queue/protocol.rs (lua_prelude): do not edit by hand.
-- ARGV[1] is the key prefix. Plain locals, since Redis runs this on every call: a key is
-- built where it is used, key(K_ready) or key(K_job, id). A misspelt name is a global,
-- which Redis refuses.
local P = ARGV[1]
local STATE_queued = 'queued'
local STATE_running = 'running'
local STATE_retrying = 'retrying'
local STATE_succeeded = 'succeeded'
local STATE_failed = 'failed'
local STATE_dead = 'dead'
local STATE_superseded = 'superseded'
local STATE_canceled = 'canceled'
local K_ready = 'ready'
local K_leases = 'leases'
local K_finished = 'finished'
local K_sites = 'sites'
local K_counts = 'counts'
local K_rate_next = 'rate:next'
local K_legacy_terminal = 'terminal'
local K_legacy_all = 'all'
local K_job = 'job:'
local K_line = 'obj:'
local K_site = 'site:'
local K_delivered = 'delivered:'
local K_worker = 'worker:'
local K_newest = 'newest:'
local K_leader = 'leader:'
local K_state = 'state:'
-- The key of a fixed key's segment, or of a key family's segment and its variable part.
local function key(segment, x)
  if x then
    return P .. segment .. x
  end
  return P .. segment
end
local function idem_key(site, k)
  return P .. 'idem:' .. #site .. ':' .. site .. ':' .. k
end
