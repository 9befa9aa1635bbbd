--[[
record_engagement.lua: record one open or click: the contact is engaged from its time on, and
rules with reset_on_engagement count only what comes after it. Atomic; once per event id.

KEYS[1]   dedupe key    NS:{addr}:e:<event_id>
KEYS[2..] scope hashes  the scopes the tenant's policy keeps state in
ARGV[1]   ts            event time in ms
ARGV[2]   dedupe ttl    seconds the event id is remembered
ARGV[3]   engaged ttl   seconds an engagement matters (a hash that would expire sooner is
                        kept this long; a longer TTL is left alone)

Returns 1 when recorded, 0 for a replayed event id. The latest time is field eng (status), so
an open that arrives late never moves it back. The newest ENGS_KEPT distinct open times are
field engs (a JSON array): record_attempt.lua asks "the latest open at or before this event",
so an open read ahead of older bounces (another topic, a backlog) is judged by event time.
]]
local ENGS_KEPT = 16
assert(#KEYS >= 2, "record_engagement: at least 2 keys")
assert(#ARGV == 3, "record_engagement: 3 args")
local ts, dedupe_ttl, engaged_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

if redis.call("SET", KEYS[1], "false", "NX", "EX", dedupe_ttl) == false then
  return 0
end
for i = 2, #KEYS do
  if ts > tonumber(redis.call("HGET", KEYS[i], "eng") or "0") then
    redis.call("HSET", KEYS[i], "eng", ts)
  end
  local raw = redis.call("HGET", KEYS[i], "engs")
  local engs = raw and cjson.decode(raw) or {}
  local known = false
  for _, x in ipairs(engs) do
    if x == ts then known = true end
  end
  if not known then
    engs[#engs + 1] = ts
    table.sort(engs, function(a, b) return a > b end)
    while #engs > ENGS_KEPT do table.remove(engs) end
    redis.call("HSET", KEYS[i], "engs", cjson.encode(engs))
  end
  if redis.call("TTL", KEYS[i]) < engaged_ttl then
    redis.call("EXPIRE", KEYS[i], engaged_ttl)
  end
end
return 1
