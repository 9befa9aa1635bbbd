--[[
rules.lua: the rule kinds of a policy (pipeline/core/policies.py RuleKind), run on one event
against the decoded scope documents of its address. Ops come from pipeline/core/wire.py
(`k` = imm | con | brk | cnf | rw, `id`, `u` = scope index, 1 = narrowest, thresholds in ms).

Every tracker is keyed so that applying the same event twice leaves it as it was (per send,
or per event digest, sorted with ties broken): a replay the `seen` ring no longer remembers
still counts nothing twice.

ev = {ts, cat, send, id (event id), dg (its digest)}; unit = {d = delivery ms, j = JSON}.
]]

-- Counters are hidden (not deleted) by a delivery or a reactivation at or after them.
local function reset_of(unit)
  local r = unit.j.r or 0
  if unit.d > r then return unit.d end
  return r
end

-- Per-send tracker: one entry per send {send, first ts, latest ts, latest category, latest
-- digest[, latest class]}; entries at or before `reset` are dropped; the newest `cap` are kept.
-- `cls` (the bounce count of a policy whose sweep tiers name classes) adds the class.
local function track_send(entries, ev, reset, cap, cls)
  local out, found = {}, false
  for _, x in ipairs(entries or {}) do
    if x[3] > reset then
      if x[1] == ev.send then
        found = true
        if ev.ts < x[2] then x[2] = ev.ts end
        if ev.ts > x[3] or (ev.ts == x[3] and ev.dg >= x[5]) then
          x[3], x[4], x[5] = ev.ts, ev.cat, ev.dg
          if cls then x[6] = cls end
        end
      end
      out[#out + 1] = x
    end
  end
  if not found and ev.ts > reset then
    out[#out + 1] = {ev.send, ev.ts, ev.ts, ev.cat, ev.dg, cls}
  end
  table.sort(out, by_latest)
  while #out > cap do table.remove(out, 1) end
  return out
end

local function field(unit, name, id)
  local t = unit.j[name]
  if t == nil then return nil end
  return t[id]
end

local function set_field(unit, name, id, value)
  local t = unit.j[name]
  if t == nil then
    if value == nil or next(value) == nil then return end
    t = {}
    unit.j[name] = t
  end
  if value ~= nil and next(value) == nil then value = nil end
  t[id] = value
  if next(t) == nil then unit.j[name] = nil end
end

-- The latest open or click at or before time t (0 = none): event time, not arrival order.
local function eng_at(unit, t)
  local best = 0
  for _, x in ipairs(unit.j.es or {}) do
    if x <= t and x > best then best = x end
  end
  return best
end

local function covered(units, u)
  for i = u, #units do
    if units[i].j.s ~= nil then return true end
  end
  return false
end

local function digests_of(entries, at)
  local out = {}
  for _, x in ipairs(entries) do out[#out + 1] = x[at] end
  return out
end

local Rules = {}

-- consecutive: distinct sends since the last reset; an engaged contact gets threshold te.
-- Sends in b[id] (see brk) cut the run: only sends after the latest of them count.
function Rules.con(op, unit, ev, ctx)
  local eng = eng_at(unit, ev.ts)
  local reset = reset_of(unit)
  if op.re and eng > reset then reset = eng end
  local sends = track_send(field(unit, "k", op.id), ev, reset, op.cap)
  set_field(unit, "k", op.id, sends)
  -- this send now has a matching event: it no longer breaks the run
  local breakers, kept, cut = field(unit, "b", op.id) or {}, {}, reset
  for _, b in ipairs(breakers) do
    if b[1] ~= ev.send then
      kept[#kept + 1] = b
      if b[2] <= ev.ts and b[2] > cut then cut = b[2] end
    end
  end
  if #kept ~= #breakers then set_field(unit, "b", op.id, kept) end
  local run = {}
  for _, x in ipairs(sends) do
    if x[3] > cut then run[#run + 1] = x end
  end
  local threshold = op.t
  if eng > 0 and eng >= ev.ts - op.ew then threshold = op.te end
  if ev.ts > cut and #run >= threshold then
    ctx.decide(op, #run, threshold, digests_of(run, 5))
  end
end

-- run_break: a send with an event of the rule's break classes and no event the rule counts
-- breaks its run (seed 004: a campaign that only soft-bounced is not a hard-bounce one).
function Rules.brk(op, unit, ev)
  local reset = reset_of(unit)
  for _, x in ipairs(field(unit, "k", op.id) or {}) do
    if x[1] == ev.send then return end
  end
  local out, found = {}, false
  for _, b in ipairs(field(unit, "b", op.id) or {}) do
    if b[2] > reset then
      if b[1] == ev.send then
        found = true
        if ev.ts < b[2] then b[2] = ev.ts end
      end
      out[#out + 1] = b
    end
  end
  if not found and ev.ts > reset then out[#out + 1] = {ev.send, ev.ts} end
  table.sort(out, function(a, b)
    if a[2] == b[2] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  while #out > op.cap do table.remove(out, 1) end
  set_field(unit, "b", op.id, out)
end

-- confirmations: >= t events whose first and last are >= sp ms apart. Over the cap the
-- second-oldest goes, so the first and the last (the span) always survive.
function Rules.cnf(op, unit, ev, ctx)
  local reset = reset_of(unit)
  local kept, known = {}, false
  for _, x in ipairs(field(unit, "k", op.id) or {}) do
    if x[1] > reset then
      kept[#kept + 1] = x
      if x[2] == ev.dg then known = true end
    end
  end
  if ev.ts > reset and not known then kept[#kept + 1] = {ev.ts, ev.dg} end
  table.sort(kept, by_time)
  while #kept > op.cap do table.remove(kept, 2) end
  set_field(unit, "k", op.id, kept)
  local n = #kept
  if ev.ts > reset and n >= op.t and kept[n][1] - kept[1][1] >= op.sp then
    ctx.decide(op, n, op.t, digests_of(kept, 2))
  end
end

-- retry_window: per campaign the attempts inside [first, first + w], at most pc of them; the
-- sum over the campaigns since the last reset must reach t. Only the pc earliest attempts of
-- a campaign can ever count, so only those are kept.
function Rules.rw(op, unit, ev, ctx)
  local reset = reset_of(unit)
  local camps, names, total, ids = {}, {}, 0, {}
  for name, list in pairs(field(unit, "k", op.id) or {}) do camps[name] = list end
  if ev.ts > reset then
    local list, known = camps[ev.send] or {}, false
    for _, x in ipairs(list) do
      if x[2] == ev.dg then known = true end
    end
    if not known then list[#list + 1] = {ev.ts, ev.dg} end
    camps[ev.send] = list
  end
  for name, list in pairs(camps) do
    local kept = {}
    for _, x in ipairs(list) do
      if x[1] > reset then kept[#kept + 1] = x end
    end
    table.sort(kept, by_time)
    while #kept > op.pc do table.remove(kept) end
    if #kept > 0 then names[#names + 1] = name end
    camps[name] = (#kept > 0) and kept or nil
  end
  -- over the cap, the campaign that started first goes (ties: by name)
  table.sort(names, function(a, b)
    if camps[a][1][1] == camps[b][1][1] then return a < b end
    return camps[a][1][1] < camps[b][1][1]
  end)
  while #names > op.cap do camps[table.remove(names, 1)] = nil end
  for _, name in ipairs(names) do
    local list = camps[name]
    for _, x in ipairs(list) do
      if x[1] <= list[1][1] + op.w then
        total = total + 1
        ids[#ids + 1] = x[2]
      end
    end
  end
  set_field(unit, "k", op.id, camps)
  if ev.ts > reset and total >= op.t then
    ctx.decide(op, total, op.t, ids)
  end
end

function Rules.imm(op, unit, ev, ctx)
  ctx.decide(op, 1, 1, {ev.dg})
end

-- Run the ops of one event over its units; `ctx.decide` records a suppression. A rule in
-- scope u is silent once that scope or a broader one is suppressed.
local function run_rules(ops, units, ev, ctx)
  for _, op in ipairs(ops) do
    local unit = units[op.u]
    if op.k == "brk" then
      Rules.brk(op, unit, ev)
    elseif op.k == "imm" then
      if not covered(units, op.u) then Rules.imm(op, unit, ev, ctx) end
    else
      local decide = ctx.decide
      local silent = covered(units, op.u)
      ctx.decide = function(...) if not silent then decide(...) end end
      Rules[op.k](op, unit, ev, ctx)
      ctx.decide = decide
    end
  end
end
