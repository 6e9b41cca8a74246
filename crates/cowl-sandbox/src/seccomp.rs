//! The seccomp filter every app runs under: system calls that reach kernel
//! attack surface a sandboxed app has no business with fail with EPERM
//! (ENOSYS for clone3, whose flags a filter cannot read, so libc falls back
//! to clone, whose flags it can). Built as classic BPF by hand; no library.
//!
//! Covered entry points: the native one (x86_64 or aarch64), and on x86_64
//! also i386 (`int 0x80`) with its own numbers, and x32 (blocked whole:
//! firejail 0.9.38.2 and CVE-2017-5206 show why a filter must know each
//! ABI).

use crate::sys::cvt;
use std::io;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// Namespace flags of clone and unshare.
const CLONE_NEW_ANY: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32
    | 0x80; // CLONE_NEWTIME

/// personality(2) flags that weaken the address space.
const PER_WEAKENING: u32 = 0x0040000 /* ADDR_NO_RANDOMIZE */
    | 0x0100000 /* MMAP_PAGE_ZERO */
    | 0x0200000 /* ADDR_COMPAT_LAYOUT */
    | 0x0400000 /* READ_IMPLIES_EXEC */;

/// The TTY ioctls that inject input or reach the console (CVE-2017-5226,
/// CVE-2019-10063 for the masked comparison, CVE-2023-28100).
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;

/// The address families a box may open sockets of, in every network mode:
/// local sockets, internet sockets (in `none` and `proxy` modes only on the
/// box's own loopback; in `ports` mode TCP only, below) and netlink (the
/// routing and address queries of libc and `ip`, answered by the box's own
/// network namespace, or read-only for the host's without capabilities
/// there). Every other family fails with EAFNOSUPPORT, as on a kernel
/// without it: AF_VSOCK above all, which no network namespace isolates (a
/// box could bind a port of the host's vsock), and AF_PACKET, AF_ALG,
/// AF_BLUETOOTH, AF_CAN, AF_TIPC, AF_XDP, AF_KCM … (kernel attack surface).
pub const ALLOWED_FAMILIES: [i32; 4] = [
    libc::AF_UNIX,
    libc::AF_INET,
    libc::AF_INET6,
    libc::AF_NETLINK,
];

/// One ABI's numbers for the calls the filter treats.
struct Table {
    arch: u32,
    /// Plain denials, by name and number.
    deny: &'static [(&'static str, u32)],
    ioctl: u32,
    clone: u32,
    clone3: u32,
    personality: u32,
    socket: u32,
    socketpair: u32,
    /// i386 multiplexes socket calls through socketcall (0: none).
    socketcall: u32,
}

#[cfg(target_arch = "x86_64")]
const NATIVE: Table = Table {
    arch: AUDIT_ARCH_X86_64,
    deny: &[
        ("keyctl", 250),
        ("add_key", 248),
        ("request_key", 249),
        ("bpf", 321),
        ("perf_event_open", 298),
        ("userfaultfd", 323),
        ("io_uring_setup", 425),
        ("io_uring_enter", 426),
        ("io_uring_register", 427),
        ("kexec_load", 246),
        ("kexec_file_load", 320),
        ("init_module", 175),
        ("finit_module", 313),
        ("delete_module", 176),
        ("mount", 165),
        ("umount2", 166),
        ("pivot_root", 155),
        ("move_mount", 429),
        ("open_tree", 428),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("open_tree_attr", 467),
        ("setns", 308),
        ("unshare", 272),
    ],
    ioctl: 16,
    clone: 56,
    clone3: 435,
    personality: 135,
    socket: 41,
    socketpair: 53,
    socketcall: 0,
};

#[cfg(target_arch = "aarch64")]
const NATIVE: Table = Table {
    arch: AUDIT_ARCH_AARCH64,
    deny: &[
        ("keyctl", 219),
        ("add_key", 217),
        ("request_key", 218),
        ("bpf", 280),
        ("perf_event_open", 241),
        ("userfaultfd", 282),
        ("io_uring_setup", 425),
        ("io_uring_enter", 426),
        ("io_uring_register", 427),
        ("kexec_load", 104),
        ("kexec_file_load", 294),
        ("init_module", 105),
        ("finit_module", 273),
        ("delete_module", 106),
        ("mount", 40),
        ("umount2", 39),
        ("pivot_root", 41),
        ("move_mount", 429),
        ("open_tree", 428),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("open_tree_attr", 467),
        ("setns", 268),
        ("unshare", 97),
    ],
    ioctl: 29,
    clone: 220,
    clone3: 435,
    personality: 92,
    socket: 198,
    socketpair: 199,
    socketcall: 0,
};

/// The i386 entry point of x86_64 kernels (`int 0x80`).
const I386: Table = Table {
    arch: AUDIT_ARCH_I386,
    deny: &[
        ("keyctl", 288),
        ("add_key", 286),
        ("request_key", 287),
        ("bpf", 357),
        ("perf_event_open", 336),
        ("userfaultfd", 374),
        ("io_uring_setup", 425),
        ("io_uring_enter", 426),
        ("io_uring_register", 427),
        ("kexec_load", 283),
        ("init_module", 128),
        ("finit_module", 350),
        ("delete_module", 129),
        ("mount", 21),
        ("umount", 22),
        ("umount2", 52),
        ("pivot_root", 217),
        ("move_mount", 429),
        ("open_tree", 428),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("open_tree_attr", 467),
        ("setns", 346),
        ("unshare", 310),
    ],
    ioctl: 54,
    clone: 120,
    clone3: 435,
    personality: 136,
    socket: 359,
    socketpair: 360,
    socketcall: 102,
};

/// A BPF program under construction, with forward jumps to labels.
struct Asm {
    code: Vec<libc::sock_filter>,
    fixups: Vec<(usize, bool, &'static str, String)>,
    labels: std::collections::HashMap<String, usize>,
}

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;

impl Asm {
    fn new() -> Asm {
        Asm {
            code: Vec::new(),
            fixups: Vec::new(),
            labels: std::collections::HashMap::new(),
        }
    }

    fn op(&mut self, code: u16, k: u32) {
        self.code.push(libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        });
    }

    fn load(&mut self, offset: u32) {
        self.op(LD_W_ABS, offset);
    }

    /// If the accumulator `cmp` k, jump to `label`; else fall through.
    fn jump_if(&mut self, cmp: u16, k: u32, label: &str) {
        self.fixups
            .push((self.code.len(), true, "", label.to_owned()));
        self.op(cmp, k);
    }

    fn label(&mut self, name: &str) {
        self.labels.insert(name.to_owned(), self.code.len());
    }

    fn finish(mut self) -> io::Result<Vec<libc::sock_filter>> {
        for (at, _, _, label) in std::mem::take(&mut self.fixups) {
            let target = *self
                .labels
                .get(&label)
                .ok_or_else(|| io::Error::other(format!("no label {label}")))?;
            let off = target
                .checked_sub(at + 1)
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| io::Error::other("seccomp jump out of range"))?;
            self.code[at].jt = off;
        }
        Ok(self.code)
    }
}

const NR: u32 = 0;
const ARCH: u32 = 4;
fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

/// Emits the checks for one ABI, entered with nothing loaded.
fn emit_table(a: &mut Asm, t: &Table, p: &str, allow: &[String], x32_bit: bool, tcp_only: bool) {
    a.label(&format!("{p}start"));
    a.load(NR);
    if x32_bit {
        // x32 system calls carry bit 30: the whole ABI is refused.
        a.jump_if(JGE_K, 0x4000_0000, "enosys");
    }
    let on = |name: &str| !allow.iter().any(|x| x == name);
    if on("ioctl") {
        a.jump_if(JEQ_K, t.ioctl, &format!("{p}ioctl"));
    }
    if on("clone") {
        a.jump_if(JEQ_K, t.clone, &format!("{p}clone"));
    }
    if on("clone3") {
        a.jump_if(JEQ_K, t.clone3, "enosys");
    }
    if on("personality") {
        a.jump_if(JEQ_K, t.personality, &format!("{p}personality"));
    }
    // Every mode: only the address families a box has a use for.
    a.jump_if(JEQ_K, t.socket, &format!("{p}socket"));
    a.jump_if(JEQ_K, t.socketpair, &format!("{p}family"));
    if t.socketcall != 0 {
        // Its arguments are behind a pointer the filter cannot read, so the
        // family cannot be checked: refused, and libc uses socket(2) itself.
        a.jump_if(JEQ_K, t.socketcall, "enosys");
    }
    for (name, nr) in t.deny {
        if on(name) {
            a.jump_if(JEQ_K, *nr, "eperm");
        }
    }
    a.op(RET_K, RET_ALLOW);

    // The ioctl request is an int: only its low 32 bits count, whatever the
    // caller put above them (CVE-2019-10063).
    a.label(&format!("{p}ioctl"));
    a.load(arg_low(1));
    a.jump_if(JEQ_K, TIOCSTI, "eperm");
    a.jump_if(JEQ_K, TIOCLINUX, "eperm");
    a.op(RET_K, RET_ALLOW);

    a.label(&format!("{p}clone"));
    a.load(arg_low(0));
    a.op(AND_K, CLONE_NEW_ANY);
    a.jump_if(JEQ_K, 0, "allow");
    a.op(RET_K, RET_ERRNO | libc::EPERM as u32);

    // socket(2): the family first; in `ports` mode internet sockets are
    // then held to TCP: Landlock rules cover TCP only, so UDP, raw and
    // other stream protocols (MPTCP, SCTP) are refused outright
    // (landlock.rst; the security matrix's bypass row).
    a.label(&format!("{p}socket"));
    a.load(arg_low(0));
    if tcp_only {
        a.jump_if(JEQ_K, libc::AF_INET as u32, &format!("{p}inet"));
        a.jump_if(JEQ_K, libc::AF_INET6 as u32, &format!("{p}inet"));
    }
    a.label(&format!("{p}family"));
    a.load(arg_low(0));
    for family in ALLOWED_FAMILIES {
        a.jump_if(JEQ_K, family as u32, "allow");
    }
    a.op(RET_K, RET_ERRNO | libc::EAFNOSUPPORT as u32);
    if tcp_only {
        a.label(&format!("{p}inet"));
        a.load(arg_low(1));
        a.op(AND_K, 0xf);
        a.jump_if(JEQ_K, libc::SOCK_STREAM as u32, &format!("{p}stream"));
        a.op(RET_K, RET_ERRNO | libc::EPERM as u32);
        a.label(&format!("{p}stream"));
        a.load(arg_low(2));
        a.jump_if(JEQ_K, 0, "allow");
        a.jump_if(JEQ_K, libc::IPPROTO_TCP as u32, "allow");
        a.op(RET_K, RET_ERRNO | libc::EPERM as u32);
    }

    a.label(&format!("{p}personality"));
    a.load(arg_low(0));
    a.jump_if(JEQ_K, 0xffff_ffff, "allow"); // a query
    a.op(AND_K, PER_WEAKENING);
    a.jump_if(JEQ_K, 0, "allow");
    a.op(RET_K, RET_ERRNO | libc::EPERM as u32);
}

/// The filter, with the named system calls allowed back; sockets only of
/// [`ALLOWED_FAMILIES`]; with `tcp_only`, internet sockets other than TCP
/// are refused too.
pub fn program(allow: &[String], tcp_only: bool) -> io::Result<Vec<libc::sock_filter>> {
    let mut a = Asm::new();
    a.load(ARCH);
    a.jump_if(JEQ_K, NATIVE.arch, "n_start");
    if cfg!(target_arch = "x86_64") {
        a.jump_if(JEQ_K, I386.arch, "i_start");
    }
    // Any other ABI: refused whole.
    a.op(RET_K, RET_ERRNO | libc::ENOSYS as u32);
    emit_table(
        &mut a,
        &NATIVE,
        "n_",
        allow,
        cfg!(target_arch = "x86_64"),
        tcp_only,
    );
    if cfg!(target_arch = "x86_64") {
        emit_table(&mut a, &I386, "i_", allow, false, tcp_only);
    }
    a.label("allow");
    a.op(RET_K, RET_ALLOW);
    a.label("eperm");
    a.op(RET_K, RET_ERRNO | libc::EPERM as u32);
    a.label("enosys");
    a.op(RET_K, RET_ERRNO | libc::ENOSYS as u32);
    a.finish()
}

/// The names the filter knows, for validating box.toml's `allow_syscalls`.
pub fn known_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = NATIVE.deny.iter().map(|(n, _)| *n).collect();
    v.extend(["ioctl", "clone", "clone3", "personality", "umount"]);
    v
}

/// Installs the filter on the calling thread (no_new_privs must be set).
pub fn install(allow: &[String], tcp_only: bool) -> io::Result<()> {
    let prog = program(allow, tcp_only)?;
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at `prog`, alive across the call.
    cvt(unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
            0,
            0,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_assembles_with_all_jumps_in_range() {
        let p = program(&[], false).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.len() > 60 && p.len() < 255, "{} instructions", p.len());
        let tcp = program(&[], true).unwrap_or_else(|e| panic!("{e}"));
        assert!(tcp.len() > p.len());
        let fewer = program(&["keyctl".to_owned()], false).unwrap_or_else(|e| panic!("{e}"));
        assert!(fewer.len() < p.len());
    }
}
