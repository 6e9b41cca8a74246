//! Landlock, the second wall, at the best ABI the kernel has: abstract unix
//! sockets and signals scoped to the box (ABI 6), and in `ports` network
//! mode TCP connect and bind limited to the allowed ports (ABI 4). Applied
//! by the app itself just before exec, after no_new_privs, through the
//! `landlock` crate; only the ABI query is cowl's own (the crate keeps its
//! version private), because policy checks need it before the box starts.

use landlock::{
    AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope,
};
use std::io;

const CREATE_RULESET_VERSION: u32 = 1;

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
/// accepted (best effort) anything missing. What is asked of the kernel
/// here must hold: anything less is an error.
pub fn restrict(p: &LandlockPolicy, abi: u32) -> io::Result<()> {
    let scope = p.scope && abi >= 6;
    let ports = p.ports.as_ref().filter(|_| abi >= 4);
    if !scope && ports.is_none() {
        return Ok(());
    }
    let err = |e: landlock::RulesetError| io::Error::other(format!("landlock: {e}"));
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    if ports.is_some() {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(err)?;
    }
    if scope {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(err)?;
    }
    let mut created = ruleset.create().map_err(err)?;
    if let Some(ports) = ports {
        let rules = ports
            .connect
            .iter()
            .map(|&p| NetPort::new(p, AccessNet::ConnectTcp))
            .chain(
                ports
                    .bind
                    .iter()
                    .map(|&p| NetPort::new(p, AccessNet::BindTcp)),
            );
        created = created.add_rules(rules.map(Ok)).map_err(err)?;
    }
    let status = created.restrict_self().map_err(err)?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(io::Error::other(format!(
            "landlock: the ruleset is {:?}, not fully enforced",
            status.ruleset
        )));
    }
    Ok(())
}
