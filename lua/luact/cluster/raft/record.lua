-- luact.cluster.raft.record: the on-disk record format of the file storage, and nothing else:
-- checksums (CRC32C, and FNV-1a for datadirs written before format 2), framing, the tagged
-- value encoding, and the scan that tells a torn tail (a crash mid-append) from damage.
--
-- Format 2 (every file starts with MAGIC):
--   record = u32 len (LE) | u32 crc32c(len bytes) | payload | u32 crc32c(payload)
-- The length has its own checksum, so a flipped bit in a length cannot pass for a record that
-- runs past the end of the file (which is what a torn tail looks like).
-- Format 1 (no magic; read, never written): record = u32 len | payload | u32 fnv1a(payload).

local bit = require "bit"
local bxor, band, bnot, rshift, lshift = bit.bxor, bit.band, bit.bnot, bit.rshift, bit.lshift
local byte, char, sub, concat, find = string.byte, string.char, string.sub, table.concat, string.find

local M = {}

M.MAGIC = "luact-raft 2\n\0"

---------------------------------------------------------------------------------------------
-- checksums
---------------------------------------------------------------------------------------------

-- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of iSCSI, ext4 and etcd's
-- WAL. It detects every error of up to 3 bits in records this size, and every burst of up to
-- 32 bits; FNV-1a guarantees neither.
local T = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) ~= 0 then c = bxor(rshift(c, 1), 0x82F63B78) else c = rshift(c, 1) end
  end
  T[i] = c
end

local function crc32c(s, from, to)
  local c = -1 -- bnot(0)
  for i = from or 1, to or #s do
    c = bxor(rshift(c, 8), T[band(bxor(c, byte(s, i)), 255)])
  end
  return bnot(c) % 4294967296
end
M.crc32c = crc32c

local function fnv(s)
  local h = 2166136261
  for i = 1, #s do
    h = bxor(h, byte(s, i))
    -- h * 16777619 mod 2^32 = h * 2^24 + h * 403 (both exact in doubles after tobit)
    h = bit.tobit(lshift(h, 24) + (h % 4294967296) * 403)
  end
  return h % 4294967296
end
M.fnv = fnv

---------------------------------------------------------------------------------------------
-- framing
---------------------------------------------------------------------------------------------

local function u32le(n)
  return char(n % 256, rshift(n, 8) % 256, rshift(n, 16) % 256, rshift(n, 24) % 256)
end

local function read_u32(s, pos)
  local a, b, c, d = byte(s, pos, pos + 3)
  return a + b * 256 + c * 65536 + d * 16777216
end

function M.frame(payload)
  local len = u32le(#payload)
  return len .. u32le(crc32c(len)) .. payload .. u32le(crc32c(payload))
end

-- A file holding one record (hard state, snapshot, identity): MAGIC .. frame(payload).
function M.file(payload) return M.MAGIC .. M.frame(payload) end

-- The payload of a one-record file, or nil and why. Such files are replaced by rename after
-- an fsync, so they are never torn: anything unreadable is damage.
function M.unfile(s)
  if sub(s, 1, #M.MAGIC) == M.MAGIC then
    local pos = #M.MAGIC + 1
    if pos + 7 > #s then return nil, "truncated record header" end
    local len = read_u32(s, pos)
    if read_u32(s, pos + 4) ~= crc32c(s, pos, pos + 3) then return nil, "bad length checksum" end
    local stop = pos + 8 + len
    if stop + 3 > #s then return nil, "truncated record" end
    local payload = sub(s, pos + 8, stop - 1)
    if read_u32(s, stop) ~= crc32c(payload) then return nil, "bad checksum" end
    return payload
  end
  -- format 1
  if #s < 8 then return nil, "truncated record" end
  local len = read_u32(s, 1)
  if 4 + len + 4 > #s then return nil, "truncated record" end
  local payload = sub(s, 5, 4 + len)
  if read_u32(s, 5 + len) ~= fnv(payload) then return nil, "bad checksum" end
  return payload
end

local function all_zero(s, from)
  return find(s, "[^%z]", from) == nil
end

-- Scans the records of a log file `s`. Returns
--   { version = 1|2, payloads = { ... }, offsets = { byte offset of each record },
--     good = bytes up to the end of the last good record,
--     torn = nil | { offset =, bytes = } (an incomplete last record),
--     damage = nil | { record = n (1-based), offset =, why = } }
-- A torn tail is what a crash mid-append leaves: fewer bytes than a header, a header whose
-- record runs past the end of the file, or zeros to the end (a filesystem that extended the
-- file before writing its blocks). Anything else that does not read back is damage: a record
-- whose checksum fails, a length whose checksum fails, garbage followed by anything.
function M.scan(s)
  local r = { payloads = {}, offsets = {} }
  local pos, v2
  if #s == 0 then
    r.version, r.good = 2, 0
    return r
  end
  if sub(s, 1, #M.MAGIC) == M.MAGIC then
    v2, pos, r.version = true, #M.MAGIC + 1, 2
  elseif #s < #M.MAGIC and sub(M.MAGIC, 1, #s) == s then
    -- the magic itself was torn while the file was being created
    r.version, r.good, r.torn = 2, 0, { offset = 0, bytes = #s }
    return r
  else
    v2, pos, r.version = false, 1, 1
  end
  local n = #s
  while pos <= n do
    local rec = #r.payloads + 1
    local left = n - pos + 1
    local hdr = v2 and 8 or 4
    if left < hdr then
      r.torn = { offset = pos - 1, bytes = left }
      break
    end
    local len = read_u32(s, pos)
    if v2 and read_u32(s, pos + 4) ~= crc32c(s, pos, pos + 3) then
      if all_zero(s, pos) then
        r.torn = { offset = pos - 1, bytes = left }
      else
        r.damage = { record = rec, offset = pos - 1, why = "its length fails its checksum" }
      end
      break
    end
    local stop = pos + hdr + len
    if stop + 3 > n then
      -- (format 1 has no length checksum: there a flipped bit in a length cannot be told from
      -- a torn tail, and the old rule, cut, stays)
      r.torn = { offset = pos - 1, bytes = left }
      break
    end
    local payload = sub(s, pos + hdr, stop - 1)
    local sum = v2 and crc32c(payload) or fnv(payload)
    if read_u32(s, stop) ~= sum then
      if not v2 and all_zero(s, pos) then
        r.torn = { offset = pos - 1, bytes = left }
      else
        r.damage = { record = rec, offset = pos - 1, why = "its checksum fails" }
      end
      break
    end
    r.payloads[rec], r.offsets[rec] = payload, pos - 1
    pos = stop + 4
  end
  r.good = r.torn and r.torn.offset or (r.damage and r.damage.offset or n)
  return r
end

---------------------------------------------------------------------------------------------
-- values: nil, numbers, strings, booleans, lists of those
---------------------------------------------------------------------------------------------

local function enc(v, out)
  local t = type(v)
  if v == nil then
    out[#out + 1] = "z"
  elseif t == "number" then
    out[#out + 1] = ("n%.17g;"):format(v)
  elseif t == "string" then
    out[#out + 1] = "s" .. #v .. ":" .. v
  elseif t == "boolean" then
    out[#out + 1] = v and "T" or "F"
  elseif t == "table" then
    out[#out + 1] = "l" .. #v .. ":"
    for i = 1, #v do enc(v[i], out) end
  else
    error("raft storage: cannot encode a " .. t, 3)
  end
end

local function dec(s, pos)
  local tag = sub(s, pos, pos)
  if tag == "z" then return nil, pos + 1 end
  if tag == "T" then return true, pos + 1 end
  if tag == "F" then return false, pos + 1 end
  if tag == "n" then
    local e = find(s, ";", pos, true)
    local v = e and tonumber(sub(s, pos + 1, e - 1))
    if not v then error("raft storage: undecodable record", 0) end
    return v, e + 1
  end
  local colon = find(s, ":", pos, true)
  local n = colon and tonumber(sub(s, pos + 1, colon - 1))
  if n and tag == "s" and colon + n <= #s then return sub(s, colon + 1, colon + n), colon + 1 + n end
  if n and tag == "l" then
    local list, p = {}, colon + 1
    for i = 1, n do list[i], p = dec(s, p) end
    return list, p
  end
  error("raft storage: undecodable record", 0)
end

function M.encode(...)
  local out = {}
  for i = 1, select("#", ...) do enc((select(i, ...)), out) end
  return concat(out)
end

-- decodes `count` values; raises "raft storage: undecodable record" on garbage
function M.decode(s, count)
  local vals, p = {}, 1
  for i = 1, count do vals[i], p = dec(s, p) end
  return vals
end

function M.encode_entry(e)
  return M.frame(M.encode(e.index, e.term, e.data, e.conf and e.conf.voters))
end

function M.decode_entry(payload)
  local v = M.decode(payload, 4)
  if type(v[1]) ~= "number" or type(v[2]) ~= "number" then
    error("raft storage: undecodable record", 0)
  end
  local e = { index = v[1], term = v[2], data = v[3] }
  if v[4] then e.conf = { voters = v[4] } end
  return e
end

return M
