//! The http:// listener's request and response logic, without sockets: an incremental HTTP/1.1
//! request parser over the connection's read buffer (`httparse`), the routing of a request to a
//! call (`POST /<vid path>/<method>` with a JSON array of arguments) or a fixed answer, and the
//! bytes of every response. The transport owns the sockets and the buffers; it calls
//! [`parse_request`] after each read and writes what the functions here return.
//!
//! Routes:
//! - `POST /<vid>/<method>`: a call; vid = everything before the last `/` (`POST
//!   /system/frontend/hoge` -> vid `/system/frontend`, method `hoge`), percent-decoded; the query
//!   string is ignored. Body: a JSON array of arguments (empty body = `[]`; `null` items are nil
//!   arguments). A missing `Content-Length` means an empty body (RFC 9112 section 6.3).
//! - `GET /health`: 200 `ok` (text/plain).
//! - `GET /metrics`: [`Route::Metrics`]; the transport answers it with [`metrics_response`] on a
//!   listener opened with `metrics = true`, else with [`Route::metrics_refused`] (404).
//! - `GET /_luact/` (also `/_luact`, `/_luact/index.html`): [`Route::Dashboard`], the page
//!   [`dashboard_response`]; `GET /_luact/state.json[?after=NAME]`: [`Route::DashboardState`]
//!   (its query parsed by `wire::query`; a malformed one is a 400), which the transport turns
//!   into the call [`Route::dashboard_state_call`] (Lua answers it: the page polls it). Both on a listener opened with `dashboard = true`, else 404
//!   ([`Route::dashboard_refused`]).
//! - anything else: a JSON error, the connection kept as the request asked: 404 (`POST` to a path
//!   without a vid or a method), 405 (another HTTP method, or `GET` of another path), 400 (the
//!   body is not valid JSON, not an array, or nested too deep).
//!
//! Framing errors are [`HttpError`]s: the transport writes [`HttpError::response`] (which says
//! `Connection: close`) and closes, because the rest of the buffer cannot be trusted: 431 (the
//! request head is over `max_header`, or has more than [`MAX_HEADERS`] headers), 413 (the declared
//! `Content-Length` is over `max_body`: refused before the body is read), 501 (any
//! `Transfer-Encoding`, chunked included: only `Content-Length` bodies are supported), 400
//! (malformed request line or headers, a bad or conflicting `Content-Length`, an undecodable path).
//!
//! Keep-alive: HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 closes unless
//! `Connection: keep-alive`. Pipelined requests are parsed one at a time: each `Complete` says how
//! many bytes it used. Every response carries `Content-Length` and `Connection`.
//!
//! Errors of a call: [`ERROR_STATUS`] maps exception names to statuses (other names: 500); the
//! body is `{"error": name, "message": text}`.

use super::sbuf::{self, Value};
use serde_json::json;

/// The HTTP status of a call that failed with the exception `name`; any other name is 500.
pub const ERROR_STATUS: &[(&str, u16)] = &[
    ("actor_no_body", 404),
    ("actor_no_method", 404),
    ("actor_timeout", 504),
    ("actor_overload", 503),
    ("actor_temporary_fail", 503),
    ("bad_request", 400),
];

/// Most headers a request may have (more: 431).
pub const MAX_HEADERS: usize = 64;

/// What the transport writes when [`Parsed::Incomplete`] says `expect_continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The result of looking at the bytes read so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Read more. `expect_continue`: the head is complete, asked for `Expect: 100-continue` and
    /// no body byte has arrived: write [`CONTINUE`] once for this request (curl waits a second
    /// for it before sending bodies over 1 KiB).
    Incomplete { expect_continue: bool },
    /// One request; the next one starts at `consumed`.
    Complete(Request),
}

/// A complete request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Bytes of the buffer this request used (head and body).
    pub consumed: usize,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// The call's timeout in seconds from an `X-Luact-Timeout` header (0: none given).
    pub timeout: f64,
    pub route: Route,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Call `method` on the actor registered as `vid` with `args` (nil arguments are `Nil`; the
    /// count is `args.len()`), then answer with [`reply_response`].
    Call { vid: String, method: String, args: Vec<Value> },
    /// Answer [`Request::immediate_response`] (200 `ok`).
    Health,
    /// The Prometheus metrics: the transport answers (the listener must enable them).
    Metrics,
    /// The dashboard's page (the listener must enable it).
    Dashboard,
    /// The dashboard's state, a call to Lua (the listener must enable it); `after`: the query's
    /// `after` parameter (the placements' page after that name).
    DashboardState { after: Option<String> },
    /// Answer [`Request::immediate_response`]: a JSON error with this status.
    Refuse { status: u16, error: &'static str, message: String },
}

impl Request {
    /// The response for `Health` and `Refuse` (honouring `keep_alive`); `None` for a `Call`.
    pub fn immediate_response(&self) -> Option<Vec<u8>> {
        match &self.route {
            Route::Call { .. } | Route::Metrics | Route::Dashboard | Route::DashboardState { .. } => None,
            Route::Health => Some(build(200, "text/plain", &[], b"ok", self.keep_alive)),
            Route::Refuse { status, error, message } => {
                let extra: &[(&str, &str)] = if *status == 405 { &[("Allow", "POST")] } else { &[] };
                let body = json_bytes(&json!({ "error": error, "message": message }));
                Some(build(*status, "application/json", extra, &body, self.keep_alive))
            }
        }
    }
}

/// A request that cannot be framed: answer [`HttpError::response`] and close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub message: String,
}

impl HttpError {
    fn new(status: u16, message: impl Into<String>) -> HttpError {
        HttpError { status, message: message.into() }
    }

    /// The error response, with `Connection: close`.
    pub fn response(&self) -> Vec<u8> {
        let body = json!({ "error": error_name(self.status), "message": self.message });
        response(self.status, &body, false)
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, reason(self.status), self.message)
    }
}

impl std::error::Error for HttpError {}

/// The `error` field of HTTP-level errors.
fn error_name(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        431 => "header_too_large",
        501 => "not_implemented",
        _ => "http_error",
    }
}

/// The reason phrase of the statuses this module sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// The status for a call that failed with exception `name` ([`ERROR_STATUS`], else 500).
pub fn status_for(name: &str) -> u16 {
    ERROR_STATUS.iter().find(|(n, _)| *n == name).map_or(500, |(_, s)| *s)
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| std::str::from_utf8(t).is_ok_and(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn content_length(value: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The request header that sets a call's timeout (seconds, e.g. `X-Luact-Timeout: 0.5`).
pub const TIMEOUT_HEADER: &str = "X-Luact-Timeout";

/// Seconds in `(0, 86400]` from a header value.
fn timeout_seconds(value: &[u8]) -> Option<f64> {
    let x: f64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    (x > 0.0 && x <= 86400.0).then_some(x)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `%XX`-decodes a path; `None` on a bad escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_digit(*b.get(i + 1)?)?;
            let lo = hex_digit(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses the request at the start of `buf` (the connection's unconsumed bytes). `max_header`
/// bounds the head (request line and headers), `max_body` the declared body length; neither is
/// read or allocated beyond. Never panics.
pub fn parse_request(buf: &[u8], max_header: usize, max_body: usize) -> Result<Parsed, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > max_header {
                return Err(HttpError::new(431, format!("request head over {max_header} bytes")));
            }
            return Ok(Parsed::Incomplete { expect_continue: false });
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(431, format!("more than {MAX_HEADERS} headers")));
        }
        Err(e) => return Err(HttpError::new(400, format!("malformed request: {e}"))),
    };
    if head_len > max_header {
        return Err(HttpError::new(431, format!("request head over {max_header} bytes")));
    }
    let version = req.version.unwrap_or(1);
    let mut keep_alive = version >= 1;
    let mut length: Option<usize> = None;
    let mut expect_continue = false;
    let mut timeout = 0.0;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, "close") {
                keep_alive = false;
            } else if has_token(h.value, "keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::new(501, "Transfer-Encoding (chunked) is not supported: send Content-Length"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value).ok_or_else(|| HttpError::new(400, "bad Content-Length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(HttpError::new(400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = has_token(h.value, "100-continue");
        } else if name.eq_ignore_ascii_case(TIMEOUT_HEADER) {
            timeout = timeout_seconds(h.value).ok_or_else(|| {
                HttpError::new(400, format!("bad {TIMEOUT_HEADER} header (seconds expected: a number above 0 and at most 86400)"))
            })?;
        }
    }
    let length = length.unwrap_or(0);
    if length > max_body {
        return Err(HttpError::new(413, format!("body of {length} bytes, over {max_body}")));
    }
    let total = head_len.saturating_add(length);
    let Some(body) = buf.get(head_len..total) else {
        let expect_continue = expect_continue && version >= 1 && buf.len() == head_len;
        return Ok(Parsed::Incomplete { expect_continue });
    };
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let route = route(method, target, body);
    Ok(Parsed::Complete(Request { consumed: total, keep_alive, timeout, route }))
}

fn refuse(status: u16, error: &'static str, message: impl Into<String>) -> Route {
    Route::Refuse { status, error, message: message.into() }
}

fn route(method: &str, target: &str, body: &[u8]) -> Route {
    // absolute-form targets (`http://host/path`) are reduced to the path
    let mut path = target;
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            path = rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    match method {
        "POST" => {}
        "GET" if path == "/health" => return Route::Health,
        "GET" if path == "/metrics" => return Route::Metrics,
        "GET" if path == "/_luact" || path == "/_luact/" || path == "/_luact/index.html" => return Route::Dashboard,
        "GET" if path == "/_luact/state.json" => {
            return match super::query::parse(target) {
                Ok(q) => Route::DashboardState { after: super::query::get(&q, "after").map(str::to_string) },
                Err(e) => refuse(400, "bad_request", e),
            };
        }
        _ => return refuse(405, "method_not_allowed", format!("{method} {path}: only POST /<actor path>/<method> (and GET /health)")),
    }
    let Some(path) = percent_decode(path) else {
        return refuse(400, "bad_request", "bad percent-encoding in the path");
    };
    let (vid, name) = path.rsplit_once('/').unwrap_or(("", ""));
    if !vid.starts_with('/') || vid.len() < 2 || name.is_empty() {
        return refuse(404, "not_found", format!("{path}: expected /<actor path>/<method>"));
    }
    let args = if body.iter().all(|b| b.is_ascii_whitespace()) {
        Vec::new()
    } else {
        let json: serde_json::Value = match serde_json::from_slice(body) {
            Ok(j) => j,
            Err(e) => return refuse(400, "bad_request", format!("the body is not valid JSON: {e}")),
        };
        match sbuf::args_from_json(&json) {
            Some(Ok(args)) => args,
            Some(Err(e)) => return refuse(400, "bad_request", format!("bad arguments: {e}")),
            None => return refuse(400, "bad_request", "the body must be a JSON array of arguments"),
        }
    };
    Route::Call { vid: vid.to_string(), method: name.to_string(), args }
}

impl Route {
    /// What `GET /metrics` gets from a listener that does not serve the metrics.
    pub fn metrics_refused() -> Route {
        refuse(404, "not_found", "/metrics is not enabled on this listener (luact.listen's 'metrics' option)")
    }

    /// What `GET /_luact/...` gets from a listener that does not serve the dashboard.
    pub fn dashboard_refused() -> Route {
        refuse(404, "not_found", "/_luact/ is not enabled on this listener (luact.listen's 'dashboard' option)")
    }

    /// The call `GET /_luact/state.json[?after=NAME]` becomes: method `state` of the reserved
    /// path `/_luact` (with NAME as its one argument), which lua/luact/listener.lua answers (with
    /// lua/luact/dashboard.lua) only on a listener that serves the dashboard.
    pub fn dashboard_state_call(after: Option<String>) -> Route {
        let args = after.map(|a| vec![Value::Str(a.into_bytes())]).unwrap_or_default();
        Route::Call { vid: DASHBOARD_PATH.to_string(), method: "state".to_string(), args }
    }
}

/// The path the dashboard's state call goes to (see [`Route::dashboard_state_call`]).
pub const DASHBOARD_PATH: &str = "/_luact";

/// The dashboard: one page, its script and style inline (no build step, nothing from elsewhere).
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// 200 with the dashboard's page. The page may run only its own inline script and style and
/// fetch only from this origin.
pub fn dashboard_response(keep_alive: bool) -> Vec<u8> {
    let headers: &[(&str, &str)] = &[
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"),
    ];
    build(200, "text/html; charset=utf-8", headers, DASHBOARD_HTML.as_bytes(), keep_alive)
}

/// 200 with the metrics in the OpenMetrics text format.
pub fn metrics_response(text: &str, keep_alive: bool) -> Vec<u8> {
    build(200, "application/openmetrics-text; version=1.0.0; charset=utf-8", &[], text.as_bytes(), keep_alive)
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec())
}

fn build(status: u16, content_type: &str, extra: &[(&str, &str)], body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    out.extend_from_slice(format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", body.len()).as_bytes());
    for (name, value) in extra {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(if keep_alive { b"Connection: keep-alive\r\n\r\n" } else { b"Connection: close\r\n\r\n" });
    out.extend_from_slice(body);
    out
}

/// A complete response with a JSON body.
pub fn response(status: u16, json_body: &serde_json::Value, keep_alive: bool) -> Vec<u8> {
    build(status, "application/json", &[], &json_bytes(json_body), keep_alive)
}

/// 200 with the results of a call as a JSON array (`Nil` results are `null`).
pub fn results_response(results: &[Value], keep_alive: bool) -> Vec<u8> {
    let body = serde_json::Value::Array(results.iter().map(sbuf::to_json).collect());
    response(200, &body, keep_alive)
}

/// The error of a call: status from [`ERROR_STATUS`], body `{"error": name, "message": message}`.
pub fn error_response(name: &str, message: &str, keep_alive: bool) -> Vec<u8> {
    response(status_for(name), &json!({ "error": name, "message": message }), keep_alive)
}

/// The response for a call's reply: `ok` with its results, or a failure whose first value is
/// the error (a luact exception; anything else, e.g. a string raised with `error()`, is reported
/// as `actor_error` with its text).
pub fn reply_response(ok: bool, values: &[Value], keep_alive: bool) -> Vec<u8> {
    if ok {
        return results_response(values, keep_alive);
    }
    let err = values.first().unwrap_or(&Value::Nil);
    let (name, message) = sbuf::exception_of(err).unwrap_or_else(|| {
        let text = match err {
            Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
            other => sbuf::to_json(other).to_string(),
        };
        ("actor_error".to_string(), text)
    });
    error_response(&name, &message, keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: usize = 8 * 1024;
    const B: usize = 1024 * 1024;

    fn post(path: &str, body: &str, extra: &str) -> Vec<u8> {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    fn complete(buf: &[u8]) -> Request {
        match parse_request(buf, H, B) {
            Ok(Parsed::Complete(r)) => r,
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    fn err_status(buf: &[u8], max_header: usize, max_body: usize) -> u16 {
        match parse_request(buf, max_header, max_body) {
            Err(e) => e.status,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn refused(buf: &[u8]) -> u16 {
        match complete(buf).route {
            Route::Refuse { status, .. } => status,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// (status, headers lowercased, body) of a response we built.
    fn read_response(bytes: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = r.parse(bytes) else { panic!("bad response") };
        let hs: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        let len: usize = hs.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.parse().unwrap()).unwrap();
        assert_eq!(bytes.len() - n, len, "Content-Length matches the body");
        (r.code.unwrap(), hs, bytes[n..].to_vec())
    }

    fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
        hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_call() {
        let buf = post("/system/frontend/hoge", r#"[1, "a", null, {"k": [true]}]"#, "");
        let r = complete(&buf);
        assert_eq!(r.consumed, buf.len());
        assert!(r.keep_alive);
        let Route::Call { vid, method, args } = r.route else { panic!() };
        assert_eq!((vid.as_str(), method.as_str()), ("/system/frontend", "hoge"));
        assert_eq!(args.len(), 4);
        assert_eq!(&args[..3], &[Value::Int(1), Value::str("a"), Value::Nil]);
        assert_eq!(r.consumed, buf.len());
        // empty bodies (or no Content-Length at all) are no arguments
        for buf in [post("/a/m", "", ""), post("/a/m", " \r\n", ""), b"POST /a/m HTTP/1.1\r\n\r\n".to_vec()] {
            let Route::Call { args, .. } = complete(&buf).route else { panic!() };
            assert!(args.is_empty());
        }
        // percent-decoding and query strings
        let Route::Call { vid, method, .. } = complete(&post("/my%20app/a/m?x=1", "[]", "")).route else { panic!() };
        assert_eq!((vid.as_str(), method.as_str()), ("/my app/a", "m"));
        let Route::Call { vid, .. } = complete(b"POST http://h:1/v/m HTTP/1.1\r\n\r\n").route else { panic!() };
        assert_eq!(vid, "/v");
    }

    #[test]
    fn the_dashboard_routes() {
        for path in ["/_luact", "/_luact/", "/_luact/index.html", "/_luact/?x=1"] {
            let buf = format!("GET {path} HTTP/1.1\r\n\r\n");
            assert_eq!(complete(buf.as_bytes()).route, Route::Dashboard, "{path}");
        }
        assert_eq!(complete(b"GET /_luact/state.json HTTP/1.1\r\n\r\n").route, Route::DashboardState { after: None });
        let Route::Call { vid, method, args } = Route::dashboard_state_call(None) else { panic!() };
        assert_eq!((vid.as_str(), method.as_str(), args.len()), (DASHBOARD_PATH, "state", 0));
        // the placements' page: ?after=NAME, percent-decoded; a malformed query is a 400
        let r = complete(b"GET /_luact/state.json?after=%2Froom%2F7 HTTP/1.1\r\n\r\n").route;
        assert_eq!(r, Route::DashboardState { after: Some("/room/7".into()) });
        let Route::Call { args, .. } = Route::dashboard_state_call(Some("/room/7".into())) else { panic!() };
        assert_eq!(args, vec![Value::Str(b"/room/7".to_vec())]);
        let Route::Refuse { status, .. } = complete(b"GET /_luact/state.json?after=%G0 HTTP/1.1\r\n\r\n").route else { panic!() };
        assert_eq!(status, 400);
        // another GET under /_luact is not the dashboard
        let Route::Refuse { status, .. } = complete(b"GET /_luact/x.js HTTP/1.1\r\n\r\n").route else { panic!() };
        assert_eq!(status, 405);
        let (code, hs, body) = read_response(&dashboard_response(true));
        assert_eq!(code, 200);
        assert_eq!(header(&hs, "content-type"), Some("text/html; charset=utf-8"));
        assert!(header(&hs, "content-security-policy").unwrap().contains("default-src 'none'"));
        assert!(String::from_utf8(body).unwrap().contains("/_luact/state.json"));
        let Route::Refuse { status, .. } = Route::dashboard_refused() else { panic!() };
        assert_eq!(status, 404);
    }

    #[test]
    fn a_timeout_header_sets_the_calls_timeout() {
        assert_eq!(complete(&post("/a/m", "[]", "")).timeout, 0.0);
        assert_eq!(complete(&post("/a/m", "[]", "X-Luact-Timeout: 0.25\r\n")).timeout, 0.25);
        assert_eq!(complete(&post("/a/m", "[]", "x-luact-timeout:  30 \r\n")).timeout, 30.0);
        for bad in ["soon", "0", "-1", "1e9", "NaN", ""] {
            let buf = post("/a/m", "[]", &format!("X-Luact-Timeout: {bad}\r\n"));
            assert_eq!(err_status(&buf, H, B), 400, "{bad:?}");
        }
    }

    #[test]
    fn pipelined_requests_in_one_buffer() {
        let mut buf = post("/a/one", "[1]", "");
        buf.extend_from_slice(b"GET /health HTTP/1.1\r\n\r\n");
        buf.extend_from_slice(&post("/b/c/two", "[2, 3]", "Connection: close\r\n"));
        buf.extend_from_slice(b"POST /a/thr"); // the start of a fourth
        let mut at = 0;
        let mut seen = Vec::new();
        while let Parsed::Complete(r) = parse_request(&buf[at..], H, B).unwrap() {
            at += r.consumed;
            seen.push((r.route, r.keep_alive));
        }
        assert_eq!(at, buf.len() - b"POST /a/thr".len());
        assert_eq!(seen.len(), 3);
        assert!(matches!(&seen[0], (Route::Call { method, .. }, true) if method == "one"));
        assert!(matches!(&seen[1], (Route::Health, true)));
        assert!(matches!(&seen[2], (Route::Call { vid, args, .. }, false) if vid == "/b/c" && args.len() == 2));
    }

    #[test]
    fn partial_requests_and_split_bodies() {
        let buf = post("/a/m", r#"["a body that arrives in pieces"]"#, "");
        for cut in 0..buf.len() {
            assert_eq!(parse_request(&buf[..cut], H, B), Ok(Parsed::Incomplete { expect_continue: false }), "cut {cut}");
        }
        assert_eq!(complete(&buf).consumed, buf.len());
        // Expect: 100-continue asks for CONTINUE only while no body byte is there
        let buf = post("/a/m", "[1]", "Expect: 100-continue\r\n");
        let head = buf.len() - 3;
        assert_eq!(parse_request(&buf[..head], H, B), Ok(Parsed::Incomplete { expect_continue: true }));
        assert_eq!(parse_request(&buf[..head + 1], H, B), Ok(Parsed::Incomplete { expect_continue: false }));
        assert!(matches!(complete(&buf).route, Route::Call { .. }));
        assert_eq!(&CONTINUE[..12], b"HTTP/1.1 100");
    }

    #[test]
    fn keep_alive_and_close() {
        let cases: [(&str, &str, bool); 6] = [
            ("HTTP/1.1", "", true),
            ("HTTP/1.1", "Connection: close\r\n", false),
            ("HTTP/1.1", "Connection: Upgrade, Close\r\n", false),
            ("HTTP/1.0", "", false),
            ("HTTP/1.0", "Connection: keep-alive\r\n", true),
            ("HTTP/1.1", "Connection: keep-alive\r\n", true),
        ];
        for (version, extra, want) in cases {
            let buf = format!("POST /a/m {version}\r\n{extra}Content-Length: 2\r\n\r\n[]");
            assert_eq!(complete(buf.as_bytes()).keep_alive, want, "{version} {extra:?}");
        }
        // refusals honour keep-alive, framing errors close
        let r = complete(b"GET /nope HTTP/1.1\r\n\r\n");
        let (status, hs, _) = read_response(&r.immediate_response().unwrap());
        assert_eq!((status, header(&hs, "connection"), header(&hs, "allow")), (405, Some("keep-alive"), Some("POST")));
        let (_, hs, _) = read_response(&HttpError::new(400, "x").response());
        assert_eq!(header(&hs, "connection"), Some("close"));
    }

    #[test]
    fn every_error_status() {
        // 431: a head over the limit, complete or not; too many headers
        let big = format!("POST /a/m HTTP/1.1\r\nX-Big: {}\r\n\r\n", "y".repeat(200));
        assert_eq!(err_status(big.as_bytes(), 100, B), 431);
        assert_eq!(err_status(&big.as_bytes()[..150], 100, B), 431);
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(err_status(format!("GET /health HTTP/1.1\r\n{many}\r\n").as_bytes(), H, B), 431);
        // 413: the declared length, before any body byte
        assert_eq!(err_status(b"POST /a/m HTTP/1.1\r\nContent-Length: 1025\r\n\r\n", H, 1024), 413);
        assert_eq!(err_status(b"POST /a/m HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", H, 1024), 400);
        // 501: chunked (any Transfer-Encoding)
        assert_eq!(err_status(b"POST /a/m HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n", H, B), 501);
        // 400: malformed, bad or conflicting Content-Length
        assert_eq!(err_status(b"POST /a/m HTTP/1.1\r\nBad Header\r\n\r\n", H, B), 400);
        assert_eq!(err_status(b"\x00\x01\x02 garbage\r\n\r\n", H, B), 400);
        assert_eq!(err_status(b"POST /a/m HTTP/1.1\r\nContent-Length: -1\r\n\r\n", H, B), 400);
        assert_eq!(err_status(b"POST /a/m HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", H, B), 400);
        assert_eq!(err_status(b"POST /a/m HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", H, B), 400);
        assert!(parse_request(b"POST /a/m HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n[]", H, B).is_ok());
        // routed refusals
        assert_eq!(refused(b"GET /a/m HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(refused(b"PUT /a/m HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(refused(b"HEAD /health HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(refused(&post("/hoge", "[]", "")), 404);
        assert_eq!(refused(&post("/a/", "[]", "")), 404);
        assert_eq!(refused(&post("//m", "[]", "")), 404);
        assert_eq!(refused(&post("/a%zz/m", "[]", "")), 400);
        assert_eq!(refused(&post("/a/m", "[1,", "")), 400);
        assert_eq!(refused(&post("/a/m", r#"{"a": 1}"#, "")), 400);
        assert_eq!(refused(&post("/a/m", "42", "")), 400);
        let deep = format!("[{}{}]", "[".repeat(120), "]".repeat(120));
        assert_eq!(refused(&post("/a/m", &deep, "")), 400);
        // a refused body is still consumed: the next request parses
        let mut two = post("/a/m", "not json", "");
        two.extend_from_slice(b"GET /health HTTP/1.1\r\n\r\n");
        let r = complete(&two);
        assert!(r.keep_alive);
        let (status, hs, body) = read_response(&r.immediate_response().unwrap());
        assert_eq!((status, header(&hs, "content-type")), (400, Some("application/json")));
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "bad_request");
        assert_eq!(complete(&two[r.consumed..]).route, Route::Health);
        // every framing error has a JSON body with its status
        for status in [400, 413, 431, 501] {
            let (got, hs, body) = read_response(&HttpError::new(status, "m").response());
            assert_eq!((got, header(&hs, "content-type")), (status, Some("application/json")));
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["message"], "m");
        }
    }

    #[test]
    fn health() {
        let r = complete(b"GET /health HTTP/1.1\r\n\r\n");
        let (status, hs, body) = read_response(&r.immediate_response().unwrap());
        assert_eq!((status, body.as_slice(), header(&hs, "connection")), (200, &b"ok"[..], Some("keep-alive")));
    }

    #[test]
    fn responses() {
        let (status, hs, body) = read_response(&response(200, &json!({"a": "é"}), true));
        assert_eq!((status, header(&hs, "content-type")), (200, Some("application/json")));
        assert_eq!(body, "{\"a\":\"é\"}".as_bytes());
        let (status, _, body) = read_response(&results_response(&[Value::Int(1), Value::Nil, Value::str("s")], false));
        assert_eq!((status, body.as_slice()), (200, &br#"[1,null,"s"]"#[..]));
        let (_, _, body) = read_response(&reply_response(true, &[], true));
        assert_eq!(body, b"[]");
    }

    #[test]
    fn call_errors_map_to_statuses() {
        let mut cases: Vec<(&str, u16)> = ERROR_STATUS.to_vec();
        cases.push(("actor_error", 500));
        cases.push(("something_else", 500));
        assert_eq!(status_for("actor_no_body"), 404);
        assert_eq!(status_for("actor_timeout"), 504);
        assert_eq!(status_for("actor_overload"), 503);
        assert_eq!(status_for("actor_temporary_fail"), 503);
        assert_eq!(status_for("actor_no_method"), 404);
        for (name, want) in cases {
            let exc = Value::Table(Box::new(sbuf::Table {
                meta: Some(sbuf::MT_EXCEPTION),
                array: vec![],
                hash: vec![(Value::str("name"), Value::str(name)), (Value::str("message"), Value::str("why"))],
            }));
            let (status, hs, body) = read_response(&reply_response(false, &[exc], true));
            assert_eq!(status, want, "{name}");
            assert_eq!(header(&hs, "connection"), Some("keep-alive"));
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body, json!({"error": name, "message": "why"}));
        }
        // a plain error value (error("boom")) is actor_error with its text
        let (status, _, body) = read_response(&reply_response(false, &[Value::str("boom")], false));
        assert_eq!((status, body.as_slice()), (500, &br#"{"error":"actor_error","message":"boom"}"#[..]));
        let (status, _, _) = read_response(&reply_response(false, &[], false));
        assert_eq!(status, 500);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let valid = post("/system/frontend/hoge", r#"[1, {"a": [null, 2.5]}, "x"]"#, "Connection: keep-alive\r\n");
        let alphabet = b"POST GET/ HTTP/1.1\r\n:Content-Length0123456789[]{}\",%";
        for round in 0..100_000 {
            let buf: Vec<u8> = if round % 2 == 0 {
                let mut b = valid.clone();
                for _ in 0..1 + next() % 3 {
                    let i = (next() as usize) % b.len();
                    b[i] = if next() % 2 == 0 { next() as u8 } else { alphabet[(next() as usize) % alphabet.len()] };
                }
                b.truncate((next() as usize) % (b.len() + 1));
                b
            } else {
                (0..next() % 80).map(|_| alphabet[(next() as usize) % alphabet.len()]).collect()
            };
            match parse_request(&buf, 128, 64) {
                Ok(Parsed::Complete(r)) => {
                    assert!(r.consumed <= buf.len());
                    let _ = r.immediate_response();
                }
                Ok(Parsed::Incomplete { .. }) => {}
                Err(e) => {
                    let _ = e.response();
                }
            }
        }
    }
}
