//! The seccomp filter every app runs under: system calls that reach kernel
//! attack surface a sandboxed app has no business with fail with EPERM
//! (ENOSYS for clone3, whose flags a filter cannot read, so libc falls back
//! to clone, whose flags it can). Built as classic BPF by hand; no library.
//!
//! Covered entry points: the native one (x86_64 or aarch64), and on x86_64
//! also i386 (`int 0x80`) with its own numbers, and x32 (blocked whole:
//! firejail 0.9.38.2 and CVE-2017-5206 show why a filter must know each
//! ABI). The native numbers are libc's; the i386 table is written out here
//! because libc has no i386 numbers in an x86_64 build (a filter must name
//! both), and `cowl-probe` tries its calls through `int 0x80` in the tests.

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
        ("keyctl", libc::SYS_keyctl as u32),
        ("add_key", libc::SYS_add_key as u32),
        ("request_key", libc::SYS_request_key as u32),
        ("bpf", libc::SYS_bpf as u32),
        ("perf_event_open", libc::SYS_perf_event_open as u32),
        ("userfaultfd", libc::SYS_userfaultfd as u32),
        ("io_uring_setup", libc::SYS_io_uring_setup as u32),
        ("io_uring_enter", libc::SYS_io_uring_enter as u32),
        ("io_uring_register", libc::SYS_io_uring_register as u32),
        ("kexec_load", libc::SYS_kexec_load as u32),
        ("kexec_file_load", libc::SYS_kexec_file_load as u32),
        ("init_module", libc::SYS_init_module as u32),
        ("finit_module", libc::SYS_finit_module as u32),
        ("delete_module", libc::SYS_delete_module as u32),
        ("mount", libc::SYS_mount as u32),
        ("umount2", libc::SYS_umount2 as u32),
        ("pivot_root", libc::SYS_pivot_root as u32),
        ("move_mount", libc::SYS_move_mount as u32),
        ("open_tree", libc::SYS_open_tree as u32),
        ("fsopen", libc::SYS_fsopen as u32),
        ("fsconfig", libc::SYS_fsconfig as u32),
        ("fsmount", libc::SYS_fsmount as u32),
        ("fspick", libc::SYS_fspick as u32),
        ("mount_setattr", libc::SYS_mount_setattr as u32),
        (
            "open_tree_attr",
            467, /* not in libc yet; the same on every ABI since 6.15 */
        ),
        ("setns", libc::SYS_setns as u32),
        ("unshare", libc::SYS_unshare as u32),
    ],
    ioctl: libc::SYS_ioctl as u32,
    clone: libc::SYS_clone as u32,
    clone3: libc::SYS_clone3 as u32,
    personality: libc::SYS_personality as u32,
    socket: libc::SYS_socket as u32,
    socketpair: libc::SYS_socketpair as u32,
    socketcall: 0,
};

#[cfg(target_arch = "aarch64")]
const NATIVE: Table = Table {
    arch: AUDIT_ARCH_AARCH64,
    deny: &[
        ("keyctl", libc::SYS_keyctl as u32),
        ("add_key", libc::SYS_add_key as u32),
        ("request_key", libc::SYS_request_key as u32),
        ("bpf", libc::SYS_bpf as u32),
        ("perf_event_open", libc::SYS_perf_event_open as u32),
        ("userfaultfd", libc::SYS_userfaultfd as u32),
        ("io_uring_setup", libc::SYS_io_uring_setup as u32),
        ("io_uring_enter", libc::SYS_io_uring_enter as u32),
        ("io_uring_register", libc::SYS_io_uring_register as u32),
        ("kexec_load", libc::SYS_kexec_load as u32),
        ("kexec_file_load", libc::SYS_kexec_file_load as u32),
        ("init_module", libc::SYS_init_module as u32),
        ("finit_module", libc::SYS_finit_module as u32),
        ("delete_module", libc::SYS_delete_module as u32),
        ("mount", libc::SYS_mount as u32),
        ("umount2", libc::SYS_umount2 as u32),
        ("pivot_root", libc::SYS_pivot_root as u32),
        ("move_mount", libc::SYS_move_mount as u32),
        ("open_tree", libc::SYS_open_tree as u32),
        ("fsopen", libc::SYS_fsopen as u32),
        ("fsconfig", libc::SYS_fsconfig as u32),
        ("fsmount", libc::SYS_fsmount as u32),
        ("fspick", libc::SYS_fspick as u32),
        ("mount_setattr", libc::SYS_mount_setattr as u32),
        (
            "open_tree_attr",
            467, /* not in libc yet; the same on every ABI since 6.15 */
        ),
        ("setns", libc::SYS_setns as u32),
        ("unshare", libc::SYS_unshare as u32),
    ],
    ioctl: libc::SYS_ioctl as u32,
    clone: libc::SYS_clone as u32,
    clone3: libc::SYS_clone3 as u32,
    personality: libc::SYS_personality as u32,
    socket: libc::SYS_socket as u32,
    socketpair: libc::SYS_socketpair as u32,
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

    /// Installs the filter in a child and makes each call it denies there:
    /// every one must fail with the filter's errno (not by luck of its
    /// invalid arguments), and an allowed one must not be refused. The
    /// child only makes system calls and exits, which is sound after fork
    /// in the threaded test runner.
    #[test]
    fn each_denial_holds_in_a_process_under_the_filter() {
        // SAFETY: the child below makes raw system calls and _exits only.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: prctl and raw syscalls with harmless or invalid
            // arguments; the child leaves with _exit.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || install(&[], false).is_err()
                {
                    libc::_exit(100);
                }
                let errno = || *libc::__errno_location();
                for (i, (name, nr)) in NATIVE.deny.iter().enumerate() {
                    let _ = name;
                    // Invalid pointers and flags: only the filter answers EPERM
                    // before the call's own checks would.
                    let r = libc::syscall(*nr as libc::c_long, -1i64, -1i64, -1i64, -1i64, -1i64);
                    if r != -1 || errno() != libc::EPERM {
                        libc::_exit(1 + i as i32);
                    }
                }
                if libc::syscall(libc::SYS_clone3, 0i64, 0i64) != -1 || errno() != libc::ENOSYS {
                    libc::_exit(90);
                }
                let vsock = libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0);
                if vsock != -1 || errno() != libc::EAFNOSUPPORT {
                    libc::_exit(91);
                }
                if libc::ioctl(0, libc::TIOCSTI as _, c"x".as_ptr()) != -1 || errno() != libc::EPERM
                {
                    libc::_exit(92);
                }
                // Bit 32 set: the kernel reads an int (CVE-2019-10063).
                let wide = (1u64 << 32) | libc::TIOCSTI;
                if libc::syscall(libc::SYS_ioctl, 0i64, wide as i64, 0i64) != -1
                    || errno() != libc::EPERM
                {
                    libc::_exit(93);
                }
                if libc::getpid() <= 0 {
                    libc::_exit(94);
                }
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: reaping our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let code = libc::WEXITSTATUS(status);
        let what = match code {
            0 => return,
            100 => "the filter could not be installed".to_owned(),
            90 => "clone3 was not ENOSYS".to_owned(),
            91 => "AF_VSOCK was allowed".to_owned(),
            92 | 93 => "TIOCSTI was allowed".to_owned(),
            94 => "getpid was refused".to_owned(),
            n => format!(
                "{} was not refused with EPERM",
                NATIVE.deny.get(n as usize - 1).map_or("?", |d| d.0)
            ),
        };
        panic!("{what}");
    }
}
