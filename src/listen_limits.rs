//! The bounds on what one listener's clients may hold (`luact.listen(url, opts)`), and the
//! counters of what those bounds refused. Pure data: `transport/listener_clients.rs` enforces them. The C layout
//! of both structs is declared in lua/luact/ffi.lua (`luact_listen_limits_t`,
//! `luact_listen_stats_t`): change both together.

/// One listener's limits. Times in seconds, sizes in bytes; a field <= 0 (or NaN) takes its
/// default (see `DEFAULT`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ListenLimits {
    /// A request (a frame, an HTTP request with its body) whose first byte arrived must be
    /// complete within this time, or the connection is closed.
    pub header_timeout: f64,
    /// A connection with nothing in progress (no partial request, no call awaiting its reply,
    /// nothing left to send) is closed after this long without a byte from the client.
    pub idle_timeout: f64,
    /// Bytes queued for sending to one client: a reply that would go beyond (while earlier
    /// replies are still unsent) closes the connection: the client does not read. HTTP bytes
    /// read ahead (pipelined requests behind a call) stop being read beyond this.
    pub max_buffered: f64,
    /// Calls of one client delivered and not yet answered: reading stops at this many until
    /// replies go out (pipelining applies back-pressure instead of growing without bound).
    pub max_pipelined: f64,
    /// Open connections of this listener: beyond, a new connection is closed at once.
    pub max_connections: f64,
    /// Not a limit: > 0 makes an `http://` listener answer `GET /metrics` (off by default).
    pub metrics: f64,
    /// Not a limit: > 0 makes an `http://` listener serve the dashboard, `GET /_luact/` and
    /// `GET /_luact/state.json` (off by default).
    pub dashboard: f64,
}

/// nginx's defaults for the timeouts (client_header_timeout 60 s, keepalive_timeout 75 s).
pub const DEFAULT: ListenLimits = ListenLimits {
    header_timeout: 60.0,
    idle_timeout: 75.0,
    max_buffered: 8.0 * 1024.0 * 1024.0,
    max_pipelined: 64.0,
    max_connections: 4096.0,
    metrics: 0.0,
    dashboard: 0.0,
};

impl ListenLimits {
    /// `given` with every unset field (<= 0 or NaN) replaced by its default.
    pub fn or_defaults(given: Option<&ListenLimits>) -> ListenLimits {
        let Some(g) = given else { return DEFAULT };
        let pick = |v: f64, d: f64| if v > 0.0 { v } else { d };
        ListenLimits {
            header_timeout: pick(g.header_timeout, DEFAULT.header_timeout),
            idle_timeout: pick(g.idle_timeout, DEFAULT.idle_timeout),
            max_buffered: pick(g.max_buffered, DEFAULT.max_buffered),
            max_pipelined: pick(g.max_pipelined, DEFAULT.max_pipelined),
            max_connections: pick(g.max_connections, DEFAULT.max_connections),
            metrics: if g.metrics > 0.0 { 1.0 } else { 0.0 },
            dashboard: if g.dashboard > 0.0 { 1.0 } else { 0.0 },
        }
    }

    pub fn expose_dashboard(&self) -> bool {
        self.dashboard > 0.0
    }

    pub fn expose_metrics(&self) -> bool {
        self.metrics > 0.0
    }

    pub fn max_buffered(&self) -> usize {
        self.max_buffered as usize
    }

    pub fn max_pipelined(&self) -> u32 {
        self.max_pipelined.min(u32::MAX as f64) as u32
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections as usize
    }
}

/// What the limits refused on one thread, since it started (`luact.listen_stats()`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ListenStats {
    /// Connections closed because a request did not complete within `header_timeout`.
    pub header_timeouts: f64,
    /// Connections closed after `idle_timeout` with nothing in progress.
    pub idle_timeouts: f64,
    /// Connections closed because their replies went unread beyond `max_buffered`.
    pub slow_readers: f64,
    /// Connections refused because the listener had `max_connections` open.
    pub refused_connections: f64,
    /// Times an accept failed for lack of file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM)
    /// and the listener paused before accepting again.
    pub accept_pauses: f64,
    /// Times a client's reading was paused by `max_pipelined` or `max_buffered`.
    pub read_pauses: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_fields_take_the_defaults() {
        assert_eq!(ListenLimits::or_defaults(None), DEFAULT);
        let given = ListenLimits { header_timeout: 2.0, idle_timeout: 0.0, max_buffered: -1.0, max_pipelined: f64::NAN, max_connections: 10.0, metrics: 0.0, dashboard: 0.0 };
        let l = ListenLimits::or_defaults(Some(&given));
        assert_eq!(l, ListenLimits { header_timeout: 2.0, idle_timeout: 75.0, max_buffered: DEFAULT.max_buffered, max_pipelined: 64.0, max_connections: 10.0, metrics: 0.0, dashboard: 0.0 });
        assert_eq!((l.max_buffered(), l.max_pipelined(), l.max_connections()), (8 << 20, 64, 10));
    }
}
