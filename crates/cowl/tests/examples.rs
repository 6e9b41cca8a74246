//! The examples that the README and `--help` print work as printed, so that
//! one that stops working fails CI instead of a new user's first hour.
//!
//! The test reads the README's `sh` code blocks and every subcommand's
//! "Examples:" section, and checks each command line one of these ways, as
//! the report it prints says line by line:
//!
//! * **Executed**, as printed, through `sh -c`, in a fresh store for each
//!   README section and each `--help`, with `$HOME` and the working
//!   directory a fixture directory (so `~/project/report.pdf` and
//!   `./hello.deb` are files the test makes first). A box an example
//!   names exists, with the versions it names (runs that write a few files,
//!   one of them `~/project/report.pdf`; where the examples scan, the last
//!   adds a line to `~/.bashrc` for the scan to find); a box `cowl stop`
//!   stops is running; a server an example starts (`python3 -m
//!   http.server`) runs in the background and is asked for a page through a
//!   joined run. `cowl run BOX` (a shell) reads a line from stdin.
//! * **Needs PyPI**: the README's pip lines install httpie from PyPI for
//!   real, through `--net proxy` (PyPI is reachable from the test
//!   machines); the netlog must show both PyPI hosts allowed.
//! * **Executed against a stand-in**, with placeholders filled: the
//!   mirror examples against the S3 server the mirror tests use on
//!   127.0.0.1 (bucket `my-bucket` becomes one of the test's own, `age1…`
//!   a key it makes, `/mnt/backup/tools` a directory of its own); `git pull`
//!   over `--net ports --allow 443` from a repository served on
//!   127.0.0.1:443 (binding port 443 needs root, so for anyone else it is
//!   only parsed, and said).
//! * **Root only**: `sudo cowl …` runs (without sudo) when the test runs as
//!   root. The suite runs as root and as an unprivileged user: as anyone
//!   else, `--system` must be refused in one line (exit 2), and a line that
//!   needs the system box made before it is only parsed, and said.
//! * **Limits**: `--memory … --cpus …` runs where a limit holds for the box
//!   as a whole (root, or a cgroup v2 delegated to the user); elsewhere it
//!   must be refused as the README says, naming `--best-effort`.
//! * **Only parsed**, where it cannot run here: `git clone` from github.com
//!   (the test machines reach PyPI and the npm registry only), a host
//!   scanner that is not installed (`clamscan`). Parsed means: the real
//!   binary, in an empty store (and with `--dry-run` for `cowl run`), gives
//!   no error of the command-line parser: it would act as printed.
//! * **Not run**: lines that are not cowl's: `scripts/demo` (a release
//!   build), `scripts/test` (runs this suite), and the removal of root's own
//!   store `/var/lib/cowl` (it would delete this machine's system boxes; its
//!   rootless twin runs).
//!
//! Beside the code blocks, every `cowl …` the README and help texts name in
//! inline code must name a real subcommand and only flags it has.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod example_runner;

#[path = "../../cowl-mirror/tests/s3_server/mod.rs"]
mod s3_server;

use common::*;
use example_runner::{Group, Outcome};
use std::path::Path;
use std::process::Command;

// ---- extraction ----------------------------------------------------------

fn readme() -> String {
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    std::fs::read_to_string(Path::new(&dir).join("../../README.md")).unwrap()
}

/// A line without its shell comment (a `#` at its start or after a blank,
/// outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut prev_blank) = (false, false, true);
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_blank => return line[..i].trim_end(),
            _ => {}
        }
        prev_blank = c.is_whitespace();
    }
    line.trim_end()
}

/// The command lines of each `sh` code block of the README, by the section
/// (`## ` heading) it is in: comments dropped, continuation lines joined.
fn readme_blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some(h) = l.strip_prefix("## ").or_else(|| l.strip_prefix("# ")) {
            section = h.trim().to_owned();
        }
        if l.trim() != "```sh" {
            continue;
        }
        let mut cmds = Vec::new();
        let mut pending = String::new();
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            let l = if pending.is_empty() {
                l
            } else {
                l.trim_start()
            };
            match l.trim_end().strip_suffix('\\') {
                Some(head) => pending.push_str(head),
                None => {
                    pending.push_str(l);
                    let cmd = strip_comment(&pending).trim().to_owned();
                    if !cmd.is_empty() {
                        cmds.push(cmd);
                    }
                    pending.clear();
                }
            }
        }
        blocks.push((section.clone(), cmds));
    }
    blocks
}

/// The command lines of a help text's "Examples:" section, without their
/// comments (separated by three spaces or more).
fn help_examples(help: &str) -> Vec<String> {
    help.split("Examples:\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().split("   ").next().unwrap().trim().to_owned())
        .collect()
}

/// `cowl ARGS` with no store anywhere near: for help texts.
fn cowl_out(args: &[&str]) -> String {
    let out = Command::new(cowl_bin()).args(args).output().unwrap();
    assert_success(&out, &format!("cowl {args:?}"));
    stdout(&out)
}

/// The subcommands `cowl --help` lists.
fn subcommands() -> Vec<String> {
    let help = cowl_out(&["--help"]);
    help.split("Commands:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

/// The README section's code blocks, as one list of lines.
fn section(name: &str) -> Vec<String> {
    let blocks: Vec<Vec<String>> = readme_blocks(&readme())
        .into_iter()
        .filter(|(s, _)| s == name)
        .map(|(_, l)| l)
        .collect();
    assert!(!blocks.is_empty(), "the README has no section {name:?}");
    blocks.concat()
}

/// The README sections with `sh` code blocks, and the test that runs each.
const SECTIONS: [(&str, &str); 6] = [
    ("cowl", "the_readme_intro_names_the_scripts_and_says_why_they_are_not_run"),
    (
        "A short tour",
        "the_readme_tour_works_as_printed_installing_httpie_from_pypi_through_the_proxy",
    ),
    (
        "Review, commit, recover",
        "the_readme_review_commit_and_recover_examples_work_as_printed",
    ),
    (
        "Confinement policy",
        "the_readme_network_and_limit_examples_work_as_printed_installing_from_pypi_through_the_proxy",
    ),
    (
        "Mirrors: push and pull",
        "the_readme_mirror_examples_work_against_a_loopback_s3_server",
    ),
    (
        "Removing cowl",
        "the_readme_removal_by_hand_removes_a_store_with_the_modes_apps_leave",
    ),
];

fn run_section(name: &str, min: usize) {
    let lines = section(name);
    assert!(lines.len() >= min, "{name}: {} lines", lines.len());
    let mut g = Group::new(&format!("README: {name}"), &lines);
    g.run_all(&lines);
}

// ---- the tests -----------------------------------------------------------

#[test]
fn every_code_block_of_the_readme_is_checked_by_a_test() {
    let text = readme();
    let mut found: Vec<String> = readme_blocks(&text).into_iter().map(|(s, _)| s).collect();
    found.dedup();
    let known: Vec<String> = SECTIONS.iter().map(|(s, _)| s.to_string()).collect();
    assert_eq!(
        found, known,
        "a README section with a code block that no test runs (or one renamed): add it to SECTIONS"
    );
    // And the fences are all `sh` ones or listings, so none is missed.
    for l in text.lines().filter(|l| l.starts_with("```") && l.len() > 3) {
        assert_eq!(l, "```sh", "a code block this test does not read");
    }
}

#[test]
fn the_readme_intro_names_the_scripts_and_says_why_they_are_not_run() {
    run_section("cowl", 2);
}

/// Needs PyPI: the tour's first line installs httpie through `--net proxy`.
#[test]
fn the_readme_tour_works_as_printed_installing_httpie_from_pypi_through_the_proxy() {
    run_section("A short tour", 19);
}

#[test]
fn the_readme_review_commit_and_recover_examples_work_as_printed() {
    run_section("Review, commit, recover", 9);
}

/// Needs PyPI: the proxy example installs httpie through `--net proxy`.
#[test]
fn the_readme_network_and_limit_examples_work_as_printed_installing_from_pypi_through_the_proxy() {
    let lines = section("Confinement policy");
    assert!(lines.len() >= 4);
    let mut g = Group::new("README: Confinement policy", &lines);
    // Limits that do not hold box-wide are refused, as documented: then
    // the example must say why and what to do.
    let limits = lines.iter().position(|l| l.contains("--memory")).unwrap();
    let (before, after) = lines.split_at(limits);
    for l in before {
        g.check(l);
    }
    let limit_line = &after[0];
    let out = g.sh(limit_line);
    if is_root() || out.status.success() {
        assert_success(&out, limit_line);
        assert!(stdout(&out).contains("made"), "{}", stdout(&out));
        assert!(
            stderr(&out).contains("cowl: limit:"),
            "-v: {}",
            stderr(&out)
        );
        g.report.push((limit_line.clone(), Outcome::Executed));
    } else {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("not enforced box-wide") && err.contains("--best-effort"),
            "{err}"
        );
        g.report.push((
            limit_line.clone(),
            Outcome::Refused(
                "no cgroup delegated to this user: refused as documented, saying what to do",
            ),
        ));
    }
    for l in &after[1..] {
        g.check(l);
    }
    g.finish(lines.len());
}

#[test]
fn the_readme_mirror_examples_work_against_a_loopback_s3_server() {
    let lines = section("Mirrors: push and pull");
    let ep = s3_server::endpoint();
    let bucket = format!("cowl-examples-{}-{}", std::process::id(), unsafe {
        libc::geteuid()
    });
    s3_server::make_bucket(&ep, &bucket);
    let mut g = Group::new("README: Mirrors: push and pull", &lines);
    for (k, v) in [
        ("AWS_ENDPOINT_URL", ep.as_str()),
        ("AWS_ACCESS_KEY_ID", "cowltest"),
        ("AWS_SECRET_ACCESS_KEY", "cowltest"),
        ("AWS_REGION", "us-east-1"),
    ] {
        g.env.push((k.to_owned(), v.to_owned()));
    }
    let id = age::x25519::Identity::generate();
    let key = g.home.join(".config/age/key.txt");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&key, format!("{}\n", id.to_string().expose_secret())).unwrap();
    }
    g.fill = vec![
        ("my-bucket".into(), bucket),
        ("age1…".into(), id.to_public().to_string()),
        (
            "/mnt/backup/tools".into(),
            g.w.dir.join("backup/tools").display().to_string(),
        ),
    ];
    assert!(lines.len() >= 5);
    for l in &lines {
        g.check(l);
    }
    // "On another machine": the pulled box runs there, with what it held.
    let out = g.sh_in(&g.other_store, "cowl run tools -- cat ~/notes.txt", None);
    assert_success(&out, "the pulled box");
    assert_eq!(stdout(&out), "2\n3\n4\n5\n");
    g.finish(lines.len());
}

#[test]
fn the_readme_removal_by_hand_removes_a_store_with_the_modes_apps_leave() {
    run_section("Removing cowl", 2);
}

#[test]
fn every_help_example_works_as_printed_or_parses() {
    let mut groups: Vec<(String, Vec<String>)> =
        vec![("cowl --help".into(), help_examples(&cowl_out(&["--help"])))];
    for sub in subcommands() {
        let lines = help_examples(&cowl_out(&[&sub, "--help"]));
        if !lines.is_empty() {
            groups.push((format!("cowl {sub} --help"), lines));
        }
    }
    let with: Vec<&str> = groups.iter().map(|(g, _)| g.as_str()).collect();
    for want in [
        "cowl --help",
        "cowl run --help",
        "cowl config --help",
        "cowl snapshot --help",
        "cowl pin --help",
        "cowl unpin --help",
        "cowl commit --help",
        "cowl export --help",
        "cowl scan --help",
        "cowl rm --help",
    ] {
        assert!(with.contains(&want), "{want} lost its examples: {with:?}");
    }
    for (what, lines) in &groups {
        let mut g = Group::new(what, lines);
        g.run_all(lines);
    }
}

/// Flags a subcommand's help lists (`-m`, `--message`, …).
fn flags_of(help: &str) -> Vec<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| {
            l.split([' ', ','])
                .filter(|t| t.starts_with('-'))
                .map(|t| t.split(['=', '<', '[']).next().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The inline code spans of a text (outside fenced blocks), whitespace
/// (line wraps) made single spaces.
fn code_spans(text: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut fenced = false;
    for l in text.lines() {
        if l.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            prose.push_str(l);
            prose.push('\n');
        }
    }
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn every_cowl_command_named_in_the_readme_and_help_exists_with_its_flags() {
    let subs = subcommands();
    let mut texts = vec![("README".to_owned(), readme())];
    texts.push(("cowl --help".into(), cowl_out(&["--help"])));
    for s in &subs {
        texts.push((format!("cowl {s} --help"), cowl_out(&[s, "--help"])));
    }
    let mut checked = 0;
    for (what, text) in &texts {
        for span in code_spans(text) {
            let words: Vec<&str> = span.split_whitespace().collect();
            let Some(i) = words.iter().position(|w| *w == "cowl") else {
                continue;
            };
            let Some(sub) = words.get(i + 1) else {
                continue;
            };
            assert!(
                subs.iter().any(|s| s == sub),
                "{what}: `{span}` names no subcommand of cowl"
            );
            let flags = flags_of(&cowl_out(&[sub, "--help"]));
            for w in &words[i + 2..] {
                if !w.starts_with('-') || *w == "--" || *w == "-" {
                    continue;
                }
                let flag = w.split('=').next().unwrap();
                assert!(
                    flags.iter().any(|f| f == flag),
                    "{what}: `{span}`: cowl {sub} has no {flag}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} inline commands");
}
