//! What crosses the boundary between a node and the outside (listener clients, which do not hold
//! the cluster secret): the checks on values coming in and the rewriting of values going out.
//!
//! - In ([`admit`]): a listener client sends plain data only. A table carrying one of luact's
//!   metatable tags (a named or URL reference, an exception, a function as bytecode) is refused,
//!   and so is an actor reference unless it carries a valid signature (`s`), i.e. unless a node
//!   of this cluster handed it out. A MessagePack/JSON client passes a reference back as the
//!   `{"actor": {"m":..,"t":..,"e":..,"l":..,"s":..}}` it received; with a valid `s` it becomes
//!   a reference again, without `s` it stays a plain table, with a wrong one it is refused.
//! - Out ([`for_outsider`]): every actor reference gets its signature, and every exception is cut
//!   down to its name and its message without file locations or a traceback.
//!
//! The signature is `HMAC-SHA256(HMAC-SHA256(secret, "luact-ref-v1"), f64 m | f64 t | f64 e |
//! f64 l)` (little-endian doubles), its first 16 bytes as 32 lowercase hex digits. Only the four
//! numbers are signed: an admitted reference is rebuilt from them, so nothing else rides along.
//! The epoch `e` is signed too, so a reference outlives its process only as a reference that
//! fails (`actor_no_body`), never as one to a stranger.
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::sbuf::{Table, Value, MAX_DEPTH, MT_EXCEPTION, MT_FUNCTION, MT_NAMED_REF, MT_REF, REF_SLOTS};

type HmacSha256 = Hmac<Sha256>;

/// The field of a reference that holds its signature.
pub const SIG_FIELD: &str = "s";
/// The slot of a reference's table that holds its signature (after m, t, e, l).
const SIG_SLOT: i64 = 5;
const SIG_HEX: usize = 32;
/// luact's metatable index of a reference by URL (`METATABLES` in lua/luact/actor/codec.lua).
pub const MT_URL_REF: u32 = 5;

/// The key that signs references (derived from the cluster secret, never the secret itself).
#[derive(Clone)]
pub struct RefKey(HmacSha256);

impl RefKey {
    pub fn new(secret: &[u8]) -> RefKey {
        // HMAC takes keys of any length: neither call can fail.
        let mut derive = HmacSha256::new_from_slice(secret).expect("any key length");
        derive.update(b"luact-ref-v1");
        let key = derive.finalize().into_bytes();
        RefKey(HmacSha256::new_from_slice(&key).expect("any key length"))
    }

    /// The signature of the reference `(m, t, e, l)`.
    pub fn sign(&self, nums: [f64; 4]) -> String {
        let mut mac = self.0.clone();
        for x in nums {
            mac.update(&x.to_le_bytes());
        }
        let tag = mac.finalize().into_bytes();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(SIG_HEX);
        for b in &tag[..SIG_HEX / 2] {
            hex.push(HEX[(b >> 4) as usize] as char);
            hex.push(HEX[(b & 15) as usize] as char);
        }
        hex
    }

    fn verify(&self, nums: [f64; 4], sig: &[u8]) -> bool {
        // Both sides are hex of the same length; compare without an early exit.
        let want = self.sign(nums);
        sig.len() == SIG_HEX && want.as_bytes().iter().zip(sig).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Int(i) => Some(*i as f64),
        Value::Num(x) if x.is_finite() => Some(*x),
        _ => None,
    }
}

/// `(m, t, e, l)` of a reference's table (array slots 1-4, `lua/luact/actor/ref.lua`), when all
/// four are numbers.
fn ref_numbers(t: &Table) -> Option<[f64; 4]> {
    Some([num(t.get_index(1))?, num(t.get_index(2))?, num(t.get_index(3))?, num(t.get_index(4))?])
}

/// The signature of a reference's table (slot 5).
fn ref_signature(t: &Table) -> Option<&[u8]> {
    t.get_index(SIG_SLOT).and_then(Value::as_bytes)
}

fn signed_ref(nums: [f64; 4], sig: String) -> Table {
    let mut array: Vec<Value> = nums.iter().map(|x| Value::number(*x)).collect();
    array.push(Value::Str(sig.into_bytes()));
    Table { meta: Some(MT_REF), array, hash: Vec::new() }
}

/// A reference's table from the `{"m", "t", "e", "l", "s"}` map a MessagePack/JSON client sends
/// back (the slots by name, see `sbuf::REF_SLOTS`).
fn ref_from_map(inner: &Table) -> Table {
    let array = REF_SLOTS.iter().map(|k| inner.get_str(k).cloned().unwrap_or(Value::Nil)).collect();
    Table { meta: Some(MT_REF), array, hash: Vec::new() }
}

fn tag_name(meta: u32) -> &'static str {
    match meta {
        MT_NAMED_REF => "a reference by name",
        MT_EXCEPTION => "an exception",
        MT_FUNCTION => "a function",
        MT_URL_REF => "a reference by URL",
        _ => "a table with a luact metatable",
    }
}

/// Checks (and rewrites) a value from a listener client; the error is the reason to send back.
/// `key` is `None` in a process without a secret: then no reference is accepted.
pub fn admit(v: &mut Value, key: Option<&RefKey>) -> Result<(), String> {
    admit_at(v, key, 0)
}

fn admit_at(v: &mut Value, key: Option<&RefKey>, depth: usize) -> Result<(), String> {
    let Value::Table(t) = v else { return Ok(()) };
    if depth > MAX_DEPTH {
        return Err(format!("tables nested deeper than {MAX_DEPTH}"));
    }
    match t.meta {
        Some(MT_REF) => {
            let sig = ref_signature(t).ok_or(
                "an actor reference that no node of this cluster handed out (unsigned): a listener client may only pass back references it received",
            )?;
            let nums = ref_numbers(t).ok_or("a malformed actor reference")?;
            let key = key.ok_or("an actor reference, which this node (not a cluster node) cannot check")?;
            if !key.verify(nums, sig) {
                return Err("a forged or altered actor reference (bad signature)".into());
            }
            **t = signed_ref(nums, String::from_utf8_lossy(sig).into_owned());
            return Ok(());
        }
        Some(meta) => {
            return Err(format!("{} cannot be sent by a listener client (plain data only)", tag_name(meta)));
        }
        None => {}
    }
    // `{"actor": {m, t, e, l, s}}` from MessagePack/JSON: a reference handed out earlier.
    if t.array.is_empty() && t.hash.len() == 1 {
        if let (Value::Str(k), Value::Table(inner)) = (&t.hash[0].0, &t.hash[0].1) {
            if k == b"actor" && inner.meta.is_none() && inner.get_str(SIG_FIELD).is_some() {
                let mut as_ref = Value::Table(Box::new(ref_from_map(inner)));
                admit_at(&mut as_ref, key, depth)?;
                *v = as_ref;
                return Ok(());
            }
        }
    }
    let Value::Table(t) = v else { return Ok(()) };
    for x in t.array.iter_mut() {
        admit_at(x, key, depth + 1)?;
    }
    for (k, x) in t.hash.iter_mut() {
        admit_at(k, key, depth + 1)?;
        admit_at(x, key, depth + 1)?;
    }
    Ok(())
}

/// Whether `v` holds anything [`for_outsider`] would change (a tagged table).
pub fn has_tags(v: &Value) -> bool {
    match v {
        Value::Table(t) => {
            t.meta.is_some()
                || t.array.iter().any(has_tags)
                || t.hash.iter().any(|(k, x)| has_tags(k) || has_tags(x))
        }
        _ => false,
    }
}

/// Rewrites a value going to a listener client: references signed (with `key`; without one they
/// go unsigned and cannot come back), exceptions reduced to `{name, message}` with locations
/// and tracebacks cut from the message.
pub fn for_outsider(v: &mut Value, key: Option<&RefKey>) {
    let Value::Table(t) = v else { return };
    match t.meta {
        Some(MT_REF) => {
            if let (Some(key), Some(nums)) = (key, ref_numbers(t)) {
                **t = signed_ref(nums, key.sign(nums));
            }
            return;
        }
        Some(MT_EXCEPTION) => {
            let name = t.get_str("name").cloned().unwrap_or(Value::str("actor_error"));
            let message = match t.get_str("message") {
                Some(Value::Str(s)) => Value::str(&public_message(&String::from_utf8_lossy(s))),
                _ => Value::str(""),
            };
            **t = Table { meta: Some(MT_EXCEPTION), array: Vec::new(), hash: vec![(Value::str("name"), name), (Value::str("message"), message)] };
            return;
        }
        _ => {}
    }
    for x in t.array.iter_mut() {
        for_outsider(x, key);
    }
    for (_, x) in t.hash.iter_mut() {
        for_outsider(x, key);
    }
}

/// Signs every actor reference in `v` (a call this process makes to another node's listener).
pub fn sign_refs(v: &mut Value, key: &RefKey) {
    let Value::Table(t) = v else { return };
    if t.meta == Some(MT_REF) {
        if let Some(nums) = ref_numbers(t) {
            **t = signed_ref(nums, key.sign(nums));
        }
        return;
    }
    for x in t.array.iter_mut() {
        sign_refs(x, key);
    }
    for (k, x) in t.hash.iter_mut() {
        sign_refs(k, key);
        sign_refs(x, key);
    }
}

/// An error message as an outsider may see it: no `stack traceback:` part and no leading
/// `file:line: ` locations (Lua's `error` prefixes them; they name the node's files).
pub fn public_message(msg: &str) -> String {
    let mut s = msg;
    if let Some(i) = s.find("stack traceback:") {
        s = &s[..i];
    }
    let mut s = s.trim_end().to_string();
    loop {
        let Some((head, rest)) = s.split_once(": ") else { break };
        let located = head
            .rsplit_once(':')
            .is_some_and(|(file, line)| !file.is_empty() && !file.contains(char::is_whitespace) && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()));
        if !located {
            break;
        }
        s = rest.to_string();
    }
    s
}

/// Refuses functions in a reply from another node's listener: bytecode from outside the cluster
/// is never loaded.
pub fn check_reply(v: &Value) -> Result<(), String> {
    match v {
        Value::Table(t) => {
            if t.meta == Some(MT_FUNCTION) {
                return Err("the listener's reply holds a function, which is not loaded from outside the cluster".into());
            }
            for x in t.array.iter().chain(t.hash.iter().flat_map(|(k, x)| [k, x])) {
                check_reply(x)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RefKey {
        RefKey::new(b"s3cret")
    }

    fn tagged(meta: u32, fields: Vec<(&str, Value)>) -> Value {
        Value::Table(Box::new(Table { meta: Some(meta), array: Vec::new(), hash: fields.into_iter().map(|(k, v)| (Value::str(k), v)).collect() }))
    }

    fn a_ref(l: i64) -> Value {
        let array = vec![Value::int(0x7f00_0002_1c21), Value::int(1), Value::int(77), Value::int(l)];
        Value::Table(Box::new(Table { meta: Some(MT_REF), array, hash: Vec::new() }))
    }

    /// The `{"m", "t", "e", "l", "s"}` map a MessagePack/JSON client sees of a reference.
    fn as_map(r: &Value) -> Table {
        let t = r.as_table().unwrap();
        let hash = REF_SLOTS.iter().enumerate().filter_map(|(i, k)| t.get_index(i as i64 + 1).map(|v| (Value::str(k), v.clone()))).collect();
        Table { meta: None, array: Vec::new(), hash }
    }

    #[test]
    fn a_reference_handed_out_comes_back_and_a_forged_one_does_not() {
        let mut out = Value::array(vec![a_ref(5)]);
        for_outsider(&mut out, Some(&key()));
        let mut back = out.clone();
        assert_eq!(admit(&mut back, Some(&key())), Ok(()));
        assert_eq!(back, out);
        // unsigned, altered, or signed with another secret
        let mut unsigned = Value::array(vec![a_ref(5)]);
        assert!(admit(&mut unsigned, Some(&key())).unwrap_err().contains("unsigned"));
        let Value::Table(t) = &out else { unreachable!() };
        let Value::Table(r) = &t.array[0] else { unreachable!() };
        let mut altered = (**r).clone();
        altered.array[3] = Value::int(6);
        let mut altered = Value::Table(Box::new(altered));
        assert_eq!(admit(&mut altered, Some(&key())), Err("a forged or altered actor reference (bad signature)".into()));
        let mut other = Value::array(vec![a_ref(5)]);
        for_outsider(&mut other, Some(&RefKey::new(b"guess")));
        assert!(admit(&mut other, Some(&key())).is_err());
        // a process without a secret accepts none
        assert!(admit(&mut out.clone(), None).is_err());
    }

    #[test]
    fn extra_fields_of_a_reference_are_dropped() {
        let mut r = a_ref(5);
        for_outsider(&mut r, Some(&key()));
        let Value::Table(t) = &mut r else { unreachable!() };
        t.hash.push((Value::str("tls"), Value::object([("ca", Value::str("/etc/shadow"))])));
        admit(&mut r, Some(&key())).unwrap();
        assert!(r.as_table().unwrap().get_str("tls").is_none());
    }

    #[test]
    fn msgpack_shape_becomes_a_reference_only_with_a_valid_signature() {
        let mut r = a_ref(9);
        for_outsider(&mut r, Some(&key()));
        let plain = as_map(&r);
        let mut wrapped = Value::object([("actor", Value::Table(Box::new(plain.clone())))]);
        admit(&mut wrapped, Some(&key())).unwrap();
        assert_eq!(wrapped, r);
        // without a signature: a plain table, as before
        let mut unsigned = Value::object([("actor", Value::object([("m", Value::int(1)), ("l", Value::int(2))]))]);
        let before = unsigned.clone();
        admit(&mut unsigned, Some(&key())).unwrap();
        assert_eq!(unsigned, before);
        // a bad signature: refused
        let mut bad = plain;
        bad.hash.retain(|(k, _)| k.as_bytes() != Some(b"s"));
        bad.hash.push((Value::str("s"), Value::str(&"0".repeat(32))));
        let mut bad = Value::object([("actor", Value::Table(Box::new(bad)))]);
        assert!(admit(&mut bad, Some(&key())).unwrap_err().contains("forged"));
    }

    #[test]
    fn tagged_tables_are_refused_with_their_kind() {
        let cases = [
            (tagged(MT_NAMED_REF, vec![("vid", Value::str("/x"))]), "a reference by name cannot be sent by a listener client (plain data only)"),
            (tagged(MT_URL_REF, vec![("addr", Value::str("127.0.0.9:1"))]), "a reference by URL cannot be sent by a listener client (plain data only)"),
            (tagged(MT_EXCEPTION, vec![("name", Value::str("x"))]), "an exception cannot be sent by a listener client (plain data only)"),
            (tagged(MT_FUNCTION, vec![("code", Value::str("\x1bLJ"))]), "a function cannot be sent by a listener client (plain data only)"),
        ];
        for (v, why) in cases {
            // nested anywhere, keys included
            let mut deep = Value::array(vec![Value::int(1), Value::object([("k", Value::array(vec![v.clone()]))])]);
            assert_eq!(admit(&mut deep, Some(&key())), Err(why.to_string()));
            let mut as_key = Value::Table(Box::new(Table { meta: None, array: Vec::new(), hash: vec![(v, Value::Bool(true))] }));
            assert_eq!(admit(&mut as_key, Some(&key())), Err(why.to_string()));
        }
    }

    #[test]
    fn exceptions_lose_locations_and_tracebacks() {
        assert_eq!(public_message("spec/nodes/serve.lua:38: remote failure"), "remote failure");
        assert_eq!(public_message("/home/u/app.lua:1: [string \"x\"]:2: boom\nstack traceback:\n\t/home/u/app.lua:1: in main"), "[string \"x\"]:2: boom");
        assert_eq!(public_message("no body: /svc/x"), "no body: /svc/x");
        assert_eq!(public_message("a: b"), "a: b");
        let mut e = tagged(MT_EXCEPTION, vec![
            ("name", Value::str("actor_runtime_error")),
            ("message", Value::str("/srv/app/actor.lua:12: remote failure")),
            ("traceback", Value::str("stack traceback:\n\t/srv/app/actor.lua:12")),
            ("args", Value::array(vec![Value::str("/srv/app/secret.lua")])),
        ]);
        for_outsider(&mut e, None);
        assert_eq!(e, tagged(MT_EXCEPTION, vec![("name", Value::str("actor_runtime_error")), ("message", Value::str("remote failure"))]));
    }

    #[test]
    fn replies_with_functions_are_refused() {
        assert!(check_reply(&Value::array(vec![Value::Bool(true), Value::int(1), a_ref(1)])).is_ok());
        let f = tagged(MT_FUNCTION, vec![("code", Value::str("x"))]);
        assert!(check_reply(&Value::array(vec![Value::Bool(true), Value::int(1), f])).is_err());
    }
}
