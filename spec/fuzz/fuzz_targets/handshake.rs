//! Fuzz target: the node handshake fed frames decoded from arbitrary bytes. Mode 0: pure garbage
//! (must never authenticate). Mode 1: a genuine peer's HELLO + AUTH with fuzzer-chosen byte
//! edits (may authenticate only if every HELLO/AUTH body it saw is the genuine one).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../src/wire/frame.rs"]
mod frame;
#[allow(dead_code)]
#[path = "../../../src/wire/handshake.rs"]
mod handshake;

use frame::FrameDecoder;
use handshake::{Config, Handshake, Role};

fn config(role: Role, node_id: u64, addr: &str) -> Config {
    // a dialer dialed the other one: we are node 1, the genuine peer of mode 1 is node 2 (a
    // dialer checks that the HELLO names the node it dialed before it proves anything)
    let expect_peer = if role == Role::Dialer { Some(3 - node_id) } else { None };
    Config { role, node_id, cluster: "fuzz".into(), addr: addr.into(), secret: b"secret".to_vec(), expect_peer }
}

fn body_of(frame_bytes: &[u8]) -> Vec<u8> {
    frame_bytes[frame::HEADER_LEN..].to_vec()
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    let our_role = if mode & 2 == 0 { Role::Acceptor } else { Role::Dialer };
    let peer_role = if our_role == Role::Acceptor { Role::Dialer } else { Role::Acceptor };
    let (mut us, our_hello) = Handshake::new(config(our_role, 1, "127.0.0.1:1"), [1; 32]).unwrap();

    let (stream, genuine) = if mode & 1 == 0 {
        (rest.to_vec(), None)
    } else {
        // A genuine peer, then edits: (u16 position, xor byte) triples from the input.
        let (mut peer, peer_hello) = Handshake::new(config(peer_role, 2, "127.0.0.1:2"), [2; 32]).unwrap();
        let (h, b) = (frame::decode_header(our_hello[..12].try_into().unwrap(), usize::MAX).unwrap(), &our_hello[12..]);
        let peer_auth = peer.on_frame(&h, b).unwrap().send.unwrap();
        let mut stream = [peer_hello.clone(), peer_auth.clone()].concat();
        for edit in rest.chunks_exact(3) {
            let pos = u16::from_le_bytes([edit[0], edit[1]]) as usize;
            if pos < stream.len() {
                stream[pos] ^= edit[2];
            } else {
                stream.push(edit[2]);
            }
        }
        (stream, Some((body_of(&peer_hello), body_of(&peer_auth))))
    };

    let mut dec = FrameDecoder::new(frame::PRE_AUTH_MAX_FRAME);
    let mut input = &stream[..];
    let mut seen_hello = Vec::new();
    let mut seen_auth = Vec::new();
    while !input.is_empty() {
        match dec.decode(&mut input) {
            Ok(Some((h, body))) => {
                let result = us.on_frame(&h, &body);
                match h.kind {
                    frame::KIND_HELLO => seen_hello.push(body.clone()),
                    frame::KIND_AUTH => seen_auth.push(body.clone()),
                    _ => {}
                }
                match result {
                    Ok(step) => {
                        if step.send.is_some() {
                            assert!(step.done.is_none());
                        }
                        if let Some(peer) = step.done {
                            let (hello, auth) = genuine.as_ref().expect("garbage authenticated");
                            assert_eq!(seen_hello, vec![hello.clone()]);
                            assert_eq!(seen_auth, vec![auth.clone()]);
                            assert_eq!(peer.node_id, 2);
                            assert!(us.is_done());
                        }
                    }
                    Err(e) => {
                        assert!(!e.to_string().is_empty());
                        // Failure is final.
                        assert!(us.on_frame(&h, &body).is_err());
                        break;
                    }
                }
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
});
