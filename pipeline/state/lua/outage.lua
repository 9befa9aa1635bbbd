--[==[
outage.lua: the provider-outage guard (issue 12; docs/policies.md). Loaded after apply.lua
and confirm.lua: it wraps apply_batch and reuses scope_key and forget, changing none of them.

FCALL <v>_guard 0 <guard JSON> <apply args...>: count, detect, apply, hold, settle, in one
atomic call. Guard JSON (pipeline/core/outage.py guard_arg):
  {ns, C = {group = {a = {minute = [identity]}, h = {...}}},
   G = [[group, config id, numbers {w, n, s, f, bh, gr}, [minute...] ascending]],
   E = {number = [G index, address, tenant, list, digest, event id, ms, profile]},
   last = 1 on the batch's last guard call (the only one that settles)}

Keys (prefix = NS:{og:<group>}; standalone Redis: every call reaches every key):
  <prefix>:a:<minute> :h:<minute>    HyperLogLog of the attempts / hard bounces (identities
                                     recipient\31event id: a replay counts nothing twice)
  <prefix>:ah:<hour> :hh:<hour>      the same per hour, for the baseline
  <prefix>:st:<config>               JSON {on, sn (held from ms), u (ended ms), at (latest
                                     evaluated minute), iv = [[from, to]] past bursts, pa = [alert],
                                     bhr, base (the baseline of hour bhr)}
  <prefix>:held                      hash <address>\31<tenant>\31<digest> -> held record JSON
                                     {a, t, l, id, ts, dg, d = [decision + sk scope key]}
  <prefix>:rel                       hash: released records not yet confirmed emitted
  <prefix>:stats                     hash held / released / discarded totals
  NS:og:groups                       set of the groups with held records
Every bucket is event time; TTLs bound the memory per group (minute buckets 2 h, hour
buckets the baseline + 2 h).

Returns JSON {o = apply entries minus the held decisions, a = pending alerts, r = [[group,
field, record]] released and not yet confirmed, h = {group = held now}}.
]==]

local OG_MIN = 60000

local function og_prefix(ns, grp) return ns .. ":{og:" .. grp .. "}" end

local function og_count(prefix, block, hour_ttl)
  for _, kind in ipairs({"a", "h"}) do
    for minute, ids in pairs(block[kind] or {}) do
      local m = tonumber(minute)
      local mk, hk = prefix .. ":" .. kind .. ":" .. m, prefix .. ":" .. kind .. "h:" .. math.floor(m / 60)
      for s = 1, #ids, 1000 do  -- in slices: unpack is bounded by Lua's C stack
        local e = math.min(s + 999, #ids)
        redis.call("PFADD", mk, unpack(ids, s, e))
        redis.call("PFADD", hk, unpack(ids, s, e))
      end
      redis.call("EXPIRE", mk, 7200)
      redis.call("EXPIRE", hk, hour_ttl)
    end
  end
end

local function og_sum(prefix, kind, from, to)
  local n = 0
  for b = from, to do n = n + redis.call("PFCOUNT", prefix .. ":" .. kind .. ":" .. b) end
  return n
end

-- The group's hard share over the `bh` hours before `hour`, cached in the state for the
-- hour (those buckets are complete by then: a late event moves it by little).
local function og_baseline(prefix, cfg, st, hour)
  if st.bhr == hour and st.base then return st.base end
  local ba, base = og_sum(prefix, "ah", hour - cfg.bh, hour - 1), 0
  if ba > 0 then base = og_sum(prefix, "hh", hour - cfg.bh, hour - 1) / ba end
  st.bhr, st.base = hour, base
  return base
end

-- The largest k (1..w) whose trailing window of k minutes ending at minute m trips, and its
-- attempts, hard bounces and the baseline share; k = 0 when none does. Shorter windows let
-- a burst trip within its first minute; the longest one keeps it on until the burst has
-- left the window (hysteresis without a second threshold). One PFCOUNT per bucket, not a
-- union: Redis caches the count of an unchanged HyperLogLog, so only the buckets this batch
-- touched cost a scan.
local function og_trips(prefix, cfg, st, m)
  local a, total = {}, 0
  for j = 1, cfg.w do
    a[j] = redis.call("PFCOUNT", prefix .. ":a:" .. (m - j + 1))
    total = total + a[j]
  end
  if total < cfg.n then return 0, total, 0, 0 end
  local base = og_baseline(prefix, cfg, st, math.floor(m / 60))
  local best, A, H, bestA, bestH = 0, 0, 0, total, 0
  for k = 1, cfg.w do
    A = A + a[k]
    H = H + redis.call("PFCOUNT", prefix .. ":h:" .. (m - k + 1))
    if A >= cfg.n and H >= cfg.s * A and H >= cfg.f * base * A then
      best, bestA, bestH = k, A, H
    end
  end
  if best == 0 then bestA, bestH = A, H end
  return best, bestA, bestH, base
end

local function og_state(key)
  local raw = redis.call("GET", key)
  local st = raw and cjson.decode(raw) or {on = false, at = 0}
  if type(st.iv) ~= "table" then st.iv = {} end
  if type(st.pa) ~= "table" then st.pa = {} end
  return st
end

local function og_alert(st, phase, grp, cid, cfg, t, A, H, base, held)
  st.pa[#st.pa + 1] = {k = phase .. ":" .. st.sn, ph = phase, g = grp, c = cid, w = cfg.w,
    A = A, H = H, b = base, sn = st.sn, t = t, held = held}
end

-- Move the state of one (group, config) through the minutes of event time the batch has
-- events in, in order: start or end a burst. A trailing window ending at minute m holds no
-- later bucket, so the state a minute reaches does not depend on how the stream was cut
-- into batches (a worker's and a replay's agree). A minute older than the latest evaluated
-- one changes nothing (a lagging partition cannot end a burst early or restart one).
local function og_evaluate(ns, spec)
  local grp, cid, cfg = spec[1], spec[2], spec[3]
  local prefix = og_prefix(ns, grp)
  local st = og_state(prefix .. ":st:" .. cid)
  for _, minute in ipairs(spec[4]) do
    local m = tonumber(minute)
    if m >= st.at then
      st.at = m
      local t = m * OG_MIN
      local k, A, H, base = og_trips(prefix, cfg, st, m)
      if k > 0 and not st.on then
        st.on, st.sn, st.u = true, (m - k + 1) * OG_MIN, nil
        og_alert(st, "start", grp, cid, cfg, t, A, H, base, 0)
      elseif k == 0 and st.on then
        st.on, st.u = false, t
        st.iv[#st.iv + 1] = {st.sn, t}
        while #st.iv > 8 do table.remove(st.iv, 1) end
        og_alert(st, "end", grp, cid, cfg, t, A, H, base, redis.call("HLEN", prefix .. ":held"))
      end
    end
  end
  return {grp = grp, cid = cid, cfg = cfg, t = st.at * OG_MIN, st = st, prefix = prefix}
end

local function og_covers(st, ts)
  if st.on and ts >= st.sn then return true end
  for _, x in ipairs(st.iv) do
    if ts >= x[1] and ts <= x[2] then return true end
  end
  return false
end

-- Hold one event's decisions: record them with their scope keys, and forget them as pending
-- in the address's tenant document, so a replay of the event re-emits nothing (the held
-- record is its only trace, written in the same atomic call).
local function og_hold(ns, P, x, decisions)
  local prefix, home = ns .. ":{" .. x[2] .. "}", ns .. ":{" .. x[2] .. "}:t:" .. x[3]
  for _, d in ipairs(decisions) do
    d.sk = scope_key(P.sc[d.u], home, prefix, x[4])
  end
  local rec = {a = x[2], t = x[3], l = x[4], dg = x[5], id = x[6], ts = x[7], d = decisions}
  return home, rec
end

local function og_unsuppress(rec)
  for _, d in ipairs(rec.d) do
    local raw = redis.call("GET", d.sk)
    if raw then
      local nl = string.find(raw, "\n", HEAD + 1, true)
      local j = cjson.decode(string.sub(raw, HEAD + 1, (nl or 0) - 1))
      if j.s and j.s.ev == rec.id then
        j.s = nil
        local log = nl and string.sub(raw, nl) or ""
        redis.call("SET", d.sk, string.sub(raw, 1, HEAD) .. cjson.encode(j) .. log, "KEEPTTL")
      end
    end
  end
end

local function og_delivered(rec)
  for _, d in ipairs(rec.d) do
    local head = redis.call("GETRANGE", d.sk, 0, HEAD - 1)
    if head ~= "" and tonumber(head) > rec.ts then return true end
  end
  return false
end

-- Settle a group's held records: mode "discard" discards all; "release" discards those
-- whose address received a delivery since the bounce and releases the rest (moved to the
-- rel hash until their emission is confirmed). Returns released, discarded.
local function og_settle(ns, grp, mode)
  local prefix = og_prefix(ns, grp)
  local all = redis.call("HGETALL", prefix .. ":held")
  local released, discarded = 0, 0
  for n = 1, #all, 2 do
    local rec = cjson.decode(all[n + 1])
    if mode == "discard" or og_delivered(rec) then
      og_unsuppress(rec)
      discarded = discarded + 1
    else
      redis.call("HSET", prefix .. ":rel", all[n], all[n + 1])
      redis.call("EXPIRE", prefix .. ":rel", 400 * 86400)
      released = released + 1
    end
  end
  redis.call("DEL", prefix .. ":held")
  redis.call("SREM", ns .. ":og:groups", grp)
  if released > 0 then redis.call("HINCRBY", prefix .. ":stats", "released", released) end
  if discarded > 0 then redis.call("HINCRBY", prefix .. ":stats", "discarded", discarded) end
  return released, discarded
end

local function og_pending(prefix, grp, out)
  local all = redis.call("HGETALL", prefix .. ":rel")
  for n = 1, #all, 2 do out[#out + 1] = {grp, all[n], all[n + 1]} end
end

local function og_hold_all(G, states, H, entries, out_entries)
  local held_n = {}
  for _, e in ipairs(entries) do
    local x = e[2] == "d" and G.E[tostring(e[1])]
    local s = x and states[x[1]]
    if s and og_covers(s.st, tonumber(x[7])) then
      local home, rec = og_hold(G.ns, H.P[tonumber(x[8])], x, e[3])
      local key = s.prefix .. ":held"
      redis.call("HSET", key, x[2] .. "\31" .. x[3] .. "\31" .. x[5], cjson.encode(rec))
      redis.call("EXPIRE", key, H.ttl)
      redis.call("SADD", G.ns .. ":og:groups", s.grp)
      redis.call("HINCRBY", s.prefix .. ":stats", "held", 1)
      forget(home, x[5])
      held_n[s.grp] = true
    else
      out_entries[#out_entries + 1] = e
    end
  end
  return held_n
end

local function guard_batch(_, args)
  local G = cjson.decode(args[1])
  local rest = {}
  for n = 2, #args do rest[n - 1] = args[n] end
  local hour_ttl = 26 * 3600
  for _, spec in ipairs(G.G) do hour_ttl = math.max(hour_ttl, (spec[3].bh + 2) * 3600) end
  for grp, block in pairs(G.C) do og_count(og_prefix(G.ns, grp), block, hour_ttl) end
  local states = {}
  for n, spec in ipairs(G.G) do states[n] = og_evaluate(G.ns, spec) end
  local entries, kept = cjson.decode(apply_batch(nil, rest)), {}
  if next(G.E) ~= nil then
    og_hold_all(G, states, cjson.decode(rest[1]), entries, kept)  -- the header: profiles, ttl
  else
    kept = entries
  end
  local reply = {o = kept, a = {}, r = {}, h = {}}
  local done = {}
  for _, s in ipairs(states) do
    local cfg, st = s.cfg, s.st
    local held = redis.call("HLEN", s.prefix .. ":held")
    for _, alert in ipairs(st.pa) do alert.held = held end  -- "held so far", until sent
    if G.last and held > 0 and not st.on and st.u and s.t >= st.u + cfg.gr then
      og_settle(G.ns, s.grp, "release")  -- the grace is over, in event time
      held = 0
    end
    for _, alert in ipairs(st.pa) do reply.a[#reply.a + 1] = alert end
    redis.call("SET", s.prefix .. ":st:" .. s.cid, cjson.encode(st), "EX", 400 * 86400)
    if not done[s.grp] then
      done[s.grp] = true
      reply.h[s.grp] = held
      og_pending(s.prefix, s.grp, reply.r)
    end
  end
  return cjson.encode(reply)
end

-- FCALL <v>_guard_confirm 0 <ns> <n alerts> [group\31config, alert key]... <n released>
-- [group, field]...: the alerts and released suppressions reached Kafka; stop returning them.
local function guard_confirm(_, args)
  local ns, a = args[1], 2
  for _ = 1, tonumber(args[a]) do
    local sep = string.find(args[a + 1], "\31", 1, true)
    local grp, cid = string.sub(args[a + 1], 1, sep - 1), string.sub(args[a + 1], sep + 1)
    local key = og_prefix(ns, grp) .. ":st:" .. cid
    local st = og_state(key)
    local keep = {}
    for _, alert in ipairs(st.pa) do
      if alert.k ~= args[a + 2] then keep[#keep + 1] = alert end
    end
    st.pa = keep
    redis.call("SET", key, cjson.encode(st), "KEEPTTL")
    a = a + 2
  end
  a = a + 1
  for _ = 1, tonumber(args[a]) do
    redis.call("HDEL", og_prefix(ns, args[a + 1]) .. ":rel", args[a + 2])
    a = a + 2
  end
  return 1
end

-- FCALL <v>_guard_settle 0 <ns> <group> <release|discard>: an operator's word. Returns JSON
-- {released, discarded, r = [[group, field, record]] (every release not yet confirmed)}.
local function guard_settle(_, args)
  local ns, grp, mode = args[1], args[2], args[3]
  assert(mode == "release" or mode == "discard", "mode must be release or discard")
  local released, discarded = og_settle(ns, grp, mode)
  local out = {}
  og_pending(og_prefix(ns, grp), grp, out)
  return cjson.encode({released = released, discarded = discarded, r = out})
end

redis.register_function{function_name = "@V@_guard", callback = guard_batch,
  flags = {"allow-cross-slot-keys"}}
redis.register_function{function_name = "@V@_guard_confirm", callback = guard_confirm,
  flags = {"allow-cross-slot-keys"}}
redis.register_function{function_name = "@V@_guard_settle", callback = guard_settle,
  flags = {"allow-cross-slot-keys"}}
