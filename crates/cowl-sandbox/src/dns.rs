//! The DNS wire format (RFC 1035), as much of it as the box's resolver
//! needs: read a query's header and its question, and write the answer
//! that refuses it.
//!
//! Everything here comes from the box, so nothing is trusted: every read is
//! bounds-checked, a name holds at most [`MAX_NAME`] bytes, and a
//! compression pointer must point before every part of the name read so far
//! (so no pointer can lead back into a loop) and at most [`MAX_POINTERS`]
//! are followed. Any input ends in a bounded number of steps with an answer
//! or with none. Hand-written rather than a crate's: the resolver parses one
//! question and writes one header, which is less code than a dependency's
//! surface.

/// The length of a message's header.
pub const HEADER_LEN: usize = 12;
/// The most bytes a name takes on the wire, length bytes included
/// (RFC 1035, 2.3.4).
pub const MAX_NAME: usize = 255;
/// The most bytes of one label.
pub const MAX_LABEL: usize = 63;
/// The most compression pointers followed in one name. A query has no
/// reason to hold any; a few are tolerated.
pub const MAX_POINTERS: usize = 16;

/// Response codes of the header.
pub mod rcode {
    /// The query is malformed.
    pub const FORMERR: u8 = 1;
    /// The name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// The kind of query is not implemented.
    pub const NOTIMP: u8 = 4;
    /// The server refuses to answer.
    pub const REFUSED: u8 = 5;
}

/// The QR bit: the message is a response.
const QR: u16 = 0x8000;
/// The RD bit: recursion desired (copied to the answer).
const RD: u16 = 0x0100;
/// The CD bit: checking disabled (copied to the answer, RFC 6840, 5.9).
const CD: u16 = 0x0010;

/// A query's one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The labels of the name, as sent (case kept), the root's empty label
    /// left out.
    pub labels: Vec<Vec<u8>>,
    /// The type asked for (1 A, 28 AAAA …).
    pub qtype: u16,
    /// The class (1 IN).
    pub qclass: u16,
}

impl Question {
    /// The name in presentation format, lower case: letters, digits, `-`
    /// and `_` as they are, any other byte as `\DDD` (a dot or backslash
    /// inside a label included), labels joined by dots; the root is `.`.
    /// What a box sent can hold any byte: this form is printable, and two
    /// different names never look the same.
    pub fn name(&self) -> String {
        if self.labels.is_empty() {
            return ".".to_owned();
        }
        let mut out = String::new();
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            for &b in label {
                let b = b.to_ascii_lowercase();
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("\\{b:03}"));
                }
            }
        }
        out
    }

    /// The name of the type asked for: "A", "AAAA", "HTTPS" …, else
    /// "TYPEn" (RFC 3597).
    pub fn type_name(&self) -> String {
        let known = match self.qtype {
            1 => "A",
            2 => "NS",
            5 => "CNAME",
            6 => "SOA",
            12 => "PTR",
            15 => "MX",
            16 => "TXT",
            28 => "AAAA",
            33 => "SRV",
            35 => "NAPTR",
            43 => "DS",
            48 => "DNSKEY",
            64 => "SVCB",
            65 => "HTTPS",
            255 => "ANY",
            257 => "CAA",
            n => return format!("TYPE{n}"),
        };
        known.to_owned()
    }
}

/// What a message that can be answered asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A standard query (opcode 0) with one question.
    Standard {
        /// The message id, echoed.
        id: u16,
        /// The header's flags.
        flags: u16,
        /// The question.
        question: Question,
    },
    /// Another opcode (inverse query, status, notify, update): answered
    /// NOTIMP.
    Unsupported {
        /// The message id.
        id: u16,
        /// The header's flags.
        flags: u16,
    },
    /// A header, then nothing that reads as one question: answered FORMERR.
    Malformed {
        /// The message id.
        id: u16,
        /// The header's flags.
        flags: u16,
    },
}

/// Reads a message sent to the resolver. `None` when it deserves no
/// answer: shorter than a header (there is no id to answer to), or a
/// response (answering responses could make two resolvers talk forever).
pub fn parse(msg: &[u8]) -> Option<Query> {
    let id = be16(msg, 0)?;
    let flags = be16(msg, 2)?;
    let qdcount = be16(msg, 4)?;
    if msg.len() < HEADER_LEN || flags & QR != 0 {
        return None;
    }
    if opcode(flags) != 0 {
        return Some(Query::Unsupported { id, flags });
    }
    let question = (qdcount == 1)
        .then(|| read_question(msg, HEADER_LEN))
        .flatten();
    Some(match question {
        Some(question) => Query::Standard {
            id,
            flags,
            question,
        },
        None => Query::Malformed { id, flags },
    })
}

/// The answer to `query`: `refusal` (REFUSED or NXDOMAIN) for a standard
/// query, its question echoed as sent, no records; NOTIMP or FORMERR,
/// without a question, for the others. At most 12 + 255 + 4 bytes: it fits
/// any UDP answer (512 bytes without EDNS).
pub fn answer(query: &Query, refusal: u8) -> Vec<u8> {
    let (id, flags, rcode, question) = match query {
        Query::Standard {
            id,
            flags,
            question,
        } => (*id, *flags, refusal, Some(question)),
        Query::Unsupported { id, flags } => (*id, *flags, rcode::NOTIMP, None),
        Query::Malformed { id, flags } => (*id, *flags, rcode::FORMERR, None),
    };
    let out_flags = QR | (flags & 0x7800) | (flags & (RD | CD)) | u16::from(rcode & 0x0f);
    let mut out = Vec::with_capacity(HEADER_LEN + MAX_NAME + 4);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&out_flags.to_be_bytes());
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    if let Some(q) = question {
        for label in &q.labels {
            // Each label was read at most MAX_LABEL long.
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&q.qclass.to_be_bytes());
    }
    out
}

fn opcode(flags: u16) -> u16 {
    (flags >> 11) & 0x0f
}

fn be16(msg: &[u8], at: usize) -> Option<u16> {
    let b = msg.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads the question at `at`: a name, its type and class.
fn read_question(msg: &[u8], at: usize) -> Option<Question> {
    let (labels, after) = read_name(msg, at)?;
    Some(Question {
        labels,
        qtype: be16(msg, after)?,
        qclass: be16(msg, after.checked_add(2)?)?,
    })
}

/// Reads a name at `at`: its labels and where the name ends on the wire
/// (after its first pointer, if it has one). `None` for anything but a
/// well-formed name of at most [`MAX_NAME`] bytes: a label running past
/// the end, a label type other than plain and pointer, a pointer that does
/// not point before all of the name read so far, more than
/// [`MAX_POINTERS`] pointers.
fn read_name(msg: &[u8], at: usize) -> Option<(Vec<Vec<u8>>, usize)> {
    let mut labels = Vec::new();
    let mut pos = at;
    // Where the labels read since the last jump begin: a pointer must
    // point before it, so each jump goes strictly backwards and none can
    // come back to where one already was.
    let mut lowest = at;
    let mut end = None;
    let mut wire = 1usize;
    let mut pointers = 0;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some((labels, end.unwrap_or(pos + 1))),
            0x00 => {
                let n = usize::from(len);
                wire += n + 1;
                if n > MAX_LABEL || wire > MAX_NAME {
                    return None;
                }
                labels.push(msg.get(pos + 1..pos + 1 + n)?.to_vec());
                pos += 1 + n;
            }
            0xc0 => {
                let low = *msg.get(pos + 1)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                pointers += 1;
                if target >= lowest || pointers > MAX_POINTERS {
                    return None;
                }
                end.get_or_insert(pos + 2);
                lowest = target;
                pos = target;
            }
            // 0x40 (extended label types, RFC 6891) and 0x80 (reserved).
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A query for `name` of `qtype`, id 0x1234, RD set.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.').filter(|l| !l.is_empty()) {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    fn rcode_of(answer: &[u8]) -> u8 {
        answer[3] & 0x0f
    }

    #[test]
    fn a_query_is_refused_with_its_question_echoed() {
        for qtype in [1u16, 28, 65, 12, 999] {
            let q = query("Deb.Debian.org", qtype);
            let parsed = parse(&q).unwrap();
            let Query::Standard { question, .. } = &parsed else {
                panic!("{parsed:?}")
            };
            assert_eq!(question.name(), "deb.debian.org");
            assert_eq!(question.qtype, qtype);
            let a = answer(&parsed, rcode::REFUSED);
            // Same id, QR and RD set, REFUSED, one question, no records.
            assert_eq!(&a[..4], &[0x12, 0x34, 0x81, 0x05]);
            assert_eq!(&a[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
            // The question as sent, case kept (clients that randomise case check it).
            assert_eq!(&a[12..], &q[12..]);
        }
        let a = answer(&parse(&query("x.org", 1)).unwrap(), rcode::NXDOMAIN);
        assert_eq!(rcode_of(&a), rcode::NXDOMAIN);
    }

    #[test]
    fn type_names_are_the_usual_ones_else_rfc_3597s() {
        let q = |t| Question {
            labels: Vec::new(),
            qtype: t,
            qclass: 1,
        };
        assert_eq!(q(1).type_name(), "A");
        assert_eq!(q(28).type_name(), "AAAA");
        assert_eq!(q(65).type_name(), "HTTPS");
        assert_eq!(q(4242).type_name(), "TYPE4242");
        assert_eq!(q(1).name(), ".");
    }

    #[test]
    fn odd_bytes_in_a_name_are_escaped() {
        let mut q = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x05a.b\x1b\\\x03ORG\x00\x00\x01\x00\x01");
        let Some(Query::Standard { question, .. }) = parse(&q) else {
            panic!()
        };
        assert_eq!(question.name(), "a\\046b\\027\\092.org");
    }

    #[test]
    fn messages_without_an_id_or_that_are_responses_get_no_answer() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[0x12, 0x34, 0x01]), None);
        assert_eq!(parse(&[0; 11]), None);
        let mut r = query("a.org", 1);
        r[2] |= 0x80;
        assert_eq!(parse(&r), None);
    }

    #[test]
    fn a_header_with_no_question_or_a_broken_one_is_a_format_error() {
        let formerr = |m: &[u8]| {
            let p = parse(m).unwrap();
            assert!(matches!(p, Query::Malformed { .. }), "{m:?}: {p:?}");
            let a = answer(&p, rcode::REFUSED);
            assert_eq!(a.len(), HEADER_LEN);
            assert_eq!(rcode_of(&a), rcode::FORMERR);
            assert_eq!(&a[4..6], &[0, 0]);
        };
        // A header only; no question; two questions.
        formerr(&[0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        formerr(&[0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut two = query("a.org", 1);
        two[5] = 2;
        formerr(&two);
        // Truncated anywhere after the header.
        let q = query("www.example.org", 1);
        for cut in HEADER_LEN..q.len() {
            formerr(&q[..cut]);
        }
        // A label longer than 63; extended and reserved label types.
        let mut long = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64];
        long.extend_from_slice(&[b'a'; 64]);
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        formerr(&long);
        for t in [0x41u8, 0x81] {
            formerr(&[0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, t, 0, 0, 0, 1, 0, 1]);
        }
    }

    #[test]
    fn names_longer_than_255_bytes_are_refused_however_they_are_built() {
        // 128 labels of one byte: 257 bytes on the wire.
        let mut m = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..128 {
            m.extend_from_slice(&[1, b'a']);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(matches!(parse(&m), Some(Query::Malformed { .. })));
        // 127 of them fit: 255 bytes.
        let mut m = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..127 {
            m.extend_from_slice(&[1, b'a']);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        let Some(Query::Standard { question, .. }) = parse(&m) else {
            panic!()
        };
        assert_eq!(question.labels.len(), 127);
        assert!(answer(&parse(&m).unwrap(), rcode::REFUSED).len() <= 12 + 255 + 4);
        // Huge label counts in the header change nothing.
        let mut q = query("a.org", 1);
        q[6..12].copy_from_slice(&[0xff; 6]);
        assert!(matches!(parse(&q), Some(Query::Standard { .. })));
    }

    #[test]
    fn compression_loops_end_at_once() {
        let hdr = [0u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        // A pointer to itself.
        let mut m = hdr.to_vec();
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(parse(&m), Some(Query::Malformed { .. })));
        // A label, then a pointer back to that label: a loop through it.
        let mut m = hdr.to_vec();
        m.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(parse(&m), Some(Query::Malformed { .. })));
        // A pointer forwards, and two pointers to each other.
        let mut m = hdr.to_vec();
        m.extend_from_slice(&[0xc0, 16, 0, 1, 0xc0, 14, 0, 1, 0, 1]);
        assert!(matches!(parse(&m), Some(Query::Malformed { .. })));
        // A pointer past the end, and a pointer cut in half.
        let mut m = hdr.to_vec();
        m.extend_from_slice(&[0xff, 0xff]);
        assert!(matches!(parse(&m), Some(Query::Malformed { .. })));
        let mut m = hdr.to_vec();
        m.push(0xc0);
        assert!(matches!(parse(&m), Some(Query::Malformed { .. })));
        // A pointer backwards, to a name before this one, is followed.
        let mut m = hdr.to_vec();
        m.extend_from_slice(&[3, b'o', b'r', b'g', 0, 1, b'b', 0xc0, 12]);
        assert_eq!(
            read_name(&m, 17),
            Some((vec![b"b".to_vec(), b"org".to_vec()], 21))
        );
        // A chain of MAX_POINTERS + 1 hops is refused, one of MAX_POINTERS followed.
        let mut chain = hdr.to_vec();
        chain.extend_from_slice(&[3, b'o', b'r', b'g', 0]); // 12..17: "org"
        let mut prev = 12u8;
        for _ in 0..MAX_POINTERS + 1 {
            let here = chain.len() as u8;
            chain.extend_from_slice(&[0xc0, prev]);
            prev = here;
        }
        let start = usize::from(prev);
        assert_eq!(read_name(&chain, start), None);
        assert!(read_name(&chain, start - 2).is_some());
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        // A small xorshift: the same bytes on every run.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let seed = query("www.example.org", 28);
        for round in 0..200_000 {
            let mut m = if round % 2 == 0 {
                seed.clone()
            } else {
                let len = (next() % 600) as usize;
                (0..len).map(|_| next() as u8).collect()
            };
            // Flip a few bytes, biased towards label lengths and pointers.
            for _ in 0..(next() % 6) {
                if m.is_empty() {
                    break;
                }
                let at = (next() as usize) % m.len();
                m[at] = match next() % 4 {
                    0 => 0xc0 | (next() as u8 & 0x3f),
                    1 => next() as u8 & 0x3f,
                    _ => next() as u8,
                };
            }
            if let Some(q) = parse(&m) {
                let a = answer(&q, rcode::REFUSED);
                assert!(a.len() <= HEADER_LEN + MAX_NAME + 4);
                assert_eq!(a[..2], m[..2]);
                assert!(parse(&a).is_none(), "an answer is a response");
            }
        }
    }
}
