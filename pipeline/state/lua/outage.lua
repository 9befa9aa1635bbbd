--[==[
outage.lua: the provider-outage guard (issue 12; docs/policies.md). Loaded after apply.lua:
it wraps apply_entries (telling it which events it holds) and reuses scope_key.

FCALL <v>_guard 0 <guard JSON> <E JSON> <identities...> <apply args...>: count, detect,
apply, hold, settle, in one atomic call. Arguments (pipeline/core/outage.py guard_args):
  guard JSON {ns, C = [[group, attempts, hard, [[minute, hour, n attempts, n hard]...]]],
              G = [[group, config id, numbers {w, n, s, f, bh, gr}, [minute...] ascending,
                    first ms, last ms of its hard bounces in this call (when it has some)]],
              R = [[group, config id]] every pair of the batch, this call's G first, and
              last = 1, on the batch's last guard call only (the only one that settles and
              reports)}
  E JSON     {number = [G index, address, tenant, list, digest, event id, ms, profile]}: the
             hard bounces that may be held (decoded only when some state can cover them)
  identities recipient\31event id, per C bucket in order, its n hard ones first; plain
             arguments, handed to PFADD as they are (decoding them from JSON cost more than
             counting them)

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
field, record]] released and not yet confirmed, h = {group = held now}}; a, r and h are empty
but in the last call.
]==]

local OG_MIN = 60000
local MINUTE_TTL = "7200"  -- text: a Lua number argument costs a printf per call
local OG_STATE_TTL = "34560000"  -- 400 days

-- Dense from the start: a minute bucket of a group whose batch brings at least this many
-- identities per minute bucket (its rate), an hour bucket of a group whose batch brings this
-- many. It is created as an empty dense HyperLogLog (12 KB) before the PFADD instead of a
-- sparse one. PFADD scans a sparse HyperLogLog from its start for every element, so a busy
-- minute bucket (a few hundred to ~1,500 elements before Redis turns it dense by itself at
-- 3,000 bytes) cost up to ~7k instructions per element, most of the guard's cost; a dense
-- one ~0.2k. Adding 256 elements (callgrind): sparse 1.0M instructions, dense (creation
-- included) 0.35M; 512: 3.2M vs 0.6M; below ~100 sparse is cheaper. The registers, so every
-- count, are the same either way; the price is memory (a sparse bucket of 256 holds ~0.5 KB).
-- On the bench (3,000 attempts a minute over 7 groups), 128 / 256 / 384 / 512 / 768 here gave
-- 69.4k / 70.0k / 71.4k / 71.7k / 74.0k instructions per attempt (84.4k all sparse); on the
-- worker bench's arrays run, 256 / 384 / 512 / 768 left 155 / 152 / 149-150 / 148 B of Redis
-- per attempt (148 all sparse). 768 keeps issue 9's <= 150 B with room and most of the gain.
local OG_DENSE_MIN = 768
local OG_DENSE  -- built at first use: `string` is not reachable while the library loads

local function og_prefix(ns, grp) return ns .. ":{og:" .. grp .. "}" end

-- PFADD `n` identities of args from `from` to `key` (created dense first when `dense` and
-- absent), then refresh its TTL.
local function og_add(key, args, from, n, dense, ttl)
  if n == 0 then return end
  if dense then
    OG_DENSE = OG_DENSE or ("HYLL" .. string.rep("\0", 12300))  -- header + 16384 6-bit registers
    redis.call("SET", key, OG_DENSE, "NX")
  end
  local last = from + n - 1
  for s = from, last, 1000 do  -- in slices: unpack is bounded by Lua's C stack
    redis.call("PFADD", key, unpack(args, s, math.min(s + 999, last)))
  end
  redis.call("EXPIRE", key, ttl)
end

-- Count one group's part of the batch: c = {group, attempts, hard bounces, {{minute, hour,
-- n attempts, n hard}...}} (minute and hour as text); each bucket's identities follow in args
-- from `a`, its hard bounces first. Returns the index after them.
local function og_count(ns, c, args, a, hour_ttl)
  local prefix = og_prefix(ns, c[1])
  local with_h = 0
  for _, b in ipairs(c[4]) do
    if b[4] > 0 then with_h = with_h + 1 end
  end
  -- minute buckets: by the batch's identities per bucket (its rate); hour buckets take the
  -- whole batch
  local min_a = c[2] >= OG_DENSE_MIN * #c[4]
  local min_h = with_h > 0 and c[3] >= OG_DENSE_MIN * with_h
  local hour_a, hour_h = c[2] >= OG_DENSE_MIN, c[3] >= OG_DENSE_MIN
  for _, b in ipairs(c[4]) do
    local na, nh = b[3], b[4]
    og_add(prefix .. ":a:" .. b[1], args, a, na, min_a, MINUTE_TTL)
    og_add(prefix .. ":ah:" .. b[2], args, a, na, hour_a, hour_ttl)
    og_add(prefix .. ":h:" .. b[1], args, a, nh, min_h, MINUTE_TTL)
    og_add(prefix .. ":hh:" .. b[2], args, a, nh, hour_h, hour_ttl)
    a = a + na
  end
  return a
end

local function og_sum(prefix, kind, from, to)
  local n = 0
  for b = from, to do n = n + redis.call("PFCOUNT", prefix .. ":" .. kind .. ":" .. b) end
  return n
end

-- One bucket's count, asked of Redis once per call: the walk over a batch's minutes reads
-- each bucket of the trailing window again for every later minute (and every other guard
-- config of the group), and nothing adds to a bucket once the walk has begun.
local function og_count_of(memo, prefix, kind, m)
  local by = memo[prefix .. kind]
  if not by then by = {}; memo[prefix .. kind] = by end
  local n = by[m]
  if not n then
    n = redis.call("PFCOUNT", prefix .. ":" .. kind .. ":" .. m)
    by[m] = n
  end
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
local function og_trips(memo, prefix, cfg, st, m)
  local a, total = {}, 0
  for j = 1, cfg.w do
    a[j] = og_count_of(memo, prefix, "a", m - j + 1)
    total = total + a[j]
  end
  if total < cfg.n then return 0, total, 0, 0 end
  local base = og_baseline(prefix, cfg, st, math.floor(m / 60))
  local best, A, H, bestA, bestH = 0, 0, 0, total, 0
  for k = 1, cfg.w do
    A = A + a[k]
    H = H + og_count_of(memo, prefix, "h", m - k + 1)
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

-- The state of one (group, config) as this call uses it, read once per call:
-- {grp, cid, prefix, key, st, dirty (changed: written back at the end of the call)}.
local function og_load(ns, loaded, grp, cid)
  local prefix = og_prefix(ns, grp)
  local key = prefix .. ":st:" .. cid
  local s = loaded.by_key[key]
  if not s then
    s = {grp = grp, cid = cid, prefix = prefix, key = key, st = og_state(key), dirty = false}
    loaded.by_key[key] = s
    loaded.order[#loaded.order + 1] = s
  end
  return s
end

-- Move the state of one (group, config) through the minutes of event time the batch has
-- events in, in order: start or end a burst. A trailing window ending at minute m holds no
-- later bucket, so the state a minute reaches does not depend on how the stream was cut
-- into batches (a worker's and a replay's agree). A minute older than the latest evaluated
-- one changes nothing (a lagging partition cannot end a burst early or restart one).
local function og_evaluate(s, cfg, minutes, memo)
  local st, grp, cid, prefix = s.st, s.grp, s.cid, s.prefix
  for _, minute in ipairs(minutes) do
    local m = tonumber(minute)
    if m >= st.at then
      st.at, s.dirty = m, true
      local t = m * OG_MIN
      local k, A, H, base = og_trips(memo, prefix, cfg, st, m)
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
end

-- Whether some event time in [lo, hi] falls in a burst of the state: og_covers for a range,
-- so a call whose hard bounces none of its states can cover skips decoding them.
local function og_may_cover(st, lo, hi)
  if st.on and hi >= st.sn then return true end
  for _, x in ipairs(st.iv) do
    if lo <= x[2] and hi >= x[1] then return true end
  end
  return false
end

local function og_covers(st, ts)
  if st.on and ts >= st.sn then return true end
  for _, x in ipairs(st.iv) do
    if ts >= x[1] and ts <= x[2] then return true end
  end
  return false
end

-- The held record of one event's decisions, each with its scope key. Apply kept no pending
-- trace of them (og_to_hold), so a replay of the event re-emits nothing: the held record,
-- written in the same atomic call, is its only trace.
local function og_hold(ns, P, x, decisions)
  local prefix, home = ns .. ":{" .. x[2] .. "}", ns .. ":{" .. x[2] .. "}:t:" .. x[3]
  for _, d in ipairs(decisions) do
    d.sk = scope_key(P.sc[d.u], home, prefix, x[4])
  end
  return {a = x[2], t = x[3], l = x[4], dg = x[5], id = x[6], ts = x[7], d = decisions}
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
    local head = redis.call("GETRANGE", d.sk, HEAD_FROM, HEAD_TO)
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
  local released, discarded, rel = 0, 0, {}
  for n = 1, #all, 2 do
    local rec = cjson.decode(all[n + 1])
    if mode == "discard" or og_delivered(rec) then
      og_unsuppress(rec)
      discarded = discarded + 1
    else
      local k = #rel
      rel[k + 1], rel[k + 2] = all[n], all[n + 1]
      released = released + 1
    end
  end
  for f = 1, #rel, 1000 do  -- one HSET for the lot (in slices: unpack's C stack bound)
    redis.call("HSET", prefix .. ":rel", unpack(rel, f, math.min(f + 999, #rel)))
  end
  if released > 0 then redis.call("EXPIRE", prefix .. ":rel", OG_STATE_TTL) end
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

-- The events of this call whose decisions are held, if they decide something: hard bounces
-- (E) whose time a state of their group covers. Known before apply runs, so apply keeps no
-- pending trace of them (it used to, and every held event then rewrote its tenant document
-- a second time to forget it).
local function og_to_hold(E, states)
  local hold = {}
  for n, x in pairs(E) do
    local s = states[x[1]]
    if s and og_covers(s.st, tonumber(x[7])) then hold[tonumber(n)] = x end
  end
  return hold
end

-- Hold the decisions of the events of `hold` that decided ("d"); keep every other entry.
-- The writes go per group, once per call (one HSET of all its held records, one EXPIRE,
-- SADD and HINCRBY), not per event.
local function og_hold_all(ns, hold, states, H, entries, out_entries)
  local by_group, order = {}, {}
  for _, e in ipairs(entries) do
    local x = e[2] == "d" and hold[e[1]]
    if x then
      local s = states[x[1]]
      local rec = og_hold(ns, H.P[tonumber(x[8])], x, e[3])
      local w = by_group[s.grp]
      if not w then
        w = {s = s, fields = {}, n = 0}
        by_group[s.grp] = w
        order[#order + 1] = w
      end
      w.fields[#w.fields + 1] = x[2] .. "\31" .. x[3] .. "\31" .. x[5]
      w.fields[#w.fields + 1] = cjson.encode(rec)
      w.n = w.n + 1
    else
      out_entries[#out_entries + 1] = e
    end
  end
  local ttl = tostring(H.ttl)
  for _, w in ipairs(order) do
    local key = w.s.prefix .. ":held"
    for f = 1, #w.fields, 1000 do  -- in slices: unpack is bounded by Lua's C stack
      redis.call("HSET", key, unpack(w.fields, f, math.min(f + 999, #w.fields)))
    end
    redis.call("EXPIRE", key, ttl)
    redis.call("SADD", ns .. ":og:groups", w.s.grp)
    redis.call("HINCRBY", w.s.prefix .. ":stats", "held", tostring(w.n))
  end
end

-- The batch's last call: every (group, config) of the batch (R, this call's own G first)
-- gets its pending alerts, with the suppressions held so far, and each group its held count
-- and the releases not yet confirmed; a group of this call past its grace is settled. The
-- calls before return none of it: their copies would only be replaced by these.
local function og_report(G, loaded, cfgs, reply)
  local done = {}
  for _, pair in ipairs(G.R) do
    local s = og_load(G.ns, loaded, pair[1], pair[2])
    local st, cfg = s.st, cfgs[s.key]
    local held = redis.call("HLEN", s.prefix .. ":held")
    for _, alert in ipairs(st.pa) do  -- "held so far", until sent
      if alert.held ~= held then alert.held, s.dirty = held, true end
    end
    if cfg and held > 0 and not st.on and st.u and st.at * OG_MIN >= st.u + cfg.gr then
      og_settle(G.ns, s.grp, "release")  -- the grace is over, in event time
      held = 0
    end
    for _, alert in ipairs(st.pa) do reply.a[#reply.a + 1] = alert end
    if not done[s.grp] then
      done[s.grp] = true
      reply.h[s.grp] = held
      og_pending(s.prefix, s.grp, reply.r)
    end
  end
end

-- FCALL <v>_guard 0 <guard JSON> <E JSON> <identities...> <apply args...> (see the top).
local function guard_batch(_, args)
  local G = cjson.decode(args[1])
  local hour_ttl = 26 * 3600
  for _, spec in ipairs(G.G) do hour_ttl = math.max(hour_ttl, (spec[3].bh + 2) * 3600) end
  hour_ttl = tostring(hour_ttl)
  local a = 3
  for _, c in ipairs(G.C) do a = og_count(G.ns, c, args, a, hour_ttl) end
  -- Walk, and read the states this call needs: those with minutes to walk or hard bounces
  -- to judge (the others are read by the last call only, if at all).
  local loaded, states, cfgs, memo, hot = {by_key = {}, order = {}}, {}, {}, {}, false
  for n, spec in ipairs(G.G) do
    if #spec[4] > 0 or spec[5] or G.last then
      local s = og_load(G.ns, loaded, spec[1], spec[2])
      states[n], cfgs[s.key] = s, spec[3]
      og_evaluate(s, spec[3], spec[4], memo)
      if spec[5] and og_may_cover(s.st, spec[5], spec[6]) then hot = true end
    end
  end
  local hold = hot and og_to_hold(cjson.decode(args[2]), states) or nil
  local entries, H = apply_entries(args, a - 1, hold)
  local kept = entries
  if hold and next(hold) ~= nil then
    kept = {}
    og_hold_all(G.ns, hold, states, H, entries, kept)
  end
  local reply = {o = kept, a = {}, r = {}, h = {}}
  if G.last then og_report(G, loaded, cfgs, reply) end
  for _, s in ipairs(loaded.order) do
    if s.dirty then redis.call("SET", s.key, cjson.encode(s.st), "EX", OG_STATE_TTL) end
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
