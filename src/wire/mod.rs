//! The bytes on the wire between nodes and from external clients: frames (`frame`), the
//! authenticated handshake (`handshake`), LuaJIT string.buffer data <-> JSON/MessagePack values
//! (`sbuf`), HTTP/1.1 requests for the http listener (`http`) and their query strings (`query`), the calls and replies of listener
//! clients (`edge`) and what those untrusted clients may send and see (`trust`). All pure: no sockets, no
//! clocks; `src/transport/` drives them. The format is documented in PROTOCOL.md.
pub mod edge;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod query;
pub mod sbuf;
pub mod trust;
