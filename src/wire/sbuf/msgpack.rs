//! Values to and from MessagePack (the tcp:// listener's bodies), depth-bounded like the decoder.
use super::*;


/// A Lua value as MessagePack (rules in the module header; keys keep their types).
pub fn to_msgpack(v: &Value) -> rmpv::Value {
    use rmpv::Value as M;
    match v {
        Value::Nil => M::Nil,
        Value::Bool(b) => M::Boolean(*b),
        Value::Int(i) => M::from(*i),
        Value::Num(x) => M::F64(*x),
        Value::Str(s) => match std::str::from_utf8(s) {
            Ok(text) => M::from(text),
            Err(_) => M::Binary(s.clone()),
        },
        Value::Table(t) => {
            if let Some((name, message)) = exception_of(v) {
                return M::Map(vec![(M::from("error"), M::from(name)), (M::from("message"), M::from(message))]);
            }
            let plain = || {
                if let Some(items) = t.sequence() {
                    return M::Array(items.into_iter().map(to_msgpack).collect());
                }
                let mut m = Vec::with_capacity(t.array.len() + t.hash.len());
                for (i, x) in t.array.iter().enumerate() {
                    if !matches!(x, Value::Nil) {
                        m.push((M::from(i as i64 + 1), to_msgpack(x)));
                    }
                }
                for (k, x) in &t.hash {
                    if !matches!(x, Value::Nil) {
                        m.push((to_msgpack(k), to_msgpack(x)));
                    }
                }
                M::Map(m)
            };
            match t.meta {
                Some(MT_REF) | Some(MT_NAMED_REF) => {
                    let fields = ref_slots(t).into_iter().map(|(k, x)| (M::from(k), to_msgpack(x))).collect();
                    M::Map(vec![(M::from("actor"), M::Map(fields))])
                }
                Some(MT_FUNCTION) => M::Map(vec![(M::from("function"), M::Boolean(true))]),
                _ => plain(),
            }
        }
    }
}

/// A MessagePack value as a Lua value (rules in the module header); extension types are refused.
pub fn from_msgpack(m: &rmpv::Value) -> Result<Value, SbufError> {
    from_msgpack_at(m, 0)
}

fn from_msgpack_at(m: &rmpv::Value, depth: usize) -> Result<Value, SbufError> {
    use rmpv::Value as M;
    Ok(match m {
        M::Nil => Value::Nil,
        M::Boolean(b) => Value::Bool(*b),
        M::Integer(i) => {
            if let Some(x) = i.as_i64() {
                Value::int(x)
            } else {
                Value::Num(i.as_u64().map_or(f64::NAN, |u| u as f64))
            }
        }
        M::F32(x) => Value::number(*x as f64),
        M::F64(x) => Value::number(*x),
        M::String(s) => Value::Str(s.as_bytes().to_vec()),
        M::Binary(b) => Value::Str(b.clone()),
        M::Array(a) => {
            if depth >= MAX_DEPTH {
                return Err(SbufError::TooDeep);
            }
            Value::array(a.iter().map(|x| from_msgpack_at(x, depth + 1)).collect::<Result<_, _>>()?)
        }
        M::Map(entries) => {
            if depth >= MAX_DEPTH {
                return Err(SbufError::TooDeep);
            }
            let mut hash = Vec::with_capacity(entries.len());
            // A Lua table holds a key once: a map that repeats one is refused rather than
            // handed to LuaJIT's decoder as a table with a doubled key (tables as keys are
            // distinct objects in Lua and never repeat).
            let mut seen = std::collections::HashSet::new();
            for (k, x) in entries {
                let k = from_msgpack_at(k, depth + 1)?;
                if !valid_key(&k) {
                    return Err(SbufError::BadKey);
                }
                if !matches!(k, Value::Table(_)) {
                    let mut bytes = Vec::new();
                    encode(&k, &mut bytes);
                    if !seen.insert(bytes) {
                        return Err(SbufError::DuplicateKey);
                    }
                }
                let v = from_msgpack_at(x, depth + 1)?;
                if !matches!(v, Value::Nil) {
                    hash.push((k, v));
                }
            }
            Value::Table(Box::new(Table { meta: None, array: Vec::new(), hash }))
        }
        M::Ext(_, _) => return Err(SbufError::Unsupported("a MessagePack extension type")),
    })
}

/// Reads exactly one MessagePack value from `bytes` (rmpv never preallocates from a declared
/// length; nesting is cut just beyond [`MAX_DEPTH`], which [`from_msgpack`] then enforces).
pub fn decode_msgpack(bytes: &[u8]) -> Result<rmpv::Value, SbufError> {
    let mut rd = bytes;
    // rmpv counts a string's bytes as one more level
    let v = rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH + 2)
        .map_err(|e| SbufError::BadMsgpack(e.to_string()))?;
    if !rd.is_empty() {
        return Err(SbufError::Trailing(rd.len()));
    }
    Ok(v)
}

/// Appends the MessagePack bytes of `v` to `out`.
#[cfg(test)]
pub fn encode_msgpack(v: &rmpv::Value, out: &mut Vec<u8>) {
    // writing into a Vec cannot fail
    let _ = rmpv::encode::write_value(out, v);
}
