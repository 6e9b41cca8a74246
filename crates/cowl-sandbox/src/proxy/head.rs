//! Reading an HTTP request head within fixed limits.
//!
//! The proxy runs on the host, outside the box's memory limit, so what a
//! client sends must never decide how much it holds: every read asks for no
//! more than the limit left ([`Read::take`]), a line is at most
//! [`MAX_HEADER_LINE`] bytes, the head at most [`MAX_HEAD_BYTES`] and
//! [`MAX_HEAD_LINES`] lines, whatever arrives.

use super::{MAX_HEADER_LINE, MAX_HEAD_BYTES, MAX_HEAD_LINES};
use std::io::{self, BufRead, Read};
use std::time::Duration;

/// Why no request head was read.
#[derive(Debug)]
pub enum HeadError {
    /// The client closed (or reset) the connection before the end of the
    /// head: nobody is left to answer.
    Closed,
    /// The request line is longer than [`MAX_HEADER_LINE`].
    RequestLineTooLong,
    /// A header line is longer than [`MAX_HEADER_LINE`].
    HeaderLineTooLong,
    /// The head is larger than [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// The head has more than [`MAX_HEAD_LINES`] lines.
    TooManyLines,
    /// The client sent nothing for the read timeout of the connection.
    Idle,
}

impl HeadError {
    /// The status line and the reason for the log; `None` when nobody is
    /// left to answer (the connection is gone). `idle` is the read timeout
    /// the head was read with.
    pub fn refusal(&self, idle: Duration) -> Option<(&'static str, String)> {
        let line = MAX_HEADER_LINE;
        Some(match self {
            HeadError::Closed => return None,
            HeadError::RequestLineTooLong => (
                "414 URI Too Long",
                format!("request line longer than {line} bytes"),
            ),
            HeadError::HeaderLineTooLong => (
                "431 Request Header Fields Too Large",
                format!("header line longer than {line} bytes"),
            ),
            HeadError::HeadTooLarge => (
                "431 Request Header Fields Too Large",
                format!("request head larger than {MAX_HEAD_BYTES} bytes"),
            ),
            HeadError::TooManyLines => (
                "431 Request Header Fields Too Large",
                format!("request head of more than {MAX_HEAD_LINES} lines"),
            ),
            HeadError::Idle => (
                "408 Request Timeout",
                format!(
                    "sent nothing for {} before the end of the request head",
                    super::seconds(idle)
                ),
            ),
        })
    }
}

/// Reads one request head from `r`: its lines, each with its line end,
/// without the empty line that ends the head. Empty lines before the
/// request line are skipped (RFC 9112, 2.2). A read timeout of the
/// underlying socket shows as [`HeadError::Idle`].
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Vec<Vec<u8>>, HeadError> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    loop {
        let room = MAX_HEADER_LINE.min(MAX_HEAD_BYTES - total);
        let mut line = Vec::new();
        let n = r
            .by_ref()
            .take(room as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HeadError::Idle,
                _ => HeadError::Closed,
            })?;
        if line.last() != Some(&b'\n') {
            return Err(if n < room {
                HeadError::Closed
            } else if room < MAX_HEADER_LINE {
                HeadError::HeadTooLarge
            } else if lines.is_empty() {
                HeadError::RequestLineTooLong
            } else {
                HeadError::HeaderLineTooLong
            });
        }
        total += n;
        if line == b"\r\n" || line == b"\n" {
            if lines.is_empty() {
                continue;
            }
            return Ok(lines);
        }
        if lines.len() == MAX_HEAD_LINES {
            return Err(HeadError::TooManyLines);
        }
        // Kept lines hold their length, not what growing them reserved.
        line.shrink_to_fit();
        lines.push(line);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{BufReader, Cursor, Write};

    fn read(data: &[u8]) -> Result<Vec<Vec<u8>>, HeadError> {
        read_head(&mut BufReader::new(Cursor::new(data.to_vec())))
    }

    #[test]
    fn a_head_is_read_up_to_its_empty_line_and_no_further() {
        let mut r = BufReader::new(Cursor::new(
            b"\r\nGET http://a/ HTTP/1.1\r\nHost: a\n\r\nBODY".to_vec(),
        ));
        let head = read_head(&mut r).unwrap();
        assert_eq!(head, [&b"GET http://a/ HTTP/1.1\r\n"[..], b"Host: a\n"]);
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "BODY");
    }

    #[test]
    fn lines_up_to_the_limit_pass_and_one_byte_more_is_refused() {
        let fill = |n: usize| format!("X: {}\r\n", "a".repeat(n - 5));
        let ok = format!("GET / HTTP/1.1\r\n{}\r\n", fill(MAX_HEADER_LINE));
        assert_eq!(read(ok.as_bytes()).unwrap().len(), 2);
        let long = format!("GET / HTTP/1.1\r\n{}\r\n", fill(MAX_HEADER_LINE + 1));
        assert!(matches!(
            read(long.as_bytes()),
            Err(HeadError::HeaderLineTooLong)
        ));
        let request = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEADER_LINE));
        assert!(matches!(
            read(request.as_bytes()),
            Err(HeadError::RequestLineTooLong)
        ));
    }

    #[test]
    fn a_line_without_end_is_cut_at_the_limit_not_read_to_its_end() {
        // 64 MiB of one line: refused after reading at most one line's worth.
        struct Endless(usize);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                buf.fill(b'a');
                self.0 += buf.len();
                Ok(buf.len())
            }
        }
        let mut src = Endless(0);
        let mut r = BufReader::new(&mut src);
        assert!(matches!(
            read_head(&mut r),
            Err(HeadError::RequestLineTooLong)
        ));
        drop(r);
        assert!(src.0 <= MAX_HEADER_LINE + 8192, "read {} bytes", src.0);
    }

    #[test]
    fn the_whole_head_and_its_line_count_are_bounded() {
        let line = format!("X: {}\r\n", "a".repeat(8000));
        let big = format!("GET / HTTP/1.1\r\n{}\r\n", line.repeat(9));
        assert!(matches!(read(big.as_bytes()), Err(HeadError::HeadTooLarge)));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEAD_LINES)
        );
        assert!(matches!(
            read(many.as_bytes()),
            Err(HeadError::TooManyLines)
        ));
        let most = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEAD_LINES - 1)
        );
        assert_eq!(read(most.as_bytes()).unwrap().len(), MAX_HEAD_LINES);
    }

    #[test]
    fn an_early_end_is_a_close_and_a_silent_client_is_idle() {
        assert!(matches!(read(b""), Err(HeadError::Closed)));
        assert!(matches!(
            read(b"GET / HTTP/1.1\r\nHo"),
            Err(HeadError::Closed)
        ));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        (&client).write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let mut r = BufReader::new(&server);
        assert!(matches!(read_head(&mut r), Err(HeadError::Idle)));
    }
}
