-- Generated from src/queue/protocol.rs (lua_prelude): do not edit by hand.
-- ARGV[1] is the key prefix. STATE and K raise an error on a name they do not define.
local P = ARGV[1]
local function strict(t, what)
  return setmetatable(t, { __index = function(_, k) error('unknown ' .. what .. ' ' .. tostring(k)) end })
end
local STATE = strict({
  queued = 'queued',
  running = 'running',
  retrying = 'retrying',
  succeeded = 'succeeded',
  failed = 'failed',
  dead = 'dead',
  superseded = 'superseded',
  canceled = 'canceled',
}, 'job state')
local K = strict({
  ready = P .. 'ready',
  leases = P .. 'leases',
  finished = P .. 'finished',
  sites = P .. 'sites',
  counts = P .. 'counts',
  rate_next = P .. 'rate:next',
  legacy_terminal = P .. 'terminal',
  legacy_all = P .. 'all',
}, 'key')
local function job_key(x)
  return P .. 'job:' .. x
end
local function line_key(x)
  return P .. 'obj:' .. x
end
local function site_key(x)
  return P .. 'site:' .. x
end
local function delivered_key(x)
  return P .. 'delivered:' .. x
end
local function worker_key(x)
  return P .. 'worker:' .. x
end
local function newest_key(x)
  return P .. 'newest:' .. x
end
local function leader_key(x)
  return P .. 'leader:' .. x
end
local function state_key(x)
  return P .. 'state:' .. x
end
local function idem_key(site, key)
  return P .. 'idem:' .. #site .. ':' .. site .. ':' .. key
end
