//! Listening sockets: one per shard thread with SO_REUSEPORT, so the kernel
//! spreads connections across shards without a hand-off.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn listen(addr: &SocketAddr, backlog: i32) -> io::Result<RawFd> {
    let fd = bound(addr, true)?;
    // SAFETY: listen on the descriptor just bound; closed on failure.
    unsafe {
        if let Err(e) = check(libc::listen(fd, backlog)) {
            libc::close(fd);
            return Err(e);
        }
    }
    Ok(fd)
}

/// Fails as a busy port does (EADDRINUSE) when another socket listens on
/// `addr`: SO_REUSEPORT listeners would otherwise share the port silently.
/// The probe socket is bound without SO_REUSEPORT and never listens, so no
/// client can connect to it (a listening probe accepted connections and
/// reset them when it closed: a client that saw the port open was then
/// refused until the real listeners existed).
pub fn check_free(addr: &SocketAddr) -> io::Result<()> {
    let fd = bound(addr, false)?;
    // SAFETY: closing the probe descriptor we own.
    unsafe { libc::close(fd) };
    Ok(())
}

/// A TCP socket bound to `addr` (SO_REUSEADDR, and SO_REUSEPORT when asked).
fn bound(addr: &SocketAddr, reuse_port: bool) -> io::Result<RawFd> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket syscalls on a descriptor we own, closed on failure.
    unsafe {
        let fd = check(libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0))?;
        let one: libc::c_int = 1;
        let p = &one as *const _ as *const libc::c_void;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let (sa, salen) = to_sockaddr(addr);
        let setup = check(libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, p, len))
            .and_then(|_| if reuse_port { check(libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, p, len)) } else { Ok(0) })
            .and_then(|_| if addr.is_ipv6() { check(libc::setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, p, len)) } else { Ok(0) })
            .and_then(|_| check(libc::bind(fd, &sa as *const _ as *const libc::sockaddr, salen)));
        if let Err(e) = setup {
            libc::close(fd);
            return Err(e);
        }
        Ok(fd)
    }
}

fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_storage is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = &mut ss as *mut _ as *mut libc::sockaddr_in;
            // SAFETY: sockaddr_storage is large enough for sockaddr_in.
            unsafe {
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_port = a.port().to_be();
                (*sin).sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            }
            (ss, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            let sin6 = &mut ss as *mut _ as *mut libc::sockaddr_in6;
            // SAFETY: sockaddr_storage is large enough for sockaddr_in6.
            unsafe {
                (*sin6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sin6).sin6_port = a.port().to_be();
                (*sin6).sin6_addr.s6_addr = a.ip().octets();
            }
            (ss, std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: family says sockaddr_in.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::new(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: family says sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::new(IpAddr::from(sin6.sin6_addr.s6_addr), u16::from_be(sin6.sin6_port)))
        }
        _ => None,
    }
}

/// Redis 7.0's reply to a client that protected mode turns away.
pub const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Protected mode, decided as Redis 7.0 decides it when it accepts a
/// client: with `protected-mode yes` and no password for the default user,
/// only peers on the loopback interface (127.0.0.0/8, ::1, and 127.x seen
/// through an IPv4-mapped IPv6 socket) are served; a peer whose address
/// cannot be read is not. The bind list takes no part: Redis 6 let every
/// client in once a bind address was configured, 7.0 does not, and a bind
/// of loopback addresses alone never accepts anyone else anyway.
pub fn protected_mode_denies(protected_mode: bool, has_password: bool, peer: Option<&SocketAddr>) -> bool {
    let loopback = match peer.map(|p| p.ip()) {
        Some(IpAddr::V4(v4)) => v4.is_loopback(),
        Some(IpAddr::V6(v6)) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        None => false,
    };
    protected_mode && !has_password && !loopback
}

/// (peer, local) addresses of a connected socket.
pub fn addresses(fd: RawFd) -> (Option<SocketAddr>, Option<SocketAddr>) {
    // SAFETY: getpeername/getsockname fill the storage up to len.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let peer = if libc::getpeername(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) == 0 { from_sockaddr(&ss) } else { None };
        let mut ss2: libc::sockaddr_storage = std::mem::zeroed();
        let mut len2 = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let local = if libc::getsockname(fd, &mut ss2 as *mut _ as *mut libc::sockaddr, &mut len2) == 0 { from_sockaddr(&ss2) } else { None };
        (peer, local)
    }
}

pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Formats an address as Redis does in CLIENT LIST (`ip:port`, IPv6 in brackets).
pub fn format_addr(a: &Option<SocketAddr>) -> String {
    match a {
        Some(SocketAddr::V4(v)) => format!("{}:{}", v.ip(), v.port()),
        Some(SocketAddr::V6(v)) => format!("[{}]:{}", v.ip(), v.port()),
        None => "?:0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_turns_away_only_outside_peers_without_a_password() {
        let peer = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let outside = [peer("10.0.0.7:5000"), peer("192.168.1.2:1"), peer("[2001:db8::1]:5000"), peer("[::ffff:10.1.2.3]:9")];
        let inside = [peer("127.0.0.1:5000"), peer("127.200.3.4:1"), peer("[::1]:5000"), peer("[::ffff:127.0.0.1]:9")];
        for p in &outside {
            assert!(protected_mode_denies(true, false, Some(p)), "{} must be refused", p);
            assert!(!protected_mode_denies(true, true, Some(p)), "{} with a password set", p);
            assert!(!protected_mode_denies(false, false, Some(p)), "{} with protected-mode no", p);
        }
        for p in &inside {
            assert!(!protected_mode_denies(true, false, Some(p)), "{} is loopback", p);
        }
        // An unreadable peer is not known to be local: refused, as Redis's connIsLocal() != 1.
        assert!(protected_mode_denies(true, false, None));
        assert!(!protected_mode_denies(true, true, None));
    }
}
