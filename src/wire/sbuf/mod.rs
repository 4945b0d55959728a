//! LuaJIT `string.buffer` serialization <-> values. Owns the only Rust code that reads or writes
//! the bytes of Lua messages, used at the edges (the http:// listener's JSON and the external
//! protocol's MessagePack); the internal path between VMs never parses them.
//! (This file: the values, their string.buffer encoder and decoder; `json.rs` and `msgpack.rs`
//! map them to and from JSON and MessagePack; `tests.rs` tests them all.)
//!
//! Format (LuaJIT doc "String Buffer Library", "Serialization Format Specification"; checked
//! against `luajit` 2.1 on x86-64 by the tests below):
//!
//! ```text
//! u124   = byte < 0xe0 | 0xe0..0xfe byte (((b0 & 0x1f) << 8) + b1 + 0xe0) | 0xff u32-le
//! object = 0x00 nil | 0x01 false | 0x02 true | 0x03..0x05 lightuserdata
//!        | 0x06 int32-le | 0x07 double-le
//!        | 0x08 {} | 0x09 hash | 0x0a array-from-0 | 0x0b array-from-0 hash
//!        | 0x0c array-from-1 | 0x0d array-from-1 hash     (array = u124 narray, then values;
//!                                                          hash = u124 nhash, then key value)
//!        | 0x0e u124 mt-index table                       (metatable dictionary reference)
//!        | 0x0f u124 string-index                         (string dictionary reference)
//!        | 0x10 int64 | 0x11 uint64 | 0x12 complex         (cdata)
//!        | u124(0x20 + len) bytes                         (string)
//! ```
//! `narray` counts array slots *including* slot 0; "from-1" forms (0x0c/0x0d) do not write slot 0.
//! LuaJIT on x86-64 (no dual-number mode) writes every number as 0x07 double; 0x06 int32 is only
//! written by dual-number builds (ARM, ...). We read both and write doubles, so our bytes equal
//! LuaJIT's for scalars and arrays (hash order differs: it follows LuaJIT's node layout).
//!
//! Why an own [`Value`] and not `serde_json::Value` or `rmpv::Value`: a Lua value has binary
//! strings, tables with non-string keys and holes, and luact's metatable tags (actor references,
//! exceptions), none of which either type holds without a convention; both map *to and from* this
//! one ([`to_json`], [`from_json`], [`to_msgpack`], [`from_msgpack`]).
//!
//! Mapping to JSON / MessagePack (same rules for both):
//! - nil <-> null; booleans; numbers: an integral double with |x| <= 2^53 is an integer
//!   ([`Value::Int`]), others stay doubles; JSON cannot hold NaN/inf: they become null. An incoming
//!   integer beyond +-2^53 becomes the nearest double (Lua numbers are doubles).
//! - strings: JSON gets the UTF-8 text (invalid bytes replaced by U+FFFD); MessagePack gets `str`
//!   when valid UTF-8, else `bin`. Both `str` and `bin` become Lua strings.
//! - a table whose keys are exactly 1..n (n >= 1) with no hole -> array; any other table -> an
//!   object / map. JSON object keys are strings, so other keys are stringified (integers in
//!   decimal, `true`/`false`, doubles with Rust's `{}`, tables as `"<table>"`; on collision the
//!   later key wins); MessagePack keeps keys as they are. The empty table is `{}` / an empty map.
//! - JSON arrays / MessagePack arrays -> Lua arrays from index 1, null items become holes (nil):
//!   the count is lost, so messages carry it explicitly (see [`encode_call`], [`array_items`]).
//!   Objects / maps -> tables (null values are dropped: a Lua table cannot hold nil; a null or NaN
//!   map key is refused).
//! - luact's metatables (registered by index in `lua/luact/actor/codec.lua`, append only):
//!   1 actor reference `{m,t,e,l[,s]}` (array slots: a reference keeps every string key free
//!   for method names) -> `{"actor": {"m":..,"t":..,"e":..,"l":..[,"s":..]}}`;
//!   2 named reference `{vid}` -> `{"actor": {"vid": ..}}`;
//!   3 exception `{name,message,traceback,...}` -> `{"error": name, "message": message}`
//!   (a plain table with `__exception`, `exception.to_table`'s shape, renders the same);
//!   4 a moved function -> `{"function": true}`; any other index: the table's contents.
//!   Incoming JSON / MessagePack never builds tagged tables: an external client cannot forge an
//!   actor reference or an exception; `{"actor": ..}` arrives as a plain table.
//!
//! Refused with an [`SbufError`] (never a panic): truncated input, trailing bytes, nesting deeper
//! than [`MAX_DEPTH`] tables, cdata (int64/uint64/complex), lightuserdata, string dictionary
//! references, unknown tags, nil or NaN table keys. Every declared length is checked against the
//! remaining input before anything is allocated, and what a table reserves up front is capped, so
//! memory stays proportional to the input. (LuaJIT's own decoder has no depth limit: bytes from
//! outside must never reach `buf:decode()` unchecked; everything built here stays within
//! [`MAX_DEPTH`].)
//!
//! MessagePack bytes: [`decode_msgpack`] / [`encode_msgpack`] wrap rmpv (which never preallocates
//! from a declared length).

use std::fmt;

mod json;
mod msgpack;
pub use json::*;
pub use msgpack::*;

/// Deepest nesting of tables accepted by [`decode`], [`from_json`] and [`from_msgpack`]: LuaJIT's
/// own encoder refuses deeper data (`LJ_SERIALIZE_DEPTH`), so nothing legitimate goes beyond.
pub const MAX_DEPTH: usize = 100;

/// Most array items or hash entries a table reserves before they are actually decoded.
const PREALLOC: usize = 1024;

/// Lua's doubles hold every integer up to this magnitude exactly.
const MAX_EXACT_INT: i64 = 1 << 53;

/// luact's metatable indices (1-based, as in `METATABLES` in `lua/luact/actor/codec.lua`).
pub const MT_REF: u32 = 1;
pub const MT_NAMED_REF: u32 = 2;

/// The names of a reference's array slots 1.. (`lua/luact/actor/ref.lua`), as other languages
/// see them: `{"actor": {"m": .., "t": .., "e": .., "l": .., "s": ..}}`.
pub const REF_SLOTS: [&str; 5] = ["m", "t", "e", "l", "s"];
pub const NAMED_REF_SLOTS: [&str; 1] = ["vid"];

/// (name, value) of a reference's slots that are set (MT_REF or MT_NAMED_REF tables).
fn ref_slots(t: &Table) -> Vec<(&'static str, &Value)> {
    let names: &[&'static str] = if t.meta == Some(MT_NAMED_REF) { &NAMED_REF_SLOTS } else { &REF_SLOTS };
    names.iter().enumerate().filter_map(|(i, k)| t.get_index(i as i64 + 1).map(|v| (*k, v))).collect()
}
pub const MT_EXCEPTION: u32 = 3;
pub const MT_FUNCTION: u32 = 4;

const TAG_NIL: u8 = 0x00;
const TAG_FALSE: u8 = 0x01;
const TAG_TRUE: u8 = 0x02;
const TAG_INT: u32 = 0x06;
const TAG_NUM: u8 = 0x07;
const TAG_TAB: u8 = 0x08;
const TAG_DICT_MT: u8 = 0x0e;
const TAG_DICT_STR: u32 = 0x0f;
const TAG_STR: u32 = 0x20;

/// A Lua value as string.buffer carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    /// An integral number with |n| <= 2^53 (decoded numbers are normalized to this).
    Int(i64),
    /// Any other number (fractional, huge, -0.0, inf, NaN).
    Num(f64),
    /// Lua strings are bytes.
    Str(Vec<u8>),
    Table(Box<Table>),
}

/// A Lua table: `array[i]` is `t[i + 1]` (a `Nil` item is a hole), `hash` holds every other key
/// (including integer keys outside the array, and key 0). `meta` is luact's metatable index
/// (1-based, see `MT_*`), `None` for a plain table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub meta: Option<u32>,
    pub array: Vec<Value>,
    pub hash: Vec<(Value, Value)>,
}

/// Why bytes or a value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SbufError {
    /// The input ends inside a value (or a declared length exceeds what is left).
    Truncated,
    /// Bytes remain after the top-level value.
    Trailing(usize),
    /// Tables nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A tag this format does not define.
    BadTag(u32),
    /// A value luact does not carry at the edges (cdata, lightuserdata, dictionary strings, a
    /// MessagePack extension).
    Unsupported(&'static str),
    /// A table key that Lua cannot hold (nil or NaN).
    BadKey,
    /// A MessagePack map with the same key twice.
    DuplicateKey,
    /// Malformed MessagePack bytes ([`decode_msgpack`]).
    BadMsgpack(String),
}

impl fmt::Display for SbufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SbufError::Truncated => write!(f, "truncated data"),
            SbufError::Trailing(n) => write!(f, "{n} bytes left over after the value"),
            SbufError::TooDeep => write!(f, "tables nested deeper than {MAX_DEPTH}"),
            SbufError::BadTag(t) => write!(f, "bad tag 0x{t:02x}"),
            SbufError::Unsupported(what) => write!(f, "{what} is not supported"),
            SbufError::BadKey => write!(f, "nil or NaN table key"),
            SbufError::DuplicateKey => write!(f, "a map with the same key twice"),
            SbufError::BadMsgpack(e) => write!(f, "bad MessagePack: {e}"),
        }
    }
}

impl std::error::Error for SbufError {}

impl Value {
    /// A Lua string from text.
    pub fn str(s: &str) -> Value {
        Value::Str(s.as_bytes().to_vec())
    }

    /// A Lua number, normalized: integral and within +-2^53 -> `Int`, else `Num`.
    pub fn number(x: f64) -> Value {
        if x.fract() == 0.0 && x.abs() <= MAX_EXACT_INT as f64 && !(x == 0.0 && x.is_sign_negative()) {
            Value::Int(x as i64)
        } else {
            Value::Num(x)
        }
    }

    /// An integer as Lua holds it (beyond +-2^53: the nearest double).
    pub fn int(i: i64) -> Value {
        if (-MAX_EXACT_INT..=MAX_EXACT_INT).contains(&i) {
            Value::Int(i)
        } else {
            Value::Num(i as f64)
        }
    }

    /// A plain Lua array `{items...}`; `Nil` items are holes.
    pub fn array(items: Vec<Value>) -> Value {
        Value::Table(Box::new(Table { meta: None, array: items, hash: Vec::new() }))
    }

    /// A plain table with string keys.
    #[cfg(test)]
    pub fn object<'a>(fields: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        let hash = fields.into_iter().map(|(k, v)| (Value::str(k), v)).collect();
        Value::Table(Box::new(Table { meta: None, array: Vec::new(), hash }))
    }

    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer of an `Int` (decoding never yields an integral `Num` within +-2^53).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Lua truthiness.
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Nil | Value::Bool(false))
    }
}

impl Table {
    /// `t[key]` for a string key.
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        self.hash
            .iter()
            .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, Value::Nil))
    }

    /// `t[i]` for an integer key (array part first, then the hash part).
    pub fn get_index(&self, i: i64) -> Option<&Value> {
        if i >= 1 {
            if let Some(v) = usize::try_from(i - 1).ok().and_then(|j| self.array.get(j)) {
                return if matches!(v, Value::Nil) { None } else { Some(v) };
            }
        }
        self.hash
            .iter()
            .find(|(k, _)| matches!(k, Value::Int(x) if *x == i))
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, Value::Nil))
    }

    /// `t[1..n]` with `Nil` for holes, where n is the largest positive integer key not beyond
    /// the number of entries (so a huge key cannot make this allocate). Keys of other kinds are
    /// ignored. This is how a message array (`{kind, ..., n, args...}`) is read.
    pub fn items(&self) -> Vec<Value> {
        let bound = self.array.len() + self.hash.len();
        let mut out = self.array.clone();
        let extra: Vec<(usize, &Value)> = self
            .hash
            .iter()
            .filter_map(|(k, v)| match k {
                Value::Int(i) if *i >= 1 && (*i as u64) <= bound as u64 && !matches!(v, Value::Nil) => {
                    Some((*i as usize, v))
                }
                _ => None,
            })
            .collect();
        for (i, v) in extra {
            if out.len() < i {
                out.resize(i, Value::Nil);
            }
            if let Some(slot) = out.get_mut(i - 1) {
                if matches!(slot, Value::Nil) {
                    *slot = v.clone();
                }
            }
        }
        while matches!(out.last(), Some(Value::Nil)) {
            out.pop();
        }
        out
    }

    /// `Some(items)` when the keys are exactly 1..n, n >= 1, without holes: a JSON array.
    fn sequence(&self) -> Option<Vec<&Value>> {
        let mut n = 0usize;
        for v in &self.array {
            if matches!(v, Value::Nil) {
                return None;
            }
            n += 1;
        }
        let mut extra: Vec<(i64, &Value)> = Vec::new();
        for (k, v) in &self.hash {
            if matches!(v, Value::Nil) {
                continue;
            }
            match k {
                Value::Int(i) => extra.push((*i, v)),
                _ => return None,
            }
        }
        extra.sort_by_key(|(i, _)| *i);
        let mut out: Vec<&Value> = self.array.iter().collect();
        for (i, v) in extra {
            if i != (n as i64) + 1 {
                return None;
            }
            out.push(v);
            n += 1;
        }
        if out.is_empty() {
            None
        } else {
            Some(out)
        }
    }
}

/// The nesting depth of tables in `v` (0 for a scalar), stopping at `MAX_DEPTH + 1`.
pub fn depth(v: &Value) -> usize {
    fn go(v: &Value, d: usize) -> usize {
        match v {
            Value::Table(t) if d <= MAX_DEPTH => {
                let mut m = d + 1;
                for x in t.array.iter().chain(t.hash.iter().flat_map(|(k, v)| [k, v])) {
                    m = m.max(go(x, d + 1));
                }
                m
            }
            Value::Table(_) => d + 1,
            _ => d,
        }
    }
    go(v, 0)
}

// ---------------------------------------------------------------------------------------------
// Encoder

fn put_u124(out: &mut Vec<u8>, v: u32) {
    if v < 0xe0 {
        out.push(v as u8);
    } else if v < 0x1fe0 {
        let w = v - 0xe0;
        out.push(0xe0 | (w >> 8) as u8);
        out.push((w & 0xff) as u8);
    } else {
        out.push(0xff);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    // A string longer than the format can say (4 GiB) cannot come from any bounded input; it is
    // cut rather than written with a wrong length.
    let len = s.len().min((u32::MAX - TAG_STR) as usize);
    put_u124(out, TAG_STR + len as u32);
    out.extend_from_slice(&s[..len]);
}

fn valid_key(k: &Value) -> bool {
    match k {
        Value::Nil => false,
        Value::Num(x) => !x.is_nan(),
        _ => true,
    }
}

/// Appends the string.buffer encoding of `v` to `out` (what `buffer.encode` would give for the
/// same Lua value, up to hash order). Trailing `Nil` array items are not written (a Lua array
/// cannot end in nil), nor are hash entries with a `Nil` value or a nil/NaN key. Callers keep
/// values within [`MAX_DEPTH`] (everything built by this module is).
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.push(TAG_NIL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Int(i) => {
            out.push(TAG_NUM);
            out.extend_from_slice(&(*i as f64).to_le_bytes());
        }
        Value::Num(x) => {
            out.push(TAG_NUM);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Str(s) => put_bytes(out, s),
        Value::Table(t) => encode_table(t, out),
    }
}

fn encode_table(t: &Table, out: &mut Vec<u8>) {
    if let Some(idx) = t.meta {
        if idx >= 1 {
            out.push(TAG_DICT_MT);
            put_u124(out, idx - 1);
        }
    }
    let alen = t.array.iter().rposition(|v| !matches!(v, Value::Nil)).map_or(0, |p| p + 1);
    let alen = alen.min(u32::MAX as usize - 1);
    let live = |(k, v): &&(Value, Value)| valid_key(k) && !matches!(v, Value::Nil);
    let nhash = t.hash.iter().filter(live).count().min(u32::MAX as usize);
    let mut tag = TAG_TAB;
    if nhash > 0 {
        tag += 1;
    }
    if alen > 0 {
        tag += 4; // array from 1: slot 0 is not written
    }
    out.push(tag);
    if alen > 0 {
        put_u124(out, alen as u32 + 1);
    }
    if nhash > 0 {
        put_u124(out, nhash as u32);
    }
    for v in &t.array[..alen] {
        encode(v, out);
    }
    for (k, v) in t.hash.iter().filter(live).take(nhash) {
        encode(k, out);
        encode(v, out);
    }
}

/// The string.buffer bytes of the Lua array `{items...}`, holes (`Nil`) included.
pub fn encode_array(items: &[Value], out: &mut Vec<u8>) {
    let t = Table { meta: None, array: items.to_vec(), hash: Vec::new() };
    encode_table(&t, out);
}

/// A luact message: the Lua array `{kind, head..., n, args...}` with `n = args.len()`, so nil
/// arguments survive as holes (e.g. an external call `{"x", conn_id, corr, vid, method, n,
/// args...}` is `encode_call("x", &[conn_id, corr, vid, method], &args, out)`).
#[cfg(test)]
pub fn encode_call(kind: &str, head: &[Value], args: &[Value], out: &mut Vec<u8>) {
    let mut items = Vec::with_capacity(2 + head.len() + args.len());
    items.push(Value::str(kind));
    items.extend_from_slice(head);
    items.push(Value::int(args.len() as i64));
    items.extend_from_slice(args);
    encode_array(&items, out);
}

// ---------------------------------------------------------------------------------------------
// Decoder

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn byte(&mut self) -> Result<u8, SbufError> {
        let b = *self.buf.get(self.pos).ok_or(SbufError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SbufError> {
        if n > self.remaining() {
            return Err(SbufError::Truncated);
        }
        let s = self.buf.get(self.pos..self.pos + n).ok_or(SbufError::Truncated)?;
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SbufError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u124(&mut self) -> Result<u32, SbufError> {
        let v = self.byte()? as u32;
        if v < 0xe0 {
            Ok(v)
        } else if v != 0xff {
            Ok(((v & 0x1f) << 8) + self.byte()? as u32 + 0xe0)
        } else {
            Ok(u32::from_le_bytes(self.array::<4>()?))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, SbufError> {
        let tp = self.u124()?;
        if tp >= TAG_STR {
            let len = (tp - TAG_STR) as usize;
            return Ok(Value::Str(self.take(len)?.to_vec()));
        }
        match tp {
            0x00 => Ok(Value::Nil),
            0x01 => Ok(Value::Bool(false)),
            0x02 => Ok(Value::Bool(true)),
            0x03..=0x05 => Err(SbufError::Unsupported("lightuserdata")),
            TAG_INT => Ok(Value::Int(i32::from_le_bytes(self.array::<4>()?) as i64)),
            0x07 => Ok(Value::number(f64::from_le_bytes(self.array::<8>()?))),
            0x08..=0x0d => self.table(tp, None, depth),
            0x0e => {
                let idx = self.u124()?;
                let meta = idx.checked_add(1).ok_or(SbufError::BadTag(tp))?;
                let inner = self.u124()?;
                if !(0x08..=0x0d).contains(&inner) {
                    return Err(SbufError::BadTag(inner));
                }
                self.table(inner, Some(meta), depth)
            }
            TAG_DICT_STR => Err(SbufError::Unsupported("a string dictionary reference")),
            0x10 | 0x11 => Err(SbufError::Unsupported("int64 cdata")),
            0x12 => Err(SbufError::Unsupported("complex cdata")),
            _ => Err(SbufError::BadTag(tp)),
        }
    }

    fn table(&mut self, tp: u32, meta: Option<u32>, depth: usize) -> Result<Value, SbufError> {
        if depth >= MAX_DEPTH {
            return Err(SbufError::TooDeep);
        }
        let narray = if tp >= 0x0a { self.u124()? as usize } else { 0 };
        let nhash = if tp & 1 == 1 { self.u124()? as usize } else { 0 };
        let from_zero = tp == 0x0a || tp == 0x0b;
        // values actually written: from-0 forms write slots 0..narray, from-1 forms 1..narray
        let nvalues = if from_zero { narray } else { narray.saturating_sub(1) };
        // every value takes at least one byte, every hash entry two: check before allocating
        if nvalues > self.remaining() || nhash > self.remaining() / 2 {
            return Err(SbufError::Truncated);
        }
        // Reserve at most PREALLOC items up front: a declared count is only a claim, and nested
        // tables each claiming the whole remaining input would multiply it by the depth.
        let mut t = Table { meta, array: Vec::with_capacity(nvalues.min(PREALLOC)), hash: Vec::new() };
        if from_zero && nvalues > 0 {
            let zero = self.value(depth + 1)?;
            if !matches!(zero, Value::Nil) {
                t.hash.push((Value::Int(0), zero));
            }
            for _ in 1..nvalues {
                t.array.push(self.value(depth + 1)?);
            }
        } else {
            for _ in 0..nvalues {
                t.array.push(self.value(depth + 1)?);
            }
        }
        while matches!(t.array.last(), Some(Value::Nil)) {
            t.array.pop();
        }
        t.hash.reserve(nhash.min(PREALLOC));
        for _ in 0..nhash {
            let k = self.value(depth + 1)?;
            if !valid_key(&k) {
                return Err(SbufError::BadKey);
            }
            let v = self.value(depth + 1)?;
            if !matches!(v, Value::Nil) {
                t.hash.push((k, v));
            }
        }
        Ok(Value::Table(Box::new(t)))
    }
}

/// False when `bytes` certainly hold no table with a metatable (no byte 0x0e anywhere): a cheap
/// test before decoding a whole message just to look for tags. True may be a false alarm (the
/// byte inside a string or a number).
pub fn may_have_tags(bytes: &[u8]) -> bool {
    bytes.contains(&TAG_DICT_MT)
}

/// Decodes exactly one value from `bytes` (what `buffer.decode` does; leftover bytes are an
/// error).
pub fn decode(bytes: &[u8]) -> Result<Value, SbufError> {
    let (v, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(SbufError::Trailing(bytes.len() - used));
    }
    Ok(v)
}

/// Decodes the first value of a stream of concatenated encodings; returns it and the bytes used.
pub fn decode_prefix(bytes: &[u8]) -> Result<(Value, usize), SbufError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

/// Decodes a message array (`{kind, ..., n, args...}`) into its items `t[1..]`, holes as `Nil`
/// (see [`Table::items`]); refuses anything that is not a table.
pub fn decode_array(bytes: &[u8]) -> Result<Vec<Value>, SbufError> {
    match decode(bytes)? {
        Value::Table(t) => Ok(t.items()),
        _ => Err(SbufError::Unsupported("a message that is not a table")),
    }
}

// ---------------------------------------------------------------------------------------------
// Exceptions

/// `(name, message)` when `v` is a luact exception: a table with metatable 3, or the plain
/// `{__exception = name, message = ...}` of `exception.to_table`.
pub fn exception_of(v: &Value) -> Option<(String, String)> {
    let t = v.as_table()?;
    let name = if t.meta == Some(MT_EXCEPTION) {
        t.get_str("name")
    } else if t.meta.is_none() {
        Some(t.get_str("__exception")?)
    } else {
        None
    }?;
    let name = match name {
        Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
        _ => "actor_error".to_string(),
    };
    let message = match t.get_str("message") {
        Some(Value::Str(s)) => String::from_utf8_lossy(s).into_owned(),
        Some(other) => key_string(other),
        None => String::new(),
    };
    Some((name, message))
}

#[cfg(test)]
mod tests;
