//! The messages at the edges of the transport, built from `sbuf` values: the header the core
//! puts in front of a listener client's call before handing it to Lua (`{"x", conn, gen, corr,
//! notify, port, timeout}`), the header of a reply from another node's listener (`{"xr", corr}`), and the
//! translation of call and reply bodies between luact's own encoding and the MessagePack/JSON of
//! external clients (PROTOCOL.md): a call is `[path, method, args...]` outside and the Lua array
//! `{path, method, n, args...}` inside; a reply is `{ok, n, values...}` inside and
//! `[true, values...]` / `[false, {"error": name, "message": text}]` outside.
use super::frame::{CODEC_JSON, CODEC_LUACT, CODEC_MSGPACK};
use super::sbuf::{self, Value};
use super::trust::{self, RefKey};

/// Most arguments a listener call may carry (LuaJIT cannot pass many more to a function; a call
/// with more is refused with a reply, never dropped).
pub const MAX_ARGS: usize = 4096;
/// Deepest nesting of tables in a listener call's arguments: the call body wraps them in one
/// more table, and LuaJIT's decoder refuses anything beyond `sbuf::MAX_DEPTH` levels.
pub const MAX_ARG_DEPTH: usize = sbuf::MAX_DEPTH - 2;

fn int(i: u32) -> Value {
    Value::int(i as i64)
}

/// `{"x", conn, gen, corr, notify, port, timeout}`: `port` is the listener's (its calls' default
/// timeout is set per listener in Lua), `timeout` the seconds the client asked for (0: none).
pub fn client_call_header(conn: u32, gen: u32, corr: u32, notify: bool, port: u16, timeout: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    let items = [Value::str("x"), int(conn), int(gen), int(corr), Value::Bool(notify), Value::int(port as i64), Value::number(timeout)];
    sbuf::encode_array(&items, &mut out);
    out
}

pub fn caller_reply_header(corr: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    sbuf::encode_array(&[Value::str("xr"), int(corr)], &mut out);
    out
}

/// The Lua array `{vid, method, n, args...}`.
pub fn call_body(vid: &str, method: &str, args: &[Value]) -> Vec<u8> {
    let mut items = Vec::with_capacity(3 + args.len());
    items.push(Value::str(vid));
    items.push(Value::str(method));
    items.push(Value::int(args.len() as i64));
    items.extend_from_slice(args);
    let mut out = Vec::new();
    sbuf::encode_array(&items, &mut out);
    out
}

/// Checks the arguments of a call from a listener client (count, depth, plain data and signed
/// references only: `trust::admit`).
pub fn admit_args(args: &mut [Value], key: Option<&RefKey>) -> Result<(), String> {
    if args.len() > MAX_ARGS {
        return Err(format!("too many arguments ({}, at most {MAX_ARGS})", args.len()));
    }
    for a in args.iter_mut() {
        if sbuf::depth(a) > MAX_ARG_DEPTH {
            return Err(format!("an argument nests tables deeper than {MAX_ARG_DEPTH}"));
        }
        trust::admit(a, key)?;
    }
    Ok(())
}

/// A luact-codec call body (`{vid, method, n, args...}`) from a listener client, checked as
/// `admit_args` says and re-encoded from what was checked.
pub fn call_from_luact(body: &[u8], key: Option<&RefKey>) -> Result<Vec<u8>, String> {
    let v = sbuf::decode(body).map_err(|e| format!("bad body: {e}"))?;
    let Value::Table(t) = &v else { return Err("a call is the array {path, method, n, args...}".into()) };
    if t.meta.is_some() {
        return Err("a call is the array {path, method, n, args...}".into());
    }
    let items = t.items();
    let (Some(Value::Str(path)), Some(Value::Str(method))) = (items.first(), items.get(1)) else {
        return Err("a call starts with a path and a method name (strings)".into());
    };
    let n = match items.get(2) {
        Some(Value::Int(n)) if *n >= 0 => *n as usize,
        _ => return Err("a call's third item is its argument count".into()),
    };
    if n > MAX_ARGS {
        return Err(format!("too many arguments ({n}, at most {MAX_ARGS})"));
    }
    if items.len() > 3 + n {
        return Err(format!("{} values after an argument count of {n}", items.len() - 3));
    }
    let mut args: Vec<Value> = items[3..].to_vec();
    args.resize(n, Value::Nil);
    admit_args(&mut args, key)?;
    if !trust::has_tags(&v) && sbuf::depth(&v) <= MAX_ARG_DEPTH + 1 {
        return Ok(body.to_vec()); // plain data, checked: the client's bytes are what Lua decodes
    }
    Ok(call_body(&String::from_utf8_lossy(path), &String::from_utf8_lossy(method), &args))
}

/// An external call body (`[path, method, args...]` in MessagePack or JSON) as luact's.
pub fn call_from_codec(body: &[u8], codec: u8, key: Option<&RefKey>) -> Result<Vec<u8>, String> {
    let mut items: Vec<Value> = match codec {
        CODEC_LUACT => return call_from_luact(body, key),
        CODEC_MSGPACK => {
            let m = sbuf::decode_msgpack(body).map_err(|e| e.to_string())?;
            let rmpv::Value::Array(items) = &m else { return Err("a call is an array [path, method, args...]".into()) };
            items.iter().map(sbuf::from_msgpack).collect::<Result<_, _>>().map_err(|e| e.to_string())?
        }
        CODEC_JSON => {
            let j: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
            let serde_json::Value::Array(items) = &j else { return Err("a call is an array [path, method, args...]".into()) };
            items.iter().map(sbuf::from_json).collect::<Result<_, _>>().map_err(|e| e.to_string())?
        }
        _ => return Err(format!("unknown codec {codec}")),
    };
    let (Some(Value::Str(path)), Some(Value::Str(method))) = (items.first(), items.get(1)) else {
        return Err("a call starts with a path and a method name (strings)".into());
    };
    let (path, method) = (String::from_utf8_lossy(path).into_owned(), String::from_utf8_lossy(method).into_owned());
    admit_args(&mut items[2..], key)?;
    Ok(call_body(&path, &method, &items[2..]))
}

/// A luact reply `{ok, n, values...}`: (ok, values), exactly n values: trailing nils (which the
/// Lua table does not hold) come back as `Nil`, so other languages see the count of results
/// (`[true, 1, null, null]` for `return 1, nil, nil`). n is bounded by [`MAX_ARGS`].
pub fn split_reply(body: &[u8]) -> Result<(bool, Vec<Value>), String> {
    let items = sbuf::decode_array(body).map_err(|e| format!("bad reply: {e}"))?;
    let ok = items.first().map(|v| v.truthy()).unwrap_or(false);
    let n = items.get(1).and_then(|v| v.as_int()).unwrap_or(0).clamp(0, MAX_ARGS as i64) as usize;
    let mut values = items.iter().skip(2).take(n).cloned().collect::<Vec<_>>();
    values.resize(n, Value::Nil);
    Ok((ok, values))
}

/// A luact reply `{ok, n, values...}` for a listener client: (ok, values) with references
/// signed and exceptions cut down (`trust::for_outsider`).
pub fn split_reply_for_outsider(body: &[u8], key: Option<&RefKey>) -> Result<(bool, Vec<Value>), String> {
    let (ok, mut values) = split_reply(body)?;
    for v in values.iter_mut() {
        trust::for_outsider(v, key);
    }
    Ok((ok, values))
}

/// A luact reply in the client's codec: `[ok, values...]` (MessagePack, JSON), or luact's own
/// `{ok, n, values...}`, rewritten only when it holds tagged tables.
pub fn reply_to_codec(body: &[u8], codec: u8, key: Option<&RefKey>) -> Result<Vec<u8>, String> {
    if codec == CODEC_LUACT {
        // One decode: the reply goes out as it came unless it holds tagged tables.
        if !sbuf::may_have_tags(body) {
            return Ok(body.to_vec());
        }
        let mut v = sbuf::decode(body).map_err(|e| format!("bad reply: {e}"))?;
        if !trust::has_tags(&v) {
            return Ok(body.to_vec());
        }
        trust::for_outsider(&mut v, key);
        let mut out = Vec::with_capacity(body.len() + 40);
        sbuf::encode(&v, &mut out);
        return Ok(out);
    }
    let (ok, values) = split_reply_for_outsider(body, key)?;
    let mut out = Vec::new();
    match codec {
        CODEC_MSGPACK => {
            let mut arr = vec![rmpv::Value::Boolean(ok)];
            arr.extend(values.iter().map(sbuf::to_msgpack));
            rmpv::encode::write_value(&mut out, &rmpv::Value::Array(arr)).map_err(|e| e.to_string())?;
        }
        CODEC_JSON => {
            let mut arr = vec![serde_json::Value::Bool(ok)];
            arr.extend(values.iter().map(sbuf::to_json));
            out = serde_json::to_vec(&serde_json::Value::Array(arr)).map_err(|e| e.to_string())?;
        }
        _ => return Err(format!("unknown codec {codec}")),
    }
    Ok(out)
}

/// luact's reply `{ok, n, values...}`.
pub fn luact_reply(ok: bool, values: &[Value]) -> Vec<u8> {
    let mut items = vec![Value::Bool(ok), Value::int(values.len() as i64)];
    items.extend_from_slice(values);
    let mut out = Vec::new();
    sbuf::encode_array(&items, &mut out);
    out
}

/// An exception value `{name, message}` (luact's metatable 3).
pub fn exception_value(name: &str, message: &str) -> Value {
    Value::Table(Box::new(sbuf::Table {
        meta: Some(sbuf::MT_EXCEPTION),
        array: Vec::new(),
        hash: vec![(Value::str("name"), Value::str(name)), (Value::str("message"), Value::str(message))],
    }))
}

/// `[false, {"error": name, "message": text}]` in the client's codec (luact's codec: the reply
/// `{false, 1, exception}`).
/// The codec of the answer to a refused call in `codec`: its own, except a codec-0 body that
/// LuaJIT's format does not even decode (a client that is not luact, which could not read a
/// codec-0 answer): JSON.
pub fn reply_codec_for_refused(codec: u8, body: &[u8]) -> u8 {
    if codec == CODEC_LUACT && sbuf::decode(body).is_err() {
        return CODEC_JSON;
    }
    codec
}

pub fn error_reply(codec: u8, name: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    match codec {
        CODEC_LUACT => out = luact_reply(false, &[exception_value(name, message)]),
        CODEC_JSON => {
            let j = serde_json::json!([false, {"error": name, "message": message}]);
            out = serde_json::to_vec(&j).unwrap_or_default();
        }
        _ => {
            let m = rmpv::Value::Array(vec![
                rmpv::Value::Boolean(false),
                rmpv::Value::Map(vec![
                    (rmpv::Value::from("error"), rmpv::Value::from(name)),
                    (rmpv::Value::from("message"), rmpv::Value::from(message)),
                ]),
            ]);
            let _ = rmpv::encode::write_value(&mut out, &m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_call_becomes_a_luact_call_and_the_reply_comes_back() {
        let mut body = Vec::new();
        let call = rmpv::Value::Array(vec!["/svc/echo".into(), "hoge".into(), 1.into(), rmpv::Value::Nil, "x".into()]);
        rmpv::encode::write_value(&mut body, &call).unwrap();
        let inner = call_from_codec(&body, CODEC_MSGPACK, None).unwrap();
        let items = sbuf::decode_array(&inner).unwrap();
        assert_eq!(items[0], Value::str("/svc/echo"));
        assert_eq!(items[1], Value::str("hoge"));
        assert_eq!(items[2], Value::int(3));
        assert_eq!(items[3], Value::int(1));
        assert_eq!(items[4], Value::Nil);
        assert_eq!(items[5], Value::str("x"));

        let mut reply = Vec::new();
        sbuf::encode_array(&[Value::Bool(true), Value::int(2), Value::int(100), Value::str("ok")], &mut reply);
        let out = reply_to_codec(&reply, CODEC_MSGPACK, None).unwrap();
        let m = rmpv::decode::read_value(&mut &out[..]).unwrap();
        assert_eq!(m, rmpv::Value::Array(vec![true.into(), 100.into(), "ok".into()]));
    }

    #[test]
    fn a_reply_keeps_its_count_of_results() {
        // `return 1, nil, nil` is { true, 3, 1 } in Lua (the nils are no table slots)
        let mut reply = Vec::new();
        sbuf::encode_array(&[Value::Bool(true), Value::int(3), Value::int(1)], &mut reply);
        let out = reply_to_codec(&reply, CODEC_JSON, None).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[true,1,null,null]");
        let mut none = Vec::new();
        sbuf::encode_array(&[Value::Bool(true), Value::int(2)], &mut none);
        assert_eq!(String::from_utf8(reply_to_codec(&none, CODEC_JSON, None).unwrap()).unwrap(), "[true,null,null]");
    }

    #[test]
    fn a_codec_0_call_that_is_not_string_buffer_data_is_answered_in_json() {
        assert_eq!(reply_codec_for_refused(CODEC_LUACT, b"[\"/svc/echo\", \"hoge\"]"), CODEC_JSON);
        let mut valid = Vec::new();
        sbuf::encode_array(&[Value::str("/a"), Value::str("m"), Value::int(5000)], &mut valid);
        assert_eq!(reply_codec_for_refused(CODEC_LUACT, &valid), CODEC_LUACT);
        assert_eq!(reply_codec_for_refused(CODEC_MSGPACK, b"\xc1"), CODEC_MSGPACK);
    }

    #[test]
    fn malformed_calls_are_refused_with_a_reason() {
        assert!(call_from_codec(b"\xc1", CODEC_MSGPACK, None).is_err());
        assert!(call_from_codec(b"{}", CODEC_JSON, None).unwrap_err().contains("array"));
        assert!(call_from_codec(b"[1, 2]", CODEC_JSON, None).unwrap_err().contains("path"));
        assert!(split_reply(b"garbage").is_err());
    }
}
