//! Every message between cowl's supervisor and the processes of a box it
//! starts or joins (the box's init, a joined run's helper, the app before
//! its exec) and the freeze's thaw guard: one enum, one encoding. Each is a
//! seqpacket (a tag byte and text), some with a descriptor passed along.
//!
//! ```text
//! init → supervisor   Warning, MapIds, SetupFailed, ExecFailed, Terminal+fd,
//!                     HttpListener+fd, SocksListener+fd, DnsUdp+fd, DnsTcp+fd,
//!                     NetworkReady; end of stream: the app has exec'd
//! supervisor → init   Go (the id maps are written; rootless: after the clone)
//! cowl → thaw guard   Hold+pidfd, Release
//! ```

use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Longest text a message carries (a seqpacket of at most 4 KiB is read).
const MAX_TEXT: usize = 4000;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// A non-fatal problem to show the user.
    Warning(String),
    /// System mode: "write my id maps" (the user namespace is made now).
    MapIds,
    /// Go on: the id maps are written.
    Go,
    /// Setting up the box failed: the run ends with this error.
    SetupFailed(String),
    /// The app could not be exec'd (it exits 126 or 127).
    ExecFailed(String),
    /// The box's pty master (with the descriptor).
    Terminal,
    /// The HTTP proxy's listener in the box (with the descriptor).
    HttpListener,
    /// The SOCKS5 proxy's listener in the box (with the descriptor).
    SocksListener,
    /// The resolver's UDP socket in the box (with the descriptor).
    DnsUdp,
    /// The resolver's TCP listener in the box (with the descriptor).
    DnsTcp,
    /// Every socket of the box's network was passed: start serving them.
    NetworkReady,
    /// To the thaw guard: a process now stopped (with its pidfd).
    Hold,
    /// To the thaw guard: the box runs again; leave.
    Release,
}

impl Message {
    fn tag(&self) -> u8 {
        match self {
            Message::Warning(_) => b'W',
            Message::MapIds => b'M',
            Message::Go => b'G',
            Message::SetupFailed(_) => b'E',
            Message::ExecFailed(_) => b'X',
            Message::Terminal => b'P',
            Message::HttpListener => b'h',
            Message::SocksListener => b's',
            Message::DnsUdp => b'd',
            Message::DnsTcp => b't',
            Message::NetworkReady => b'N',
            Message::Hold => b'm',
            Message::Release => b'r',
        }
    }

    fn text(&self) -> &str {
        match self {
            Message::Warning(t) | Message::SetupFailed(t) | Message::ExecFailed(t) => t,
            _ => "",
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.text().len() + 1);
        m.push(self.tag());
        m.extend_from_slice(self.text().as_bytes());
        m.truncate(MAX_TEXT);
        m
    }

    fn decode(b: &[u8]) -> Option<Message> {
        let (&tag, rest) = b.split_first()?;
        let text = || String::from_utf8_lossy(rest).into_owned();
        Some(match tag {
            b'W' => Message::Warning(text()),
            b'M' => Message::MapIds,
            b'G' => Message::Go,
            b'E' => Message::SetupFailed(text()),
            b'X' => Message::ExecFailed(text()),
            b'P' => Message::Terminal,
            b'h' => Message::HttpListener,
            b's' => Message::SocksListener,
            b'd' => Message::DnsUdp,
            b't' => Message::DnsTcp,
            b'N' => Message::NetworkReady,
            b'm' => Message::Hold,
            b'r' => Message::Release,
            _ => return None,
        })
    }

    /// Sends it on `sock`.
    pub(crate) fn send(&self, sock: &OwnedFd) -> io::Result<()> {
        sys::write_all(sock.as_raw_fd(), &self.encode())
    }

    /// Sends it on `sock` with the descriptor `fd`.
    pub(crate) fn send_with(&self, sock: &OwnedFd, fd: RawFd) -> io::Result<()> {
        sys::send_with_fd(sock, &self.encode(), fd)
    }

    /// Receives one: `None` at the end of the stream; an unknown message is
    /// an error.
    pub(crate) fn recv(sock: &OwnedFd) -> io::Result<Option<(Message, Option<OwnedFd>)>> {
        let (b, fd) = sys::recv_msg(sock)?;
        if b.is_empty() {
            return Ok(None);
        }
        match Message::decode(&b) {
            Some(m) => Ok(Some((m, fd))),
            None => Err(io::Error::other(format!(
                "an unknown message from the box: {:?}",
                String::from_utf8_lossy(&b)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_decodes_as_it_was_encoded() {
        for m in [
            Message::Warning("w".into()),
            Message::MapIds,
            Message::Go,
            Message::SetupFailed("e".into()),
            Message::ExecFailed("x".into()),
            Message::Terminal,
            Message::HttpListener,
            Message::SocksListener,
            Message::DnsUdp,
            Message::DnsTcp,
            Message::NetworkReady,
            Message::Hold,
            Message::Release,
        ] {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
        assert_eq!(Message::decode(b"?"), None);
        assert_eq!(Message::decode(b""), None);
    }
}
