--[[
reactivate.lua: FCALL <v>_reactivate 0 <scope key> <home key> <digest> <ttl>: manual add-back
of a suppressed address in one scope (seed 000: "they can be added back manually if needed").
Clears the scope's suppression and counters; the bounce log stays (the audit trail). Events
at or before the latest one the scope had counted (field r) count no more, so replaying them
cannot suppress the address again.

The cleared suppression waits in the tenant document (p[digest], digest of the request id)
until confirm forgets it: a retry of the same request (same Idempotency-Key) after the
`reactivated` event failed to reach Kafka gets the same answer, so it is re-emitted.
Returns JSON {rule, reason, trigger_event_id} of what it cleared, or "false".
]]

local function reactivate(_, args)
  local docs = new_docs()
  local home = docs:full(args[2])
  local pending = home.j.p and home.j.p[args[3]]
  if pending then return cjson.encode(pending) end
  local unit = docs:full(args[1])
  local s = unit.j.s
  if s == nil then return "false" end
  local j = unit.j
  local floor = math.max(j.r or 0, j.lt or 0, s.ts or 0)
  j.r, j.s, j.bn, j.k, j.b = floor, nil, nil, nil, nil
  unit.dirty = true
  local cleared = {rule = s.rule, reason = s.reason, trigger_event_id = s.ev}
  home.j.p = home.j.p or {}
  home.j.p[args[3]] = cleared
  home.dirty = true
  docs:flush(tonumber(args[4]), tonumber(args[4]))
  return cjson.encode(cleared)
end

redis.register_function{function_name = "@V@_reactivate", callback = reactivate,
  flags = {"allow-cross-slot-keys"}}
