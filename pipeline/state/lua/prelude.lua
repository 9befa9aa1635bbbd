--[[
prelude.lua: the helpers every bounceguard function shares (loaded first; the library is
these files concatenated, see pipeline/state/functions.py).

A scope document is one Redis string per (address, scope), e.g. NS:{addr}:t:<tenant>:
  13 digits   the latest delivery (ms of event time, zero-padded): a delivery rewrites only
              these bytes (SETRANGE), so it never decodes the document
  JSON        field names in pipeline/state/keys.py ("Fields of a scope document")
  log         (tenant documents only) "\n" then the tenant's bounce log, newest first, one
              "<digest>\t<entry JSON>" per line: kept as text, never decoded here (JSON holds
              no raw newline), so a bounce costs a string prepend, not a key of its own
Time is always event time passed in by the caller, never TIME.
]]

local HEAD = 13
-- Arguments of the header's GETRANGE/SETRANGE as text: Redis 7.0 turns a Lua number argument
-- into text with printf("%.17g") on every call, a measurable share of a delivery.
local HEAD_FROM, HEAD_TO = "0", "12"  -- bytes 0 .. HEAD - 1

local function fmt_ts(ms)
  return string.format("%013d", ms)
end

-- Documents of the current address group, by key: {d = delivery ms, j = decoded JSON or nil
-- (only the header was read), dirty = true when it must be written back}.
local Docs = {}
Docs.__index = Docs

local function new_docs()
  return setmetatable({by_key = {}, order = {}}, Docs)
end

-- The whole document at `key`, decoded; an absent key gives an empty one (not yet stored).
function Docs:full(key)
  local doc = self.by_key[key]
  if doc and doc.j then return doc end
  -- a delivery earlier in this group to a key that did not exist (see deliver)
  local seen_d = doc and doc.d or 0
  local raw = redis.call("GET", key)
  if raw then
    local nl = string.find(raw, "\n", HEAD + 1, true)
    doc = {d = tonumber(string.sub(raw, 1, HEAD)), stored = true,
      j = cjson.decode(string.sub(raw, HEAD + 1, (nl or 0) - 1)),
      log = nl and string.sub(raw, nl + 1) or ""}
    if seen_d > doc.d then doc.d, doc.dirty = seen_d, true end
  else
    doc = {d = seen_d, j = {}, log = "", stored = false}
  end
  if not self.by_key[key] then self.order[#self.order + 1] = key end
  self.by_key[key] = doc
  return doc
end

-- The delivery time of `key` and whether it exists, reading only the header when the
-- document is not decoded yet.
function Docs:head(key)
  local doc = self.by_key[key]
  if doc then return doc.d, (doc.stored or doc.dirty) end
  local raw = redis.call("GETRANGE", key, HEAD_FROM, HEAD_TO)
  if raw == "" then return 0, false end
  return tonumber(raw), true
end

-- A delivery at `ts`: move the header forward. Decoded documents are written at flush;
-- the others get their 13 bytes rewritten in place (SETRANGE keeps the TTL).
--
-- A delivery to a key that does not exist stores nothing (an address with no bounce state
-- costs one read), but is remembered for the rest of the group: a bounce later in the same
-- batch that happened before it is then reset by it, as it would be with the key stored.
function Docs:deliver(key, ts)
  local doc = self.by_key[key]
  if doc then
    if ts > doc.d then
      doc.d = ts
      if doc.stored or doc.dirty then doc.dirty = true end
    end
    return
  end
  local d, exists = self:head(key)
  if exists then
    if ts > d then redis.call("SETRANGE", key, HEAD_FROM, fmt_ts(ts)) end
  else
    self.by_key[key] = {d = ts}  -- no j: not decoded, never written unless a bounce follows
    self.order[#self.order + 1] = key
  end
end

local function has_state(j)
  return j.s ~= nil or j.bn ~= nil or j.k ~= nil or j.b ~= nil or j.p ~= nil or j.seen ~= nil
    or j.r ~= nil
end

-- Write back every dirty document: one SET with its TTL (state ttl when it holds counters,
-- a suppression or pending events; the engagement ttl when it holds only opens).
function Docs:flush(state_ttl, engaged_ttl)
  for _, key in ipairs(self.order) do
    local doc = self.by_key[key]
    if doc.dirty then
      local ttl = state_ttl
      if not has_state(doc.j) then ttl = engaged_ttl end
      local log = doc.log
      if log ~= "" then log = "\n" .. log end
      redis.call("SET", key, fmt_ts(doc.d) .. cjson.encode(doc.j) .. log, "EX", ttl)
    end
  end
end

-- Sorting helpers for the trackers (stable results: ties broken by a second field).
local function by_latest(a, b)
  if a[3] == b[3] then return a[1] < b[1] end
  return a[3] < b[3]
end

local function by_time(a, b)
  if a[1] == b[1] then return a[2] < b[2] end
  return a[1] < b[1]
end

-- Add `entry` ("<digest>\t<json>") to the front of the document's log, keeping the newest n.
local function log_push(doc, entry, n)
  local log, pos = entry, 0
  if doc.log ~= "" then log = entry .. "\n" .. doc.log end
  for _ = 1, n do
    pos = string.find(log, "\n", pos + 1, true)
    if not pos then break end
  end
  if pos then log = string.sub(log, 1, pos - 1) end
  doc.log, doc.dirty = log, true
end

-- The evidence of a decision: the JSON of the log entries of `doc` whose digests it counted,
-- oldest first. Only the tenant's own log is searched, so a global-scope decision shows the
-- events of the tenant that tripped it, never another tenant's campaigns. Each digest is
-- found with a plain search for "<digest>\t" at a line start (an entry's JSON holds no raw
-- tab or newline): matching every line of the log with a pattern was ~20 % of a hard bounce.
local function evidence(doc, digests)
  local log, found = doc.log, {}
  for _, d in ipairs(digests) do
    local needle, at = d .. "\t", 1
    while true do
      local s = string.find(log, needle, at, true)
      if not s then break end
      if s == 1 or string.byte(log, s - 1) == 10 then
        local e = string.find(log, "\n", s, true)
        found[#found + 1] = {s, string.sub(log, s + #needle, (e or 0) - 1)}
      end
      at = s + 1
    end
  end
  table.sort(found, function(a, b) return a[1] > b[1] end)  -- the log is newest first
  local out = {}
  for n, x in ipairs(found) do out[n] = x[2] end
  return out
end
