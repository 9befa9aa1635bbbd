--[[
import.lua: FCALL <v>_import 0 <header> <n> [scope key, home key, digest, s, entry]...: record n
suppressions imported from another platform's list (`bounceguard import-suppressions`), each
in one address's scope document, as apply records one a rule trips, so `status`, the API and
reactivate see it alike.

ARGV[1]  header JSON {ttl (state s), logn (bounce-log entries kept)}
ARGV[2]  n items; per item: the scope document key, its tenant (home) document key, the
         digest of the import's trigger id, the suppression JSON to store as field s
         ({rule, reason, ts, ev, n, t}), and its compact bounce-log entry ("" for none)

Per item, in order:
  "p"  the same import waits unconfirmed in the home document (p[digest]): it was recorded but
       its event may not have reached Kafka; the caller emits it again (same id)
  "a"  the scope is suppressed already (a rule, or this import earlier and confirmed): skip
  "r"  the scope was reactivated, and what it had counted then (floor r: the cleared
       suppression's time or later) is at or after the row's time: the add-back wins over the
       same or an older record, so re-importing an old export does not undo it
  "d"  recorded now: s set, the entry logged, p[digest] set until confirm forgets it
Returns JSON [kind, ...], one per item.
]]

local function import_one(H, docs, e)
  local home = docs:full(e.home)
  if home.j.p and home.j.p[e.dg] then return "p" end
  local unit = docs:full(e.scope)
  if unit.j.s ~= nil then return "a" end
  local s = cjson.decode(e.s)
  if s.ts <= (unit.j.r or 0) then return "r" end
  unit.j.s = s
  unit.dirty = true
  if e.log ~= "" then log_push(home, e.dg .. "\t" .. e.log, H.logn) end
  home.j.p = home.j.p or {}
  home.j.p[e.dg] = "i"  -- only its presence is read (confirm clears it)
  home.dirty = true
  return "d"
end

local function import_all(_, args)
  local H = cjson.decode(args[1])
  local out, a = {}, 3
  for i = 1, tonumber(args[2]) do
    local e = {scope = args[a], home = args[a + 1], dg = args[a + 2], s = args[a + 3],
      log = args[a + 4]}
    a = a + 5
    local docs = new_docs()
    out[i] = import_one(H, docs, e)
    docs:flush(H.ttl, H.ttl)
  end
  return cjson.encode(out)
end

redis.register_function{function_name = "@V@_import", callback = import_all,
  flags = {"allow-cross-slot-keys"}}
