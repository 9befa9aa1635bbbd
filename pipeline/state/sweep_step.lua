--[[
sweep_step.lua: the count-threshold rule (listrak's cleanup) for one scope of one address, as
of time `at`: the latest bounce reason picks a minimum, the bounce count must reach it.

KEYS[1]  scope hash   NS:{addr}:t:<tenant>[:l:<list>]
KEYS[2]  dedupe key   NS:{addr}:e:<sweep id>  (the sweep's trigger id, one per `at`)
KEYS[3]  bounce log   NS:{addr}:log
ARGV[1]  at           sweep time in ms: only sends that bounced first at or before it count
ARGV[2]  minimums     JSON {category: min count} of the rule's tiers
ARGV[3]  other min    min count of any other reason (0 = never)
ARGV[4]  rule id
ARGV[5]  scope index  u of the decision (as record_attempt.lua)
ARGV[6]  dedupe ttl   seconds the sweep id is remembered

Returns a JSON string like record_attempt.lua's: {"decided": false | [decision]}, or
{"dup": true, ...} when this sweep already decided for this scope (re-running the same sweep
returns an unconfirmed suppression again, with the same id).
]]
assert(#KEYS == 3, "sweep_step: 3 keys")
assert(#ARGV == 6, "sweep_step: 6 args")
local unit, seen, blog = KEYS[1], KEYS[2], KEYS[3]
local at, mins, other = tonumber(ARGV[1]), cjson.decode(ARGV[2]), tonumber(ARGV[3])
local rule, u, dedupe_ttl = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])

local previous = redis.call("GET", seen)
if previous then
  return cjson.encode({dup = true, decided = cjson.decode(previous)})
end
if redis.call("HEXISTS", unit, "suppressed") == 1 then
  return cjson.encode({decided = false})
end
local raw = redis.call("HGET", unit, "bn")
if not raw then
  return cjson.encode({decided = false})
end
local dlv = tonumber(redis.call("HGET", unit, "dlv") or "0")
local live, latest = {}, nil
for _, x in ipairs(cjson.decode(raw)) do
  if x.l > dlv and x.f <= at then
    live[#live + 1] = x
    if latest == nil or x.l >= latest.l then latest = x end
  end
end
if latest == nil then
  return cjson.encode({decided = false})
end
local need = mins[latest.c] or other
if need == 0 or #live < need then
  return cjson.encode({decided = false})
end

local wanted = {}
for _, x in ipairs(live) do wanted[x.e] = true end
local evidence = {}
for _, entry_raw in ipairs(redis.call("LRANGE", blog, 0, -1)) do
  local entry = cjson.decode(entry_raw)
  if wanted[entry.event_id] then table.insert(evidence, 1, entry) end
end
redis.call("HSET", unit, "suppressed", rule, "reason", latest.c, "sup_ts", at,
  "sup_ev", "sweep", "sup_count", #live, "sup_threshold", need)
local decided = {{rule = rule, u = u, count = #live, threshold = need, reason = latest.c,
  ev = evidence}}
redis.call("SET", seen, cjson.encode(decided), "EX", dedupe_ttl)
return cjson.encode({decided = decided})
