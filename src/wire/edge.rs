//! The messages at the edges of the transport, built from `sbuf` values: the header the core
//! puts in front of a listener client's call before handing it to Lua (`{"x", conn, gen, corr,
//! notify}`), the header of a reply from another node's listener (`{"xr", corr}`), and the
//! translation of call and reply bodies between luact's own encoding and the MessagePack/JSON of
//! external clients (PROTOCOL.md): a call is `[path, method, args...]` outside and the Lua array
//! `{path, method, n, args...}` inside; a reply is `{ok, n, values...}` inside and
//! `[true, values...]` / `[false, {"error": name, "message": text}]` outside.
use super::frame::{CODEC_JSON, CODEC_MSGPACK};
use super::sbuf::{self, Value};

fn int(i: u32) -> Value {
    Value::int(i as i64)
}

pub fn client_call_header(conn: u32, gen: u32, corr: u32, notify: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    sbuf::encode_array(&[Value::str("x"), int(conn), int(gen), int(corr), Value::Bool(notify)], &mut out);
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

/// An external call body (`[path, method, args...]` in MessagePack or JSON) as luact's.
pub fn call_from_codec(body: &[u8], codec: u8) -> Result<Vec<u8>, String> {
    let items: Vec<Value> = match codec {
        CODEC_MSGPACK => {
            let m = rmpv::decode::read_value(&mut &body[..]).map_err(|e| format!("bad MessagePack: {e}"))?;
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
    Ok(call_body(&String::from_utf8_lossy(path), &String::from_utf8_lossy(method), &items[2..]))
}

/// A luact reply `{ok, n, values...}`: (ok, values).
pub fn split_reply(body: &[u8]) -> Result<(bool, Vec<Value>), String> {
    let items = sbuf::decode_array(body).map_err(|e| format!("bad reply: {e}"))?;
    let ok = items.first().map(|v| v.truthy()).unwrap_or(false);
    let n = items.get(1).and_then(|v| v.as_int()).unwrap_or(0).clamp(0, items.len() as i64) as usize;
    let values = items.iter().skip(2).take(n).cloned().collect::<Vec<_>>();
    Ok((ok, values))
}

/// A luact reply in the client's codec: `[ok, values...]`.
pub fn reply_to_codec(body: &[u8], codec: u8) -> Result<Vec<u8>, String> {
    let (ok, values) = split_reply(body)?;
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

/// `[false, {"error": name, "message": text}]` in the client's codec.
pub fn error_reply(codec: u8, name: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    match codec {
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
        let inner = call_from_codec(&body, CODEC_MSGPACK).unwrap();
        let items = sbuf::decode_array(&inner).unwrap();
        assert_eq!(items[0], Value::str("/svc/echo"));
        assert_eq!(items[1], Value::str("hoge"));
        assert_eq!(items[2], Value::int(3));
        assert_eq!(items[3], Value::int(1));
        assert_eq!(items[4], Value::Nil);
        assert_eq!(items[5], Value::str("x"));

        let mut reply = Vec::new();
        sbuf::encode_array(&[Value::Bool(true), Value::int(2), Value::int(100), Value::str("ok")], &mut reply);
        let out = reply_to_codec(&reply, CODEC_MSGPACK).unwrap();
        let m = rmpv::decode::read_value(&mut &out[..]).unwrap();
        assert_eq!(m, rmpv::Value::Array(vec![true.into(), 100.into(), "ok".into()]));
    }

    #[test]
    fn malformed_calls_are_refused_with_a_reason() {
        assert!(call_from_codec(b"\xc1", CODEC_MSGPACK).is_err());
        assert!(call_from_codec(b"{}", CODEC_JSON).unwrap_err().contains("array"));
        assert!(call_from_codec(b"[1, 2]", CODEC_JSON).unwrap_err().contains("path"));
        assert!(split_reply(b"garbage").is_err());
    }
}
