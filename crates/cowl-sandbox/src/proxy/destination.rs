//! Which of the addresses a name resolves to the proxy may connect to.
//!
//! The allowlist names hosts, but a name can resolve to anything: a
//! wildcard entry whose subdomain its owner points at 127.0.0.1, or at
//! 169.254.169.254 (a cloud's metadata service), would let the box reach
//! services that listen only on the host itself. So after resolving, an
//! address of this host (loopback, link-local, unspecified, multicast,
//! broadcast, or any interface's own address) passes only when an allow
//! entry names that very address, with the port. The proxy then connects
//! to exactly the `SocketAddr`s that passed: nothing is resolved again
//! between the check and the connect.

use super::AllowRule;
use crate::net::HostAddresses;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why an address leads to this host (or to no single remote one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16 (where cloud metadata services answer), fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8, ::: the kernel connects these to the host itself.
    Unspecified,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255 and the broadcast address of each interface.
    Broadcast,
    /// The address of one of this host's interfaces.
    ThisHost,
}

impl LocalKind {
    /// The kind with its article, for messages: "a loopback address".
    pub fn describe(self) -> &'static str {
        match self {
            LocalKind::Loopback => "a loopback address",
            LocalKind::LinkLocal => "a link-local address",
            LocalKind::Unspecified => "an unspecified address",
            LocalKind::Multicast => "a multicast address",
            LocalKind::Broadcast => "a broadcast address",
            LocalKind::ThisHost => "an address of this host",
        }
    }
}

/// The address as the kernel treats it: an IPv4-mapped IPv6 address
/// (`::ffff:127.0.0.1`) is its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` leads to this host (or is no unicast address at all), and
/// how; `None` for an ordinary remote address.
pub fn classify(ip: IpAddr, host: &HostAddresses) -> Option<LocalKind> {
    let ip = canonical(ip);
    let kind = match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_unspecified() {
                Some(LocalKind::Unspecified)
            } else if v6.is_loopback() {
                Some(LocalKind::Loopback)
            } else if first & 0xffc0 == 0xfe80 {
                Some(LocalKind::LinkLocal)
            } else if v6.is_multicast() {
                Some(LocalKind::Multicast)
            } else {
                None
            }
        }
    };
    let on_host = |list: &[IpAddr]| list.iter().any(|a| canonical(*a) == ip);
    kind.or_else(|| {
        if on_host(&host.broadcast) {
            Some(LocalKind::Broadcast)
        } else if on_host(&host.own) {
            Some(LocalKind::ThisHost)
        } else {
            None
        }
    })
}

fn classify_v4(v4: Ipv4Addr) -> Option<LocalKind> {
    if v4.octets()[0] == 0 {
        Some(LocalKind::Unspecified)
    } else if v4.is_loopback() {
        Some(LocalKind::Loopback)
    } else if v4.is_link_local() {
        Some(LocalKind::LinkLocal)
    } else if v4.is_multicast() {
        Some(LocalKind::Multicast)
    } else if v4.is_broadcast() {
        Some(LocalKind::Broadcast)
    } else {
        None
    }
}

/// The resolved addresses of one request, sorted into those the proxy may
/// connect to and those it refuses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// The addresses to connect to, in the resolver's order.
    pub passed: Vec<SocketAddr>,
    /// The addresses refused, with why.
    pub refused: Vec<(SocketAddr, LocalKind)>,
}

/// Sorts `addrs` (what the requested name resolved to, for `port`): an
/// address that leads to this host passes only if an entry of `allow`
/// names the address itself with that port.
pub fn check(
    addrs: impl IntoIterator<Item = SocketAddr>,
    port: u16,
    allow: &[AllowRule],
    host: &HostAddresses,
) -> Checked {
    let mut out = Checked::default();
    for a in addrs {
        match classify(a.ip(), host) {
            Some(kind) if !allow.iter().any(|r| r.names(a.ip(), port)) => {
                out.refused.push((a, kind));
            }
            _ => out.passed.push(a),
        }
    }
    out
}

/// The `--allow` argument that names `ip` with `port`, quoted for a shell
/// where it needs to be: `127.0.0.1:8000`, `'[::1]:8000'`.
pub fn allow_flag(ip: IpAddr, port: u16) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("'[{v6}]:{port}'"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn host() -> HostAddresses {
        HostAddresses {
            own: vec![ip("127.0.0.1"), ip("192.0.2.2"), ip("fd00::2")],
            broadcast: vec![ip("192.0.2.255")],
        }
    }

    #[test]
    fn addresses_of_this_host_are_told_apart_from_remote_ones() {
        let h = host();
        let kind = |s: &str| classify(ip(s), &h);
        for (a, k) in [
            ("127.0.0.1", LocalKind::Loopback),
            ("127.8.9.10", LocalKind::Loopback),
            ("::1", LocalKind::Loopback),
            ("169.254.169.254", LocalKind::LinkLocal),
            ("fe80::1", LocalKind::LinkLocal),
            ("febf::1", LocalKind::LinkLocal),
            ("0.0.0.0", LocalKind::Unspecified),
            ("0.1.2.3", LocalKind::Unspecified),
            ("::", LocalKind::Unspecified),
            ("224.0.0.1", LocalKind::Multicast),
            ("239.255.255.250", LocalKind::Multicast),
            ("ff02::1", LocalKind::Multicast),
            ("255.255.255.255", LocalKind::Broadcast),
            ("192.0.2.255", LocalKind::Broadcast),
            ("192.0.2.2", LocalKind::ThisHost),
            ("fd00::2", LocalKind::ThisHost),
        ] {
            assert_eq!(kind(a), Some(k), "{a}");
        }
        for a in [
            "93.184.215.14",
            "192.0.2.3",
            "10.1.2.3",
            "2001:db8::1",
            "fec0::1",
        ] {
            assert_eq!(kind(a), None, "{a}");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_their_ipv4_address() {
        let h = host();
        assert_eq!(
            classify(ip("::ffff:127.0.0.1"), &h),
            Some(LocalKind::Loopback)
        );
        assert_eq!(
            classify(ip("::ffff:169.254.169.254"), &h),
            Some(LocalKind::LinkLocal)
        );
        assert_eq!(
            classify(ip("::ffff:192.0.2.2"), &h),
            Some(LocalKind::ThisHost)
        );
        assert_eq!(classify(ip("::ffff:93.184.215.14"), &h), None);
        assert_eq!(canonical(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn a_local_address_passes_only_when_an_entry_names_it_with_the_port() {
        let h = host();
        let rules = |v: &[&str]| -> Vec<AllowRule> {
            v.iter().map(|s| AllowRule::parse(s).unwrap()).collect()
        };
        let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let resolved = [
            sa("127.0.0.1:8000"),
            sa("[::1]:8000"),
            sa("93.184.215.14:8000"),
        ];

        let c = check(resolved, 8000, &rules(&["localhost:8000"]), &h);
        assert_eq!(c.passed, [sa("93.184.215.14:8000")]);
        assert_eq!(
            c.refused,
            [
                (sa("127.0.0.1:8000"), LocalKind::Loopback),
                (sa("[::1]:8000"), LocalKind::Loopback)
            ]
        );

        let c = check(resolved, 8000, &rules(&["127.0.0.1:8000"]), &h);
        assert_eq!(c.passed, [sa("127.0.0.1:8000"), sa("93.184.215.14:8000")]);
        let c = check(resolved, 8000, &rules(&["[::1]:8000"]), &h);
        assert_eq!(c.passed, [sa("[::1]:8000"), sa("93.184.215.14:8000")]);
        // Another port, or the default ports, do not name it.
        let c = check(resolved, 8000, &rules(&["127.0.0.1:9000", "127.0.0.1"]), &h);
        assert_eq!(c.refused.len(), 2);
        // A mapped address is named by its IPv4 form, and the other way round.
        let c = check(
            [sa("[::ffff:127.0.0.1]:8000")],
            8000,
            &rules(&["127.0.0.1:8000"]),
            &h,
        );
        assert!(c.refused.is_empty());
        let c = check(
            [sa("127.0.0.1:8000")],
            8000,
            &rules(&["[::ffff:127.0.0.1]:8000"]),
            &h,
        );
        assert!(c.refused.is_empty());
    }

    #[test]
    fn the_allow_flag_names_the_address_as_the_parser_reads_it() {
        for (a, flag) in [
            ("127.0.0.1", "127.0.0.1:8000"),
            ("::1", "'[::1]:8000'"),
            ("::ffff:169.254.169.254", "169.254.169.254:8000"),
        ] {
            let f = allow_flag(ip(a), 8000);
            assert_eq!(f, flag);
            let r = AllowRule::parse(f.trim_matches('\'')).unwrap();
            assert!(r.names(ip(a), 8000), "{f}");
        }
    }
}
