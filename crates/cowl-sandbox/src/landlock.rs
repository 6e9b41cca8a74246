//! Landlock, the second wall, at the best ABI the kernel has: abstract unix
//! sockets and signals scoped to the box (ABI 6), and in `ports` network
//! mode TCP connect and bind limited to the allowed ports (ABI 4). Applied
//! by the app itself just before exec, after no_new_privs.

use crate::sys::cvt;
use std::io;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_NET_PORT: u32 = 2;
const ACCESS_NET_BIND_TCP: u64 = 1;
const ACCESS_NET_CONNECT_TCP: u64 = 2;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;
const SCOPE_SIGNAL: u64 = 2;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

/// The Landlock ABI version of the running kernel (0: none).
pub fn abi() -> u32 {
    // SAFETY: the documented version query: NULL attributes, size 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        0
    } else {
        r as u32
    }
}

/// TCP ports a box in `ports` mode may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ports {
    /// Ports it may connect to.
    pub connect: Vec<u16>,
    /// Ports it may bind.
    pub bind: Vec<u16>,
}

/// What the box's Landlock domain restricts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LandlockPolicy {
    /// Scope abstract unix sockets and signals to the box (ABI 6).
    pub scope: bool,
    /// In `ports` mode: the allowed TCP ports (ABI 4).
    pub ports: Option<Ports>,
}

impl LandlockPolicy {
    /// The ABI this policy needs.
    pub fn needed_abi(&self) -> u32 {
        if self.scope {
            6
        } else if self.ports.is_some() {
            4
        } else {
            0
        }
    }

    /// What of this policy a kernel with `abi` cannot enforce.
    pub fn missing(&self, abi: u32) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.scope && abi < 6 {
            v.push("scoping abstract unix sockets and signals to the box (Landlock ABI 6)");
        }
        if self.ports.is_some() && abi < 4 {
            v.push("TCP port rules of `ports` network mode (Landlock ABI 4)");
        }
        v
    }
}

/// Restricts the calling process (and what it execs) to the policy, using
/// what the kernel offers (`abi`); the caller has already refused or
/// accepted (best effort) anything missing.
pub fn restrict(p: &LandlockPolicy, abi: u32) -> io::Result<()> {
    let scope = p.scope && abi >= 6;
    let ports = p.ports.as_ref().filter(|_| abi >= 4);
    if !scope && ports.is_none() {
        return Ok(());
    }
    let attr = RulesetAttr {
        handled_access_fs: 0,
        handled_access_net: if ports.is_some() {
            ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP
        } else {
            0
        },
        scoped: if scope {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        },
    };
    // ABI < 6 kernels do not know `scoped`: pass the shorter struct.
    let size = if scope {
        std::mem::size_of::<RulesetAttr>()
    } else {
        16
    };
    // SAFETY: attr lives across the call; size is at most its size.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    })? as i32;
    let result = (|| {
        if let Some(ports) = ports {
            let rules = ports
                .connect
                .iter()
                .map(|&p| (p, ACCESS_NET_CONNECT_TCP))
                .chain(ports.bind.iter().map(|&p| (p, ACCESS_NET_BIND_TCP)));
            for (port, access) in rules {
                let rule = NetPortAttr {
                    allowed_access: access,
                    port: u64::from(port),
                };
                // SAFETY: rule lives across the call.
                cvt(unsafe {
                    libc::syscall(
                        libc::SYS_landlock_add_rule,
                        fd,
                        RULE_NET_PORT,
                        &rule as *const NetPortAttr,
                        0u32,
                    )
                })?;
            }
        }
        // SAFETY: plain syscall on our ruleset.
        cvt(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) }).map(drop)
    })();
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    result
}
