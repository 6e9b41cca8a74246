//! Copying an established connection both ways, in one thread, with a
//! fixed buffer per direction and an idle limit.
//!
//! Both sockets are non-blocking and `poll(2)` waits for whichever side can
//! move: a side that stops reading stalls only its own direction (its
//! buffer stays full, nothing more is read for it), so memory stays at two
//! buffers whatever the peers do, and a connection on which nothing has
//! moved for the idle limit, either way, is closed.

use super::RELAY_BUFFER;
use crate::sys;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How a relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Both directions reached their end, or one side failed.
    Done,
    /// Nothing moved either way for the idle limit.
    Idle,
}

/// One direction: bytes read from `from` wait in `buf[start..end]` until
/// `to` takes them.
struct Direction<'a> {
    from: &'a TcpStream,
    to: &'a TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// `from` has ended and everything read is written.
    done: bool,
}

impl Direction<'_> {
    fn pending(&self) -> bool {
        self.start < self.end
    }

    /// The poll events this direction waits for, on `from` and on `to`.
    fn wants(&self) -> (i16, i16) {
        match (self.done, self.pending()) {
            (true, _) => (0, 0),
            (false, true) => (0, libc::POLLOUT),
            (false, false) => (libc::POLLIN, 0),
        }
    }

    /// Moves what it can without blocking; whether anything moved.
    fn step(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let mut moved = false;
        if !self.pending() {
            match (&mut &*self.from).read(&mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    let _ = self.to.shutdown(Shutdown::Write);
                    return Ok(true);
                }
                Ok(n) => (self.start, self.end, moved) = (0, n, true),
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        match (&mut &*self.to).write(&self.buf[self.start..self.end]) {
            Ok(n) => {
                self.start += n;
                moved |= n > 0;
            }
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
        Ok(moved)
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Copies `a` to `b` and `b` to `a` until both directions end (each end is
/// passed on as a shutdown of writing), one side fails, or nothing has
/// moved for `idle`. `a_to_b` is sent to `b` first: bytes the client sent
/// after its request head.
pub fn relay(a: &TcpStream, b: &TcpStream, a_to_b: &[u8], idle: Duration) -> io::Result<Ended> {
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    let mut first = vec![0; RELAY_BUFFER.max(a_to_b.len())];
    first[..a_to_b.len()].copy_from_slice(a_to_b);
    let mut dirs = [
        Direction {
            from: a,
            to: b,
            buf: first,
            start: 0,
            end: a_to_b.len(),
            done: false,
        },
        Direction {
            from: b,
            to: a,
            buf: vec![0; RELAY_BUFFER],
            start: 0,
            end: 0,
            done: false,
        },
    ];
    let mut last_move = Instant::now();
    loop {
        if dirs.iter().all(|d| d.done) {
            return Ok(Ended::Done);
        }
        let mut moved = false;
        for d in dirs.iter_mut() {
            moved |= d.step()?;
        }
        if moved {
            last_move = Instant::now();
            continue;
        }
        let left = idle.saturating_sub(last_move.elapsed());
        if left.is_zero() {
            return Ok(Ended::Idle);
        }
        let (ab_from, ab_to) = dirs[0].wants();
        let (ba_from, ba_to) = dirs[1].wants();
        let mut fds = [
            libc::pollfd {
                fd: a.as_raw_fd(),
                events: ab_from | ba_to,
                revents: 0,
            },
            libc::pollfd {
                fd: b.as_raw_fd(),
                events: ab_to | ba_from,
                revents: 0,
            },
        ];
        // Round up, so a wait never ends a hair early and spins.
        let ms = i32::try_from(left.as_millis() + 1).unwrap_or(i32::MAX);
        sys::poll(&mut fds, ms)?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::TcpListener;

    /// Two connected pairs: (client, proxy side of it), (proxy side of the
    /// server, server).
    fn pairs() -> ((TcpStream, TcpStream), (TcpStream, TcpStream)) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let pair = || {
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            (c, s)
        };
        (pair(), pair())
    }

    #[test]
    fn bytes_pass_both_ways_and_each_end_is_passed_on() {
        let ((mut client, pa), (pb, mut server)) = pairs();
        let t = std::thread::spawn(move || relay(&pa, &pb, b"early ", Duration::from_secs(10)));
        client.write_all(b"hello").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut got = String::new();
        server.read_to_string(&mut got).unwrap();
        assert_eq!(got, "early hello");
        // A large answer, more than the buffers and the socket queues hold.
        let big = vec![7u8; 8 << 20];
        let w = std::thread::spawn(move || {
            server.write_all(&big).unwrap();
            server.shutdown(Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), 8 << 20);
        w.join().unwrap();
        assert_eq!(t.join().unwrap().unwrap(), Ended::Done);
    }

    #[test]
    fn a_connection_where_nothing_moves_is_ended_as_idle() {
        let ((mut client, pa), (pb, server)) = pairs();
        let start = Instant::now();
        let ended = relay(&pa, &pb, b"", Duration::from_millis(200)).unwrap();
        assert_eq!(ended, Ended::Idle);
        assert!(start.elapsed() >= Duration::from_millis(200));
        drop((pa, pb));
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).unwrap(), 0);
        drop(server);
    }

    #[test]
    fn traffic_keeps_a_connection_from_being_idle() {
        let ((mut client, pa), (pb, mut server)) = pairs();
        let t = std::thread::spawn(move || relay(&pa, &pb, b"", Duration::from_millis(300)));
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(100));
            client.write_all(b"x").unwrap();
            let mut one = [0u8; 1];
            server.read_exact(&mut one).unwrap();
        }
        drop(client);
        drop(server);
        // Done, or a reset from the closed sockets: anything but idle.
        assert!(!matches!(t.join().unwrap(), Ok(Ended::Idle)));
    }
}
