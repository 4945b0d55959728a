//! Frames: the unit of every luact TCP connection (node <-> node and client <-> listener).
//!
//! Owns the 12-byte header layout, the frame kinds and body codecs, encoding, and the
//! incremental `FrameDecoder` that turns arbitrary byte chunks into frames. The length limit is
//! checked on the header, before any memory is reserved for the body, and the decoder never
//! holds more than one frame (header + at most `limit - 8` body bytes). Pure: no sockets, no
//! clocks, no panics on any input. Depends on std only, so `spec/fuzz` can include this file by
//! path. The layout is documented in PROTOCOL.md: change both together.
//!
//! ```text
//! u32 len     bytes after this field (8 header bytes + body); 8 <= len <= limit
//! u8  kind    KIND_*
//! u8  codec   CODEC_*
//! u16 thread  destination thread (0 = the receiver picks)
//! u32 corr    correlation id (0 = none)
//! body        len - 8 bytes
//! ```
//! All integers little-endian.

use std::fmt;

/// Bytes in a frame header, the `len` field included.
pub const HEADER_LEN: usize = 12;
/// The smallest legal `len` field: the header bytes after `len`, with an empty body.
pub const MIN_LEN: u32 = 8;
/// The `len` limit on a node connection before it is authenticated: room for HELLO, AUTH, CLOSE.
pub const PRE_AUTH_MAX_FRAME: usize = 4 * 1024;
/// The default `len` limit once a connection is authenticated (configurable). Limits are
/// `usize` for the caller's convenience; anything above `u32::MAX` means "no limit but the
/// 32-bit length field".
#[allow(dead_code)] // read by the tests and the fuzz targets (spec/fuzz), not by the core
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// A CLOSE reason is cut to this many bytes (at a UTF-8 boundary) so that the frame always fits
/// under `PRE_AUTH_MAX_FRAME`.
pub const MAX_CLOSE_REASON: usize = 256;
/// The first reservation for a body (smaller bodies get exactly their size).
const FIRST_RESERVE: usize = 4 * 1024;

// Frame kinds (the `kind` byte). 10 and 12.. are reserved (10 is set aside for KILL); a
// decoder refuses them.
/// Handshake: version, role, node id, nonce, cluster, address (`handshake.rs`).
pub const KIND_HELLO: u8 = 1;
/// Handshake: the HMAC proving the sender knows the cluster secret (`handshake.rs`).
pub const KIND_AUTH: u8 = 2;
/// Node -> node: a message for the inbox of `thread` (body: the Lua side's bytes).
pub const KIND_MSG: u8 = 3;
/// Client -> listener: a call to a registered name, answered by a REPLY with the same corr.
pub const KIND_CALL: u8 = 4;
/// The answer to a CALL, same corr.
pub const KIND_REPLY: u8 = 5;
/// Client -> listener: a call without a reply.
pub const KIND_NOTIFY: u8 = 6;
/// Liveness probe, answered by PONG with the same corr; empty body.
pub const KIND_PING: u8 = 7;
pub const KIND_PONG: u8 = 8;
/// The sender is closing the connection; body: the reason, UTF-8 text.
pub const KIND_CLOSE: u8 = 9;
/// Node -> node: the receiver has put `corr` more messages (of `thread`, as the sender
/// addressed them) into that thread's inbox; body: their byte count, u64 little-endian. The
/// sender's credit for that thread grows back by as much (flow control per receiving thread).
pub const KIND_ACK: u8 = 11;
/// The highest kind a decoder accepts.
#[allow(dead_code)] // read by the fuzz targets (spec/fuzz), not by the core
pub const KIND_MAX: u8 = KIND_ACK;
/// A kind number this version sends or accepts (10 is reserved).
pub fn is_known_kind(kind: u8) -> bool {
    (KIND_HELLO..=KIND_CLOSE).contains(&kind) || kind == KIND_ACK
}

// Body codecs (the `codec` byte). HELLO, AUTH, PING, PONG and CLOSE carry 0; receivers ignore it.
/// LuaJIT `string.buffer` encoding (node <-> node, and luact clients).
pub const CODEC_LUACT: u8 = 0;
/// MessagePack (external clients).
pub const CODEC_MSGPACK: u8 = 1;
/// JSON text (external clients).
pub const CODEC_JSON: u8 = 2;
/// The highest codec a decoder accepts.
pub const CODEC_MAX: u8 = CODEC_JSON;

/// The upper-case name of a kind, as in PROTOCOL.md and error messages ("?" if unknown).
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_HELLO => "HELLO",
        KIND_AUTH => "AUTH",
        KIND_MSG => "MSG",
        KIND_CALL => "CALL",
        KIND_REPLY => "REPLY",
        KIND_NOTIFY => "NOTIFY",
        KIND_PING => "PING",
        KIND_PONG => "PONG",
        KIND_CLOSE => "CLOSE",
        KIND_ACK => "ACK",
        _ => "?",
    }
}

/// A frame header. `body_len` is `len - 8`. A header that came out of `FrameDecoder` or
/// `decode_header` has a known kind (`is_known_kind`) and codec (0..=CODEC_MAX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub codec: u8,
    pub thread: u16,
    pub corr: u32,
    pub body_len: u32,
}

impl Header {
    /// A header with codec 0, thread 0, corr 0 and no body: the shape of control frames.
    pub fn control(kind: u8) -> Header {
        Header { kind, codec: CODEC_LUACT, thread: 0, corr: 0, body_len: 0 }
    }
}

/// Why a frame was refused. The `Display` text is meant for the reason of a CLOSE frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// `len` below 8: not even room for the header.
    TooShort { len: u32 },
    /// `len` above the current limit; nothing was allocated for it.
    TooLong { len: u32, limit: usize },
    UnknownKind(u8),
    UnknownCodec(u8),
    /// Encoding: a body longer than `u32::MAX - 8` bytes cannot be framed.
    BodyTooLong { body_len: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::TooShort { len } => {
                write!(f, "bad frame: length {len} is below the minimum of {MIN_LEN}")
            }
            FrameError::TooLong { len, limit } => {
                write!(f, "bad frame: length {len} exceeds the limit of {limit} bytes")
            }
            FrameError::UnknownKind(k) => write!(f, "bad frame: unknown kind {k}"),
            FrameError::UnknownCodec(c) => write!(f, "bad frame: unknown codec {c}"),
            FrameError::BodyTooLong { body_len } => {
                write!(f, "frame body of {body_len} bytes is too long to encode")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// The 12 header bytes of `h` (the `len` field is `8 + h.body_len`). Kind and codec are written
/// as given: sending a kind the peer does not know makes the peer close the connection.
pub fn encode_header(h: &Header) -> Result<[u8; HEADER_LEN], FrameError> {
    let len = h
        .body_len
        .checked_add(MIN_LEN)
        .ok_or(FrameError::BodyTooLong { body_len: h.body_len as usize })?;
    let mut b = [0u8; HEADER_LEN];
    b[0..4].copy_from_slice(&len.to_le_bytes());
    b[4] = h.kind;
    b[5] = h.codec;
    b[6..8].copy_from_slice(&h.thread.to_le_bytes());
    b[8..12].copy_from_slice(&h.corr.to_le_bytes());
    Ok(b)
}

/// The kind and destination thread of the frame `buf` starts with, if its header is all there.
pub fn peek_kind_thread(buf: &[u8]) -> Option<(u8, u16)> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    Some((buf[4], u16::from_le_bytes([buf[6], buf[7]])))
}

/// Appends one frame (header then body) to `out`. The length written is `body.len()`;
/// `header.body_len` is not read. Returns the header as written; `out` is untouched on error
/// (only a body over 4 GiB fails).
pub fn write_frame(out: &mut Vec<u8>, header: &Header, body: &[u8]) -> Result<Header, FrameError> {
    let body_len = u32::try_from(body.len())
        .ok()
        .filter(|n| *n <= u32::MAX - MIN_LEN)
        .ok_or(FrameError::BodyTooLong { body_len: body.len() })?;
    let h = Header { body_len, ..*header };
    let head = encode_header(&h)?;
    out.reserve(HEADER_LEN + body.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
    Ok(h)
}

/// Appends a CLOSE frame whose body is `reason`, cut to `MAX_CLOSE_REASON` bytes at a character
/// boundary (so it always fits the pre-authentication limit).
pub fn write_close(out: &mut Vec<u8>, reason: &str) {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    // Cannot fail: the body is at most MAX_CLOSE_REASON bytes.
    let _ = write_frame(out, &Header::control(KIND_CLOSE), &reason.as_bytes()[..end]);
}

/// Parses and checks a header: `len` within `[8, limit]`, a known kind and codec.
pub fn decode_header(b: &[u8; HEADER_LEN], limit: usize) -> Result<Header, FrameError> {
    let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if len < MIN_LEN {
        return Err(FrameError::TooShort { len });
    }
    if len as usize > limit {
        return Err(FrameError::TooLong { len, limit });
    }
    let (kind, codec) = (b[4], b[5]);
    if !is_known_kind(kind) {
        return Err(FrameError::UnknownKind(kind));
    }
    if codec > CODEC_MAX {
        return Err(FrameError::UnknownCodec(codec));
    }
    Ok(Header {
        kind,
        codec,
        thread: u16::from_le_bytes([b[6], b[7]]),
        corr: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        body_len: len - MIN_LEN,
    })
}

/// Turns a byte stream, fed in chunks of any size, into frames.
///
/// `push` takes bytes only up to the end of the frame being assembled and returns how many it
/// took, so the decoder never holds more than one frame (12 header bytes + at most `limit - 8`
/// body bytes), whatever the caller feeds it. The bytes it did not take stay with the caller
/// (in the receive buffer: do not read more from the socket until they are consumed); that is
/// what keeps a connection whose frames cannot be delivered yet from buffering without bound.
///
/// ```ignore
/// let mut rest: &[u8] = &received;
/// while !rest.is_empty() {
///     match dec.decode(&mut rest) {          // = push + next
///         Ok(Some((header, body))) => handle(header, body),
///         Ok(None) => {}                     // rest is empty now: read more
///         Err(e) => return close_with(&e.to_string()),
///     }
/// }
/// ```
/// After an error the decoder is dead: `push` takes nothing and `next` repeats the error.
#[derive(Debug)]
pub struct FrameDecoder {
    limit: usize,
    head: [u8; HEADER_LEN],
    head_len: usize,
    /// The validated header of the frame being assembled, once all 12 bytes are in.
    header: Option<Header>,
    body: Vec<u8>,
    error: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder refusing frames whose `len` field exceeds `limit`.
    pub fn new(limit: usize) -> FrameDecoder {
        FrameDecoder { limit, head: [0; HEADER_LEN], head_len: 0, header: None, body: Vec::new(), error: None }
    }

    /// Changes the limit for every header not yet complete (a frame whose header is already in
    /// was accepted under the old limit and is finished under it).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes currently held (header bytes + body bytes of the frame being assembled).
    pub fn buffered(&self) -> usize {
        self.head_len + self.body.len()
    }

    /// Capacity of the internal body buffer (for tests and memory accounting).
    #[allow(dead_code)] // read by the tests and the fuzz targets (spec/fuzz), not by the core
    pub fn capacity(&self) -> usize {
        self.body.capacity()
    }

    /// True between frames: no partial frame is held.
    pub fn is_idle(&self) -> bool {
        self.buffered() == 0
    }

    /// The error that killed this decoder, if any.
    #[cfg(test)]
    pub fn error(&self) -> Option<&FrameError> {
        self.error.as_ref()
    }

    /// True when a whole frame is assembled and waits for `next`.
    pub fn is_ready(&self) -> bool {
        matches!(self.header, Some(h) if self.body.len() == h.body_len as usize)
    }

    /// Takes bytes from `input` up to the end of the current frame (or up to the end of its
    /// header, if the header is bad) and returns how many it took. Takes nothing while a complete
    /// frame waits for `next`, or after an error (which `next` then returns).
    #[must_use = "the bytes not taken must be pushed again after next()"]
    pub fn push(&mut self, input: &[u8]) -> usize {
        if self.error.is_some() || self.is_ready() {
            return 0;
        }
        let mut taken = 0;
        if self.header.is_none() {
            let n = (HEADER_LEN - self.head_len).min(input.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&input[..n]);
            self.head_len += n;
            taken = n;
            if self.head_len < HEADER_LEN {
                return taken;
            }
            match decode_header(&self.head, self.limit) {
                Ok(h) => self.header = Some(h),
                Err(e) => {
                    self.error = Some(e);
                    return taken;
                }
            }
        }
        let want = match self.header {
            Some(h) => h.body_len as usize,
            None => return taken,
        };
        let n = (want - self.body.len()).min(input.len() - taken);
        if n > 0 {
            self.grow_for(n, want);
            self.body.extend_from_slice(&input[taken..taken + n]);
            taken += n;
        }
        taken
    }

    /// The assembled frame, if there is one (its body is handed over, not copied); the error, if
    /// the stream is bad.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(Header, Vec<u8>)>, FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if !self.is_ready() {
            return Ok(None);
        }
        let h = self.header.take();
        self.head_len = 0;
        Ok(h.map(|h| (h, std::mem::take(&mut self.body))))
    }

    /// `push` then `next`: consumes from `input` until a frame is complete (returned) or `input`
    /// is used up (`Ok(None)`).
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<(Header, Vec<u8>)>, FrameError> {
        let n = self.push(input);
        *input = &input[n..];
        // One push either completes a frame, fails, or takes all of `input`.
        self.next()
    }

    /// Grows `body` for `n` more bytes, never past the frame's `want` bytes: a first reservation
    /// of at most 4 KiB, then doubling as bytes arrive, so a peer that announces a large frame
    /// and stalls holds about twice what it actually sent.
    fn grow_for(&mut self, n: usize, want: usize) {
        let need = self.body.len() + n;
        if need > self.body.capacity() {
            let target = need.max(self.body.capacity().saturating_mul(2)).max(FIRST_RESERVE).min(want);
            self.body.reserve_exact(target - self.body.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(kind: u8, codec: u8, thread: u16, corr: u32) -> Header {
        Header { kind, codec, thread, corr, body_len: 0 }
    }

    use crate::test_rng::Rng;

    fn decode_all(dec: &mut FrameDecoder, mut input: &[u8]) -> Result<Vec<(Header, Vec<u8>)>, FrameError> {
        let mut out = Vec::new();
        while !input.is_empty() {
            if let Some(f) = dec.decode(&mut input)? {
                out.push(f);
            }
        }
        Ok(out)
    }

    #[test]
    fn header_layout_is_little_endian() {
        let mut out = Vec::new();
        let h = write_frame(&mut out, &hdr(KIND_CALL, CODEC_MSGPACK, 0x0201, 0x0605_0403), b"xyz").unwrap();
        assert_eq!(h.body_len, 3);
        assert_eq!(out, [11, 0, 0, 0, 4, 1, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, b'x', b'y', b'z']);
    }

    #[test]
    fn round_trip_many_frames_in_one_chunk() {
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        for i in 0..50u32 {
            let body: Vec<u8> = (0..i * 7).map(|j| (j ^ i) as u8).collect();
            let h = hdr((i % 9 + 1) as u8, (i % 3) as u8, i as u16, i * 1000);
            let h = write_frame(&mut wire, &h, &body).unwrap();
            sent.push((h, body));
        }
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        assert_eq!(decode_all(&mut dec, &wire).unwrap(), sent);
        assert!(dec.is_idle());
    }

    #[test]
    fn fed_one_byte_at_a_time() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &hdr(KIND_MSG, CODEC_LUACT, 3, 9), b"hello").unwrap();
        write_frame(&mut wire, &hdr(KIND_PING, CODEC_LUACT, 0, 1), b"").unwrap();
        write_frame(&mut wire, &hdr(KIND_REPLY, CODEC_JSON, 1, 9), b"[true]").unwrap();
        let mut dec = FrameDecoder::new(PRE_AUTH_MAX_FRAME);
        let mut got = Vec::new();
        for byte in &wire {
            assert_eq!(dec.push(std::slice::from_ref(byte)), 1);
            if let Some((h, b)) = dec.next().unwrap() {
                got.push((h.kind, h.thread, h.corr, b));
            }
            assert!(dec.buffered() <= HEADER_LEN + 6);
        }
        assert_eq!(got, vec![
            (KIND_MSG, 3, 9, b"hello".to_vec()),
            (KIND_PING, 0, 1, vec![]),
            (KIND_REPLY, 1, 9, b"[true]".to_vec()),
        ]);
        assert!(dec.is_idle());
    }

    #[test]
    fn peek_reads_kind_and_thread_of_a_whole_header_only() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &hdr(KIND_MSG, CODEC_LUACT, 3, 9), b"body").unwrap();
        assert_eq!(peek_kind_thread(&wire), Some((KIND_MSG, 3)));
        assert_eq!(peek_kind_thread(&wire[..HEADER_LEN]), Some((KIND_MSG, 3)));
        assert_eq!(peek_kind_thread(&wire[..HEADER_LEN - 1]), None);
        assert_eq!(peek_kind_thread(&[]), None);
    }

    #[test]
    fn push_stops_at_the_end_of_a_frame() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &hdr(KIND_MSG, CODEC_LUACT, 0, 0), b"ab").unwrap();
        write_frame(&mut wire, &hdr(KIND_MSG, CODEC_LUACT, 0, 0), b"cd").unwrap();
        let mut dec = FrameDecoder::new(PRE_AUTH_MAX_FRAME);
        assert_eq!(dec.push(&wire), 14);
        assert!(dec.is_ready());
        assert_eq!(dec.push(&wire[14..]), 0, "a complete frame waits for next()");
        assert_eq!(dec.next().unwrap().unwrap().1, b"ab");
        assert_eq!(dec.push(&wire[14..]), 14);
        assert_eq!(dec.next().unwrap().unwrap().1, b"cd");
        assert_eq!(dec.next().unwrap(), None);
    }

    #[test]
    fn oversize_refused_before_allocation() {
        let mut dec = FrameDecoder::new(PRE_AUTH_MAX_FRAME);
        let mut bytes = [0u8; HEADER_LEN + 100];
        bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[4] = KIND_MSG;
        assert_eq!(dec.push(&bytes), HEADER_LEN, "nothing taken past the bad header");
        let err = dec.next().unwrap_err();
        assert_eq!(err, FrameError::TooLong { len: u32::MAX, limit: PRE_AUTH_MAX_FRAME });
        assert_eq!(err.to_string(), "bad frame: length 4294967295 exceeds the limit of 4096 bytes");
        assert_eq!(dec.capacity(), 0);
        assert_eq!(dec.error(), Some(&err));
        // Dead for good.
        assert_eq!(dec.push(&bytes), 0);
        assert!(dec.next().is_err());
    }

    #[test]
    fn limit_boundary_and_raising_after_auth() {
        let limit = PRE_AUTH_MAX_FRAME;
        let mut ok = Vec::new();
        write_frame(&mut ok, &hdr(KIND_MSG, CODEC_LUACT, 0, 0), &vec![7; limit - 8]).unwrap();
        let mut big = Vec::new();
        write_frame(&mut big, &hdr(KIND_MSG, CODEC_LUACT, 0, 0), &vec![7; limit - 7]).unwrap();
        let mut dec = FrameDecoder::new(limit);
        assert_eq!(decode_all(&mut dec, &ok).unwrap().len(), 1);
        assert_eq!(decode_all(&mut FrameDecoder::new(limit), &big).unwrap_err(),
            FrameError::TooLong { len: limit as u32 + 1, limit });
        dec.set_limit(DEFAULT_MAX_FRAME);
        assert_eq!(dec.limit(), DEFAULT_MAX_FRAME);
        assert_eq!(decode_all(&mut dec, &big).unwrap()[0].1.len(), limit - 7);
    }

    #[test]
    fn body_buffer_grows_with_the_bytes_that_arrive() {
        // A peer that announces 16 MiB and sends 10 KiB holds at most 20 KiB of our memory.
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let h = Header { body_len: DEFAULT_MAX_FRAME as u32 - 8, ..hdr(KIND_MSG, CODEC_LUACT, 0, 0) };
        let mut bytes = encode_header(&h).unwrap().to_vec();
        bytes.extend_from_slice(&[1; 10 * 1024]);
        for chunk in bytes.chunks(100) {
            assert_eq!(dec.push(chunk), chunk.len());
        }
        assert!(dec.capacity() <= 20 * 1024, "capacity {}", dec.capacity());
        assert_eq!(dec.next().unwrap(), None);
    }

    #[test]
    fn capacity_never_exceeds_the_frame() {
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        for size in [10usize, 1000, 5000, 70_000] {
            let mut wire = Vec::new();
            write_frame(&mut wire, &hdr(KIND_MSG, CODEC_LUACT, 0, 0), &vec![1; size]).unwrap();
            for chunk in wire.chunks(300) {
                assert_eq!(dec.push(chunk), chunk.len());
                assert!(dec.capacity() <= size, "size {size}: capacity {}", dec.capacity());
            }
            let (_, body) = dec.next().unwrap().unwrap();
            assert_eq!(body.len(), size);
            assert_eq!(dec.capacity(), 0, "the body was handed over");
        }
    }

    #[test]
    fn refusals() {
        let cases: [([u8; HEADER_LEN], FrameError, &str); 5] = [
            ([7, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0], FrameError::TooShort { len: 7 },
                "bad frame: length 7 is below the minimum of 8"),
            ([8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], FrameError::UnknownKind(0), "bad frame: unknown kind 0"),
            ([8, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0], FrameError::UnknownKind(10), "bad frame: unknown kind 10"),
            ([8, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0], FrameError::UnknownKind(12), "bad frame: unknown kind 12"),
            ([8, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0], FrameError::UnknownCodec(3), "bad frame: unknown codec 3"),
        ];
        for (bytes, err, text) in cases {
            let mut dec = FrameDecoder::new(PRE_AUTH_MAX_FRAME);
            assert_eq!(decode_all(&mut dec, &bytes).unwrap_err(), err);
            assert_eq!(err.to_string(), text);
        }
        assert_eq!(kind_name(KIND_AUTH), "AUTH");
        assert_eq!(kind_name(42), "?");
    }

    #[test]
    fn close_reason_is_bounded() {
        let mut out = Vec::new();
        write_close(&mut out, &"é".repeat(MAX_CLOSE_REASON)); // 2 bytes each
        let mut dec = FrameDecoder::new(PRE_AUTH_MAX_FRAME);
        let frames = decode_all(&mut dec, &out).unwrap();
        assert_eq!(frames[0].0.kind, KIND_CLOSE);
        assert_eq!(frames[0].1.len(), MAX_CLOSE_REASON);
        assert!(std::str::from_utf8(&frames[0].1).is_ok());
        let mut out = Vec::new();
        write_close(&mut out, &format!("x{}", "é".repeat(MAX_CLOSE_REASON / 2))); // 257 bytes
        assert_eq!(out.len() - HEADER_LEN, MAX_CLOSE_REASON - 1, "cut before the split character");
    }

    #[test]
    fn encode_refuses_what_cannot_be_framed() {
        let h = Header { body_len: u32::MAX - 7, ..hdr(KIND_MSG, CODEC_LUACT, 0, 0) };
        assert!(matches!(encode_header(&h), Err(FrameError::BodyTooLong { .. })));
        let h = Header { body_len: u32::MAX - 8, ..h };
        assert_eq!(&encode_header(&h).unwrap()[..4], &u32::MAX.to_le_bytes());
    }

    #[test]
    fn random_garbage_never_panics_and_stays_bounded() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut frames, mut errors) = (0, 0);
        for round in 0..5000 {
            let limit = [8, 64, PRE_AUTH_MAX_FRAME][round % 3];
            let mut dec = FrameDecoder::new(limit);
            let len = rng.below(600);
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half the time, plant plausible headers so that the body paths run too.
            if round % 2 == 0 {
                let mut i = 0;
                while i + HEADER_LEN <= data.len() {
                    let l = 8 + rng.below(80) as u32;
                    data[i..i + 4].copy_from_slice(&l.to_le_bytes());
                    data[i + 4] = 1 + rng.below(10) as u8;
                    data[i + 5] = rng.below(4) as u8;
                    i += 4 + l as usize;
                }
            }
            let mut rest: &[u8] = &data;
            loop {
                let cut = rng.below(rest.len() + 1);
                let n = dec.push(&rest[..cut]);
                assert!(n <= cut);
                rest = &rest[n..];
                assert!(dec.buffered() <= 4 + limit);
                assert!(dec.capacity() <= limit);
                match dec.next() {
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                    Ok(Some((h, b))) => {
                        frames += 1;
                        assert_eq!(b.len(), h.body_len as usize);
                        assert!(is_known_kind(h.kind) && h.codec <= CODEC_MAX);
                    }
                    Ok(None) if rest.is_empty() => break,
                    Ok(None) => {}
                }
            }
        }
        assert!(frames > 1000 && errors > 1000, "frames {frames}, errors {errors}");
    }
}
