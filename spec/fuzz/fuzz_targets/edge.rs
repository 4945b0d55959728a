//! Fuzz target: a listener client's call body as the node receives it (src/wire/edge.rs and the
//! checks of src/wire/trust.rs) in each codec: it must be refused with a reason or become a
//! luact call whose arguments hold plain data and valid references only, never panic, and the
//! reply path must take whatever a call body decodes to.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../src/wire/edge.rs"]
mod edge;
#[allow(dead_code)]
#[path = "../../../src/wire/frame.rs"]
mod frame;
#[allow(dead_code)]
#[path = "../../../src/wire/sbuf/mod.rs"]
mod sbuf;
#[allow(dead_code)]
#[path = "../../../src/wire/trust.rs"]
mod trust;


fuzz_target!(|input: &[u8]| {
    let Some((&mode, body)) = input.split_first() else { return };
    let codec = mode % 3; // CODEC_LUACT, CODEC_MSGPACK, CODEC_JSON
    let key = trust::RefKey::new(b"fuzz");
    let key = if mode & 4 == 0 { Some(&key) } else { None };
    if let Ok(call) = edge::call_from_codec(body, codec, key) {
        // What reaches LuaJIT: within the depth LuaJIT takes, and with no tag but signed refs.
        let v = sbuf::decode(&call).expect("a call the edge built decodes");
        assert!(sbuf::depth(&v) <= sbuf::MAX_DEPTH);
        let mut again = v.clone();
        assert!(trust::admit(&mut again, key).is_ok(), "an admitted call admits again");
        // the reply path on the same values
        let mut reply = Vec::new();
        sbuf::encode_array(&[sbuf::Value::Bool(true), sbuf::Value::int(1), v], &mut reply);
        for c in [frame::CODEC_LUACT, frame::CODEC_MSGPACK, frame::CODEC_JSON] {
            let _ = edge::reply_to_codec(&reply, c, key);
        }
    }
});
