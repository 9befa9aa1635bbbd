--[[
reactivate.lua: manual add-back of a suppressed address in one scope (seed 000: "they can be
added back manually if needed"): clears the scope's counters and its suppression. The bounce
log stays (it is the audit trail).

KEYS[1]  scope hash    NS:{addr}:t:<tenant>[:l:<list>] or NS:{addr}:g
KEYS[2]  request key   NS:{addr}:e:<request_id>  (the outbox of this request's event)
ARGV[1]  ttl of the request key, seconds

Returns a JSON string: {"rule": r, "reason": c, "trigger_event_id": e} of the suppression it
cleared, or "false" when the scope was not suppressed (nothing is changed then).
The cleared suppression is kept under the request key until mark_emitted sets it to "false":
a retry of the same request (same Idempotency-Key) after the `reactivated` event failed to
reach Kafka gets the same answer again, so the event is re-emitted instead of lost.
]]
assert(#KEYS == 2, "reactivate: 2 keys")
assert(#ARGV == 1, "reactivate: 1 arg")
local pending = redis.call("GET", KEYS[2])
if pending then
  return pending
end
local rule = redis.call("HGET", KEYS[1], "suppressed")
if not rule then
  return "false"
end
local reason = redis.call("HGET", KEYS[1], "reason")
local trigger = redis.call("HGET", KEYS[1], "sup_ev")
redis.call("DEL", KEYS[1])
local cleared = cjson.encode({rule = rule, reason = reason, trigger_event_id = trigger})
redis.call("SET", KEYS[2], cleared, "EX", tonumber(ARGV[1]))
return cleared
