--[[
record_attempt.lua: record one classified event (delivery attempt, complaint or unsubscribe) for
one address, feed it to the policy rules it matches, and decide whether it suppresses the
address in any scope. Atomic; exactly once per event id.

KEYS[1]   dedupe key      NS:{addr}:e:<event_id>
KEYS[2]   bounce log      NS:{addr}:log   (list, newest first)
KEYS[3]   delivered log   NS:{addr}:ok    (list, newest first, short TTL)
KEYS[4..] scope hashes    narrow to broad, e.g. NS:{addr}:t:<tenant>:l:<list>, NS:{addr}:g
ARGV[1]   event JSON      {id, ts (ms), cls, cat, send, b (counts as a bounce), log (entry)}
ARGV[2]   rule ops JSON   [{k = imm|con|brk|cnf|rw, id, u (scope index, 1 = KEYS[4]), t, ...}]
ARGV[3]   state ttl       seconds the scope hashes and the bounce log live after an event
ARGV[4]   dedupe ttl      seconds the event id is remembered
ARGV[5]   log size        entries kept in each log
ARGV[6]   delivered ttl   seconds the delivered log lives
ARGV[7]   bounce cap      sends kept in the per-scope bounce count (field bn)

Returns a JSON string:
  {"dup": true, "decided": <what the first delivery decided: an array, or false>}
  {"decided": false}                                       nothing tripped
  {"decided": [{rule, u, count, threshold, reason, ev}]}   suppressions (ev = log entries)
A replayed event returns the decision of its first delivery (until mark_emitted.lua confirms
it), so a crash between this script and the Kafka send re-emits the same suppression.

Time is event time (ts), never the clock. Every counter keeps the timestamps it counted, so an
event that arrives late lands where it belongs: a delivery at time D (field dlv) or, for rules
that say so, an open at time E (field eng) resets by hiding every entry at or before it.
]]
assert(#KEYS >= 4, "record_attempt: at least 4 keys")
assert(#ARGV == 7, "record_attempt: 7 args")

local seen, blog, oklog = KEYS[1], KEYS[2], KEYS[3]
local ev = cjson.decode(ARGV[1])
local ops = cjson.decode(ARGV[2])
local state_ttl, dedupe_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local log_size, ok_ttl, bounce_cap = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

local previous = redis.call("GET", seen)
if previous then
  return cjson.encode({dup = true, decided = cjson.decode(previous)})
end

local function num(key, field)
  return tonumber(redis.call("HGET", key, field) or "0")
end

local function load(key, field)
  local raw = redis.call("HGET", key, field)
  if raw then return cjson.decode(raw) end
  return {}
end

local function save(key, field, value)
  if next(value) == nil then
    redis.call("HDEL", key, field)
  else
    redis.call("HSET", key, field, cjson.encode(value))
  end
end

-- A rule in scope u is silent once that scope or a broader one is suppressed.
local function covered(u)
  for i = u + 3, #KEYS do
    if redis.call("HEXISTS", KEYS[i], "suppressed") == 1 then return true end
  end
  return false
end

-- Per-send tracker: one entry per send {s, f = first ts, l = latest ts, c = latest category,
-- e = latest event id}; entries at or before `reset` are dropped; the newest `cap` are kept.
local function track_send(entries, reset, cap)
  local out, found = {}, false
  for _, x in ipairs(entries) do
    if x.l > reset then
      if x.s == ev.send then
        found = true
        if ev.ts < x.f then x.f = ev.ts end
        if ev.ts >= x.l then x.l, x.c, x.e = ev.ts, ev.cat, ev.id end
      end
      out[#out + 1] = x
    end
  end
  if not found and ev.ts > reset then
    out[#out + 1] = {s = ev.send, f = ev.ts, l = ev.ts, c = ev.cat, e = ev.id}
  end
  table.sort(out, function(a, b)
    if a.l == b.l then return a.s < b.s end
    return a.l < b.l
  end)
  while #out > cap do table.remove(out, 1) end
  return out
end

local decisions = {}

local function decide(op, count, threshold, ids)
  redis.call("HSET", KEYS[op.u + 3], "suppressed", op.id, "reason", ev.cat, "sup_ts", ev.ts,
    "sup_ev", ev.id, "sup_count", count, "sup_threshold", threshold)
  decisions[#decisions + 1] = {rule = op.id, u = op.u, count = count, threshold = threshold,
    reason = ev.cat, ids = ids}
end

local function ids_of(entries)
  local ids = {}
  for _, x in ipairs(entries) do ids[#ids + 1] = x.e end
  return ids
end

-- The latest open or click at or before time t (0 = none), from the open times kept by
-- record_engagement.lua (field engs). Event time, not arrival order: an open that happened
-- after t (e.g. read first from the engagement topic during a backlog) neither makes the
-- contact engaged at t nor resets what came before t (PRODUCT.md: "a replay or a backlog
-- decides exactly as live traffic would").
local function eng_at(unit, t)
  local raw = redis.call("HGET", unit, "engs")
  if raw then
    local best = 0
    for _, x in ipairs(cjson.decode(raw)) do
      if x <= t and x > best then best = x end
    end
    return best
  end
  local eng = num(unit, "eng")  -- state written before engs existed
  if eng <= t then return eng end
  return 0
end

-- consecutive: distinct sends since the last reset; an engaged contact gets threshold te.
-- Sends in field b:<id> (see run_break) cut the run: only sends after the latest of them count.
local function consecutive(op, unit)
  local eng = eng_at(unit, ev.ts)
  local reset = num(unit, "dlv")
  if op.re and eng > reset then reset = eng end
  local field = "r:" .. op.id
  local sends = track_send(load(unit, field), reset, op.cap)
  save(unit, field, sends)
  -- this send now has a matching event: it no longer breaks the run
  local breakers, kept, cut = load(unit, "b:" .. op.id), {}, reset
  for _, b in ipairs(breakers) do
    if b.s ~= ev.send then
      kept[#kept + 1] = b
      if b.f <= ev.ts and b.f > cut then cut = b.f end
    end
  end
  if #kept ~= #breakers then save(unit, "b:" .. op.id, kept) end
  local run = {}
  for _, x in ipairs(sends) do
    if x.l > cut then run[#run + 1] = x end
  end
  local threshold = op.t
  if eng > 0 and eng >= ev.ts - op.ew then threshold = op.te end
  if ev.ts > cut and #run >= threshold and not covered(op.u) then
    decide(op, #run, threshold, ids_of(run))
  end
end

-- run_break (op k = brk): a send with an event of the rule's break classes and no event the
-- rule counts breaks its run (seed 004: "hard bounces in three consecutive campaigns" - a
-- campaign in which the contact only soft-bounced is not one). Kept as {s, f = first ts} in
-- field b:<id>, newest cap; a send that already counts for the rule is not a break.
local function run_break(op, unit)
  local reset = num(unit, "dlv")
  for _, x in ipairs(load(unit, "r:" .. op.id)) do
    if x.s == ev.send then return end
  end
  local field = "b:" .. op.id
  local out, found = {}, false
  for _, b in ipairs(load(unit, field)) do
    if b.f > reset then
      if b.s == ev.send then
        found = true
        if ev.ts < b.f then b.f = ev.ts end
      end
      out[#out + 1] = b
    end
  end
  if not found and ev.ts > reset then out[#out + 1] = {s = ev.send, f = ev.ts} end
  table.sort(out, function(a, b)
    if a.f == b.f then return a.s < b.s end
    return a.f < b.f
  end)
  while #out > op.cap do table.remove(out, 1) end
  save(unit, field, out)
end

-- confirmations: >= t events whose first and last are >= sp ms apart. Sorted by time; over
-- the cap the second-oldest goes, so the first and last (the span) always survive.
local function confirmations(op, unit)
  local reset = num(unit, "dlv")
  local field = "r:" .. op.id
  local kept = {}
  for _, x in ipairs(load(unit, field)) do
    if x.t > reset then kept[#kept + 1] = x end
  end
  if ev.ts > reset then kept[#kept + 1] = {t = ev.ts, e = ev.id} end
  table.sort(kept, function(a, b)
    if a.t == b.t then return a.e < b.e end
    return a.t < b.t
  end)
  while #kept > op.cap do table.remove(kept, 2) end
  save(unit, field, kept)
  local n = #kept
  if ev.ts > reset and n >= op.t and kept[n].t - kept[1].t >= op.sp and not covered(op.u) then
    decide(op, n, op.t, ids_of(kept))
  end
end

-- retry_window: per campaign the attempts inside [first, first + w], at most pc of them;
-- the sum over the campaigns since the last reset must reach t. Only the pc earliest
-- attempts of a campaign can ever count, so only those are kept.
local function retry_window(op, unit)
  local reset = num(unit, "dlv")
  local field = "r:" .. op.id
  local camps, total, ids, names = {}, 0, {}, {}
  for name, list in pairs(load(unit, field)) do camps[name] = list end
  if ev.ts > reset then
    local list = camps[ev.send] or {}
    list[#list + 1] = {t = ev.ts, e = ev.id}
    camps[ev.send] = list
  end
  for name, list in pairs(camps) do
    local kept = {}
    for _, x in ipairs(list) do
      if x.t > reset then kept[#kept + 1] = x end
    end
    table.sort(kept, function(a, b)
      if a.t == b.t then return a.e < b.e end
      return a.t < b.t
    end)
    while #kept > op.pc do table.remove(kept) end
    if #kept > 0 then names[#names + 1] = name end
    camps[name] = (#kept > 0) and kept or nil
  end
  -- over the cap, the campaign that started first goes
  table.sort(names, function(a, b) return camps[a][1].t < camps[b][1].t end)
  while #names > op.cap do camps[table.remove(names, 1)] = nil end
  for _, name in ipairs(names) do
    local list = camps[name]
    if list then
      for _, x in ipairs(list) do
        if x.t <= list[1].t + op.w then
          total = total + 1
          ids[#ids + 1] = x.e
        end
      end
    end
  end
  save(unit, field, camps)
  if ev.ts > reset and total >= op.t and not covered(op.u) then
    decide(op, total, op.t, ids)
  end
end

-- 1. the logs: server messages of bounces; delivered ("250 ok") records only briefly.
if ev.cls == "delivered" then
  redis.call("LPUSH", oklog, cjson.encode(ev.log))
  redis.call("LTRIM", oklog, 0, log_size - 1)
  redis.call("EXPIRE", oklog, ok_ttl)
else
  redis.call("LPUSH", blog, cjson.encode(ev.log))
  redis.call("LTRIM", blog, 0, log_size - 1)
  redis.call("EXPIRE", blog, state_ttl)
end

-- 2. every scope: a delivery resets (by time); a bounce adds to the bounce count.
for i = 4, #KEYS do
  if ev.cls == "delivered" and ev.ts > num(KEYS[i], "dlv") then
    redis.call("HSET", KEYS[i], "dlv", ev.ts)
  end
  if ev.b then
    save(KEYS[i], "bn", track_send(load(KEYS[i], "bn"), num(KEYS[i], "dlv"), bounce_cap))
  end
end

-- 3. the rules, in policy order.
for _, op in ipairs(ops) do
  local unit = KEYS[op.u + 3]
  if op.k == "imm" then
    if not covered(op.u) then decide(op, 1, 1, {ev.id}) end
  elseif op.k == "con" then
    consecutive(op, unit)
  elseif op.k == "brk" then
    run_break(op, unit)
  elseif op.k == "cnf" then
    confirmations(op, unit)
  elseif op.k == "rw" then
    retry_window(op, unit)
  end
end

-- 4. evidence: the logged events each decision counted.
if #decisions > 0 then
  local by_id = {}
  for _, raw in ipairs(redis.call("LRANGE", blog, 0, -1)) do
    local entry = cjson.decode(raw)
    by_id[entry.event_id] = entry
  end
  for _, d in ipairs(decisions) do
    local evidence = {}
    for _, id in ipairs(d.ids) do
      if by_id[id] then evidence[#evidence + 1] = by_id[id] end
    end
    d.ids, d.ev = nil, evidence
  end
end

for i = 4, #KEYS do
  if redis.call("EXISTS", KEYS[i]) == 1 then redis.call("EXPIRE", KEYS[i], state_ttl) end
end
local decided = false
if #decisions > 0 then decided = decisions end
redis.call("SET", seen, cjson.encode(decided), "EX", dedupe_ttl)
return cjson.encode({decided = decided})
