--[[
record_attempt.lua: count one classified delivery attempt for one address and tenant, and
decide whether it suppresses the address. Atomic; exactly once per event id.

KEYS[1]  state hash   NS:{addr}:t:<tenant>
KEYS[2]  dedupe key   NS:{addr}:e:<event_id>
ARGV[1]  class          delivered|soft|hard|block|auto_reply|unknown
ARGV[2]  category       e.g. user_unknown
ARGV[3]  send key       campaign id, else message id, else event id: one soft bounce per send
ARGV[4]  soft threshold consecutive soft bounces that suppress (0 = never)
ARGV[5]  hard immediate "1" when a hard bounce suppresses at once
ARGV[6]  state ttl      seconds the state hash lives after its last event
ARGV[7]  dedupe ttl     seconds the event id is remembered

Returns a JSON string:
  {"dup": true, "decided": <what the first delivery decided, or false>}  for a replayed event
  {"decided": false, "soft": n}                                           when nothing tripped
  {"decided": {"rule": r, "count": n, "threshold": t, "reason": c}}       when it suppresses
A replayed event returns the decision of its first delivery, so a crash between this script
and the Kafka send re-emits the same suppression instead of losing it.
]]
assert(#KEYS == 2, "record_attempt: 2 keys")
assert(#ARGV == 7, "record_attempt: 7 args")

local state, seen = KEYS[1], KEYS[2]
local class, category, send_key = ARGV[1], ARGV[2], ARGV[3]
local soft_threshold, hard_immediate = tonumber(ARGV[4]), ARGV[5] == "1"
local state_ttl, dedupe_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])

local previous = redis.call("GET", seen)
if previous then
  return cjson.encode({dup = true, decided = cjson.decode(previous)})
end

local decided = false
local suppressed = redis.call("HGET", state, "suppressed")
local soft = tonumber(redis.call("HGET", state, "soft") or "0")

if class == "delivered" then
  soft = 0
  redis.call("HSET", state, "soft", 0)
elseif class == "soft" and redis.call("HGET", state, "soft_send") ~= send_key then
  soft = soft + 1
  redis.call("HSET", state, "soft", soft, "soft_send", send_key)
  if not suppressed and soft_threshold > 0 and soft >= soft_threshold then
    decided = {rule = "consecutive_soft", count = soft, threshold = soft_threshold,
               reason = category}
  end
elseif class == "hard" and hard_immediate and not suppressed then
  decided = {rule = "immediate_hard", count = 1, threshold = 1, reason = category}
end

if decided then
  redis.call("HSET", state, "suppressed", decided.rule, "reason", decided.reason)
end
redis.call("EXPIRE", state, state_ttl)
redis.call("SET", seen, cjson.encode(decided), "EX", dedupe_ttl)
return cjson.encode({decided = decided, soft = soft})
