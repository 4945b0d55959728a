//! The bytes on the wire between nodes and from external clients: frames (`frame`), the
//! authenticated handshake (`handshake`), LuaJIT string.buffer data <-> JSON/MessagePack values
//! (`sbuf`), and HTTP/1.1 requests for the http listener (`http`). All pure: no sockets, no
//! clocks; `src/transport.rs` drives them. The format is documented in PROTOCOL.md.
pub mod edge;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod sbuf;
