-- ARGV: prefix, site|'', state|'', operation|'', before id|'', limit, scan cap.
-- Read only. Returns { cursor|'', id, ... }: up to limit + 1 matching ids, newest first. The
-- per-site index zsets have score 0, so members sort by id, and UUIDv7 ids sort by creation
-- time. Without a site, the sites' indexes are merged (every site that ever queued a job is in
-- `sites`).
local site, state, op, before = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local limit, cap = tonumber(ARGV[6]), tonumber(ARGV[7])
local sites = { site }
if site == '' then
  sites = redis.call('SMEMBERS', key(K_sites))
end
local start = '+'
if before ~= '' then
  start = '(' .. before
end

-- One reader per site: a buffer of ids (newest first) refilled 200 at a time.
local readers = {}
for i, s in ipairs(sites) do
  readers[i] = { idx = key(K_site, s), max = start, buf = {}, pos = 1, done = false }
end
local function peek(r)
  if r.pos > #r.buf and not r.done then
    r.buf = redis.call('ZREVRANGEBYLEX', r.idx, r.max, '-', 'LIMIT', 0, 200)
    r.pos = 1
    if #r.buf == 0 then
      r.done = true
    else
      r.max = '(' .. r.buf[#r.buf]
    end
  end
  return r.buf[r.pos]
end

local out = { '' }
local scanned = 0
local last
while scanned < cap do
  -- the newest id at the head of any reader
  local best, best_id
  for _, r in ipairs(readers) do
    local id = peek(r)
    if id and (not best_id or id > best_id) then
      best, best_id = r, id
    end
  end
  if not best then
    return out
  end
  best.pos = best.pos + 1
  scanned = scanned + 1
  last = best_id
  local f = redis.call('HMGET', key(K_job, best_id), 'state', 'operation')
  if f[1] and (state == '' or f[1] == state) and (op == '' or f[2] == op) then
    table.insert(out, best_id)
    if #out > limit + 1 then
      return out
    end
  end
end
-- scan cap reached: the page may be short, continue after the last id scanned
out[1] = last
return out
