-- luact.outbox: this thread's messages on their way to other threads' inboxes. A message is
-- encoded at once (so a value that cannot travel fails at the sender) and appended to the batch
-- of its target thread. When the target is waiting for work, the batch is pushed at once (an
-- idle thread should not wait for the end of our turn); when it is busy, the batch grows and the
-- loop pushes it as one inbox entry at the end of the turn (`flush`), so a turn that sends 64
-- calls to a busy thread costs one push, one doorbell and one drain instead of 64.
-- Back-pressure stays bounded: the target inbox counts messages, not entries, and a batch that
-- does not fit waits here (retried every turn) while it grows to at most BATCH_MAX messages;
-- past that, `send` returns `full` without queuing.
local buffer = require "string.buffer"
local lffi = require "luact.ffi"
local ffi, C = lffi.ffi, lffi.C

local outbox = {}

local BATCH_MAX = 512
local BATCH_BYTES = 256 * 1024    -- a batch this large is pushed at once, not at the turn's end
local OK, FULL, BAD_ARGUMENT = lffi.status.ok, lffi.status.full, lffi.status.bad_argument

local ctx = nil
local batches = {}                -- tid -> { buf = string.buffer, n = messages, woken = epoch }
local dirty = {}                  -- tids with a batch to push, in the order they got one
local ndirty = 0
local batch_max = BATCH_MAX
local n_threads = 0
local waiting = nil               -- the threads' wait flags (uint32_t*; see luact_wait_flags)
local stride = 0
local stride_out = ffi.new("int32_t[1]")
local epoch = 0                   -- counts flushes: a batch pushed to an idle thread at once in
                                  -- this turn has woken == epoch

-- Binds the outbox to this thread's context; threads are 1..n_core; `inbox_size` caps a batch
-- (a batch never holds more messages than an inbox may).
function outbox.attach(c, n_core, inbox_size)
  ctx = c
  batches, dirty, ndirty = {}, {}, 0
  n_threads = n_core or 1
  batch_max = math.min(BATCH_MAX, inbox_size or BATCH_MAX)
  waiting = C.luact_wait_flags(c, stride_out)
  if waiting == nil then error("luact: " .. lffi.last_error(), 0) end
  stride = stride_out[0]
  -- every thread's batch now, not at the first send to it: `buffer.new` is a C function the JIT
  -- cannot compile, and a root trace LuaJIT starts at send's entry on that first send would end
  -- in a stitch there, which keeps every loop that sends from becoming a looping trace (see
  -- luact.thread)
  for tid = 1, n_threads do batches[tid] = { buf = buffer.new(), n = 0, woken = -1 } end
end

function outbox.detach()
  ctx, waiting = nil, nil
  batches, dirty, ndirty = {}, {}, 0
end

-- Pushes thread tid's batch into its inbox; returns the core's status (the batch is kept when
-- the inbox is full).
local function push(tid, b)
  local p, len = b.buf:ref()
  local rc = C.luact_send(ctx, tid, p, len, b.n)
  if rc == OK then
    b.buf:reset()
    b.n = 0
  end
  return rc
end

-- Queues `len` encoded bytes at p (one message; p may also be a Lua string) for thread tid.
-- Returns lffi.status.ok, .full (nothing queued: the thread's inbox and this batch are both
-- full), or another status.
function outbox.send(tid, p, len)
  local b = batches[tid]
  if b == nil then               -- (attach made one for every thread)
    lffi.set_error(("no thread %s (threads are 1..%d)"):format(tostring(tid), n_threads))
    return BAD_ARGUMENT
  end
  local n = b.n
  if n >= batch_max then
    local rc = push(tid, b)
    if rc ~= OK then return rc end
    n = 0
  end
  if type(p) == "string" then b.buf:put(p) else b.buf:putcdata(p, len) end
  b.n = n + 1
  -- an idle thread gets the first message of the turn at once (it is waking up meanwhile, so
  -- the rest of the turn's messages go with the batch)
  local rc = OK
  if (b.woken ~= epoch and waiting[(tid - 1) * stride] ~= 0) or #b.buf >= BATCH_BYTES then
    rc = push(tid, b)
    if rc == OK then
      b.woken = epoch
      return OK                   -- nothing left for flush
    end
  end
  if n == 0 then                  -- the batch has just become non-empty: flush pushes it
    ndirty = ndirty + 1
    dirty[ndirty] = tid
  end
  if rc ~= FULL then return rc end
  return OK                       -- queued: it goes with a later flush
end

-- Pushes every pending batch. Returns true when all went out; false when some inbox was full
-- (those batches stay and go with a later flush: the loop must not sleep long meanwhile).
function outbox.flush()
  epoch = epoch + 1
  if ndirty == 0 then return true end
  local all, kept = true, 0
  for i = 1, ndirty do
    local tid = dirty[i]
    dirty[i] = nil
    local b = batches[tid]
    if b.n > 0 and push(tid, b) ~= OK then
      all = false
      kept = kept + 1
      dirty[kept] = tid
    end
  end
  ndirty = kept
  return all
end

return outbox
