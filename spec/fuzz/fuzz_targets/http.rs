//! Fuzz target: HTTP/1.1 requests as an http:// listener parses them (src/wire/http.rs),
//! including pipelined ones: a parse never panics, never consumes more than it was given, and
//! every request it completes either has a response at once or routes to a call.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../src/wire/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../../../src/wire/query.rs"]
mod query;
#[allow(dead_code)]
#[path = "../../../src/wire/sbuf/mod.rs"]
mod sbuf;


fuzz_target!(|input: &[u8]| {
    let mut rest = input;
    for _ in 0..64 {
        match http::parse_request(rest, 8 * 1024, 64 * 1024) {
            Ok(http::Parsed::Complete(req)) => {
                assert!(req.consumed > 0 && req.consumed <= rest.len());
                if req.immediate_response().is_none() {
                    assert!(matches!(req.route, http::Route::Call { .. }));
                }
                rest = &rest[req.consumed..];
            }
            Ok(http::Parsed::Incomplete { .. }) => return,
            Err(e) => {
                assert!(!e.response().is_empty());
                return;
            }
        }
    }
});
