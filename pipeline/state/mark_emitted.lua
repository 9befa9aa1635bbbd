--[[
mark_emitted.lua: remember that the suppression an event tripped has been delivered to Kafka,
so a later replay of that event re-emits nothing (before this mark, a replay re-emits the same
suppression with the same id: that is what makes a crash between Redis and Kafka lose nothing).

KEYS[1]  dedupe key   NS:{addr}:e:<event_id>
Returns 1 when the mark was set, 0 when the key had expired (nothing to do).
]]
assert(#KEYS == 1, "mark_emitted: 1 key")
if redis.call("EXISTS", KEYS[1]) == 0 then
  return 0
end
redis.call("SET", KEYS[1], "false", "KEEPTTL")
return 1
