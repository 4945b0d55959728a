//! A socket address of any family the sockets use (IPv4, IPv6, a Unix path) as the kernel takes
//! it: parsed from text, read back from a descriptor, printed. Shared by stream connections
//! (`conn.rs`), datagram sockets (`datagram.rs`) and the node transport.
use crate::status::{Error, Result, Status};

/// A socket address of either family, with its length (boxed in its owner: the kernel reads it
/// while a connect is in flight).
#[derive(Clone, Copy)]
pub struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl SockAddr {
    /// "a.b.c.d:port", "[ipv6]:port" or "localhost:port" (addresses only: a host name is
    /// resolved before it gets here, off the loop: lua/luact/socket.lua asks the offload pool).
    pub fn inet(s: &str) -> Result<SockAddr> {
        let bad = || Error::new(Status::BadArgument, format!("bad address '{s}' (expected a.b.c.d:port or [ipv6]:port)"));
        let sa: std::net::SocketAddr = match s.strip_prefix("localhost:") {
            Some(port) => std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port.parse::<u16>().map_err(|_| bad())?)),
            None => s.parse().map_err(|_| bad())?,
        };
        Ok(SockAddr::from_std(sa))
    }

    /// The kernel's form of an IPv4 or IPv6 address.
    pub fn from_std(sa: std::net::SocketAddr) -> SockAddr {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match sa {
            std::net::SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as u16,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            std::net::SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as u16,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        SockAddr { storage, len: len as u32 }
    }

    /// Binds socket `fd` (ours) to this address, as a listener does: with SO_REUSEADDR for an IP
    /// address (a restarted server binds again at once), and SO_REUSEPORT when `reuse_port`
    /// (several sockets, one per thread, on the same port).
    pub fn bind_listener(&self, fd: i32, reuse_port: bool) -> Result<()> {
        let one: i32 = 1;
        // SAFETY: plain setsockopt calls on a descriptor the caller owns, each reading a live
        // 4-byte int; bind reads `self.len` bytes of `self.storage`.
        unsafe {
            if self.is_inet() {
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one as *const i32 as *const _, 4);
            }
            if reuse_port {
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, &one as *const i32 as *const _, 4);
            }
            if libc::bind(fd, self.ptr(), self.len) < 0 {
                return Err(Error::new(Status::Os, format!("bind {}: {}", self.text(), std::io::Error::last_os_error())));
            }
        }
        Ok(())
    }

    /// Whether this is an IPv4 or IPv6 address (not a Unix path).
    fn is_inet(&self) -> bool {
        self.family() == libc::AF_INET || self.family() == libc::AF_INET6
    }

    /// A Unix-domain socket path.
    pub fn unix(path: &str) -> Result<SockAddr> {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_un.
        let sun = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_un) };
        let bytes = path.as_bytes();
        if bytes.is_empty() || bytes.len() >= sun.sun_path.len() || bytes.contains(&0) {
            return Err(Error::new(Status::BadArgument, format!("bad unix socket path '{path}' (1 to 107 bytes)")));
        }
        sun.sun_family = libc::AF_UNIX as u16;
        for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as u32;
        Ok(SockAddr { storage, len })
    }

    pub fn family(&self) -> i32 {
        self.storage.ss_family as i32
    }

    pub fn ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    pub fn socklen(&self) -> libc::socklen_t {
        self.len
    }

    /// No address (all zeros): a peer that could not be named.
    pub fn unknown() -> SockAddr {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        SockAddr { storage: unsafe { std::mem::zeroed() }, len: 0 }
    }

    /// Room for any address (a receive's source address lands here).
    pub fn empty() -> SockAddr {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        SockAddr { storage: unsafe { std::mem::zeroed() }, len: std::mem::size_of::<libc::sockaddr_storage>() as u32 }
    }

    pub fn storage_mut(&mut self) -> *mut libc::sockaddr_storage {
        &mut self.storage
    }

    pub fn len_for_msg(&self) -> libc::socklen_t {
        self.len
    }

    pub fn set_len(&mut self, len: libc::socklen_t) {
        self.len = len;
    }

    /// "ip:port", "[ipv6]:port" or the Unix path.
    pub fn text(&self) -> String {
        if self.family() == libc::AF_INET6 {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            format!("[{ip}]:{}", u16::from_be(sin6.sin6_port))
        } else if self.family() == libc::AF_INET {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            format!("{ip}:{}", u16::from_be(sin.sin_port))
        } else if self.family() == libc::AF_UNIX {
            // SAFETY: the family says the storage holds a sockaddr_un.
            let sun = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_un) };
            let n = sun.sun_path.iter().position(|&c| c == 0).unwrap_or(sun.sun_path.len());
            String::from_utf8_lossy(&sun.sun_path[..n].iter().map(|&c| c as u8).collect::<Vec<_>>()).into_owned()
        } else {
            String::new()
        }
    }

    pub fn of_fd(fd: i32, peer: bool) -> Option<SockAddr> {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let p = &mut storage as *mut _ as *mut libc::sockaddr;
        // SAFETY: the calls write at most `len` bytes into `storage`.
        let rc = unsafe { if peer { libc::getpeername(fd, p, &mut len) } else { libc::getsockname(fd, p, &mut len) } };
        (rc == 0).then_some(SockAddr { storage, len })
    }

    /// The IP address alone ("127.0.0.1", "::1"), or the Unix path.
    pub fn ip_text(&self) -> String {
        let text = self.text();
        if !self.is_inet() {
            return text;
        }
        let ip = text.rsplit_once(':').map_or("", |(ip, _)| ip);
        ip.trim_start_matches('[').trim_end_matches(']').to_string()
    }

    /// The port of an IP address (0 for a Unix one).
    pub fn port(&self) -> u16 {
        if self.family() == libc::AF_INET6 {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            return u16::from_be(unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) }.sin6_port);
        }
        if self.family() != libc::AF_INET {
            return 0;
        }
        // SAFETY: the family says the storage holds a sockaddr_in.
        u16::from_be(unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) }.sin_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inet_and_unix_addresses() {
        assert_eq!(SockAddr::inet("127.0.0.1:6379").unwrap().text(), "127.0.0.1:6379");
        assert_eq!(SockAddr::inet("localhost:80").unwrap().port(), 80);
        assert!(SockAddr::inet("example.com:80").is_err());
        assert!(SockAddr::inet("127.0.0.1").is_err());
        assert!(SockAddr::inet("127.0.0.1:70000").is_err());
        assert_eq!(SockAddr::unix("/tmp/x.sock").unwrap().text(), "/tmp/x.sock");
        assert!(SockAddr::unix(&"x".repeat(200)).is_err());
        assert!(SockAddr::unix("").is_err());
    }
}
