-- luact.cluster.raft.pieces: a snapshot (a string) sent in pieces, so that no message carries
-- more than `piece` bytes of it. Pure flow control, used by Raft's InstallSnapshot and by the
-- registry's feed to followers: the sender keeps at most `window` pieces unacknowledged and
-- goes back to the last acknowledged byte when the receiver says it holds less (it restarted,
-- or lost pieces) or when nothing progressed between two of its `stalled()` checks; the
-- receiver takes pieces only in order (a duplicate or a piece past a hole is ignored), says how
-- many bytes it holds, and hands the whole string over once it holds all `size` bytes.
local buffer = require "string.buffer"

local pieces = {}

local Out = {}
Out.__index = Out

-- A sender of `data` in pieces of at most `piece` bytes, at most `window` unacknowledged.
function pieces.sender(data, piece, window)
  return setmetatable({ data = data, size = #data, piece = piece, window = window,
                        sent = 0, acked = 0, progressed = false, started = false }, Out)
end

-- The pieces to send now: a list of { offset, bytes, done } (done: the last piece).
function Out:take()
  local out = {}
  local limit = self.acked + self.window * self.piece
  if self.size == 0 then
    -- an empty snapshot is one empty piece
    if not self.started then out[1] = { 0, "", true } end
    self.started = true
    return out
  end
  while self.sent < self.size and self.sent < limit do
    local from = self.sent
    local to = math.min(self.size, from + self.piece)
    out[#out + 1] = { from, self.data:sub(from + 1, to), to == self.size }
    self.sent = to
  end
  self.started = true
  return out
end

-- The receiver holds the first `next` bytes. Less than acknowledged before: it lost them
-- (restarted, or a newer transfer replaced this one there): send again from there.
function Out:ack(next)
  if next > self.size then return end
  if next > self.acked then
    self.acked, self.progressed = next, true
    if self.sent < next then self.sent = next end
  elseif next < self.acked then
    self.acked, self.sent, self.started = next, next, false
  end
end

-- Called once per retry interval (a heartbeat): true when nothing was acknowledged since the
-- last call (pieces or the answer to the last one were lost); the next take() then sends again
-- from the last acknowledged byte (the last piece again when every byte was acknowledged, so
-- that the receiver answers once more).
function Out:stalled()
  if self.progressed then
    self.progressed = false
    return false
  end
  local last = self.size > 0 and math.floor((self.size - 1) / self.piece) * self.piece or 0
  self.sent, self.started = math.min(self.acked, last), false
  return true
end

local In = {}
In.__index = In

-- A receiver of a snapshot of `size` bytes.
function pieces.receiver(size)
  return setmetatable({ size = size, held = 0, buf = buffer.new() }, In)
end

-- Takes the piece at `offset`; returns the bytes held (in order) from now on.
function In:put(offset, bytes)
  if offset == self.held and #bytes > 0 and offset + #bytes <= self.size then
    self.buf:put(bytes)
    self.held = offset + #bytes
  end
  return self.held
end

function In:complete() return self.held == self.size end

-- The whole snapshot (once complete); the receiver is empty afterwards.
function In:take()
  local s = self.buf:tostring()
  self.buf:free()
  self.held = 0
  return s
end

return pieces
