//! cowl-probe: run inside a box, it tries each escape of the security
//! matrix that applies and prints one verdict per line: `NAME VERDICT DETAIL`.
//! VERDICT is `blocked`, `allowed` or `unavailable` (the entry point does not
//! exist on this kernel). The tests compare the verdicts with expectations.
//! Not part of the sandbox: a test tool, shipped so anyone can check a box.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CString;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn report(name: &str, blocked: bool, detail: impl std::fmt::Display) {
    println!(
        "{name} {} {detail}",
        if blocked { "blocked" } else { "allowed" }
    );
}

/// A raw system call; `Err(errno)` on failure.
fn sys(nr: libc::c_long, a: [libc::c_long; 5]) -> Result<libc::c_long, i32> {
    // SAFETY: the probe calls system calls with harmless or invalid
    // arguments on purpose; each is expected to fail.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4]) };
    if r == -1 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// A denied call must fail with EPERM (ENOSYS for clone3), i.e. by the
/// filter, not by luck of its arguments.
fn denied(name: &str, nr: libc::c_long, args: [libc::c_long; 5], want: i32) {
    match sys(nr, args) {
        Err(e) => report(name, e == want, format!("errno {e}")),
        Ok(r) => {
            if r == 0 && (nr == libc::SYS_clone) {
                // A child of a clone that was let through.
                // SAFETY: leaving the child at once.
                unsafe { libc::_exit(0) };
            }
            report(name, false, format!("returned {r}"))
        }
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

#[cfg(target_arch = "x86_64")]
fn entry_points() {
    // i386: int 0x80 with keyctl (288). In a child: a kernel without ia32
    // emulation answers int 0x80 with SIGSEGV.
    // SAFETY: fork in a single-threaded probe.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let ret: i64;
        // SAFETY: a 32-bit system call through the legacy gate; it only
        // reads registers.
        unsafe { std::arch::asm!("int 0x80", inlateout("rax") 288i64 => ret, options(nostack)) };
        // SAFETY: leaving the child with the call's result.
        unsafe { libc::_exit(if ret == -(libc::EPERM as i64) { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: reaping our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFSIGNALED(status) {
        println!("i386_keyctl unavailable signal {}", libc::WTERMSIG(status));
    } else {
        report(
            "i386_keyctl",
            libc::WEXITSTATUS(status) == 0,
            format!("exit {}", libc::WEXITSTATUS(status)),
        );
    }
    // x32: getpid with the x32 bit.
    denied("x32_getpid", 39 | 0x4000_0000, [0; 5], libc::ENOSYS);
}

#[cfg(not(target_arch = "x86_64"))]
fn entry_points() {}

/// `cowl-probe posture NS=INODE…`: the box's security posture, normalized so
/// it compares equal for any caller: credentials, capabilities, seccomp,
/// no_new_privs, which namespaces differ from the host's, open descriptors,
/// the uid and gid maps, and the resource limits cowl sets.
fn posture(host: &[String]) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    // SAFETY: plain queries.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    let me = std::env::var("COWL_PROBE_CALLER_UID")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(u32::MAX);
    let who = |id: u32| {
        if id == me {
            "caller".to_owned()
        } else {
            id.to_string()
        }
    };
    println!(
        "uid {} euid {} gid-is-egid {}",
        who(uid),
        who(euid),
        gid == egid
    );
    for k in [
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
    ] {
        let v = status
            .lines()
            .find(|l| l.starts_with(&format!("{k}:")))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
            .unwrap_or_default();
        println!("{k} {v}");
    }
    for h in host {
        let Some((ns, ino)) = h.split_once('=') else {
            continue;
        };
        let mine = std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let same = mine.contains(&format!("[{ino}]"));
        println!("ns {ns} {}", if same { "host" } else { "own" });
    }
    let mut fds: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    fds.pop(); // read_dir's own
    println!("fds {fds:?}");
    // What 0-2 are: never a host file or directory (those the app could
    // reopen through /proc/self/fd), only pipes, the box's devices or its pty.
    let kinds: Vec<&str> = (0..3)
        .map(|fd| {
            // SAFETY: stat is plain data filled by fstat.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: valid out-pointer.
            if unsafe { libc::fstat(fd, &mut st) } != 0 {
                return "closed";
            }
            let (maj, min) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
            match st.st_mode & libc::S_IFMT {
                libc::S_IFIFO => "pipe",
                libc::S_IFSOCK => "socket",
                libc::S_IFREG => "file",
                libc::S_IFDIR => "directory",
                libc::S_IFCHR if (maj, min) == (1, 3) => "null",
                libc::S_IFCHR if (136..144).contains(&maj) => "pty",
                libc::S_IFCHR => "device",
                _ => "other",
            }
        })
        .collect();
    println!("stdio {}", kinds.join(" "));
    // Credentials in the environment (the test puts some in cowl's).
    let secrets = std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy().to_ascii_uppercase();
            k.ends_with("_TOKEN") || k.ends_with("PASSWORD") || k.contains("SECRET")
        })
        .count();
    println!("env-secrets {secrets}");
    let my_gid = std::env::var("COWL_PROBE_CALLER_GID")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(u32::MAX);
    for (m, id) in [("uid_map", me), ("gid_map", my_gid)] {
        let t = std::fs::read_to_string(format!("/proc/self/{m}")).unwrap();
        let norm: Vec<String> = t
            .split_whitespace()
            .map(|x| {
                if x.parse::<u32>().ok() == Some(id) {
                    "caller".into()
                } else {
                    x.to_owned()
                }
            })
            .collect();
        println!("{m} {}", norm.join(" "));
    }
    println!(
        "setgroups {}",
        std::fs::read_to_string("/proc/self/setgroups")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "hostname-is-box {}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            == std::env::var("COWL_PROBE_BOX").unwrap_or_default()
    );
    // The app's session is the one its box's init leads (pid 1 here), never
    // the caller's; the app leads a process group of its own in it.
    println!("session-is-box-init {}", {
        // SAFETY: plain queries.
        unsafe { libc::getsid(0) == 1 }
    });
    println!("pgrp-is-self {}", {
        // SAFETY: plain queries.
        unsafe { libc::getpgrp() == libc::getpid() }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("posture") {
        posture(&args[2..]);
        return;
    }
    let host_pid: i32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);

    // TTY input injection, with the request's high bits set too (the kernel
    // reads an int: CVE-2019-10063).
    denied(
        "tiocsti",
        libc::SYS_ioctl,
        [0, 0x5412, c"x".as_ptr() as libc::c_long, 0, 0],
        libc::EPERM,
    );
    denied(
        "tiocsti_high_bits",
        libc::SYS_ioctl,
        [0, 0x1_0000_5412, c"x".as_ptr() as libc::c_long, 0, 0],
        libc::EPERM,
    );
    denied(
        "tioclinux",
        libc::SYS_ioctl,
        [0, 0x541C, 0, 0, 0],
        libc::EPERM,
    );

    denied("keyctl", libc::SYS_keyctl, [0; 5], libc::EPERM);
    denied("add_key", libc::SYS_add_key, [0; 5], libc::EPERM);
    denied("request_key", libc::SYS_request_key, [0; 5], libc::EPERM);
    denied("bpf", libc::SYS_bpf, [0; 5], libc::EPERM);
    denied(
        "perf_event_open",
        libc::SYS_perf_event_open,
        [0; 5],
        libc::EPERM,
    );
    denied("userfaultfd", libc::SYS_userfaultfd, [0; 5], libc::EPERM);
    denied(
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        [1, 0, 0, 0, 0],
        libc::EPERM,
    );
    denied("kexec_load", libc::SYS_kexec_load, [0; 5], libc::EPERM);
    denied("init_module", libc::SYS_init_module, [0; 5], libc::EPERM);
    denied(
        "finit_module",
        libc::SYS_finit_module,
        [-1, 0, 0, 0, 0],
        libc::EPERM,
    );
    denied(
        "delete_module",
        libc::SYS_delete_module,
        [0; 5],
        libc::EPERM,
    );
    let tmp = cstr("/tmp");
    denied(
        "mount",
        libc::SYS_mount,
        [0, tmp.as_ptr() as libc::c_long, 0, 0, 0],
        libc::EPERM,
    );
    denied(
        "umount2",
        libc::SYS_umount2,
        [tmp.as_ptr() as libc::c_long, 0, 0, 0, 0],
        libc::EPERM,
    );
    denied(
        "pivot_root",
        libc::SYS_pivot_root,
        [
            tmp.as_ptr() as libc::c_long,
            tmp.as_ptr() as libc::c_long,
            0,
            0,
            0,
        ],
        libc::EPERM,
    );
    denied(
        "open_tree",
        libc::SYS_open_tree,
        [
            libc::AT_FDCWD as libc::c_long,
            tmp.as_ptr() as libc::c_long,
            1,
            0,
            0,
        ],
        libc::EPERM,
    );
    denied(
        "move_mount",
        libc::SYS_move_mount,
        [-1, 0, -1, 0, 0],
        libc::EPERM,
    );
    denied(
        "fsopen",
        libc::SYS_fsopen,
        [c"tmpfs".as_ptr() as libc::c_long, 0, 0, 0, 0],
        libc::EPERM,
    );
    denied("fsmount", libc::SYS_fsmount, [-1, 0, 0, 0, 0], libc::EPERM);
    denied("setns", libc::SYS_setns, [0, 0, 0, 0, 0], libc::EPERM);
    denied(
        "unshare_user",
        libc::SYS_unshare,
        [libc::CLONE_NEWUSER as libc::c_long, 0, 0, 0, 0],
        libc::EPERM,
    );
    denied(
        "unshare_mount",
        libc::SYS_unshare,
        [libc::CLONE_NEWNS as libc::c_long, 0, 0, 0, 0],
        libc::EPERM,
    );
    denied(
        "clone_newuser",
        libc::SYS_clone,
        [
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_long,
            0,
            0,
            0,
            0,
        ],
        libc::EPERM,
    );
    denied("clone3", libc::SYS_clone3, [0, 0, 0, 0, 0], libc::ENOSYS);
    denied(
        "personality_no_aslr",
        libc::SYS_personality,
        [0x0040000, 0, 0, 0, 0],
        libc::EPERM,
    );
    entry_points();

    // /proc/N/exe of every visible process (CVE-2019-5736).
    let mut writable = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
            if std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/{pid}/exe"))
                .is_ok()
            {
                writable.push(pid);
            }
        }
    }
    report(
        "proc_exe_write",
        writable.is_empty(),
        format!("{writable:?}"),
    );

    // Only 0-2 inherited (CVE-2024-21626). read_dir holds one more.
    let fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    report("leaked_fds", fds.len() <= 4, format!("{fds:?}"));

    // Standard descriptors that are host files or directories can be
    // reopened through /proc/self/fd (or, by root of a system box, through
    // its init's /proc/1/fd): none of ours, nor init's, may be one.
    let mut host_inodes = Vec::new();
    for p in [
        "/proc/self/fd/0",
        "/proc/self/fd/1",
        "/proc/self/fd/2",
        "/proc/1/fd/0",
        "/proc/1/fd/1",
        "/proc/1/fd/2",
    ] {
        if let Ok(md) = std::fs::metadata(p) {
            if md.is_file() || md.is_dir() {
                host_inodes.push(p);
            }
        }
    }
    report(
        "stdio_host_inode",
        host_inodes.is_empty(),
        format!("{host_inodes:?}"),
    );

    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().last().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    report(
        "no_new_privs",
        field("NoNewPrivs:") == "1",
        field("NoNewPrivs:"),
    );
    report(
        "capabilities",
        field("CapEff:") == "0000000000000000",
        field("CapEff:"),
    );

    let node = cstr("/dev/shm/cowl-probe-node");
    // SAFETY: mknod with a valid path.
    let r = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 1)) };
    report("mknod_mem", r != 0, format!("errno {}", errno()));

    for p in [
        "/proc/sys/kernel/core_pattern",
        "/proc/sysrq-trigger",
        "/proc/sys/fs/binfmt_misc/register",
        "/proc/sys/kernel/modprobe",
        "/sys/kernel/uevent_helper",
    ] {
        let ok = std::fs::OpenOptions::new().write(true).open(p).is_ok();
        report(
            &format!("write_{}", p.trim_start_matches('/').replace('/', "_")),
            !ok,
            "",
        );
    }
    let kcore = std::fs::File::open("/proc/kcore").is_ok();
    report("read_proc_kcore", !kcore, "");

    let mut dev: Vec<String> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dev.sort();
    let want = [
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero",
    ];
    report("dev_minimal", dev == want, format!("{dev:?}"));

    if host_pid > 0 {
        // SAFETY: signal 0 only checks.
        let r = unsafe { libc::kill(host_pid, 0) };
        report(
            "kill_host_pid",
            r != 0 && errno() == libc::ESRCH,
            format!("errno {}", errno()),
        );
        denied(
            "ptrace_host_pid",
            libc::SYS_ptrace,
            [
                libc::PTRACE_ATTACH as libc::c_long,
                host_pid as libc::c_long,
                0,
                0,
                0,
            ],
            libc::ESRCH,
        );
    }
}
