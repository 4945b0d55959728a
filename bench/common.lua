-- Shared by the luact benchmarks (run from the repository root: `luajit bench/<case>.lua`):
-- loads luact (and the spec helpers, for the simulations) from this checkout (target/lua/luact.so, built by spec/run or bench/run) and
-- prints one JSON line per figure.
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath

local common = {}

local function encode(v)
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if v == math.floor(v) and math.abs(v) < 2^53 then return ("%d"):format(v) end
    return ("%.6g"):format(v)
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return ("\\u%04x"):format(c:byte()) end) .. '"'
  elseif t == "boolean" then
    return tostring(v)
  end
  return "null"
end

-- Prints {"case":..., "impl":"luact", ...} with keys in the given order after case and impl.
function common.report(case, fields, order)
  local parts = { '"case":' .. encode(case), '"impl":"luact"' }
  for _, k in ipairs(order) do
    if fields[k] ~= nil then parts[#parts + 1] = encode(k) .. ":" .. encode(fields[k]) end
  end
  io.stdout:write("{", table.concat(parts, ","), "}\n")
  io.stdout:flush()
end

function common.percentile(sorted, p)
  if #sorted == 0 then return nil end
  local i = math.max(1, math.min(#sorted, math.ceil(p * #sorted)))
  return sorted[i]
end

return common
