--[[
reactivate.lua: manual add-back of a suppressed address in one scope (seed 000: "they can be
added back manually if needed"): clears the scope's counters and its suppression. The bounce
log stays (it is the audit trail).

KEYS[1]  scope hash   NS:{addr}:t:<tenant>[:l:<list>] or NS:{addr}:g

Returns a JSON string: {"rule": r, "reason": c, "trigger_event_id": e} of the suppression it
cleared, or "false" when
the scope was not suppressed (nothing is changed then, so a repeated request is a no-op).
]]
assert(#KEYS == 1, "reactivate: 1 key")
assert(#ARGV == 0, "reactivate: no args")
local rule = redis.call("HGET", KEYS[1], "suppressed")
if not rule then
  return "false"
end
local reason = redis.call("HGET", KEYS[1], "reason")
local trigger = redis.call("HGET", KEYS[1], "sup_ev")
redis.call("DEL", KEYS[1])
return cjson.encode({rule = rule, reason = reason, trigger_event_id = trigger})
