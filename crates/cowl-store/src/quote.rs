//! Names and other text a box controls, made safe to print for a human.
//!
//! A box chooses its file names, and through `cowl snapshot -m` or the
//! command line of a run, the messages of its versions. Printed raw, a name
//! holding terminal control bytes can erase the line of its own finding
//! (`ESC [2K`, `\r`, backspace), move the cursor up over earlier lines
//! (`ESC [1A`), or, holding a newline, print a fake line of a listing; a
//! Unicode bidi override can make a terminal show its characters in
//! another order (the "Trojan Source" class, CVE-2021-42574).
//!
//! So every human-readable listing prints such text through [`Quoted`], the
//! way git's `core.quotePath` does: text that holds nothing to fear prints
//! as it is, non-ASCII letters included; anything else prints in double
//! quotes with C-style escapes (`\n`, `\t`, `\r`, `\"`, `\\`, other bytes
//! as octal `\NNN`, ESC as `\033`), which a shell's `printf '%b'` or `$'…'`
//! turns back into the exact bytes. JSON output carries the exact bytes
//! instead and never goes through here.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Text as a human-readable listing prints it: as it is when that is safe,
/// else double-quoted with C-style escapes (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted<'a>(&'a [u8]);

/// A path as listings print it.
pub fn path(p: &Path) -> Quoted<'_> {
    Quoted(p.as_os_str().as_bytes())
}

/// Text (a version's message, a finding's detail, a host name a box asked
/// for) as listings print it.
pub fn text(s: &str) -> Quoted<'_> {
    Quoted(s.as_bytes())
}

/// Raw bytes (a name that need not be UTF-8) as listings print them.
pub fn bytes(b: &[u8]) -> Quoted<'_> {
    Quoted(b)
}

/// Whether a character can change what a terminal shows beyond itself:
/// C0 and C1 controls, DEL, the bidi embeddings, overrides, isolates and
/// marks, and the Unicode line and paragraph separators (which some
/// terminals and viewers break lines at).
fn is_dangerous(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}' | '\u{200f}'
        | '\u{2028}' | '\u{2029}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// Whether `b` prints quoted: it is not UTF-8, or holds a dangerous
/// character, a double quote or a backslash (the last two so that quoted
/// text can always be told from plain text and read back exactly).
pub fn needs_quoting(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(s) => s.chars().any(|c| is_dangerous(c) || c == '"' || c == '\\'),
        Err(_) => true,
    }
}

/// Writes the C-style escape of one byte that cannot print as it is.
fn escape_byte(f: &mut impl fmt::Write, b: u8) -> fmt::Result {
    match b {
        0x07 => f.write_str("\\a"),
        0x08 => f.write_str("\\b"),
        b'\t' => f.write_str("\\t"),
        b'\n' => f.write_str("\\n"),
        0x0b => f.write_str("\\v"),
        0x0c => f.write_str("\\f"),
        b'\r' => f.write_str("\\r"),
        b'"' => f.write_str("\\\""),
        b'\\' => f.write_str("\\\\"),
        _ => write!(f, "\\{b:03o}"),
    }
}

/// Writes `b` with every byte that `keep` does not accept escaped; invalid
/// UTF-8 is escaped byte by byte, a dangerous character as the octal
/// escapes of its UTF-8 bytes.
fn escape_into(f: &mut impl fmt::Write, b: &[u8], keep: impl Fn(char) -> bool) -> fmt::Result {
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if keep(c) {
                f.write_char(c)?;
            } else {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).as_bytes() {
                    escape_byte(f, *byte)?;
                }
            }
        }
        for byte in chunk.invalid() {
            escape_byte(f, *byte)?;
        }
    }
    Ok(())
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) if !needs_quoting(self.0) => f.write_str(s),
            _ => {
                f.write_char('"')?;
                escape_into(f, self.0, |c| !is_dangerous(c) && c != '"' && c != '\\')?;
                f.write_char('"')
            }
        }
    }
}

/// One line of file content for `cowl diff --patch`, its line end left
/// out: dangerous characters escaped (tabs kept), nothing quoted, so that
/// ordinary text reads as it is and a line cannot rewrite the screen.
pub fn content_line(line: &str) -> Cow<'_, str> {
    if !line.chars().any(|c| c != '\t' && is_dangerous(c)) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    // Writing to a String cannot fail.
    let _ = escape_into(&mut out, line.as_bytes(), |c| c == '\t' || !is_dangerous(c));
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn q(b: &[u8]) -> String {
        bytes(b).to_string()
    }

    /// What `printf '%b'` makes of a quoted name: the bytes it stands for.
    fn unquote(s: &str) -> Vec<u8> {
        let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
            return s.as_bytes().to_vec();
        };
        let b = inner.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'\\' {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let e = b[i + 1];
            i += 2;
            out.push(match e {
                b'a' => 7,
                b'b' => 8,
                b't' => b'\t',
                b'n' => b'\n',
                b'v' => 11,
                b'f' => 12,
                b'r' => b'\r',
                b'0'..=b'7' => {
                    let v = u8::from_str_radix(std::str::from_utf8(&b[i - 1..i + 2]).unwrap(), 8);
                    i += 2;
                    v.unwrap()
                }
                other => other,
            });
        }
        out
    }

    #[test]
    fn plain_names_print_as_they_are_non_ascii_letters_included() {
        for s in [
            "/home/u/.bashrc",
            "/home/u/notes 2024 (final).txt",
            "/home/u/café/日本語/Ünïcødé",
            "/tmp/it's",
            "",
        ] {
            assert_eq!(text(s).to_string(), s);
            assert!(!needs_quoting(s.as_bytes()));
        }
    }

    #[test]
    fn terminal_control_bytes_print_escaped_in_quotes() {
        assert_eq!(q(b"/x/\x1b[2K\rok"), r#""/x/\033[2K\rok""#);
        assert_eq!(q(b"\x1b[1A"), r#""\033[1A""#);
        assert_eq!(q(b"a\nA /etc/passwd"), r#""a\nA /etc/passwd""#);
        assert_eq!(q(b"tab\there"), r#""tab\there""#);
        assert_eq!(q(b"bell\x07bs\x08vt\x0bff\x0c"), r#""bell\abs\bvt\vff\f""#);
        assert_eq!(q(b"del\x7f nul\x00"), r#""del\177 nul\000""#);
    }

    #[test]
    fn quotes_and_backslashes_are_escaped_so_quoted_text_is_unambiguous() {
        assert_eq!(q(br#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(q(br"C:\temp"), r#""C:\\temp""#);
        // A name that looks quoted is quoted again.
        assert_eq!(q(br#""\033""#), r#""\"\\033\"""#);
    }

    #[test]
    fn invalid_utf8_prints_as_octal_bytes() {
        assert_eq!(q(b"/x/\xff\xfe.txt"), r#""/x/\377\376.txt""#);
        // Valid letters around an invalid byte stay readable.
        assert_eq!(q(b"\xc3\xa9\x80"), r#""é\200""#);
        assert_eq!(q(b"caf\xc3"), r#""caf\303""#);
    }

    #[test]
    fn bidi_controls_and_c1_controls_are_escaped() {
        // RIGHT-TO-LEFT OVERRIDE: "gnp.sh" would show as "hs.png".
        assert_eq!(
            text("/x/\u{202e}gnp.sh").to_string(),
            r#""/x/\342\200\256gnp.sh""#
        );
        for c in [
            '\u{202a}', '\u{202d}', '\u{2066}', '\u{2069}', '\u{200f}', '\u{61c}',
        ] {
            let s = format!("a{c}b");
            assert!(needs_quoting(s.as_bytes()), "{c:?}");
            assert!(!text(&s).to_string().contains(c), "{c:?}");
        }
        // C1 controls (CSI is U+009B) and the Unicode line separator.
        assert_eq!(text("a\u{9b}2Kb").to_string(), r#""a\302\2332Kb""#);
        assert_eq!(text("a\u{2028}b").to_string(), r#""a\342\200\250b""#);
        // Letters that are merely right-to-left are not controls.
        assert_eq!(text("שלום").to_string(), "שלום");
    }

    #[test]
    fn quoted_output_holds_no_control_byte_and_reads_back_exactly() {
        let hostile: &[&[u8]] = &[
            b"\x1b[2K\r",
            b"x\nM /home/u/fake",
            b"\"\\\x7f\x00\xff",
            "\u{202e}\u{2066}é\u{85}".as_bytes(),
            b"plain",
        ];
        for h in hostile {
            let shown = q(h);
            assert!(shown.bytes().all(|b| b >= 0x20 && b != 0x7f), "{shown:?}");
            assert!(!shown.chars().any(is_dangerous), "{shown:?}");
            assert_eq!(unquote(&shown), *h, "{shown}");
        }
    }

    #[test]
    fn content_lines_keep_tabs_and_text_and_escape_controls() {
        assert_eq!(content_line("\tlet x = \"a\\b\";"), "\tlet x = \"a\\b\";");
        assert_eq!(content_line("echo hi\x1b[2K\r"), "echo hi\\033[2K\\r");
        assert_eq!(content_line("a\u{202e}b"), "a\\342\\200\\256b");
        assert!(matches!(content_line("plain"), Cow::Borrowed(_)));
    }
}
