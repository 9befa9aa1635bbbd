--[[
confirm.lua: FCALL <v>_confirm 0 <ns> <history cap> <history ttl> <marks> [address, tenant,
digest]... <records> [tenant, ms, event id, json]... <alerts> [tenant, field]...: what follows
a batch whose events reached Kafka.

- marks: forget the pending decision (or reactivation) of one event in its tenant document,
  so replaying that event later re-emits nothing (before this, a replay re-emits the same
  event: that is what makes a crash between Redis and Kafka lose nothing);
- records: append a suppression-change event to its tenant's history (a zset, score = event
  time, member = "<event_id> <json>", capped, ZADD NX so a re-emitted one is not doubled);
- alerts: mark a tenant alert sent (field value "s"; "p" while pending).
Returns the number of history members added.
]]

local function forget(home, digest)
  local raw = redis.call("GET", home)
  if not raw then return end
  local nl = string.find(raw, "\n", HEAD + 1, true)
  local j = cjson.decode(string.sub(raw, HEAD + 1, (nl or 0) - 1))
  if j.p == nil or j.p[digest] == nil then return end
  j.p[digest] = nil
  if next(j.p) == nil then j.p = nil end
  local log = nl and string.sub(raw, nl) or ""
  redis.call("SET", home, string.sub(raw, 1, HEAD) .. cjson.encode(j) .. log, "KEEPTTL")
end

local function confirm(_, args)
  local ns, cap, ttl = args[1], tonumber(args[2]), tonumber(args[3])
  local a, added = 4, 0
  for _ = 1, tonumber(args[a]) do
    forget(ns .. ":{" .. args[a + 1] .. "}:t:" .. args[a + 2], args[a + 3])
    a = a + 3
  end
  a = a + 1
  for _ = 1, tonumber(args[a]) do
    local key = ns .. ":{tenant:" .. args[a + 1] .. "}:history"
    added = added + redis.call("ZADD", key, "NX", tonumber(args[a + 2]),
      args[a + 3] .. " " .. args[a + 4])
    local extra = redis.call("ZCARD", key) - cap
    if extra > 0 then redis.call("ZREMRANGEBYRANK", key, 0, extra - 1) end
    redis.call("EXPIRE", key, ttl)
    a = a + 4
  end
  a = a + 1
  for _ = 1, tonumber(args[a]) do
    redis.call("HSET", ns .. ":{tenant:" .. args[a + 1] .. "}:alerts", args[a + 2], "s")
    a = a + 2
  end
  return added
end

redis.register_function{function_name = "@V@_confirm", callback = confirm,
  flags = {"allow-cross-slot-keys"}}
