--[[
apply.lua: FCALL <v>_apply 0 <header> <groups> <group>...: one batch (or part of one) of
delivery attempts, complaints, unsubscribes, opens and clicks, grouped per address, each
address's events in stream order. Keys are derived here from the address (one {hash tag},
so one slot per group); none are declared.

ARGV[1]  header JSON  {ns, ttl (state s), ettl (engaged s), okttl (s), logn, ringn,
                       P = [profile]}; a profile is what the events of one (policy, class,
                       category) share: {k = d|b|o, sc = scope letters narrow to broad (l t g),
                       ops = rule ops, cat, b (counts as a bounce), cap (bounce count cap),
                       ok (keep the delivered log)}
ARGV[2]  n groups
then per group: address, n events, then per event: profile index, tenant, list ("-" none),
  ts (ms); kind b adds send, event id, digest, log entry; kind d with ok adds its entry.

Header pr (Redis Cluster only): probe each group first; a group whose slot this node does
not serve now is skipped untouched, reported once as [i of its first event, "s", error].

Returns JSON [[i, "d", decisions] | [i, "p", decisions] | [i, "x", error], ...] for the events
(numbered from 1 in this call) that decided something ("d"), were seen before and still wait
for their suppression to be confirmed ("p": the same decisions again), or failed ("x": that
event alone, possibly half-applied; the others are unaffected). A decision:
{rule, u, count, threshold, reason, ev = [log entry JSON...]}.

Exactly once without a key per event: the tenant's document keeps the digests of its newest
`ringn` non-delivered events (field seen) and every counter is a set, so a replay counts
nothing twice; a delivery is idempotent by nature (the header only moves forward).
]]

local function scope_key(letter, home, prefix, list)
  if letter == "t" then return home end
  if letter == "l" then return home .. ":l:" .. list end
  return prefix .. ":g"
end

-- The ring of seen digests: one string of fixed-width entries, the 13-digit ts then the
-- 12-hex-digit digest, ascending (zero-padded, so string order is (ts, digest) order). Kept as
-- text, not a JSON array of pairs: decoding and encoding ~32 pairs of numbers on every bounce
-- was a large share of its cost. Returns "dup", "old" (older than everything a full ring
-- remembers: counted by set semantics, not logged) or "new".
local RING_W = 25

local function ring_text(ring)
  if type(ring) == "string" then return ring end
  if ring == nil then return "" end
  table.sort(ring, by_time)  -- a ring written as pairs by an earlier version
  local parts = {}
  for n, x in ipairs(ring) do parts[n] = fmt_ts(x[1]) .. x[2] end
  return table.concat(parts)
end

local function remember(home, ts, dg, ringn)
  local ring = ring_text(home.j.seen)
  local pos = string.find(ring, dg, 1, true)
  while pos do
    if (pos - 1) % RING_W == HEAD then return "dup" end
    pos = string.find(ring, dg, pos + 1, true)
  end
  local entry, n = fmt_ts(ts) .. dg, #ring / RING_W
  if n >= ringn and entry < string.sub(ring, 1, RING_W) then return "old" end
  local at = n  -- entries before the new one; new events are usually the newest
  while at > 0 and entry < string.sub(ring, (at - 1) * RING_W + 1, at * RING_W) do
    at = at - 1
  end
  ring = string.sub(ring, 1, at * RING_W) .. entry .. string.sub(ring, at * RING_W + 1)
  if n + 1 > ringn then ring = string.sub(ring, (n + 1 - ringn) * RING_W + 1) end
  home.j.seen = ring
  home.dirty = true
  return "new"
end

local function engage(unit, ts)
  local j = unit.j
  if ts > (j.e or 0) then j.e = ts end
  local es = j.es or {}
  for _, x in ipairs(es) do
    if x == ts then return end
  end
  es[#es + 1] = ts
  table.sort(es, function(a, b) return a > b end)
  while #es > 16 do table.remove(es) end
  j.es = es
  unit.dirty = true
end

-- g: the address group {docs, prefix (NS:{addr}), home (its tenant document key), list}.
local function bounce(H, P, ev, g, out, i)
  local docs, home = g.docs, g.docs:full(g.home)
  local seen = remember(home, ev.ts, ev.dg, H.ringn)
  if seen == "dup" then
    local pending = home.j.p and home.j.p[ev.dg]
    if pending then out[#out + 1] = {i, "p", pending} end
    return
  end
  if seen == "new" and ev.log ~= "" then log_push(home, ev.dg .. "\t" .. ev.log, H.logn) end
  local units = {}
  for n, letter in ipairs(P.sc) do
    local unit = docs:full(scope_key(letter, g.home, g.prefix, g.list))
    unit.dirty = true
    units[n] = unit
    if P.b then
      local bn = track_send(unit.j.bn, ev, reset_of(unit), P.cap, P.kc)
      unit.j.bn = (#bn > 0) and bn or nil
    end
    if ev.ts > (unit.j.lt or 0) then unit.j.lt = ev.ts end
  end
  local decisions = {}
  local ctx = {decide = function(op, count, threshold, digests)
    local unit = units[op.u]
    if op.k == "imm" and ev.ts <= (unit.j.r or 0) then return end  -- before a reactivation
    unit.j.s = {rule = op.id, reason = P.cat, ts = ev.ts, ev = ev.id, n = count, t = threshold}
    decisions[#decisions + 1] = {rule = op.id, u = op.u, count = count, threshold = threshold,
      reason = P.cat, dg = digests}
  end}
  run_rules(P.ops, units, ev, ctx)
  if #decisions > 0 then
    for _, d in ipairs(decisions) do
      d.ev, d.dg = evidence(home, d.dg), nil
    end
    if not (H.hold and H.hold[i]) then  -- the guard holds these: no pending trace
      home.j.p = home.j.p or {}
      home.j.p[ev.dg] = decisions
    end
    home.dirty = true
    out[#out + 1] = {i, "d", decisions}
  end
end

-- A delivery (kind d): only headers move; `entry` is its delivered-log entry or nil.
local function deliver(H, P, g, ts, entry)
  for _, letter in ipairs(P.sc) do
    g.docs:deliver(scope_key(letter, g.home, g.prefix, g.list), ts)
  end
  if entry ~= nil and entry ~= "" then
    local ok = g.prefix .. ":ok"
    redis.call("LPUSH", ok, entry)
    redis.call("LTRIM", ok, HEAD_FROM, H.trim)
    redis.call("EXPIRE", ok, H.okttl_text)
  end
end

-- A group of one delivery (most groups: an address seldom has two events in one batch), with
-- its time as the 13-digit text it arrived as: headers compare as text (zero-padded, so text
-- order is time order) and are rewritten with it, with no table, number or format per event.
-- What `deliver` does for the same event; the Docs memory only matters for a later event of
-- the same group, and there is none.
local function deliver_alone(H, P, prefix, tenant, list, ts, entry)
  local home = prefix .. ":t:" .. tenant
  for _, letter in ipairs(P.sc) do
    local key = scope_key(letter, home, prefix, list)
    local head = redis.call("GETRANGE", key, HEAD_FROM, HEAD_TO)
    if head ~= "" and ts > head then redis.call("SETRANGE", key, HEAD_FROM, ts) end
  end
  if entry ~= nil and entry ~= "" then
    local ok = prefix .. ":ok"
    redis.call("LPUSH", ok, entry)
    redis.call("LTRIM", ok, HEAD_FROM, H.trim)
    redis.call("EXPIRE", ok, H.okttl_text)
  end
end

local function engage_all(P, g, ts)
  for _, letter in ipairs(P.sc) do
    engage(g.docs:full(scope_key(letter, g.home, g.prefix, g.list)), ts)
  end
end

-- Redis Cluster (header pr): every key the group's `n` events (from args[a]) may touch, and
-- the index after them. All carry the group's {address}, so they are one slot.
local function group_keys(H, args, a, n, prefix)
  local seen, list = {}, {}
  for _ = 1, n do
    local P = H.P[tonumber(args[a])]
    local home = prefix .. ":t:" .. args[a + 1]
    for _, letter in ipairs(P.sc) do
      local key = scope_key(letter, home, prefix, args[a + 2])
      if not seen[key] then seen[key] = true; list[#list + 1] = key end
    end
    a = a + 4
    if P.k == "b" then
      a = a + 4
    elseif P.k == "d" and P.ok then
      a = a + 1
      local ok = prefix .. ":ok"
      if not seen[ok] then seen[ok] = true; list[#list + 1] = ok end
    end
  end
  return list, a
end

-- The probe (Cluster): one multi-key read of every key of the group before any write. It
-- fails (pcall: an error table, nothing written) when this node does not serve the slot now
-- (a stale client map: "non local key"; a migrating slot with a key already moved: ASK or
-- TRYAGAIN). Nothing else runs during a function, so once it passes every later call on
-- these keys stays local: a group is applied whole or not at all.
local function probe_fails(H, args, a, n, prefix)
  local list, after = group_keys(H, args, a, n, prefix)
  local reply = redis.pcall("EXISTS", unpack(list))
  if type(reply) == "table" and reply.err then return after, reply.err end
  return after, nil
end

-- Deliveries are most of the traffic: their path allocates no table per event (each one was
-- a measurable share of a delivery's cost), and only a bounce builds its `ev`.
--
-- The apply arguments start after `base` other ones (0 for apply itself; the guard's own
-- come first): the guard passes its whole argument table, uncopied. `hold` (the guard's; nil
-- for apply): event number -> true for the events whose decisions the guard will hold, which
-- are then not kept as pending in the tenant document (the held record is their only
-- trace). Returns the entries table and the decoded header, so the guard neither decodes
-- the reply nor the header again.
local function apply_entries(args, base, hold)
  local H = cjson.decode(args[base + 1])
  H.hold = hold
  H.trim, H.okttl_text = tostring(H.logn - 1), tostring(H.okttl)  -- once, not per entry
  local out, a, i = {}, base + 3, 0
  for _ = 1, tonumber(args[base + 2]) do
    local prefix = H.ns .. ":{" .. args[a] .. "}"
    local n = tonumber(args[a + 1])
    a = a + 2
    if H.pr then
      local after, err = probe_fails(H, args, a, n, prefix)
      if err then
        out[#out + 1] = {i + 1, "s", err}  -- skipped whole: re-sent after a map refresh
        i, a, n = i + n, after, 0
      end
    end
    local P1 = n == 1 and H.P[tonumber(args[a])]
    if P1 and P1.k == "d" and #args[a + 3] == HEAD then
      i = i + 1
      local entry = nil
      if P1.ok then entry = args[a + 4] end
      local ok, err = pcall(deliver_alone, H, P1, prefix, args[a + 1], args[a + 2], args[a + 3],
        entry)
      if not ok then out[#out + 1] = {i, "x", tostring(err)} end
      a = a + (P1.ok and 5 or 4)
      n = 0
    end
    local g = n > 0 and {docs = new_docs(), prefix = prefix}
    for _ = 1, n do
      i = i + 1
      local P = H.P[tonumber(args[a])]
      g.home, g.list = prefix .. ":t:" .. args[a + 1], args[a + 2]
      local ts = tonumber(args[a + 3])
      a = a + 4
      local ok, err
      if P.k == "d" then
        local entry = nil
        if P.ok then entry, a = args[a], a + 1 end
        ok, err = pcall(deliver, H, P, g, ts, entry)
      elseif P.k == "o" then
        ok, err = pcall(engage_all, P, g, ts)
      else
        local ev = {ts = ts, cat = P.cat, send = args[a], id = args[a + 1], dg = args[a + 2],
          log = args[a + 3]}
        a = a + 4
        ok, err = pcall(bounce, H, P, ev, g, out, i)
      end
      if not ok then out[#out + 1] = {i, "x", tostring(err)} end
    end
    if n > 0 then g.docs:flush(H.ttl, H.ettl) end
  end
  return out, H
end

local function apply_batch(_, args)
  return cjson.encode((apply_entries(args, 0)))
end

redis.register_function{function_name = "@V@_apply", callback = apply_batch,
  flags = {"allow-cross-slot-keys"}}
