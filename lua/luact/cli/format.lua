-- luact.cli.format: how the `luact` command prints what a node answered: aligned columns with a
-- header, values as text (strings as they are, numbers without a useless ".0", tables as
-- JSON) and whole answers as JSON (`--json`). Pure: strings in, strings out.
local format = {}

local function json_string(s)
  return '"' .. s:gsub('[%c"\\\127-\255]', function(c)
    local b = c:byte()
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
    elseif c == "\n" then return "\\n" elseif c == "\t" then return "\\t" elseif c == "\r" then return "\\r"
    elseif b >= 128 then return c   -- (UTF-8 passes; a stray byte is the node's text as it is)
    end
    return ("\\u%04x"):format(b)
  end) .. '"'
end

local function number(n)
  if n ~= n or n == math.huge or n == -math.huge then return "null" end
  if n % 1 == 0 and math.abs(n) < 2 ^ 53 then return ("%d"):format(n) end
  return ("%.17g"):format(n)
end

-- A table is an array when its keys are exactly 1..n (an empty table is an empty object).
local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  if n == 0 then return false end
  for i = 1, n do if t[i] == nil then return false end end
  return true
end

-- JSON text of plain data (keys sorted, so the output is stable); depth bounded.
function format.json(v, depth)
  depth = depth or 0
  local tv = type(v)
  if v == nil then return "null"
  elseif tv == "boolean" then return tostring(v)
  elseif tv == "number" then return number(v)
  elseif tv == "string" then return json_string(v)
  elseif tv == "table" and depth < 32 then
    if is_array(v) then
      local out = {}
      for i = 1, #v do out[i] = format.json(v[i], depth + 1) end
      return "[" .. table.concat(out, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local out = {}
    for i, k in ipairs(keys) do out[i] = json_string(tostring(k)) .. ":" .. format.json(v[k], depth + 1) end
    return "{" .. table.concat(out, ",") .. "}"
  end
  return json_string(tostring(v))
end

-- One value as a cell or a line: strings as they are, tables as JSON.
function format.value(v)
  if v == nil then return "-" end
  if type(v) == "string" then return v end
  if type(v) == "number" then return number(v) end
  if type(v) == "table" then return format.json(v) end
  return tostring(v)
end

-- Bytes as 12K, 3.4M, ...
function format.bytes(n)
  n = tonumber(n) or 0
  if n < 1024 then return ("%d"):format(n) end
  local units = { "K", "M", "G", "T" }
  local u = 0
  while n >= 1024 and u < #units do n = n / 1024; u = u + 1 end
  return (n < 10 and "%.1f%s" or "%.0f%s"):format(n, units[u])
end

-- A rate: "12", "3.5", "0".
function format.rate(x)
  if not x or x ~= x then return "-" end
  if x >= 10 or x == 0 then return ("%.0f"):format(x) end
  return ("%.1f"):format(x)
end

-- Aligned columns: headers = { "NAME", ... }, rows = { { cells... }, ... }; numeric columns
-- (those listed in `right`) are right-aligned. Cells are cut at 60 bytes.
function format.table(headers, rows, right)
  right = right or {}
  local widths = {}
  local function cell(v)
    local s = format.value(v)
    s = s:gsub("[%c]", " ")
    if #s > 60 then s = s:sub(1, 57) .. "..." end
    return s
  end
  local text = { headers }
  for i, row in ipairs(rows) do
    local r = {}
    for j = 1, #headers do r[j] = cell(row[j]) end
    text[i + 1] = r
  end
  for _, r in ipairs(text) do
    for j = 1, #headers do widths[j] = math.max(widths[j] or 0, #r[j]) end
  end
  local lines = {}
  for i, r in ipairs(text) do
    local parts = {}
    for j = 1, #headers do
      local w = widths[j]
      if j == #headers and not right[j] then parts[j] = r[j]
      elseif right[j] then parts[j] = (" "):rep(w - #r[j]) .. r[j]
      else parts[j] = r[j] .. (" "):rep(w - #r[j]) end
    end
    lines[i] = table.concat(parts, "  ")
  end
  return table.concat(lines, "\n") .. "\n"
end

return format
