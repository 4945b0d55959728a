//! Values to and from JSON (the http:// listener's bodies), depth-bounded like the decoder.
use super::*;


/// How a non-string key is spelled as a JSON object key.
pub(super) fn key_string(k: &Value) -> String {
    match k {
        Value::Nil => "nil".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Num(x) => x.to_string(),
        Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
        Value::Table(_) => "<table>".to_string(),
    }
}

/// A Lua value as JSON (rules in the module header).
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Num(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
        Value::Str(s) => J::String(String::from_utf8_lossy(s).into_owned()),
        Value::Table(t) => {
            if let Some((name, message)) = exception_of(v) {
                let mut m = serde_json::Map::new();
                m.insert("error".into(), J::String(name));
                m.insert("message".into(), J::String(message));
                return J::Object(m);
            }
            let plain = || {
                if let Some(items) = t.sequence() {
                    return J::Array(items.into_iter().map(to_json).collect());
                }
                let mut m = serde_json::Map::new();
                if let Some((_, z)) = t.hash.iter().find(|(k, _)| matches!(k, Value::Int(0))) {
                    // key 0 first, then the array part, then the rest, in order
                    m.insert("0".into(), to_json(z));
                }
                for (i, x) in t.array.iter().enumerate() {
                    if !matches!(x, Value::Nil) {
                        m.insert((i + 1).to_string(), to_json(x));
                    }
                }
                for (k, x) in &t.hash {
                    if !matches!(k, Value::Int(0)) && !matches!(x, Value::Nil) {
                        m.insert(key_string(k), to_json(x));
                    }
                }
                J::Object(m)
            };
            match t.meta {
                Some(MT_REF) | Some(MT_NAMED_REF) => {
                    let fields = ref_slots(t).into_iter().map(|(k, x)| (k.to_string(), to_json(x))).collect();
                    let mut m = serde_json::Map::new();
                    m.insert("actor".into(), J::Object(fields));
                    J::Object(m)
                }
                Some(MT_FUNCTION) => {
                    let mut m = serde_json::Map::new();
                    m.insert("function".into(), J::Bool(true));
                    J::Object(m)
                }
                _ => plain(),
            }
        }
    }
}

/// A JSON value as a Lua value (rules in the module header); nesting beyond [`MAX_DEPTH`] is
/// refused.
pub fn from_json(j: &serde_json::Value) -> Result<Value, SbufError> {
    from_json_at(j, 0)
}

fn json_number(n: &serde_json::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::int(i)
    } else if let Some(u) = n.as_u64() {
        Value::Num(u as f64)
    } else {
        Value::number(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn from_json_at(j: &serde_json::Value, depth: usize) -> Result<Value, SbufError> {
    use serde_json::Value as J;
    Ok(match j {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => json_number(n),
        J::String(s) => Value::str(s),
        J::Array(a) => {
            if depth >= MAX_DEPTH {
                return Err(SbufError::TooDeep);
            }
            let items = a.iter().map(|x| from_json_at(x, depth + 1)).collect::<Result<_, _>>()?;
            Value::array(items)
        }
        J::Object(o) => {
            if depth >= MAX_DEPTH {
                return Err(SbufError::TooDeep);
            }
            let mut hash = Vec::with_capacity(o.len());
            for (k, x) in o {
                let v = from_json_at(x, depth + 1)?;
                if !matches!(v, Value::Nil) {
                    hash.push((Value::str(k), v));
                }
            }
            Value::Table(Box::new(Table { meta: None, array: Vec::new(), hash }))
        }
    })
}

/// The items of a JSON array as Lua values (the arguments of a call: nulls stay as `Nil`, the
/// count is `items.len()`); `None` when `j` is not an array.
pub fn args_from_json(j: &serde_json::Value) -> Option<Result<Vec<Value>, SbufError>> {
    let a = j.as_array()?;
    Some(a.iter().map(|x| from_json_at(x, 1)).collect())
}
