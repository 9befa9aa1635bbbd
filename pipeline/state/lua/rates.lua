--[[
rates.lua: FCALL <v>_rates 0 <ns> <tenant> <rule> <at day> <window> <max rate> <min count> <ttl>
<sent days> [day, n, identity...]... <matching days> [day, n, identity...]...: a tenant-rate
rule (e.g. ecomail's complaint rate) for one tenant.

Keys (prefix = NS:{tenant:<tenant>}, one slot per tenant; day = floor(ms / 86400000)):
  <prefix>:sent:<day>          HyperLogLog of the delivered (recipient, event id) identities
  <prefix>:rate:<rule>:<day>   set of the matching (recipient, event id) identities
  <prefix>:alerts              hash <rule>:<day> -> "p" (sent to the caller) | "s" (confirmed)
Both counts are sets, so a replayed event or a re-shipped file counts nothing twice. The
delivered count is a HyperLogLog (0.81 % standard error, 12 KB per tenant and day at most):
a rate alert needs the denominator to the percent, not to the message.

`at day` is the day of the latest matching event in the batch (-1: none, count only).
Returns JSON {alert = bool, count, sent}; an alert is returned until it is confirmed sent.
]]

-- args[a] = number of days, then per day: day, n, n identities. Returns the index after.
local function add_days(command, base, args, a, ttl)
  local days = tonumber(args[a])
  a = a + 1
  for _ = 1, days do
    local key, n = base .. args[a], tonumber(args[a + 1])
    local first = a + 2
    -- in slices: Lua's unpack is bounded by its C stack (~8000 values)
    for s = first, first + n - 1, 1000 do
      redis.call(command, key, unpack(args, s, math.min(s + 999, first + n - 1)))
    end
    redis.call("EXPIRE", key, ttl)
    a = first + n
  end
  return a
end

local function rates(_, args)
  local prefix, rule = args[1] .. ":{tenant:" .. args[2] .. "}", args[3]
  local at, window = tonumber(args[4]), tonumber(args[5])
  local max_rate, min_count, ttl = tonumber(args[6]), tonumber(args[7]), tonumber(args[8])
  local a = add_days("PFADD", prefix .. ":sent:", args, 9, ttl)
  add_days("SADD", prefix .. ":rate:" .. rule .. ":", args, a, ttl)
  if at < 0 then return cjson.encode({alert = false}) end
  local sent_keys, count = {}, 0
  for day = at - window + 1, at do
    sent_keys[#sent_keys + 1] = prefix .. ":sent:" .. day
    count = count + redis.call("SCARD", prefix .. ":rate:" .. rule .. ":" .. day)
  end
  local sent = redis.call("PFCOUNT", unpack(sent_keys))
  if count >= min_count and count > max_rate * sent then
    local alerts, field = prefix .. ":alerts", rule .. ":" .. at
    if redis.call("HGET", alerts, field) ~= "s" then
      redis.call("HSET", alerts, field, "p")
      redis.call("EXPIRE", alerts, ttl)
      return cjson.encode({alert = true, count = count, sent = sent})
    end
  end
  return cjson.encode({alert = false, count = count, sent = sent})
end

redis.register_function{function_name = "@V@_rates", callback = rates,
  flags = {"allow-cross-slot-keys"}}
