--[[
record_history.lua: append one suppression-change event to its tenant's history.

KEYS[1]  history zset  NS:{tenant:<tenant>}:history   score = event time (ms),
                                                     member = "<event_id> <event JSON>"
ARGV[1]  event time in ms
ARGV[2]  event id
ARGV[3]  event JSON
ARGV[4]  cap: members kept (the oldest are dropped beyond it)
ARGV[5]  ttl of the history in seconds (refreshed on every write)

Returns 1 when added, 0 when the event was already there (a re-emitted event).
Members sort by event id within one millisecond, which is what the pager's cursor relies on.
]]
assert(#KEYS == 1, "record_history: 1 key")
assert(#ARGV == 5, "record_history: 5 args")
local member = ARGV[2] .. " " .. ARGV[3]
local added = redis.call("ZADD", KEYS[1], "NX", tonumber(ARGV[1]), member)
local extra = redis.call("ZCARD", KEYS[1]) - tonumber(ARGV[4])
if extra > 0 then
  redis.call("ZREMRANGEBYRANK", KEYS[1], 0, extra - 1)
end
redis.call("EXPIRE", KEYS[1], tonumber(ARGV[5]))
return added
