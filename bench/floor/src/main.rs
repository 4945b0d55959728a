//! bench/floor: raw floors the luact benchmarks are compared with. One binary, one subcommand
//! per floor, each printing one JSON line with "impl":"floor":
//!   floor channel_pingpong [N]       two OS threads ping-pong over bounded(1) crossbeam
//!                                    channels, blocking recv (crossbeam spins briefly, then parks)
//!   floor channel_pingpong_spin [N]  the same with both threads busy-polling try_recv
//!   floor tcp_pingpong_1 [N]         one TCP loopback connection to a separate echo process,
//!                                    blocking ping-pong of 32-byte messages, rate and p50/p99 µs
//!   floor tcp_pingpong_64 [N]        64 connections to the echo process, all in flight at once,
//!                                    one epoll loop on each side, total round trips/s
//!   floor tcp_echo CONNS             the echo process (started by the two above; prints its port)
//! With `--xcpu` after N, channel_pingpong and tcp_pingpong_1 pin their two ends to CPUs 0 and 1
//! (case name gets an "_xcpu" suffix): the cost of a round trip that always crosses cores, which
//! the unpinned run only sometimes pays (the kernel may put both ends on one core).
//! Every loop stops after N round trips or MAX_SECONDS, whichever comes first. TCP subcommands
//! bind 127.0.0.1 only; the runner starts them inside `unshare -n`.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Measurement loops stop after this long even if N is not reached.
const MAX_SECONDS: f64 = 5.0;
/// The echo process gives up after this long without finishing.
const ECHO_MAX_SECONDS: u64 = 30;
/// Message size for the TCP floors.
const MSG: usize = 32;
/// Connections of tcp_pingpong_64.
const CONNS: usize = 64;

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// True when `--xcpu` was given.
fn xcpu() -> bool {
    std::env::args().any(|a| a == "--xcpu")
}

/// Pins the calling thread to `cpu`; false if the kernel refused (e.g. fewer CPUs).
fn pin(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; pid 0 means the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn case_name(base: &str) -> String {
    if xcpu() { format!("{base}_xcpu") } else { base.to_string() }
}

fn over_time(start: Instant) -> bool {
    start.elapsed().as_secs_f64() > MAX_SECONDS
}

fn emit(case: &str, n: u64, secs: f64, extra: &str) {
    println!(
        "{{\"case\":\"{case}\",\"impl\":\"floor\",\"n\":{n},\"seconds\":{secs:.6},\"rate\":{:.1}{extra}}}",
        n as f64 / secs
    );
}

// ---------------------------------------------------------------------------------------------
// Two-thread channel ping-pong

fn channel_pingpong(n: u64, spin: bool) {
    let (to_b, b_rx) = crossbeam_channel::bounded::<u64>(1);
    let (to_a, a_rx) = crossbeam_channel::bounded::<u64>(1);
    let recv = move |rx: &crossbeam_channel::Receiver<u64>| -> Option<u64> {
        if !spin {
            return rx.recv().ok();
        }
        loop {
            match rx.try_recv() {
                Ok(v) => return Some(v),
                Err(crossbeam_channel::TryRecvError::Empty) => std::hint::spin_loop(),
                Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            }
        }
    };
    let pinned = xcpu();
    if pinned {
        assert!(pin(0), "cannot pin to CPU 0");
    }
    let echo = thread::spawn(move || {
        if pinned {
            assert!(pin(1), "cannot pin to CPU 1");
        }
        // Ends when the main thread drops its sender.
        while let Some(v) = recv(&b_rx) {
            if to_a.send(v).is_err() {
                break;
            }
        }
    });
    for i in 0..1000 {
        to_b.send(i).unwrap();
        recv(&a_rx).unwrap();
    }
    let start = Instant::now();
    let mut done = 0u64;
    while done < n {
        to_b.send(done).unwrap();
        let v = recv(&a_rx).unwrap();
        debug_assert_eq!(v, done);
        done += 1;
        if done % 1024 == 0 && over_time(start) {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(to_b);
    echo.join().unwrap();
    let case = case_name(if spin { "channel_pingpong_spin" } else { "channel_pingpong" });
    emit(&case, done, secs, "");
}

// ---------------------------------------------------------------------------------------------
// TCP: the echo process

/// A minimal epoll wrapper: fds registered for EPOLLIN with their index as the token.
struct Epoll(i32);

impl Epoll {
    fn new() -> Epoll {
        // SAFETY: plain syscall, no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(fd >= 0, "epoll_create1");
        Epoll(fd)
    }
    fn add(&self, fd: i32, token: u64) {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: `ev` outlives the call; the kernel copies it.
        let rc = unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        assert_eq!(rc, 0, "epoll_ctl");
    }
    /// Fills `evs` with ready events and returns their count; waits at most `ms` milliseconds.
    fn wait(&self, evs: &mut [libc::epoll_event], ms: i32) -> usize {
        // SAFETY: `evs` is a valid buffer of `evs.len()` events.
        let rc = unsafe { libc::epoll_wait(self.0, evs.as_mut_ptr(), evs.len() as i32, ms) };
        rc.max(0) as usize
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.0) };
    }
}

/// Accepts `conns` connections on 127.0.0.1 (port printed on stdout first) and echoes all bytes
/// until every connection is closed or ECHO_MAX_SECONDS pass.
fn tcp_echo(conns: usize) {
    if let Some(cpu) = std::env::var("FLOOR_ECHO_CPU").ok().and_then(|v| v.parse().ok()) {
        assert!(pin(cpu), "cannot pin the echo process");
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    println!("{}", l.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(ECHO_MAX_SECONDS);
    let mut socks: Vec<Option<TcpStream>> = Vec::new();
    for _ in 0..conns {
        let (s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        socks.push(Some(s));
    }
    if conns == 1 {
        // The plainest server: blocking reads of whole messages.
        let s = socks[0].as_mut().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(ECHO_MAX_SECONDS))).unwrap();
        let mut buf = [0u8; MSG];
        while Instant::now() < deadline && s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
        return;
    }
    let ep = Epoll::new();
    for (i, s) in socks.iter().enumerate() {
        let s = s.as_ref().unwrap();
        s.set_nonblocking(true).unwrap();
        ep.add(s.as_raw_fd(), i as u64);
    }
    let mut open = conns;
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; conns];
    let mut buf = [0u8; 4096];
    while open > 0 && Instant::now() < deadline {
        let k = ep.wait(&mut evs, 100);
        for ev in &evs[..k] {
            let i = ev.u64 as usize;
            let Some(s) = socks[i].as_mut() else { continue };
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        socks[i] = None;
                        open -= 1;
                        break;
                    }
                    Ok(m) => {
                        // A small echo fits the socket buffer; block for it if it does not.
                        s.set_nonblocking(false).unwrap();
                        let ok = s.write_all(&buf[..m]).is_ok();
                        s.set_nonblocking(true).unwrap();
                        if !ok {
                            socks[i] = None;
                            open -= 1;
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        socks[i] = None;
                        open -= 1;
                        break;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TCP: the clients

/// The echo process, killed (by its own pid) when dropped.
struct Echo {
    child: Child,
    addr: SocketAddr,
}

impl Echo {
    fn start(conns: usize, cpu: Option<usize>) -> Echo {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new(exe);
        if let Some(cpu) = cpu {
            cmd.env("FLOOR_ECHO_CPU", cpu.to_string());
        }
        let mut child = cmd
            .args(["tcp_echo", &conns.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn echo process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().expect("echo process port");
        Echo { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        // It exits by itself once the clients close; kill it only if it did not.
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn tcp_pingpong_1(n: u64) {
    let echo = Echo::start(1, if xcpu() { Some(1) } else { None });
    if xcpu() {
        assert!(pin(0), "cannot pin to CPU 0");
    }
    let mut c = TcpStream::connect(echo.addr).unwrap();
    c.set_nodelay(true).unwrap();
    let msg = [7u8; MSG];
    let mut buf = [0u8; MSG];
    for _ in 0..200 {
        c.write_all(&msg).unwrap();
        c.read_exact(&mut buf).unwrap();
    }
    let mut lat = Vec::with_capacity(n as usize);
    let start = Instant::now();
    let mut done = 0u64;
    while done < n {
        let t = Instant::now();
        c.write_all(&msg).unwrap();
        c.read_exact(&mut buf).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        done += 1;
        if done % 256 == 0 && over_time(start) {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(c);
    drop(echo);
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let extra = format!(
        ",\"p50_us\":{:.2},\"p99_us\":{:.2}",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99)
    );
    emit(&case_name("tcp_pingpong_1"), done, secs, &extra);
}

fn tcp_pingpong_64(n: u64) {
    let echo = Echo::start(CONNS, None);
    let mut conns: Vec<TcpStream> = (0..CONNS)
        .map(|_| {
            let s = TcpStream::connect(echo.addr).unwrap();
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let ep = Epoll::new();
    for (i, s) in conns.iter().enumerate() {
        ep.add(s.as_raw_fd(), i as u64);
    }
    let msg = [7u8; MSG];
    let mut got = vec![0usize; CONNS]; // bytes of the current reply received, per connection
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; CONNS];
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    let (mut sent, mut done) = (0u64, 0u64);
    for s in conns.iter_mut() {
        s.write_all(&msg).unwrap();
        sent += 1;
    }
    for s in conns.iter() {
        s.set_nonblocking(true).unwrap();
    }
    let mut in_flight = CONNS as u64;
    while in_flight > 0 {
        // After MAX_SECONDS no new requests; the in-flight ones get 5 more seconds.
        let stop = over_time(start);
        if start.elapsed().as_secs_f64() > MAX_SECONDS + 5.0 {
            eprintln!("tcp_pingpong_64: {in_flight} replies missing, giving up");
            break;
        }
        let k = ep.wait(&mut evs, 100);
        for ev in &evs[..k] {
            let i = ev.u64 as usize;
            loop {
                match conns[i].read(&mut buf) {
                    Ok(0) => panic!("echo process closed a connection"),
                    Ok(m) => {
                        got[i] += m;
                        while got[i] >= MSG {
                            got[i] -= MSG;
                            done += 1;
                            in_flight -= 1;
                            if sent < n && !stop {
                                conns[i].set_nonblocking(false).unwrap();
                                conns[i].write_all(&msg).unwrap();
                                conns[i].set_nonblocking(true).unwrap();
                                sent += 1;
                                in_flight += 1;
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(conns);
    drop(echo);
    emit("tcp_pingpong_64", done, secs, &format!(",\"connections\":{CONNS}"));
}

fn main() {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    match cmd.as_str() {
        "channel_pingpong" => channel_pingpong(arg(2, 2_000_000), false),
        "channel_pingpong_spin" => channel_pingpong(arg(2, 2_000_000), true),
        "tcp_pingpong_1" => tcp_pingpong_1(arg(2, 30_000)),
        "tcp_pingpong_64" => tcp_pingpong_64(arg(2, 300_000)),
        "tcp_echo" => tcp_echo(arg(2, 1)),
        _ => {
            eprintln!(
                "usage: floor channel_pingpong|channel_pingpong_spin|tcp_pingpong_1|tcp_pingpong_64 [N] [--xcpu]"
            );
            std::process::exit(2);
        }
    }
}
