--[[
sweep.lua: FCALL <v>_sweep 0 <header> <n> [scope key, home key, rule, u, digest, trigger]...:
the count-threshold rule (listrak's cleanup) as of time `at` for n scopes: the
latest bounce reason picks a minimum, the live bounce count (sends since the last reset that
bounced first at or before `at`) must reach it.

A scope whose state has anything after `at` (a delivery, a reactivation or a bounce) is left
alone ("n"): the document keeps only the latest delivery and the latest reason of each send, so
what it said as of `at` is gone, and judging it with later events would be wrong. The worker
sweeps as of now, and `replay --sweep` as of the last event, so only an explicit past
`sweep --at` meets this.

ARGV[1]  header JSON {at, ttl, R = {rule id: {m = {category: min}, c = {class: min},
         o = other min}}}: a category named by a tier wins, then the latest class (kept only
         under policies whose tiers name classes), then the other minimum
Returns JSON [[i, "d" | "p", decisions] | [i, "n"]...] like apply: "p" when this run already
decided for that scope and the suppression is not confirmed yet (same decision again), "n" when
the scope has state newer than `at` (see above).
]]

local function sweep_one(H, docs, e)
  local home = docs:full(e.home)
  local pending = home.j.p and home.j.p[e.dg]
  if pending then return "p", pending end
  local unit = docs:full(e.scope)
  if unit.j.s ~= nil or unit.j.bn == nil then return nil end
  local reset, live, latest = reset_of(unit), {}, nil
  if reset > H.at then return "n" end
  for _, x in ipairs(unit.j.bn) do
    if x[3] > H.at then return "n" end
  end
  for _, x in ipairs(unit.j.bn) do
    if x[3] > reset and x[2] <= H.at then
      live[#live + 1] = x
      if latest == nil or x[3] >= latest[3] then latest = x end
    end
  end
  if latest == nil then return nil end
  local R = H.R[e.rule]
  local need = R.m[latest[4]] or (latest[6] and R.c[latest[6]]) or R.o
  if need == 0 or #live < need then return nil end
  unit.j.s = {rule = e.rule, reason = latest[4], ts = H.at, ev = e.trigger, n = #live, t = need}
  unit.dirty = true
  local decided = {{rule = e.rule, u = e.u, count = #live, threshold = need,
    reason = latest[4], ev = evidence(home, digests_of(live, 5))}}
  home.j.p = home.j.p or {}
  home.j.p[e.dg] = decided
  home.dirty = true
  return "d", decided
end

local function sweep(_, args)
  local H = cjson.decode(args[1])
  local out, a = {}, 3
  for i = 1, tonumber(args[2]) do
    local e = {scope = args[a], home = args[a + 1], rule = args[a + 2],
      u = tonumber(args[a + 3]), dg = args[a + 4], trigger = args[a + 5]}
    a = a + 6
    local docs = new_docs()
    local kind, decided = sweep_one(H, docs, e)
    if kind then out[#out + 1] = {i, kind, decided} end
    docs:flush(H.ttl, H.ttl)
  end
  return cjson.encode(out)
end

redis.register_function{function_name = "@V@_sweep", callback = sweep,
  flags = {"allow-cross-slot-keys"}}
