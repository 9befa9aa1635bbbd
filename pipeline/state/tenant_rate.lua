--[[
tenant_rate.lua: count a tenant's delivered messages and matching events (complaints) per day
of event time, and raise an alert when the rate over the window exceeds the limit. Called only
with events record_attempt.lua counted for the first time, so replays add nothing.

KEYS[1]  rate hash    NS:{tenant:<tenant>}:rate   fields s:<day>, c:<day>, a:<day>
ARGV[1]  deltas       JSON {day: [delivered, matching]} (day = floor(ms / 86400000))
ARGV[2]  at day       day of the latest matching event: the window ends on it
ARGV[3]  window days  days in the window (at day included)
ARGV[4]  max rate     alert when matching > max_rate * delivered
ARGV[5]  min count    and at least this many matching events
ARGV[6]  ttl          seconds the hash lives after its last update

Returns a JSON string: {"alert": false} or {"alert": true, "count": c, "sent": s}; at most one
alert per tenant and day (field a:<day>).
]]
assert(#KEYS == 1, "tenant_rate: 1 key")
assert(#ARGV == 6, "tenant_rate: 6 args")
local key = KEYS[1]
local deltas = cjson.decode(ARGV[1])
local at, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local max_rate, min_count, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

for day, d in pairs(deltas) do
  if d[1] > 0 then redis.call("HINCRBY", key, "s:" .. day, d[1]) end
  if d[2] > 0 then redis.call("HINCRBY", key, "c:" .. day, d[2]) end
end
-- days that left the window are dropped, so the hash stays about 2 x window fields
local first = at - window + 1
for _, field in ipairs(redis.call("HKEYS", key)) do
  local day = tonumber(string.sub(field, 3))
  if day and day < first - window then redis.call("HDEL", key, field) end
end
redis.call("EXPIRE", key, ttl)

local sent, count = 0, 0
for day = first, at do
  sent = sent + tonumber(redis.call("HGET", key, "s:" .. day) or "0")
  count = count + tonumber(redis.call("HGET", key, "c:" .. day) or "0")
end
if count >= min_count and count > max_rate * sent
    and redis.call("HSETNX", key, "a:" .. at, 1) == 1 then
  return cjson.encode({alert = true, count = count, sent = sent})
end
return cjson.encode({alert = false})
