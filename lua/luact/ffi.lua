-- luact.ffi: the only place that declares the core's C functions (src/ffi/, one file per
-- concept) and opens the library. Every other module goes through `require("luact.ffi").C`.
local ffi = require "ffi"

ffi.cdef [[
typedef struct luact_thread_ctx luact_thread_ctx;
typedef struct { uint64_t user_data; int32_t res; uint32_t flags; } luact_completion_t;

const uint8_t *luact_last_error(size_t *len);

typedef struct {
  const char *addr; size_t addr_len; const char *secret; size_t secret_len;
  const char *cluster; size_t cluster_len; uint32_t max_frame;
  const char *tls_cert; size_t tls_cert_len; const char *tls_key; size_t tls_key_len;
  const char *tls_ca; size_t tls_ca_len;
} luact_node_options_t;
int32_t luact_runtime_start(int32_t n_core, int32_t inbox_capacity, double spin_seconds,
                            const char *payload, size_t payload_len, const luact_node_options_t *node);
int32_t luact_runtime_stop(const char *payload, size_t len);
int32_t luact_runtime_fail(const char *msg, size_t len);
int32_t luact_runtime_join(double timeout);
int64_t luact_runtime_take(int32_t which, uint8_t **out);
int32_t luact_runtime_finish(void);

luact_thread_ctx *luact_thread_attach(int32_t tid);
void luact_thread_detach(luact_thread_ctx *ctx);
typedef struct { int32_t drained, events, stopping; double now; } luact_turn_state_t;
int32_t luact_turn(luact_thread_ctx *ctx, double now, double timeout, luact_completion_t *out,
                   int32_t max, const uint8_t **ptrs, size_t *lens, int32_t max_drain,
                   luact_turn_state_t *state);
const uint32_t *luact_wait_flags(const luact_thread_ctx *ctx, int32_t *stride);
int32_t luact_send(const luact_thread_ctx *ctx, int32_t tid, const uint8_t *msg, size_t len, int32_t count);

double luact_machine_id(void);

typedef struct { uint32_t kind; uint32_t conn; double machine; } luact_net_event_t;
/* src/listen_limits.rs: a field <= 0 takes its default */
typedef struct { double header_timeout, idle_timeout, max_buffered, max_pipelined, max_connections, metrics, dashboard; } luact_listen_limits_t;
typedef struct { double header_timeouts, idle_timeouts, slow_readers, refused_connections, accept_pauses, read_pauses; } luact_listen_stats_t;
int32_t luact_net_listen(luact_thread_ctx *ctx, const char *addr, size_t len, int32_t kind,
                         const luact_listen_limits_t *limits, int32_t reuse_port);
int32_t luact_net_listen_tls(luact_thread_ctx *ctx, const char *addr, size_t addr_len,
                             const char *cert, size_t cert_len, const char *key, size_t key_len,
                             const char *ca, size_t ca_len, const luact_listen_limits_t *limits,
                             int32_t reuse_port);
int32_t luact_net_listen_stats(luact_thread_ctx *ctx, luact_listen_stats_t *out);
int32_t luact_net_tls_client(luact_thread_ctx *ctx, const char *ca, size_t ca_len,
                             const char *cert, size_t cert_len, const char *key, size_t key_len);
int32_t luact_net_send(luact_thread_ctx *ctx, double machine, int32_t thread, const uint8_t *msg, size_t len);
int32_t luact_net_call(luact_thread_ctx *ctx, const char *addr, size_t addr_len, uint32_t tls,
                       uint32_t corr, uint32_t timeout_ms, const uint8_t *msg, size_t len);
int32_t luact_net_reply(luact_thread_ctx *ctx, uint32_t conn, uint32_t gen, uint32_t corr,
                        const uint8_t *msg, size_t len);
int32_t luact_net_event(luact_thread_ctx *ctx, luact_net_event_t *out);
int32_t luact_net_event_reason(luact_thread_ctx *ctx, const uint8_t **out);
int32_t luact_net_drop(luact_thread_ctx *ctx, double machine);
uint32_t luact_epoch(void);
int32_t luact_uuid_v4(uint8_t *out);
double luact_id_block(uint32_t n);

typedef struct { double machine; uint32_t thread; uint32_t epoch; double local; } luact_address_t;
int32_t luact_names_add(const char *vid, size_t len, luact_address_t addr, int32_t multi);
int32_t luact_names_pick(const char *vid, size_t len, luact_address_t *out);
int32_t luact_names_remove(const char *vid, size_t len, luact_address_t addr, int32_t all);
int32_t luact_names_list(const char *vid, size_t len, luact_address_t *out, int32_t max);
int32_t luact_names_set(const char *vid, size_t len, const luact_address_t *addrs, int32_t n, int32_t multi);
double luact_names_version(void);
int32_t luact_names_count(const char *vid, size_t len);
double luact_lease_extend(double until);
double luact_lease_lapse(void);
double luact_lease_until(void);
double luact_lease_current(void);
int32_t luact_lease_valid(double gen, double now);

typedef struct { const uint8_t *data; size_t len; int32_t eof, err; } luact_sock_view_t;
int32_t luact_sock_connect(luact_thread_ctx *ctx, int32_t family, const char *addr, size_t len);
int32_t luact_sock_connect_tls(luact_thread_ctx *ctx, const char *addr, size_t len,
                               const char *sni, size_t sni_len, const char *ca, size_t ca_len,
                               const char *cert, size_t cert_len, const char *key, size_t key_len);
int32_t luact_sock_listen(luact_thread_ctx *ctx, int32_t family, const char *addr, size_t len,
                          int32_t backlog, int32_t max_connections, int32_t reuse_port);
int32_t luact_sock_listen_tls(luact_thread_ctx *ctx, const char *addr, size_t len,
                              int32_t backlog, int32_t max_connections, int32_t reuse_port,
                              const char *cert, size_t cert_len, const char *key, size_t key_len,
                              const char *ca, size_t ca_len);
int32_t luact_sock_send(luact_thread_ctx *ctx, uint32_t h, const char *data, size_t len, size_t limit);
int32_t luact_sock_view(luact_thread_ctx *ctx, uint32_t h, luact_sock_view_t *out);
int32_t luact_sock_consume(luact_thread_ctx *ctx, uint32_t h, size_t n);
int32_t luact_sock_close(luact_thread_ctx *ctx, uint32_t h, int32_t abort, double linger);
int32_t luact_sock_address(luact_thread_ctx *ctx, uint32_t h, int32_t local, uint8_t *out, size_t cap, int32_t *port);
int32_t luact_udp_open(luact_thread_ctx *ctx, const char *addr, size_t len);
int32_t luact_udp_sendto(luact_thread_ctx *ctx, uint32_t h, const char *data, size_t len, const char *to, size_t to_len);
int32_t luact_udp_take(luact_thread_ctx *ctx, uint32_t h, const uint8_t **data, uint8_t *from, size_t cap,
                       int32_t *from_len, int32_t *port);
int32_t luact_udp_close(luact_thread_ctx *ctx, uint32_t h);
int32_t luact_udp_port(luact_thread_ctx *ctx, uint32_t h);
double luact_memory_find(const void *p, size_t len, const char *needle, size_t nlen);

int32_t luact_offload_submit(luact_thread_ctx *ctx, int32_t size, int32_t max, const uint8_t *task, size_t len);
int32_t luact_offload_stats(luact_thread_ctx *ctx, uint64_t *out);
int32_t luact_offload_take(const uint8_t **out);
int32_t luact_offload_reply(int32_t tid, const uint8_t *msg, size_t len);

double luact_clock_monotonic(void);
double luact_clock_wall(void);
void luact_util_sleep(double seconds);
int32_t luact_util_getpid(void);
int32_t luact_util_n_cpu(void);

void *luact_alloc(size_t size);
void *luact_realloc(void *p, size_t size);
void luact_free(void *p);
int64_t luact_memory_live_allocations(void);
int32_t luact_memory_equal(const void *p, const void *q, size_t size);
void luact_memory_move(void *dst, const void *src, size_t size);
void luact_memory_fill(void *dst, int32_t byte, size_t size);

double *luact_metrics_block(int32_t b);
int32_t luact_metrics_inbox_depth(int32_t tid);
int64_t luact_metrics_render(const uint8_t **out);
int32_t luact_metrics_set_activations(const char *text, size_t len);
int32_t luact_metrics_method(const char *actor, size_t alen, const char *method, size_t mlen);
double *luact_metrics_methods_block(int32_t tid, int32_t create);
int64_t luact_metrics_method_names(const uint8_t **out);
int32_t luact_stall_watch(double warn);
double luact_stall_since(int32_t tid);

int32_t luact_log_write(const char *line, size_t len);
int32_t luact_log_redirect(const char *path, size_t len);
void luact_log_set_level(int32_t level);
int32_t luact_log_level(void);
void luact_log_set_format(int32_t format);
int32_t luact_log_format(void);
int32_t luact_log_is_tty(void);
]]

local core = require "luact.core"
local ok, C = pcall(ffi.load, core.path)
if not ok then
  error("luact: cannot open the core library at '" .. tostring(core.path) .. "': " .. tostring(C))
end

-- Mirrors `Status` in src/status.rs.
local status = {
  ok = 0, full = -1, bad_argument = -2, not_running = -3, already_running = -4,
  os = -5, panic = -6, unreachable = -8,
}
local status_name = {}
for k, v in pairs(status) do status_name[v] = k end

local len_out = ffi.new("size_t[1]")

local lua_error = nil   -- a failure found on the Lua side of a call (see set_error)

-- The message of the last failed call on this thread.
local function last_error()
  if lua_error then
    local e = lua_error
    lua_error = nil
    return e
  end
  local p = C.luact_last_error(len_out)
  return ffi.string(p, len_out[0])
end

-- Records why a call failed before it reached the core (read once by last_error/describe).
local function set_error(msg)
  lua_error = msg
end

-- The message of a failed call (a negative status): the core's text (short, with no Rust
-- names in it: src/status.rs), or the status's name when the core gave none.
local function describe(code)
  local msg = last_error()
  if msg ~= "" then return msg end
  return ((status_name[code] or ("status " .. tostring(code))):gsub("_", " "))
end

return {
  C = C,
  ffi = ffi,
  path = core.path,
  version = core.version,
  status = status,
  last_error = last_error,
  set_error = set_error,
  describe = describe,
  status_name = function(code) return status_name[code] or tostring(code) end,
}
