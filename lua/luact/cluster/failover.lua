-- luact.cluster.failover: on the Raft leader, moves virtual actor activations away from
-- processes that are gone. A process is gone when membership holds its address dead or left,
-- or alive under another boot id (it restarted), or when this leader, renewing other leases,
-- has not renewed its lease for STARVE seconds (cut off from the leader alone: it cannot serve,
-- so its names move rather than stay silent). Its boot id is first condemned in the registry
-- (no leader extends its lease again); its activations are then placed on live members by
-- rendezvous hashing of the activation's key over them (the highest hash of key and address
-- wins: stable, and spread evenly) once LEASE_WAIT has passed since this leader last answered
-- it (luact.cluster.lease), and since this leader was elected (a previous leader may have
-- answered it until then). That wait is the only proof that the old activations stopped
-- serving: a refused connection is not one (a partition may answer with resets while the
-- process runs on), so it only speeds up finding the process gone.
-- A multi_actor name just loses the gone process's activations. The new host creates the
-- activation (luact.cluster.activations) and calls by name reach it.
local clock = require "luact.clock"
local tentacle = require "luact.tentacle"
local logger = require "luact.logger"
local lease = require "luact.cluster.lease"
local consensus = require "luact.cluster.consensus"
local requests = require "luact.cluster.requests"
local moves = require "luact.cluster.moves"
local bit = require "bit"

local failover = {}

local CHECK = 0.05              -- seconds between two looks at the registry
local STARVE = 4 * lease.LEASE  -- a live host this leader has not renewed that long is gone

local S = nil                   -- { members, state() }
local leader_since = nil
local busy = {}                 -- key or "c" .. boot -> true while its proposal is in flight
local hosting_since = {}
local hosted = {}                -- boot -> address: the processes the last scan saw hosting
local scanned = nil              -- { R, at } of the last full scan
local FULL_SCAN = 1.0            -- seconds between two looks at every hosted name
local on_boot = {}               -- boot -> { [vid] = true }: the names the last full scan saw there

-- a * b modulo 2^32 for a, b in [0, 2^32), exact in doubles (a's 16-bit halves apart)
local function mul32(a, b)
  local lo = a % 65536
  return (lo * b + ((a - lo) / 65536 * b % 65536) * 65536) % 4294967296
end

-- A string's hash in [0, 2^32): FNV-1a, then murmur3's finalizer. Rendezvous hashing needs a
-- hash whose order over the members changes with the key: a polynomial hash (the one used
-- before) is linear, hash(key .. addr) = A(key) + c(addr) modulo its prime, so the member with
-- the largest c won nearly every key (93 % of 10 000 names on one of 5 members).
local bxor, rshift = bit.bxor, bit.rshift
local function hash(s)
  local h = 2166136261
  for i = 1, #s do h = mul32(bxor(h, s:byte(i)) % 4294967296, 16777619) end
  h = mul32(bxor(h, rshift(h, 16)) % 4294967296, 0x85ebca6b)
  h = mul32(bxor(h, rshift(h, 13)) % 4294967296, 0xc2b2ae35)
  return bxor(h, rshift(h, 16)) % 4294967296
end

-- The live member (address, boot) that `key` lands on, or nil.
function failover.choose(key, hosts)
  local best, best_h
  for _, host in ipairs(hosts) do
    local h = hash(key .. "|" .. host.addr)
    if not best_h or h > best_h or (h == best_h and host.addr < best.addr) then best, best_h = host, h end
  end
  return best
end

-- Members that may host: alive (not suspect), with a known boot id that is not condemned.
local function hosts(R)
  local out = {}
  for _, m in ipairs(S.members.list()) do
    if m.state == "alive" and m.boot and not R.condemned[m.boot] then
      out[#out + 1] = { addr = m.address, boot = m.boot }
    end
  end
  table.sort(out, function(a, b) return a.addr < b.addr end)
  return out
end

-- true when the process `boot` at `addr` still runs as far as membership knows (or cannot tell
-- yet: a member whose boot id has not reached this node).
-- A boot id is "<process id>.<n>": n grows each time a process given up for dead hosts again
-- (luact.cluster), so a newer id of the same process that membership has not heard of yet is
-- not taken for a restart.
local function same_or_newer(boot, known)
  if boot == known then return true end
  local p1, n1 = boot:match("^(.*)%.(%d+)$")
  local p2, n2 = known:match("^(.*)%.(%d+)$")
  return p1 ~= nil and p1 == p2 and tonumber(n1) > tonumber(n2)
end

local function still_there(addr, boot, R)
  if R.condemned[boot] then return false end
  local st = S.members.state(addr)
  if st ~= "alive" and st ~= "suspect" then return false end
  local meta = S.members.meta(addr)
  return not (meta and meta.boot) or same_or_newer(boot, meta.boot)
end
failover.same_or_newer = same_or_newer
failover.still_there = function(addr, boot) return S ~= nil and still_there(addr, boot, S.state()) end

local function propose(tag, cmd, what)
  busy[tag] = true
  tentacle(function()
    local ok, r = pcall(requests.run, "w", cmd, clock.get() + 5, what)
    busy[tag] = nil
    if not ok then logger.warn(("cluster: %s failed: %s"):format(what, tostring(r))) end
  end)
end

-- true when this leader, which does renew leases (it answered some process lately), has not
-- renewed the process `boot` for STARVE seconds: not since its election, nor since it first saw
-- that process host something (a process that just started has had no time to ask).
local function starved(boot, now, hosting_from)
  return now - (lease.last_grant_any() or -math.huge) < 3 * lease.RENEW and
         now - math.max(lease.last_grant(boot) or 0, leader_since, hosting_from) > STARVE
end

-- What to do about process `boot` (at `node`): "gone", "starved" or false (nothing); worked
-- out once per look (memo: boot -> verdict), not once per activation it hosts.
local function verdict(R, now, node, boot, memo)
  local v = memo[boot]
  if v == nil then
    if not still_there(node, boot, R) then
      v = "gone"
    elseif starved(boot, now, hosting_since[boot] or now) then
      v = "starved"
    else
      v = false
    end
    memo[boot] = v
  end
  return v
end

-- The activation `key` of `vid` is on a process that is gone or starved (verdict v): condemns
-- the process, or once it is condemned and its lease ran out, moves (or drops) the activation.
local function act_on(R, now, vid, entry, key, act, v, ctx)
  local boot = act.boot
  if not entry.multi then moves.needs(key, now) end      -- (placement time counts from here)
  if not R.condemned[boot] then
    if not busy["c" .. boot] then
      logger.info(("cluster: %s (%s) is %s: condemning it"):format(act.node, boot,
        v == "gone" and "gone" or ("alive but its lease was not renewed for %.1f s (cut off from the leader?)"):format(STARVE)))
      propose("c" .. boot, { op = "vcondemn", boot = boot }, "condemning " .. act.node)
    end
  elseif not busy[key] then
    -- the last lease this leader gave the process, or (never) any a previous leader gave
    -- it before this one was elected, has run out on the process's own clock
    if now >= math.max(lease.last_grant(boot) or 0, leader_since) + lease.LEASE_WAIT then
      if entry.multi then
        propose(key, { op = "vunreg", vid = vid, key = key }, "dropping " .. key)
      else
        ctx.live = ctx.live or hosts(R)
        local to = failover.choose(key, ctx.live)
        if to then
          ctx.moved = (ctx.moved or 0) + 1
          if ctx.moved <= 3 then
            logger.info(("cluster: moving %s from %s to %s (its lease ran out)"):format(key, act.node, to.addr))
          end
          busy[key] = true
          ctx.moves = ctx.moves or {}
          ctx.moves[#ctx.moves + 1] = { vid = vid, key = key, from_boot = boot, node = to.addr, boot = to.boot,
                                        why = "failover" }
        end
      end
    end
  end
end

-- Proposes the moves a look decided, MOVES_PER_ENTRY to a registry command (vmoves: one Raft
-- entry; one each made a leader that moved thousands of activations too busy to renew the
-- members' leases, and every member then refused calls for a while).
local MOVES_PER_ENTRY = 256
local function moved_note(ctx)
  if ctx.moved and ctx.moved > 3 then
    logger.info(("cluster: moving %d more activations whose host's lease ran out"):format(ctx.moved - 3))
  end
  local list = ctx.moves
  if not list then return end
  for i = 1, #list, MOVES_PER_ENTRY do
    local chunk = {}
    for j = i, math.min(#list, i + MOVES_PER_ENTRY - 1) do chunk[#chunk + 1] = list[j] end
    tentacle(function()
      local ok, r = pcall(requests.run, "w", { op = "vmoves", moves = chunk }, clock.get() + 5, "moving activations")
      for _, m in ipairs(chunk) do busy[m.key] = nil end
      if not ok then logger.warn(("cluster: moving %d activations failed: %s"):format(#chunk, tostring(r))) end
    end)
  end
end

-- One look at every activation in the registry: condemns the processes that are gone or
-- starved and moves (or drops) their activations; notes which processes host something, and
-- which names each hosts (on_boot, for the looks in between).
local function full_scan(R, now)
  local hosting, index, memo, ctx = {}, {}, {}, {}
  hosted = {}
  -- (only the names placed on a process: not the idle ones, however many there are)
  for vid in pairs(R:hosted_names()) do
    local entry = R.vids[vid]
    for key, act in pairs(entry.acts) do
      local boot = act.boot
      if boot ~= nil then                  -- (nil: deactivated for idleness, hosted nowhere)
        if not hosting[boot] then
          hosting[boot] = hosting_since[boot] or now
          hosted[boot] = act.node
          index[boot] = {}
        end
        index[boot][vid] = true
        local v = verdict(R, now, act.node, boot, memo)
        if v then act_on(R, now, vid, entry, key, act, v, ctx) end
      end
    end
  end
  hosting_since, on_boot = hosting, index
  moved_note(ctx)
end

-- A look at the names of the processes in `boots` only (those the last full scan saw there).
local function troubled_scan(R, now, boots)
  local memo, ctx = {}, {}
  for boot in pairs(boots) do
    local names = on_boot[boot]
    for vid in pairs(names or {}) do
      local entry, there = R.vids[vid], false
      for key, act in pairs(entry and entry.acts or {}) do
        if act.boot == boot then
          there = true
          local v = verdict(R, now, act.node, boot, memo)
          if v then act_on(R, now, vid, entry, key, act, v, ctx) end
        end
      end
      if not there then names[vid] = nil end            -- (moved: not looked at again)
    end
  end
  moved_note(ctx)
end

-- The processes the last full scan saw hosting something that are gone, starved or condemned
-- (their activations then need a look), or nil.
local function trouble(R, now)
  local out = nil
  for boot, node in pairs(hosted) do
    if R.condemned[boot] or not still_there(node, boot, R) or starved(boot, now, hosting_since[boot] or now) then
      out = out or {}
      out[boot] = true
    end
  end
  return out
end

-- Every CHECK on the leader: a look at the names of the processes in trouble, if any; the whole
-- registry is looked at once per FULL_SCAN (and when the registry was replaced). It used to
-- walk every hosted name at each check that followed a change of the registry: while names
-- were registered or moved, the leader's thread 1 spent its time there (a walk of 10 000 names
-- took over 100 ms here, 20 times a second). A name placed on a process after the last full
-- scan is looked at from the next one (a process that dies within FULL_SCAN of getting a name
-- may keep it that much longer).
local function check()
  if not S then return false end
  if not consensus.is_leader() then
    leader_since, hosting_since, hosted, scanned, on_boot = nil, {}, {}, nil, {}
    return
  end
  local now = clock.get()
  leader_since = leader_since or now
  local R = S.state()
  if not scanned or scanned.R ~= R or now - scanned.at >= FULL_SCAN then
    scanned = { R = R, at = now }
    full_scan(R, now)
    return
  end
  local boots = trouble(R, now)
  if boots then troubled_scan(R, now, boots) end
end

-- Checks run only while this process is the Raft leader (a follower used to wake 20 times a
-- second to find it is not).
local function leadership(me)
  if not S then return end
  if me and not S.timer then
    S.timer = clock.grid_timer(CHECK, check)
  elseif not me and S.timer then
    S.timer:stop()
    S.timer = nil
    leader_since, hosting_since, hosted, scanned, on_boot = nil, {}, {}, nil, {}
  end
end

-- opts: members (luact.cluster.members), state() (the applied registry).
function failover.start(opts)
  S = opts
  consensus.on_leadership(leadership)
  leadership(consensus.is_leader())
end

-- Moves this process's own activations elsewhere (graceful leave), handing over their state:
-- what `handoff(act)` returns is passed to the new activation's constructor. Waits (bounded)
-- until every move is committed.
function failover.move_out(self_addr, boot, handoff, deadline)
  local R = S.state()
  local targets = {}
  for _, h in ipairs(hosts(R)) do if h.addr ~= self_addr then targets[#targets + 1] = h end end
  if #targets == 0 then return false, "no other member to move to" end
  local all = true
  for vid, entry in pairs(R.vids) do
    for key, act in pairs(entry.acts) do
      if act.boot == boot then
        local cmd
        if entry.multi then
          cmd = { op = "vunreg", vid = vid, key = key }
        else
          local to = failover.choose(key, targets)
          cmd = { op = "vplace", vid = vid, key = key, from_boot = boot, node = to.addr, boot = to.boot,
                  handoff = handoff(act) }
        end
        local ok = pcall(requests.run, "w", cmd, deadline, "handing over " .. key)
        all = all and ok
      end
    end
  end
  return all
end

function failover.stop()
  if S and S.timer then S.timer:stop() end
  consensus.on_leadership(nil)
  S, leader_since, busy, hosting_since, hosted, scanned, on_boot = nil, nil, {}, {}, {}, nil, {}
  moves.reset()
end

return failover
