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

-- The ring of seen digests, ascending by (ts, digest). Returns "dup", "old" (older than
-- everything a full ring remembers: counted by set semantics, not logged) or "new".
local function remember(home, ts, dg, ringn)
  local ring = home.j.seen or {}
  for _, x in ipairs(ring) do
    if x[2] == dg then return "dup" end
  end
  if #ring >= ringn and by_time({ts, dg}, ring[1]) then return "old" end
  ring[#ring + 1] = {ts, dg}
  table.sort(ring, by_time)
  while #ring > ringn do table.remove(ring, 1) end
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

local function bounce(H, P, ev, keys, out, i)
  local docs, home = keys.docs, keys.docs:full(keys.home)
  local seen = remember(home, ev.ts, ev.dg, H.ringn)
  if seen == "dup" then
    local pending = home.j.p and home.j.p[ev.dg]
    if pending then out[#out + 1] = {i, "p", pending} end
    return
  end
  if seen == "new" and ev.log ~= "" then log_push(home, ev.dg .. "\t" .. ev.log, H.logn) end
  local units = {}
  for n, letter in ipairs(P.sc) do
    local unit = docs:full(scope_key(letter, keys.home, keys.prefix, keys.list))
    unit.dirty = true
    units[n] = unit
    if P.b then
      local bn = track_send(unit.j.bn, ev, reset_of(unit), P.cap)
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
    home.j.p = home.j.p or {}
    home.j.p[ev.dg] = decisions
    home.dirty = true
    out[#out + 1] = {i, "d", decisions}
  end
end

local function one_event(H, P, ev, keys, out, i)
  if P.k == "d" then
    for _, letter in ipairs(P.sc) do
      keys.docs:deliver(scope_key(letter, keys.home, keys.prefix, keys.list), ev.ts)
    end
    if P.ok and ev.log ~= "" then
      redis.call("LPUSH", keys.ok, ev.log)
      redis.call("LTRIM", keys.ok, 0, H.logn - 1)
      redis.call("EXPIRE", keys.ok, H.okttl)
    end
  elseif P.k == "o" then
    for _, letter in ipairs(P.sc) do
      engage(keys.docs:full(scope_key(letter, keys.home, keys.prefix, keys.list)), ev.ts)
    end
  else
    bounce(H, P, ev, keys, out, i)
  end
end

local function apply_batch(_, args)
  local H = cjson.decode(args[1])
  local out, a, i = {}, 3, 0
  for _ = 1, tonumber(args[2]) do
    local prefix = H.ns .. ":{" .. args[a] .. "}"
    local n = tonumber(args[a + 1])
    a = a + 2
    local docs = new_docs()
    for _ = 1, n do
      i = i + 1
      local P = H.P[tonumber(args[a])]
      local home = prefix .. ":t:" .. args[a + 1]
      local keys = {docs = docs, prefix = prefix, home = home, list = args[a + 2],
        ok = prefix .. ":ok"}
      local ev = {ts = tonumber(args[a + 3]), cat = P.cat, log = ""}
      a = a + 4
      if P.k == "b" then
        ev.send, ev.id, ev.dg, ev.log = args[a], args[a + 1], args[a + 2], args[a + 3]
        a = a + 4
      elseif P.k == "d" and P.ok then
        ev.log = args[a]
        a = a + 1
      end
      local ok, err = pcall(one_event, H, P, ev, keys, out, i)
      if not ok then out[#out + 1] = {i, "x", tostring(err)} end
    end
    docs:flush(H.ttl, H.ettl)
  end
  return cjson.encode(out)
end

redis.register_function{function_name = "@V@_apply", callback = apply_batch,
  flags = {"allow-cross-slot-keys"}}
