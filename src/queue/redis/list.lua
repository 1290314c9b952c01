-- ARGV: prefix, site|'', state|'', operation|'', before id|'', limit, scan cap.
-- Read only. Returns { cursor|'', id, ... }: up to limit + 1 matching ids, newest first. The
-- index zsets have score 0, so members sort by id, and UUIDv7 ids sort by creation time.
local site, state, op, before = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local limit, cap = tonumber(ARGV[6]), tonumber(ARGV[7])
local idx = P .. 'all'
if site ~= '' then
  idx = P .. 'site:' .. site
end
local max = '+'
if before ~= '' then
  max = '(' .. before
end
local out = { '' }
local scanned = 0
local last
while scanned < cap do
  local ids = redis.call('ZREVRANGEBYLEX', idx, max, '-', 'LIMIT', 0, 200)
  if #ids == 0 then
    return out
  end
  for _, id in ipairs(ids) do
    scanned = scanned + 1
    last = id
    local f = redis.call('HMGET', jk(id), 'state', 'operation')
    if f[1] and (state == '' or f[1] == state) and (op == '' or f[2] == op) then
      table.insert(out, id)
      if #out > limit + 1 then
        return out
      end
    end
  end
  max = '(' .. last
end
-- scan cap reached: the page may be short, continue after the last id scanned
out[1] = last
return out
