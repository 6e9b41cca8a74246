//! The app's standard descriptors, which are never the caller's own.
//!
//! A descriptor the app holds can be reopened through `/proc/self/fd/N`, and
//! that reaches the inode behind it, not a copy in the box's layer: with the
//! caller's stdin a host file, `echo x >> /proc/self/fd/0` would write that
//! file; with stdin a host directory, `openat(/proc/self/fd/0, "x",
//! O_CREAT)` would create a file in it; with stdout a new root-owned file,
//! `chmod 4755 /proc/self/fd/1` would make a setuid-root binary of it (the
//! leaked-descriptor class of CVE-2024-21626). So for each of 0, 1 and 2 the
//! app gets one of:
//!
//! * the box's own pty, when cowl runs on a terminal (stdin and stdout;
//!   stderr too when it is a terminal);
//! * the box's own node of a harmless device (null, zero, full, random,
//!   urandom), when the caller's is that device: the box has it anyway;
//! * otherwise one end of a pipe of cowl's, which the supervisor relays to
//!   or from the caller's descriptor: `splice` where the kernel can (pipes,
//!   files, sockets), `read` and `write` where it cannot (terminals, files
//!   opened to append). stdout and stderr that are the same open file
//!   (`2>&1`) share one pipe, so their order is kept.
//!
//! End of input, SIGPIPE and close order follow the descriptors' own: the
//! app sees end of input when the caller's does; when the caller's reader
//! goes away, the app's next write fails as it would have (SIGPIPE); when
//! the app closes its stdout or stdin, cowl lets go of the caller's too, so
//! a reader sees end of input and a writer SIGPIPE before the box ends. What
//! the app did not read of a seekable stdin is given back (the file offset
//! moves back), as a program reading it directly would leave it.

use crate::sys;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{fstat, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::pipe::{splice, SpliceFlags};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Buffer asked for each relay pipe: fewer wake-ups per byte. The kernel's
/// limit for unprivileged callers (`fs.pipe-max-size`) is 1 MiB by default;
/// a smaller grant is fine.
const PIPE_SIZE: usize = 1 << 20;
/// Bytes moved by one `splice`.
const CHUNK: usize = 1 << 20;
/// The buffer of the `read`/`write` path.
const BUF: usize = 128 << 10;
/// Bytes given at once to a destination that may block however it is
/// flagged (a caller's terminal, a device): poll's "writable" promises room
/// for about a page there, no more.
const SMALL: usize = 4 << 10;
/// The same for a caller's socket: writable means a third of its send
/// buffer free (TCP; a unix socket: three quarters), 64 KiB or more at the
/// default sizes.
const SOCKET_CHUNK: usize = 64 << 10;
/// Steps one flow may take before the others (and signals) get a turn.
const STEPS_PER_TURN: usize = 64;

/// Devices the box has in its own /dev: a caller's stdio that is one of
/// these gets the box's node instead of a relay (by device number, not path).
const BOX_DEVICES: [(u32, u32, &str); 5] = [
    (1, 3, "/dev/null"),
    (1, 5, "/dev/zero"),
    (1, 7, "/dev/full"),
    (1, 8, "/dev/random"),
    (1, 9, "/dev/urandom"),
];

/// What the app gets as one standard descriptor.
#[derive(Debug)]
enum AppFd {
    /// The box's pty slave.
    Pty,
    /// The box's own node of this device.
    Device(&'static str),
    /// The box's end of a relay pipe.
    Pipe(OwnedFd),
    /// The same pipe as an earlier slot (stdout and stderr one open file).
    SameAs(usize),
}

/// The box's side of the app's stdio: handed to the box's init (or a joined
/// run's helper), which gives it to the app.
#[derive(Debug)]
pub struct AppStdio {
    fds: [AppFd; 3],
}

impl AppStdio {
    /// The descriptors of the box's side, which its init keeps until the
    /// app has them.
    pub(crate) fn raw_fds(&self) -> Vec<RawFd> {
        self.fds
            .iter()
            .filter_map(|f| match f {
                AppFd::Pipe(p) => Some(p.as_raw_fd()),
                _ => None,
            })
            .collect()
    }

    /// Whether the app's terminal is the box's pty.
    pub(crate) fn uses_pty(&self) -> bool {
        self.fds.iter().any(|f| matches!(f, AppFd::Pty))
    }

    /// In the app's process, before exec: makes 0, 1 and 2 what was decided.
    /// `slave` is the box's pty, already this process's controlling terminal.
    pub(crate) fn install(&self, slave: Option<&OwnedFd>) -> io::Result<()> {
        let mut opened: Vec<Option<OwnedFd>> = Vec::with_capacity(3);
        for f in &self.fds {
            opened.push(match f {
                AppFd::Device(path) => Some(rustix::fs::open(
                    *path,
                    OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOCTTY,
                    Mode::empty(),
                )?),
                _ => None,
            });
        }
        for (i, slot) in self.fds.iter().enumerate() {
            let fd: BorrowedFd = match slot {
                AppFd::Pty => slave
                    .ok_or_else(|| io::Error::other("no terminal for the app"))?
                    .as_fd(),
                AppFd::Device(_) => opened[i]
                    .as_ref()
                    .ok_or_else(|| io::Error::other("device not opened"))?
                    .as_fd(),
                AppFd::Pipe(p) => p.as_fd(),
                AppFd::SameAs(j) => match self.fds.get(*j) {
                    Some(AppFd::Pipe(p)) => p.as_fd(),
                    _ => return Err(io::Error::other("stdio slot refers to no pipe")),
                },
            };
            match i {
                0 => rustix::stdio::dup2_stdin(fd)?,
                1 => rustix::stdio::dup2_stdout(fd)?,
                _ => rustix::stdio::dup2_stderr(fd)?,
            }
        }
        Ok(())
    }
}

/// In a process of the box other than the app (its init, a joined run's
/// helper): lets go of the caller's descriptors 0-2, which it inherited, by
/// putting the box's /dev/null there. A process of the box that could reach
/// this one's descriptors (root in a system box may read /proc/1/fd) finds
/// nothing of the caller's.
pub(crate) fn let_go_of_callers() -> io::Result<()> {
    let null = rustix::fs::open(
        "/dev/null",
        OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    rustix::stdio::dup2_stderr(&null)?;
    Ok(())
}

/// Which way a flow moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// The caller's stdin into the app's pipe.
    ToBox,
    /// The app's stdout or stderr pipe out to the caller's descriptor.
    FromBox,
    /// The caller's terminal into the box's pty.
    TermIn,
    /// The box's pty out to the caller's terminal.
    TermOut,
}

/// What a flow waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

/// How a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its source reached end of input.
    SourceDone,
    /// Its destination is gone (no reader, or an error writing).
    DestinationGone,
}

/// One step of a flow.
enum Step {
    Moved,
    Wait(Want),
    Ended(End),
}

/// One direction of the relay.
#[derive(Debug)]
struct Flow {
    dir: Dir,
    /// The caller's descriptor this flow serves.
    caller: RawFd,
    /// cowl's end of the app's pipe (None for the terminal, or once closed).
    pipe: Option<OwnedFd>,
    /// A read end of the app's stdin pipe, kept once cowl's write end is
    /// closed, to count what the app left unread of a seekable stdin.
    leftover: Option<OwnedFd>,
    /// Whether `splice` is still worth trying.
    splice: bool,
    /// Whether the caller's side can never block a splice: a pipe (which
    /// SPLICE_F_NONBLOCK makes non-blocking on both ends) or a regular file.
    /// Then no poll is needed before each splice.
    never_blocks: bool,
    /// What one call gives a destination that may block: [`SMALL`], or
    /// [`SOCKET_CHUNK`] when the caller's side is a socket.
    chunk: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    want: Want,
    done: bool,
}

impl Flow {
    fn new(dir: Dir, caller: RawFd, pipe: Option<OwnedFd>, splice: bool) -> Flow {
        Flow {
            dir,
            caller,
            pipe,
            leftover: None,
            splice,
            never_blocks: false,
            chunk: SMALL,
            buf: Vec::new(),
            start: 0,
            end: 0,
            want: Want::Read,
            done: false,
        }
    }

    /// (source, destination) descriptors.
    fn ends(&self, master: Option<RawFd>) -> Option<(RawFd, RawFd)> {
        let pipe = self.pipe.as_ref().map(|p| p.as_raw_fd());
        match self.dir {
            Dir::ToBox => Some((self.caller, pipe?)),
            Dir::FromBox => Some((pipe?, self.caller)),
            Dir::TermIn => Some((self.caller, master?)),
            Dir::TermOut => Some((master?, self.caller)),
        }
    }

    /// The descriptor and events to poll for, while the flow is open.
    fn interest(&self, master: Option<RawFd>) -> Option<(RawFd, PollFlags)> {
        if self.done {
            return None;
        }
        let (src, dst) = self.ends(master)?;
        Some(match self.want {
            Want::Read => (src, PollFlags::IN),
            Want::Write => (dst, PollFlags::OUT),
        })
    }

    /// Moves what it can without blocking on cowl's own descriptors; a
    /// descriptor of the caller's is touched only when poll says it is ready.
    fn step(&mut self, master: Option<RawFd>) -> Step {
        let Some((src, dst)) = self.ends(master) else {
            return Step::Ended(End::SourceDone);
        };
        // SAFETY: both descriptors stay open for the call: the caller's are
        // 0-2, the others are owned by this flow or by the relay.
        let (src, dst) = unsafe { (BorrowedFd::borrow_raw(src), BorrowedFd::borrow_raw(dst)) };
        if self.start < self.end {
            if !ready(dst, PollFlags::OUT) {
                return Step::Wait(Want::Write);
            }
            let end = if self.never_blocks {
                self.end
            } else {
                self.end.min(self.start + self.chunk)
            };
            return match rustix::io::write(dst, &self.buf[self.start..end]) {
                Ok(n) => {
                    self.start += n;
                    Step::Moved
                }
                Err(Errno::AGAIN) => Step::Wait(Want::Write),
                Err(Errno::INTR) => Step::Moved,
                Err(_) => Step::Ended(End::DestinationGone),
            };
        }
        let sure = self.splice && self.never_blocks;
        if !sure && !ready(src, PollFlags::IN) {
            return Step::Wait(Want::Read);
        }
        // A caller's socket or terminal may block however the pipe is
        // flagged: splice into it only when it takes something, and a
        // little at a time, so that no other flow waits behind it.
        if self.splice && !self.never_blocks && !ready(dst, PollFlags::OUT) {
            return Step::Wait(Want::Write);
        }
        if self.splice {
            match splice(
                src,
                None,
                dst,
                None,
                if self.never_blocks { CHUNK } else { self.chunk },
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            ) {
                Ok(0) => return Step::Ended(End::SourceDone),
                Ok(_) => return Step::Moved,
                Err(Errno::AGAIN) => {
                    return Step::Wait(if ready(dst, PollFlags::OUT) {
                        Want::Read
                    } else {
                        Want::Write
                    })
                }
                Err(Errno::INTR) => return Step::Moved,
                Err(Errno::PIPE) => return Step::Ended(End::DestinationGone),
                // Not a pair splice takes (a terminal, a file opened to
                // append), or an error the plain path names by its side.
                Err(_) => self.splice = false,
            }
        }
        if self.buf.is_empty() {
            self.buf = vec![0; BUF];
        }
        match rustix::io::read(src, &mut self.buf) {
            Ok(0) => Step::Ended(End::SourceDone),
            Ok(n) => {
                self.start = 0;
                self.end = n;
                Step::Moved
            }
            Err(Errno::AGAIN) => Step::Wait(Want::Read),
            Err(Errno::INTR) => Step::Moved,
            // EIO: the pty's last slave closed; anything else ends input too.
            Err(_) => Step::Ended(End::SourceDone),
        }
    }

    /// Bytes waiting in the source (the app's pipe, the pty's master).
    fn source_holds(&self, master: Option<RawFd>) -> u64 {
        let Some((src, _)) = self.ends(master) else {
            return 0;
        };
        // SAFETY: the descriptor is open for the call (see `ends`).
        let src = unsafe { BorrowedFd::borrow_raw(src) };
        rustix::io::ioctl_fionread(src).unwrap_or(0)
    }

    /// Bytes taken from the caller's stdin that the app has not read.
    fn unread(&self) -> u64 {
        let in_pipe = self
            .pipe
            .as_ref()
            .or(self.leftover.as_ref())
            .and_then(|p| rustix::io::ioctl_fionread(p).ok())
            .unwrap_or(0);
        in_pipe + (self.end - self.start) as u64
    }
}

/// Whether `fd` is ready for `events` now.
fn ready(fd: BorrowedFd, events: PollFlags) -> bool {
    let mut p = [PollFd::from_borrowed_fd(fd, events)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut p, Some(&zero)), Ok(n) if n > 0)
}

/// The supervisor's side: relays the caller's descriptors to and from the
/// app's, and the caller's terminal to and from the box's pty.
#[derive(Debug)]
pub struct Relay {
    flows: Vec<Flow>,
    master: Option<OwnedFd>,
}

/// Puts /dev/null on any of 0-2 that is closed, so no descriptor cowl opens
/// later takes a standard number (the app then gets /dev/null there).
fn fill_closed() {
    for fd in 0..3 {
        // SAFETY: a descriptor number is only inspected.
        if rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).is_err() {
            // Opening takes the lowest free number: the closed one.
            if let Ok(null) = rustix::fs::open("/dev/null", OFlags::RDWR, Mode::empty()) {
                std::mem::forget(null);
            }
        }
    }
}

/// The device a descriptor is, when the box has it in its own /dev.
fn box_device(fd: BorrowedFd) -> Option<&'static str> {
    let st = fstat(fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::CharacterDevice {
        return None;
    }
    let (maj, min) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    BOX_DEVICES
        .iter()
        .find(|(a, b, _)| (*a, *b) == (maj, min))
        .map(|(_, _, p)| *p)
}

/// Whether descriptors `a` and `b` of this process are one open file.
fn same_open_file(a: RawFd, b: RawFd) -> bool {
    const KCMP_FILE: libc::c_long = 0;
    let pid = std::process::id() as libc::c_long;
    // SAFETY: kcmp compares two descriptors of this process; no memory.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid, pid, KCMP_FILE, a, b) };
    if r >= 0 {
        return r == 0;
    }
    // Without kcmp: the same pipe, socket or terminal counts as one.
    // SAFETY: descriptor numbers only inspected.
    let (sa, sb) = unsafe {
        (
            fstat(BorrowedFd::borrow_raw(a)),
            fstat(BorrowedFd::borrow_raw(b)),
        )
    };
    match (sa, sb) {
        (Ok(x), Ok(y)) => {
            let t = FileType::from_raw_mode(x.st_mode);
            (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)
                && matches!(
                    t,
                    FileType::Fifo | FileType::Socket | FileType::CharacterDevice
                )
        }
        _ => false,
    }
}

/// Whether `splice` can be tried on the caller's descriptor: not on a
/// terminal, nor on a file opened to append.
fn splice_may_work(fd: BorrowedFd) -> bool {
    let tty = fstat(fd)
        .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::CharacterDevice)
        .unwrap_or(true);
    let append = rustix::fs::fcntl_getfl(fd)
        .map(|f| f.contains(OFlags::APPEND))
        .unwrap_or(true);
    !tty && !append
}

/// Whether a descriptor is a pipe or a regular file.
fn pipe_or_file(fd: BorrowedFd) -> bool {
    fstat(fd)
        .map(|s| {
            matches!(
                FileType::from_raw_mode(s.st_mode),
                FileType::Fifo | FileType::RegularFile
            )
        })
        .unwrap_or(false)
}

fn is_socket(fd: BorrowedFd) -> bool {
    fstat(fd)
        .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::Socket)
        .unwrap_or(false)
}

/// A pipe for the relay, both ends close-on-exec and above 2, with a large
/// buffer; cowl's end (`ours_is_read`) non-blocking.
fn relay_pipe(ours_is_read: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let _ = rustix::pipe::fcntl_setpipe_size(&r, PIPE_SIZE);
    let (ours, theirs) = if ours_is_read { (r, w) } else { (w, r) };
    let fl = rustix::fs::fcntl_getfl(&ours)?;
    rustix::fs::fcntl_setfl(&ours, fl | OFlags::NONBLOCK)?;
    Ok((ours, theirs))
}

/// Decides the app's stdio and makes the relay's pipes. `pty`: the box gets
/// a terminal for stdin and stdout, and for stderr when `pty_stderr`.
/// Called in the supervisor before the box is made; the box's side goes to
/// the box, the relay stays.
pub fn prepare(pty: bool, pty_stderr: bool) -> io::Result<(AppStdio, Relay)> {
    fill_closed();
    let mut fds: Vec<AppFd> = Vec::with_capacity(3);
    let mut flows = Vec::new();
    for i in 0..3 {
        // SAFETY: 0-2 are open (fill_closed) for the whole run.
        let caller = unsafe { BorrowedFd::borrow_raw(i) };
        if pty && (i < 2 || pty_stderr) {
            fds.push(AppFd::Pty);
            continue;
        }
        if let Some(dev) = box_device(caller) {
            fds.push(AppFd::Device(dev));
            continue;
        }
        if i == 2 && matches!(fds[1], AppFd::Pipe(_)) && same_open_file(1, 2) {
            fds.push(AppFd::SameAs(1));
            continue;
        }
        let to_box = i == 0;
        let (ours, theirs) = relay_pipe(!to_box)?;
        let dir = if to_box { Dir::ToBox } else { Dir::FromBox };
        let mut flow = Flow::new(dir, i, Some(ours), splice_may_work(caller));
        flow.never_blocks = flow.splice && pipe_or_file(caller);
        if is_socket(caller) {
            flow.chunk = SOCKET_CHUNK;
        }
        flows.push(flow);
        fds.push(AppFd::Pipe(theirs));
    }
    let fds: [AppFd; 3] = fds
        .try_into()
        .map_err(|_| io::Error::other("three standard descriptors"))?;
    Ok((
        AppStdio { fds },
        Relay {
            flows,
            master: None,
        },
    ))
}

/// Whether stdin is a terminal whose foreground job is another: cowl was
/// put in the background. A terminal that is not cowl's controlling one
/// (`setsid cowl run … < /dev/pts/N`) has no foreground job for cowl and
/// is read as any other stdin.
pub(crate) fn background_tty() -> bool {
    // SAFETY: plain queries of this process and its terminal.
    sys::isatty(0)
        && unsafe {
            let fg = libc::tcgetpgrp(0);
            fg > 0 && fg != libc::getpgrp()
        }
}

impl Relay {
    /// The box's pty master, once its init passed it out: relayed to and
    /// from the caller's terminal (fds 0 and 1).
    pub(crate) fn attach_master(&mut self, master: OwnedFd) {
        self.flows.push(Flow::new(Dir::TermIn, 0, None, false));
        self.flows.push(Flow::new(Dir::TermOut, 1, None, false));
        self.master = Some(master);
    }

    /// The box's pty master, if the box has a terminal.
    pub(crate) fn master(&self) -> Option<&OwnedFd> {
        self.master.as_ref()
    }

    /// What to poll for; `tags[i]` is the flow of `fds[i]`.
    /// A terminal on stdin is read only while cowl is its foreground job:
    /// a background job that reads its terminal is stopped by the kernel
    /// (SIGTTIN), though the app may never read its stdin at all.
    pub(crate) fn interests(&self) -> Vec<(usize, RawFd, PollFlags)> {
        let m = self.master.as_ref().map(|m| m.as_raw_fd());
        let background_tty = background_tty();
        self.flows
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                !(background_tty
                    && f.caller == 0
                    && matches!(f.dir, Dir::ToBox | Dir::TermIn)
                    && f.want == Want::Read)
            })
            .filter_map(|(i, f)| f.interest(m).map(|(fd, ev)| (i, fd, ev)))
            .collect()
    }

    /// Runs flow `i`, which poll reported ready, until it would block.
    pub(crate) fn pump(&mut self, i: usize) {
        let m = self.master.as_ref().map(|m| m.as_raw_fd());
        let Some(f) = self.flows.get_mut(i) else {
            return;
        };
        for _ in 0..STEPS_PER_TURN {
            match f.step(m) {
                Step::Moved => continue,
                Step::Wait(w) => {
                    f.want = w;
                    return;
                }
                Step::Ended(end) => {
                    finish_flow(f, end, true);
                    return;
                }
            }
        }
    }

    /// After the box (or the joined command) ended: delivers what the app
    /// wrote and the caller has not yet got, and gives back what it did not
    /// read of a seekable stdin. Waits only for the caller's side to take
    /// output; a process still holding the app's pipe (in a box that goes
    /// on running) does not hold this up.
    pub(crate) fn finish(&mut self) {
        let m = self.master.as_ref().map(|m| m.as_raw_fd());
        if let Some(master) = &self.master {
            if let Ok(fl) = rustix::fs::fcntl_getfl(master) {
                let _ = rustix::fs::fcntl_setfl(master, fl | OFlags::NONBLOCK);
            }
        }
        for f in &mut self.flows {
            if f.leftover.is_some() {
                give_back_unread(f);
            }
            if f.done {
                continue;
            }
            if matches!(f.dir, Dir::ToBox | Dir::TermIn) {
                finish_flow(f, End::SourceDone, false);
                continue;
            }
            loop {
                match f.step(m) {
                    Step::Moved => {}
                    // Nothing to read now, and nothing left in the app's
                    // pipe: done. (A full destination can look like an empty
                    // source for a moment: what the pipe holds says which.)
                    Step::Wait(Want::Read) if f.source_holds(m) == 0 => break,
                    Step::Wait(_) => {
                        let Some((_, dst)) = f.ends(m) else { break };
                        // SAFETY: dst is the caller's descriptor, open.
                        let dst = unsafe { BorrowedFd::borrow_raw(dst) };
                        let mut p = [PollFd::from_borrowed_fd(dst, PollFlags::OUT)];
                        if poll(&mut p, None).is_err() {
                            break;
                        }
                    }
                    Step::Ended(_) => break,
                }
            }
            f.done = true;
        }
    }
}

/// What the end of a flow means for the app's pipe and the caller's
/// descriptor. `running`: the app may still use its end.
fn finish_flow(f: &mut Flow, end: End, running: bool) {
    f.done = true;
    match (f.dir, end) {
        (Dir::ToBox, _) => {
            if end == End::DestinationGone || !running {
                give_back_unread(f);
            } else if caller_is_regular(f.caller) {
                // The app may leave some of it unread: keep a way to count.
                f.leftover = f.pipe.as_ref().and_then(|p| {
                    rustix::fs::open(
                        format!("/proc/self/fd/{}", p.as_raw_fd()),
                        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .ok()
                });
            }
            // Closing our end: the app reads end of input.
            f.pipe = None;
            if end == End::DestinationGone && running {
                // The app closed its stdin: a writer to ours gets SIGPIPE,
                // as it would from the app.
                let_go(0);
            }
        }
        (Dir::FromBox, End::SourceDone) => {
            f.pipe = None;
            if running && f.caller == 1 {
                // The app closed its stdout: the caller's reader sees the end.
                // (stderr stays: cowl's own messages still go there.)
                let_go(1);
            }
        }
        (Dir::FromBox, End::DestinationGone) => {
            // Nobody reads the caller's descriptor any more: the app's next
            // write fails as it would have (EPIPE, SIGPIPE).
            f.pipe = None;
        }
        (Dir::TermIn | Dir::TermOut, _) => {}
    }
}

/// Moves a seekable stdin's offset back over what the app did not read.
fn give_back_unread(f: &mut Flow) {
    let n = f.unread();
    f.leftover = None;
    if n == 0 || !caller_is_regular(f.caller) {
        return;
    }
    // SAFETY: the caller's stdin, open for the whole run.
    let fd = unsafe { BorrowedFd::borrow_raw(f.caller) };
    if let Ok(back) = i64::try_from(n) {
        let _ = rustix::fs::seek(fd, rustix::fs::SeekFrom::Current(-back));
    }
}

/// Whether the caller's descriptor is a regular file (seekable).
fn caller_is_regular(fd: RawFd) -> bool {
    // SAFETY: the caller's descriptor, open for the whole run.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    fstat(fd)
        .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::RegularFile)
        .unwrap_or(false)
}

/// Replaces the caller's descriptor `fd` in cowl with /dev/null.
fn let_go(fd: RawFd) {
    if let Ok(null) = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
        let _ = match fd {
            0 => rustix::stdio::dup2_stdin(&null),
            1 => rustix::stdio::dup2_stdout(&null),
            _ => rustix::stdio::dup2_stderr(&null),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_splices_a_pipe_through_and_ends_at_end_of_input() {
        let (src_r, src_w) = rustix::pipe::pipe().unwrap_or_else(|e| panic!("{e}"));
        let (ours, theirs) = relay_pipe(false).unwrap_or_else(|e| panic!("{e}"));
        let mut f = Flow::new(Dir::ToBox, src_r.as_raw_fd(), Some(ours), true);
        rustix::io::write(&src_w, b"hello").unwrap_or_else(|e| panic!("{e}"));
        drop(src_w);
        let mut steps = 0;
        let end = loop {
            steps += 1;
            assert!(steps < 100);
            match f.step(None) {
                Step::Moved => continue,
                Step::Wait(w) => panic!("waits for {w:?}"),
                Step::Ended(e) => break e,
            }
        };
        assert_eq!(end, End::SourceDone);
        let mut buf = [0u8; 16];
        let n = rustix::io::read(&theirs, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&buf[..n], b"hello");
    }

    #[test]
    fn a_flow_whose_reader_left_ends_with_the_destination_gone() {
        let (ours, theirs) = relay_pipe(true).unwrap_or_else(|e| panic!("{e}"));
        let (dst_r, dst_w) = rustix::pipe::pipe().unwrap_or_else(|e| panic!("{e}"));
        drop(dst_r);
        // SAFETY: ignoring SIGPIPE in the test process, as the supervisor does.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let mut f = Flow::new(Dir::FromBox, dst_w.as_raw_fd(), Some(ours), true);
        rustix::io::write(&theirs, b"x").unwrap_or_else(|e| panic!("{e}"));
        let end = loop {
            match f.step(None) {
                Step::Moved => continue,
                Step::Wait(w) => panic!("waits for {w:?}"),
                Step::Ended(e) => break e,
            }
        };
        assert_eq!(end, End::DestinationGone);
    }
}
