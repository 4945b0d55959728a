//! Fuzz target: `FrameDecoder` fed arbitrary bytes in arbitrary chunks, under an arbitrary limit.
//! Checks: no panic, the decoder holds at most one frame, every frame re-encodes to exactly the
//! bytes it was decoded from, and chunking does not change the result.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../src/wire/frame.rs"]
mod frame;

use frame::{FrameDecoder, FrameError, Header};

/// Decodes `data` cut into chunks whose sizes come from `cuts`; returns the frames, the error
/// (if any) and how many bytes were consumed.
fn run(data: &[u8], cuts: &[u8], limit: usize) -> (Vec<(Header, Vec<u8>)>, Option<FrameError>, usize) {
    let mut dec = FrameDecoder::new(limit);
    let mut frames = Vec::new();
    let mut rest = data;
    let mut i = 0;
    loop {
        let want = if cuts.is_empty() { rest.len() } else { cuts[i % cuts.len()] as usize + 1 };
        i += 1;
        let chunk = &rest[..want.min(rest.len())];
        let n = dec.push(chunk);
        assert!(n <= chunk.len());
        rest = &rest[n..];
        assert!(dec.buffered() <= frame::HEADER_LEN + limit.saturating_sub(8));
        assert!(dec.capacity() <= limit);
        match dec.next() {
            Err(e) => {
                assert_eq!(dec.push(rest), 0, "a failed decoder takes nothing");
                return (frames, Some(e), data.len() - rest.len());
            }
            Ok(Some((h, body))) => {
                assert_eq!(body.len(), h.body_len as usize);
                assert!((1..=frame::KIND_MAX).contains(&h.kind) && h.codec <= frame::CODEC_MAX);
                frames.push((h, body));
            }
            Ok(None) if rest.is_empty() => return (frames, None, data.len()),
            Ok(None) => {}
        }
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let limit = match input[0] & 3 {
        0 => frame::MIN_LEN as usize,
        1 => 64,
        2 => frame::PRE_AUTH_MAX_FRAME,
        _ => frame::DEFAULT_MAX_FRAME,
    };
    let ncuts = (input[1] & 7) as usize;
    let cuts = &input[2..(2 + ncuts).min(input.len())];
    let data = &input[(2 + ncuts).min(input.len())..];

    let (frames, err, consumed) = run(data, cuts, limit);
    // Whole-input decoding agrees with chunked decoding.
    let (frames1, err1, consumed1) = run(data, &[], limit);
    assert_eq!(frames, frames1);
    assert_eq!(err, err1);
    assert_eq!(consumed, consumed1);
    // Every frame re-encodes to the bytes it came from.
    let mut out = Vec::new();
    for (h, body) in &frames {
        frame::write_frame(&mut out, h, body).expect("a decoded frame re-encodes");
    }
    assert_eq!(&out[..], &data[..out.len()]);
    if let Some(e) = err {
        assert!(!e.to_string().is_empty());
        // A bad header is refused as soon as its 12 bytes are in.
        assert_eq!(consumed, out.len() + frame::HEADER_LEN);
    }
});
