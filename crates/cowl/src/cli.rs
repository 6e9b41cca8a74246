//! Command-line flags, parsed into plain data. Nothing here touches the
//! system: validating what the user typed is all it does.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Run an application in a persistent copy-on-write box over the host.
///
/// The app reads the host's own files; every write it makes lands in the
/// box's layer, never on the host. Run the box again and its changes are
/// still there.
#[derive(Debug, Parser)]
#[command(name = "cowl", version, about, long_about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "\
Examples:
  cowl run web -- python3 -m http.server     run a command in box 'web' (created if new)
  cowl run web                                a shell in the box
  cowl ls                                     the boxes, their size, whether they run
  cowl rm web                                 delete a box and everything it wrote
  cowl rm --all --force                       delete every box and the store (uninstall)

Store: $COWL_HOME, else $XDG_DATA_HOME/cowl, else ~/.local/share/cowl (root: /var/lib/cowl).";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a box (created if new); with no command, the box's
    /// command, else $SHELL.
    ///
    /// The box sees the host's filesystem; its writes go to the box's live
    /// layer. Rootless (the default), the app has your own rights: what you
    /// cannot change on the host (root's files in /etc, /usr) it cannot
    /// change in the box either. A box made with --system (as root) is a
    /// system box: ids map one to one and installers can write anywhere,
    /// still only into the box. A box keeps its mode (box.toml `mode`):
    /// every later run of a system box is one, as root, without --system.
    ///
    /// The network is the box's own loopback only, unless --net (or box.toml
    /// `net`) says otherwise: `--net proxy --allow HOST` for downloads.
    ///
    /// The command runs in your working directory when the box shows it.
    /// The box has its own /tmp and /var/tmp, and does not show hidden
    /// paths: from there it runs in $HOME instead, and cowl says so.
    ///
    /// If the box is already running, the command joins it: same files,
    /// same processes, same network.
    ///
    /// The exit status is the command's (128+N if signal N ended it).
    #[command(
        after_help = "Examples:\n  cowl run --net proxy --allow github.com tools -- git clone https://github.com/rust-lang/log\n  sudo cowl run --system pkgs -- dpkg -i ./hello.deb   make system box 'pkgs' and install into it\n  sudo cowl run pkgs -- hello                          a system box stays one: no --system needed\n  cowl run --dry-run --json tools                      show the mounts a run would make"
    )]
    Run(RunArgs),
    /// Read or change a box's settings (box.toml).
    ///
    /// With no KEY, print them all; KEY prints one; KEY=VALUE sets it (a
    /// TOML value, or a plain string). Keys: command, net
    /// (none|host|ports|proxy), allow (the --allow rules of every run),
    /// hide, expose, env_pass, allow_syscalls, memory, pids, cpus,
    /// durability (volatile|fsync), snapshot (on-exit|manual), keep
    /// (automatic versions kept before squashing), quarantine_days, mirror
    /// (URL), push (manual|on-snapshot), encrypt_to (age recipients). mode
    /// and created are fixed when the box is made.
    #[command(
        after_help = "Examples:\n  cowl config tools\n  cowl config tools snapshot=manual keep=20\n  cowl config tools 'command=[\"bash\", \"-l\"]'\n  cowl config tools net=proxy 'allow=[\"pypi.org\", \"files.pythonhosted.org\"]'   every run: PyPI only"
    )]
    Config(ConfigArgs),
    /// List the boxes: name, bytes held, running, stopped or damaged, created.
    ///
    /// A damaged box (files of its directory missing, as a half-finished
    /// `rm -rf` leaves it) is listed with what is wrong; `cowl verify BOX`
    /// says more, `cowl rm --force BOX` removes it.
    Ls(ListArgs),
    /// Show what changed between two views of a box: every path added,
    /// modified, deleted, type-changed or metadata-changed.
    ///
    /// FROM defaults to 0 (the bare host), TO to `live` (the live layer);
    /// either may be any version number. Codes: A added, M modified, D
    /// deleted, T type changed, P permissions, owner or xattrs changed. Reads
    /// only the layers between the two views: it costs what changed, not the
    /// size of the host, and runs nothing from the box.
    Diff(DiffArgs),
    /// Freeze the live layer as a new version (by rename, not copy).
    ///
    /// A running box is never frozen mid-write: the snapshot is taken the
    /// moment its last process exits. By default a version is also made
    /// automatically whenever a run ends and changed something (box.toml
    /// `snapshot = "on-exit"`; `"manual"` turns that off), so after a run
    /// there is often nothing left to snapshot: with --pin, the newest
    /// version is pinned then, as `cowl pin` does.
    #[command(
        after_help = "Examples:\n  cowl snapshot -m \"before upgrade\" --pin tools   freeze and pin (or pin the newest version)\n  cowl snapshot tools"
    )]
    Snapshot(SnapshotArgs),
    /// Pin a version (default: the newest): squashes and retention keep it
    /// as it is, however old it gets.
    #[command(
        after_help = "Examples:\n  cowl pin tools        the newest version\n  cowl pin tools 3\n  cowl log tools        pinned versions say so"
    )]
    Pin(PinArgs),
    /// Unpin a version (default: the newest): squashes and retention may
    /// merge it again.
    #[command(after_help = "Examples:\n  cowl unpin tools 3")]
    Unpin(PinArgs),
    /// List a box's versions: number, time, how it was made, added, modified
    /// and deleted paths, bytes, digest, pinned, message.
    Log(LogArgs),
    /// Roll a box back to VERSION: later versions and the live layer move to
    /// quarantine (`cowl log --quarantine`), kept until `cowl gc` purges them.
    Rollback(RollbackArgs),
    /// Merge old unpinned versions into one, exactly as the overlay showed
    /// them (whiteouts and opaque directories cancel what they hide).
    Squash(SquashArgs),
    /// Re-hash every version and check the chain of digests; name the first
    /// version that does not match (exit 1).
    ///
    /// A damaged box (a file of its directory missing, a version without
    /// its layer or manifest, a box.toml that does not parse) is named as
    /// such, with every problem, and exits 1. Every other command refuses a
    /// damaged box; `cowl rm --force BOX` removes it.
    Verify(VerifyArgs),
    /// Purge quarantined rollbacks older than each box's `quarantine_days`
    /// (box.toml, default 30).
    Gc(GcArgs),
    /// Apply the box's changes to the host: adds, modifications, deletions,
    /// directory replacements, mode changes and symlinks, with your own
    /// rights.
    ///
    /// Each path is written beside its target, synced and renamed over it;
    /// nothing is resolved through a symlink, so the box cannot make the
    /// commit write elsewhere. A running box is frozen meanwhile. A host
    /// file that changed since the box changed it is a conflict: nothing is
    /// applied unless --force. Committed paths leave the box (it sees the
    /// host's copy from then on); the commit is recorded as a version, so a
    /// rollback to before it brings the box's copies back.
    #[command(
        after_help = "Examples:\n  cowl commit web --dry-run --all         what would be applied\n  cowl commit web ~/project/report.pdf   one path (and what is below it)\n  cowl commit web --all"
    )]
    Commit(CommitArgs),
    /// Write a version, or the box's whole difference from the host, as a
    /// tar for forensic tools.
    ///
    /// The format is an OCI image layer: deletions are `.wh.NAME` entries,
    /// directories the box replaced hold a `.wh..wh..opq` entry, extended
    /// attributes are PAX records. Nothing of the box runs.
    #[command(
        after_help = "Examples:\n  cowl export web -o web.tar          everything the box changed\n  cowl export web 3 -o v3.tar         what version 3 changed\n  cowl export web live -o - | tar -tv"
    )]
    Export(ExportArgs),
    /// Flag risky changes in each version: persistence (shell start-up
    /// files, autostart, systemd units, cron, ssh keys, commands that shadow
    /// system ones, LD_PRELOAD, git hooks, udev, sudoers, PAM, kernel
    /// modules), privilege (setuid bits, file capabilities), droppers
    /// (executables in /tmp, /var/tmp, /dev/shm or hidden directories,
    /// device nodes) and any change under /etc.
    ///
    /// Reads manifests and layers only; nothing of the box runs. With
    /// --first-bad, name the earliest version with a finding of at least
    /// --min-severity and the rollback command that returns to the version
    /// before it.
    ///
    /// Exit status: 1 when the box has a finding at or above --fail-on
    /// (default high), whatever --min-severity shows; 0 when it has none;
    /// 2 for a mistake in the command line. So a script or CI job can gate
    /// on it, as on other scanners.
    #[command(
        after_help = "Examples:\n  cowl scan web\n  cowl scan web --first-bad\n  cowl scan web --with 'clamscan --no-summary {}'   a host scanner over changed files only\n  cowl scan web --json --fail-on medium > findings.json || echo 'risky changes'\n  cowl scan web --fail-on never     list findings, always exit 0\n  cowl rollback web --before-first-bad"
    )]
    Scan(ScanArgs),
    /// Show a box's network log: every connection it tried through the
    /// proxies of `--net proxy`, allowed or refused, and every name it
    /// looked up without network (`--net none`) or around its proxy.
    Netlog(NetlogArgs),
    /// List the running boxes and their init pids.
    Ps(ListArgs),
    /// Stop a running box: SIGTERM to its processes, SIGKILL after a grace period.
    Stop(StopArgs),
    /// Push a box's versions to a mirror: an OCI image layout in a directory
    /// or S3-compatible object storage. Sends only what the mirror lacks.
    Push(crate::mirror::PushArgs),
    /// Restore a box's versions from a mirror, verified before they are used.
    Pull(crate::mirror::PullArgs),
    /// Delete boxes and everything they wrote. The host is not touched.
    ///
    /// Whatever modes an app left on its files (directories of mode 0555 or
    /// 000, which `rm -rf` cannot get through), and whatever state a box is
    /// in: a damaged box is removed too. A running box is refused unless
    /// --force, which stops it first. With --all, every box and then the
    /// store directory itself: what `rm -rf` of the store would do, asking
    /// nothing (for scripts and uninstalling).
    #[command(
        after_help = "Examples:\n  cowl rm web\n  cowl rm --force web             stop it first if it runs\n  cowl rm --all                   every box and the store; refused while a box runs\n  cowl rm --all --force --json    stop running boxes, remove everything, say what as JSON"
    )]
    Rm(RmArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetArg {
    /// Own network namespace, loopback only (the default). Names the box
    /// looks up are refused at once and logged (`cowl netlog BOX`); a run
    /// that fails after looking some up names them and the flag that lets
    /// it reach them.
    None,
    /// The host's network (its abstract unix sockets, X11 and D-Bus among
    /// them, stay unreachable). Not stopped: the box can listen on an
    /// abstract socket name, and a host client that connects to that name
    /// later talks to the box.
    Host,
    /// The host's network, TCP only, to and on the ports given with
    /// --allow; UDP, raw and packet sockets refused. Like `host`, the box
    /// can listen on abstract socket names of the host's network.
    Ports,
    /// No route out; an HTTP proxy (127.0.0.1:3128) and a SOCKS5 proxy
    /// (127.0.0.1:1080) that cowl runs outside the box connect to the hosts
    /// given with --allow. HTTP_PROXY, HTTPS_PROXY and ALL_PROXY are set.
    /// Every attempt is logged: `cowl netlog BOX`; so is a name looked up
    /// around the proxies, which is refused.
    Proxy,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Make a new box a system box (root only): ids map one to one, so
    /// package installers work in the box. The box stays one: later runs
    /// (as root) need no --system. Refused for an existing rootless box.
    #[arg(long)]
    pub system: bool,
    /// Network for this run (default: the box's setting, else none).
    #[arg(long, value_enum)]
    pub net: Option<NetArg>,
    /// With --net proxy: a host the box may reach ("example.org" for ports
    /// 80 and 443, "*.example.net:443" for any subdomain on one port). With
    /// --net ports: a TCP port it may connect to ("443") or bind
    /// ("bind:8080"). Repeatable; adds to box.toml's `allow`.
    #[arg(long, value_name = "RULE")]
    pub allow: Vec<String>,
    /// Let the app show windows: pass the Wayland socket, or X11's socket
    /// and authority file, through (read-only). An X11 client can read the
    /// whole screen, log keys typed into other windows and send them input:
    /// use it for apps you would let do that. Off by default.
    #[arg(long)]
    pub gui: bool,
    /// Memory limit of the whole box for this run ("2G", "512M"); box.toml
    /// `memory`. Needs a cgroup v2 delegated to you, or root (cgroup v1);
    /// else refused, or with --best-effort only each process's address
    /// space is limited (RLIMIT_AS).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Process limit of the whole box for this run; box.toml `pids`. Needs
    /// a cgroup v2 delegated to you, or root (cgroup v1); else refused, or
    /// with --best-effort RLIMIT_NPROC, which counts all of your processes.
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// CPU limit of the whole box for this run, in CPUs (1.5); box.toml
    /// `cpus`. Needs a cgroup v2 delegated to you, or root (cgroup v1);
    /// else refused, or with --best-effort not enforced.
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<f64>,
    /// Run even where the kernel cannot enforce part of the policy, or a
    /// limit would not hold for the box as a whole, and warn what holds
    /// instead (otherwise that is an error).
    #[arg(long)]
    pub best_effort: bool,
    /// Hide PATH from the box for this run (repeatable; absolute, or
    /// starting at `~/` for $HOME), in addition to box.toml's `hide` and
    /// the default list.
    #[arg(long, value_name = "PATH")]
    pub hide: Vec<String>,
    /// Let the box read PATH of the default hidden list for this run
    /// (repeatable): ~/.ssh, ~/.gnupg, ~/.aws, ~/.azure, ~/.config/gcloud,
    /// ~/.kube, ~/.docker, ~/.netrc, ~/.password-store,
    /// ~/.local/share/keyrings, ~/.git-credentials, ~/.config/gh, ~/.npmrc,
    /// ~/.pypirc, ~/.cargo/credentials, ~/.vault-token and more (`cowl
    /// config BOX` lists them), browser profiles, and the ssh-agent,
    /// gpg-agent, D-Bus, X11 and Wayland sockets. A system box hides these
    /// in every home of the machine.
    #[arg(long, value_name = "PATH")]
    pub expose: Vec<String>,
    /// Pass environment variable NAME to the box although its name says it
    /// holds a credential (*_TOKEN, *SECRET*, *PASSWORD, *_API_KEY,
    /// AWS_ACCESS_KEY_ID …, which are dropped by default), or set it with
    /// NAME=VALUE. Repeatable; box.toml `env_pass` lists names to pass.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Print the plan (layers and mounts) instead of running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as JSON.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Say what cowl sets up, which mechanism enforces each limit, and
    /// which environment variables the box does not get.
    #[arg(short, long)]
    pub verbose: bool,
    /// The box: 1-63 characters of a-z, 0-9, '.', '_', '-'.
    #[arg(value_name = "BOX")]
    pub name: String,
    /// The command and its arguments (after `--`).
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Print JSON.
    #[arg(long, conflicts_with_all = ["stat", "patch"])]
    pub json: bool,
    /// Sizes per path and a summary line.
    #[arg(long, conflicts_with = "patch")]
    pub stat: bool,
    /// A unified diff of text files; one line for anything else.
    #[arg(long)]
    pub patch: bool,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
    /// The older view: a version number, 0 for the bare host (default).
    #[arg(value_name = "FROM")]
    pub from: Option<String>,
    /// The newer view: a version number, or `live` (default).
    #[arg(value_name = "TO")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct NetlogArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
    /// KEY to read or KEY=VALUE to set.
    #[arg(value_name = "KEY[=VALUE]")]
    pub items: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// What this version is.
    #[arg(short, long, value_name = "MSG")]
    pub message: Option<String>,
    /// Keep it through squashes and retention. With no change to freeze,
    /// pin the newest version.
    #[arg(long)]
    pub pin: bool,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
    /// The version (default: the newest).
    #[arg(value_name = "VERSION")]
    pub version: Option<u64>,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// List what rollbacks cut off instead.
    #[arg(long)]
    pub quarantine: bool,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Stop the box first if it is running.
    #[arg(long)]
    pub stop: bool,
    /// Return to the version before the first one `cowl scan` flags (with
    /// a finding of at least --min-severity).
    #[arg(long, conflicts_with = "version")]
    pub before_first_bad: bool,
    /// With --before-first-bad: the least severity that makes a version bad.
    #[arg(
        long,
        value_enum,
        default_value = "high",
        requires = "before_first_bad"
    )]
    pub min_severity: SeverityArg,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
    /// The version to return to (0: the bare host).
    #[arg(value_name = "VERSION", required_unless_present = "before_first_bad")]
    pub version: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum SeverityArg {
    Low,
    Medium,
    High,
    Critical,
}

/// The least severity that makes `cowl scan` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOnArg {
    Low,
    Medium,
    High,
    Critical,
    /// Always exit 0 (errors aside).
    Never,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Every change of the box (except its own /tmp and /var/tmp).
    #[arg(long)]
    pub all: bool,
    /// Show what would be applied; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite host paths that changed since the box changed them.
    #[arg(long)]
    pub force: bool,
    /// Apply changes that `cowl scan` flags high or critical (shell start-up
    /// files, git hooks, autostart entries, …); refused without it.
    #[arg(long)]
    pub allow_risky: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
    /// Paths as the box sees them (relative ones from the working
    /// directory); each with everything below it.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The tar file to write (`-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
    /// A version number, or `live`; default: every version and the live
    /// layer merged (the box's whole difference from the host).
    #[arg(value_name = "VERSION")]
    pub version: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Scan only this version (a number, or `live`).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Also run CMD on each changed file of each version, `{}` standing for
    /// the file (read-only, in the box's layer); a nonzero exit flags it.
    #[arg(long, value_name = "CMD")]
    pub with: Option<String>,
    /// Name the earliest version with a finding of at least --min-severity,
    /// and how to roll back to the version before it.
    #[arg(long)]
    pub first_bad: bool,
    /// The least severity shown (and, with --first-bad, that makes a
    /// version bad).
    #[arg(long, value_enum)]
    pub min_severity: Option<SeverityArg>,
    /// Exit 1 when the box has a finding of this severity or above (in the
    /// versions scanned, shown or not); `never`: exit 0 whatever is found.
    #[arg(long, value_enum, default_value = "high", value_name = "SEVERITY")]
    pub fail_on: FailOnArg,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct SquashArgs {
    /// Leave the newest N unpinned versions as they are.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep: usize,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Purge quarantine older than this many days, whatever the boxes say.
    #[arg(long, value_name = "DAYS")]
    pub older_than: Option<f64>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub grace: f64,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Stop a running box first (every running box, with --all).
    #[arg(long, short)]
    pub force: bool,
    /// Every box, then the store directory itself (only what cowl made:
    /// anything else found there is left, and said).
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// Print what was removed as JSON.
    #[arg(long)]
    pub json: bool,
    /// The boxes.
    #[arg(value_name = "BOX", required_unless_present = "all")]
    pub names: Vec<String>,
}

pub fn parse() -> Cli {
    Cli::parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn command_after_double_dash_keeps_its_flags() {
        let cli = Cli::try_parse_from(["cowl", "run", "b", "--", "ls", "-l", "--color"]);
        let Ok(Cli {
            command: Command::Run(r),
        }) = cli
        else {
            panic!("did not parse");
        };
        assert_eq!(r.command, ["ls", "-l", "--color"]);
    }
}
