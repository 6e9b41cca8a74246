//! A host like the ones users have, built in a private mount namespace by
//! `fixtures/messy-host.sh`: many read-only squashfs mounts, a bind-mounted
//! /etc/resolv.conf, a per-user tmpfs, another user's FUSE mount, btrfs and
//! xfs images, a read-only bind, nested and stacked tmpfs, /home seen twice,
//! a mount point with an odd name. Rootless, system and joined boxes start
//! there, see every file the host shows, capture writes wherever the host
//! allows them, refuse them where it does not, keep the hidden paths and the
//! store hidden on every path, and change no byte of the host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::process::{Command, Output, Stdio};

/// The fixture script: under the package's directory as the test run sees
/// it (nextest names it at run time, remapped for a run as another user).
fn fixture() -> String {
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    format!("{dir}/tests/fixtures/messy-host.sh")
}

/// What the box checks, as $USER_NAME's box with $HOME its home; prints a
/// `FAIL …` line for each thing not as it should be, and `checked` last.
const CHECKS: &str = r#"
built() { grep -qx "$1" /media/messy/built; }
odd="/media/odd,name:with space
newline"
uid=$(id -u "$USER_NAME")
exp() {
  got=$(cat "$2" 2>/dev/null) || got="(unreadable)"
  [ "$got" = "$3" ] || echo "FAIL $1: $2 gave '$got', want '$3'"
}
exp snap /srv/snap/app1/101/README "snap content"
exp snap25 /srv/snap/app25/125/README "snap content"
exp snap-link /srv/snap/app7/current/README "snap content"
# The boxes have no network: their resolv.conf is cowl's, over the bind.
grep -qx 'nameserver 127.0.0.1' /etc/resolv.conf || echo "FAIL resolv: /etc/resolv.conf does not name the box's resolver"
exp ro /media/ro/file read-only
exp deep /media/t1/t2/t3/file deep
exp stack /media/stack/which upper
exp odd "$odd/file" odd
exp home "$HOME/work/file" work
# What only the user (or root with the capabilities of a system box) may
# read or write: the user's runtime directory and its own directories.
own() { [ "$(id -u)" = "$uid" ] || [ -n "${SYSTEM:-}" ]; }
own && exp run-user "/run/user/$uid/note" runtime
for fs in btrfs xfs; do built $fs && exp $fs /media/$fs/work/file $fs; done
for p in "$HOME/.ssh/id_ed25519" "/media/homealias/$USER_NAME/.ssh/id_ed25519"; do
  cat "$p" 2>/dev/null && echo "FAIL secret readable: $p"
done
for p in "$COWL_HOME" "/media/homealias/${COWL_HOME#/home/}"; do
  ls "$p" >/dev/null 2>&1 && echo "FAIL store visible: $p"
done
if built fuse-other; then
  [ -d /media/fuse-other ] || echo "FAIL another user's FUSE mount point is missing"
  [ -n "$(ls -A /media/fuse-other 2>/dev/null)" ] && echo "FAIL another user's FUSE mount shows content"
fi
w() { echo "box $1" > "$2" 2>/dev/null || echo "FAIL cannot write $1: $2"; }
own && w home "$HOME/work/new"
w deep /media/t1/t2/t3/new
w stack /media/stack/new
w odd "$odd/new"
own && w run-user "/run/user/$uid/new"
for fs in btrfs xfs; do built $fs && own && w $fs /media/$fs/work/new; done
r() { if (echo "box" > "$2") 2>/dev/null; then echo "FAIL wrote read-only $1: $2"; fi; }
# The host listens on its fifo (fifo_listen): this must not reach it.
timeout 2 sh -c 'echo FROMBOX > /media/hostfifo' 2>/dev/null || true
timeout 2 sh -c 'echo FROMBOX-MOUNT > /media/fifomount' 2>/dev/null || true
r snap /srv/snap/app1/101/new
r ro /media/ro/new
r resolv /etc/resolv.conf
echo checked
"#;

/// Reads back, in a second run of the same box, what the first one wrote.
const READ_BACK: &str = r#"
odd="/media/odd,name:with space
newline"
for f in "$HOME/work/new" /media/t1/t2/t3/new /media/stack/new "$odd/new"; do
  cat "$f" 2>/dev/null || echo "FAIL lost: $f"
done
echo read-back
"#;

/// A fingerprint of what the fixture shows, store and unreadable mounts
/// left out: equal before and after means no byte of the host changed.
/// `fifo_listen` reads the host's fifo while the boxes run; `fifo_check`
/// ends that and says whether anything but its own END came through.
const FINGERPRINT: &str = r#"fifo_listen() {
  fifo_got=$(mktemp)
  cat /media/hostfifo > "$fifo_got" &
  fifo_cat=$!
}
fifo_check() {
  timeout 2 sh -c 'echo END > /media/hostfifo' || true
  wait $fifo_cat || true
  [ "$(cat "$fifo_got")" = END ] || echo "FAIL the box wrote into the host's fifo: $(cat "$fifo_got")"
  rm -f "$fifo_got"
}
fp() {
  find /srv /media /run/user /etc/resolv.conf /home \
    \( -path '*/.local/share/cowl*' -o -path /media/fuse-other -o -path /media/hostfifo -o -path /media/fifomount -o -path '/media/homealias/*/.local/share/cowl*' \) -prune \
    -o -printf '%p %y %m %u %s %T@\n' 2>/dev/null | sort | md5sum
  find /srv /media /run/user /home \( -path '*/.local/share/cowl*' -o -path /media/fuse-other -o -path /media/fifomount \) -prune \
    -o -type f -exec md5sum {} + 2>/dev/null | sort | md5sum
}"#;

/// Builds the messy host and runs `script` there (with `CHECKS`, `READ_BACK`
/// and `FINGERPRINT` in $CHECKS, $READ_BACK and as the function `fp`).
/// Root builds all of it; another user what a user namespace allows.
fn in_messy_host(w: &World, user: &str, script: &str) -> Output {
    let mut cmd = Command::new("unshare");
    if is_root() {
        cmd.args(["--mount", "--propagation", "private"]);
    } else {
        cmd.args([
            "--map-current-user",
            "--keep-caps",
            "--mount",
            "--propagation",
            "private",
        ])
        .env("MESSY_AS_USER", "1");
    }
    let full = format!("{FINGERPRINT}\n{script}");
    cmd.args(["sh", &fixture(), "sh", "-c", &full])
        .env("MESSY", w.host())
        .env("USER_NAME", user)
        .env("COWL", cowl_bin())
        .env("CHECKS", CHECKS)
        .env("READ_BACK", READ_BACK)
        .env_remove("COWL_HOME")
        .current_dir(w.host())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts the script ran to its end and nothing failed.
fn check(out: &Output, what: &str, expect: &[&str]) {
    let text = stdout(out);
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        fails.is_empty(),
        "{what}:\n{}\nstderr:\n{}",
        fails.join("\n"),
        stderr(out)
    );
    for e in expect {
        assert!(
            text.lines().any(|l| l == *e),
            "{what}: no `{e}` in:\n{text}\nstderr:\n{}",
            stderr(out)
        );
    }
}

/// The unprivileged user the root run uses for its rootless boxes.
const USER_OF_ROOT_RUN: &str = "nobody";

fn me() -> String {
    // SAFETY: getuid always succeeds.
    let uid = unsafe { libc::getuid() };
    let out = Command::new("id")
        .args(["-un", &uid.to_string()])
        .output()
        .unwrap();
    stdout(&out).trim().to_owned()
}

#[test]
fn rootless_boxes_see_the_messy_host_as_it_is_and_change_none_of_it() {
    let w = World::new("messy-rootless");
    let (user, as_user) = if is_root() {
        (
            USER_OF_ROOT_RUN.to_owned(),
            format!("runuser -u {USER_OF_ROOT_RUN} --"),
        )
    } else {
        (me(), String::new())
    };
    // Run as the user (through runuser when root builds the host), HOME and
    // the store where a user's are.
    let script = format!(
        r#"set -e
export HOME=/home/$USER_NAME COWL_HOME=/home/$USER_NAME/.local/share/cowl
{as_user} mkdir -p "$COWL_HOME"
before=$(fp)
fifo_listen
{as_user} env HOME=$HOME COWL_HOME=$COWL_HOME MESSY=$MESSY USER_NAME=$USER_NAME "$COWL" run b -- sh -c "$CHECKS"
{as_user} env HOME=$HOME COWL_HOME=$COWL_HOME "$COWL" run b -- sh -c "$READ_BACK"
{as_user} env HOME=$HOME COWL_HOME=$COWL_HOME "$COWL" run --net host b -- cat /etc/resolv.conf
fifo_check
after=$(fp)
[ "$before" = "$after" ] && echo host-unchanged || echo "FAIL the host changed"
"#
    );
    let out = in_messy_host(&w, &user, &script);
    check(
        &out,
        "rootless",
        &[
            "checked",
            "read-back",
            // With the host's network, the host's bind-mounted file.
            "nameserver 192.0.2.53 # messy",
            "host-unchanged",
        ],
    );
    let text = stdout(&out);
    for line in ["box home", "box deep", "box stack", "box odd"] {
        assert!(text.contains(line), "read back lacks `{line}`:\n{text}");
    }
    if is_root() {
        // Root built all of it; the user's box met every element.
        let built = std::fs::read_to_string(w.host().join("built")).unwrap();
        for e in [
            "squashfs",
            "fuse-other",
            "btrfs",
            "xfs",
            "resolv-bind",
            "home-alias",
            "stacked",
            "odd-name",
        ] {
            assert!(
                built.lines().any(|l| l == e),
                "the fixture lacks {e}: {built}"
            );
        }
    }
}

#[test]
fn a_root_run_rootless_box_and_a_joined_run_see_the_messy_host_too() {
    // Rootless as the caller (root, when root runs the suite), then a run
    // that joins it.
    let w = World::new("messy-joined");
    let user = if is_root() {
        USER_OF_ROOT_RUN.to_owned()
    } else {
        me()
    };
    let script = r#"set -e
export HOME=/home/$USER_NAME COWL_HOME=/home/$USER_NAME/.local/share/cowl-own
mkdir -p "$COWL_HOME"
before=$(fp)
fifo_listen
"$COWL" run b -- sh -c "$CHECKS"
"$COWL" run b -- sleep 600 &
box=$!
while [ ! -e "$COWL_HOME/boxes/b/state" ]; do sleep 0.05; done
"$COWL" run b -- sh -c "$CHECKS"
"$COWL" stop b >/dev/null
wait $box || true
fifo_check
after=$(fp)
[ "$before" = "$after" ] && echo host-unchanged || echo "FAIL the host changed"
"#;
    let out = in_messy_host(&w, &user, script);
    check(
        &out,
        "caller's own and joined",
        &["checked", "host-unchanged"],
    );
    assert_eq!(
        stdout(&out).lines().filter(|l| *l == "checked").count(),
        2,
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_system_box_starts_on_the_messy_host_and_writes_only_its_layer() {
    // A bind-mounted /etc/resolv.conf broke every system box; as root the
    // installer path must work here, files under mounts included.
    let w = World::new("messy-system");
    if !is_root() {
        let out = w.cmd(&["run", "--system", "s", "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        return;
    }
    let script = r#"set -e
export HOME=/home/$USER_NAME COWL_HOME=/home/$USER_NAME/.local/share/cowl-system
mkdir -p "$COWL_HOME"
before=$(fp)
fifo_listen
SYSTEM=1 "$COWL" run --system s -- sh -c "$CHECKS
echo installed > /etc/messy-installed; cat /etc/messy-installed"
"$COWL" run --system s -- sh -c "$READ_BACK"
test ! -e /etc/messy-installed
fifo_check
after=$(fp)
[ "$before" = "$after" ] && echo host-unchanged || echo "FAIL the host changed"
"#;
    let out = in_messy_host(&w, USER_OF_ROOT_RUN, script);
    check(
        &out,
        "system",
        &["checked", "installed", "read-back", "host-unchanged"],
    );
    assert!(!stderr(&out).contains("cannot bind"), "{}", stderr(&out));
}

#[test]
fn the_plan_shows_each_messy_mount_by_its_class() {
    let w = World::new("messy-plan");
    let (user, as_user) = if is_root() {
        (
            USER_OF_ROOT_RUN.to_owned(),
            format!("runuser -u {USER_OF_ROOT_RUN} --"),
        )
    } else {
        (me(), String::new())
    };
    let script = format!(
        r#"set -e
export HOME=/home/$USER_NAME COWL_HOME=/home/$USER_NAME/.local/share/cowl
{as_user} env HOME=$HOME COWL_HOME=$COWL_HOME "$COWL" run --dry-run --json b -- true
"#
    );
    let out = in_messy_host(&w, &user, &script);
    assert_success(&out, "dry run");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    snapshot(&plan, &user);
    let class_of = |p: &str| {
        plan["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["path"] == p)
            .map(|m| m["class"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no mount {p} in {}", plan["mounts"]))
    };
    assert_eq!(class_of("/srv/snap/app1/101"), "read-only");
    assert_eq!(class_of("/etc/resolv.conf"), "file");
    assert_eq!(class_of("/media/ro"), "read-only");
    assert_eq!(class_of("/media/t1/t2/t3"), "writable");
    assert_eq!(class_of("/media/stack"), "writable");
    assert_eq!(class_of("/media/homealias"), "writable");
    if is_root() {
        assert_eq!(class_of("/media/fuse-other"), "unreachable");
        assert_eq!(class_of("/media/btrfs"), "writable");
    }
    // Read-only mounts are no overlays, whatever their number: every snap
    // is in one read-only bind (rootless, where the user cannot write /srv or
    // /srv/snap, the bind is of the topmost such directory); /media/ro is one.
    let layers = plan["layers"].as_array().unwrap();
    let under = |prefix: &str, kinds: &[&str]| {
        layers
            .iter()
            .filter(|l| l["path"].as_str().unwrap_or("").starts_with(prefix))
            .filter(|l| kinds.contains(&l["base"]["kind"].as_str().unwrap_or("")))
            .count()
    };
    let overlays = ["host", "skeleton", "empty"];
    assert_eq!(
        under("/srv", &overlays),
        0,
        "{}",
        serde_json::to_string_pretty(layers).unwrap()
    );
    assert_eq!(under("/media/ro", &overlays), 0);
    let snap_binds = under("/srv", &["host-read-only"]);
    if is_root() {
        // Through runuser: the user cannot write /srv.
        assert_eq!(
            snap_binds,
            1,
            "{}",
            serde_json::to_string_pretty(layers).unwrap()
        );
    } else {
        // In the user namespace that built the host, /srv is the user's own
        // to write: each snap is its own read-only bind, no overlay.
        assert_eq!(
            snap_binds,
            25,
            "{}",
            serde_json::to_string_pretty(layers).unwrap()
        );
    }
}

/// The plan's view of the messy host, compared with
/// `tests/golden/messy-plan-{root,user}.txt` (root builds all of the host,
/// a user what a user namespace allows): each fixture mount with its type
/// and class, and each overlay or bind placed for the fixture's trees.
/// `COWL_BLESS=1` writes the file instead, for a change meant to alter it.
fn snapshot(plan: &serde_json::Value, user: &str) {
    // SAFETY: getuid always succeeds.
    let uid = Command::new("id").args(["-u", user]).output().unwrap();
    let uid = stdout(&uid).trim().to_owned();
    let ours = |p: &str| {
        ["/srv", "/media", "/run/user", "/etc/resolv.conf", "/home"]
            .iter()
            .any(|r| p == *r || p.starts_with(&format!("{r}/")))
    };
    let norm = |p: &str| {
        p.replace(&format!("/run/user/{uid}"), "/run/user/UID")
            .replace(user, "USER")
    };
    let mut lines = Vec::new();
    for m in plan["mounts"].as_array().unwrap() {
        let p = m["path"].as_str().unwrap();
        if !ours(p) {
            continue;
        }
        // A bind of the test's own directory has that filesystem's type,
        // which is the machine's, not the fixture's.
        let t = m["fstype"].as_str().unwrap();
        let fixture_type =
            ["tmpfs", "squashfs", "btrfs", "xfs"].contains(&t) || t.starts_with("fuse");
        let t = if fixture_type { t } else { "host-fs" };
        let mut l = format!(
            "mount {} {t} {}",
            norm(p).escape_debug(),
            m["class"].as_str().unwrap()
        );
        if let Some(why) = m["why"].as_str() {
            l.push_str(&format!(" ({why})"));
        }
        if let Some(of) = m["of"].as_str() {
            l.push_str(&format!(" (of {})", norm(of)));
        }
        lines.push(l);
    }
    for l in plan["layers"].as_array().unwrap() {
        let p = l["path"].as_str().unwrap();
        if ours(p) {
            lines.push(format!(
                "shown {} {}",
                norm(p).escape_debug(),
                l["base"]["kind"].as_str().unwrap()
            ));
        }
    }
    lines.sort();
    let text = lines.join("\n") + "\n";
    let name = if is_root() {
        "messy-plan-root.txt"
    } else {
        "messy-plan-user.txt"
    };
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let golden = std::path::Path::new(&dir).join("tests/golden").join(name);
    if std::env::var_os("COWL_BLESS").is_some() {
        std::fs::write(&golden, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(
        text,
        want,
        "the plan of the messy host drifted from {}",
        golden.display()
    );
}
