#!/usr/bin/env python3
"""Workloads of bench/run, each natively, in cowl, in the kernel's overlayfs
alone and in fuse-overlayfs, round by round (every round runs each
environment once, so a slow spell of the machine hits all of them alike;
each round starts with the next one), and the version operations as a box
grows.
Results go to WORK/<part>.json for bench/report.py. Standard library only.

  workloads.py prepare WORK FILES      make the tarball of the metadata workload
  workloads.py meta    COWL WORK RUNS
  workloads.py data    COWL WORK RUNS MB
  workloads.py growth  COWL WORK REPS FILES,FILES.. MB,MB..
"""
import json, os, random, shutil, subprocess, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
HOME = os.environ["HOME"]
DEVNULL = subprocess.DEVNULL
ENVS = ("native", "cowl", "overlayfs", "fuse-overlayfs")


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def tag(work):
    """Names in $HOME carry the work directory's name: bench/run removes them."""
    return os.path.basename(work.rstrip("/"))


def sync():
    os.sync()


def walk_size(root):
    """Apparent bytes of the regular files and symlinks under root, and the
    disk blocks of everything under it (each inode once)."""
    apparent = blocks = 0
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames + ([] if dirpath != root else ["."]):
            p = os.path.join(dirpath, name) if name != "." else root
            st = os.lstat(p)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            blocks += st.st_blocks * 512
            if not os.path.isdir(p) or os.path.islink(p):
                apparent += st.st_size
    return apparent, blocks


def box_footprint(store, box):
    """A box's directory: bytes of its layers (versions, live, run cache), of
    everything else (manifests, digests, journal, settings), and its disk
    blocks; hard links counted once."""
    root = os.path.join(store, "boxes", box)
    layers = meta = blocks = 0
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root).split(os.sep)
        in_layer = (rel[0] == "versions" and len(rel) > 2 and rel[2] == "layer") or \
            (rel[0] == "live" and len(rel) > 1 and rel[1] == "upper") or rel[0] == "cache"
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            blocks += st.st_blocks * 512
            if name in filenames:
                if in_layer:
                    layers += st.st_size
                else:
                    meta += st.st_size
    return {"layers": layers, "meta": meta, "blocks": blocks}


def proc_tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def run_polled(cmd):
    """Run cmd; meanwhile sample the peak RSS (VmHWM) of each cowl process in
    its tree. Returns stdout, the supervisor's peak and the largest peak of
    the other cowl processes (the box's init), in bytes."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peaks, done = {}, threading.Event()

    def poll():
        while not done.is_set():
            for q in proc_tree(p.pid):
                try:
                    with open(f"/proc/{q}/comm") as f:
                        if f.read().strip() != "cowl":
                            continue
                    with open(f"/proc/{q}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                peaks[q] = max(peaks.get(q, 0), int(line.split()[1]) * 1024)
                except OSError:
                    pass
            time.sleep(0.003)

    th = threading.Thread(target=poll)
    th.start()
    out = p.communicate()[0]
    done.set()
    th.join()
    if p.returncode:
        raise SystemExit(f"{cmd} failed ({p.returncode})")
    sup = peaks.get(p.pid, 0)
    init = max([v for k, v in peaks.items() if k != p.pid] or [0])
    return out, sup, init


def marks(out):
    """Step durations (s) from the "@ STEP NS" lines of a workload script."""
    ms = [(l.split()[1], int(l.split()[2])) for l in out.splitlines() if l.startswith("@ ")]
    return {name: (t - ms[i][1]) / 1e9 for i, (name, t) in enumerate(ms[1:])}


class Envs:
    """Runs a workload script natively, in a fresh cowl box, and with $HOME
    under a fresh overlay in a user and mount namespace: the kernel's
    overlayfs (cowl's engine, without the rest of cowl) and fuse-overlayfs
    (the engine of rootless FUSE sandboxes). Cleans up after each, untimed."""

    def __init__(self, cowl, work, name):
        self.cowl, self.work, self.name = cowl, work, name
        self.store = os.environ["COWL_HOME"]
        self.target = os.path.join(HOME, f".cowl-bench-{name}-{tag(work)}")
        self.ovl = os.path.join(work, f"overlay-{name}")

    def cmd(self, env, script, args):
        rel = os.path.basename(self.target)
        if env == "native":
            return ["sh", script, *args(rel)]
        if env == "cowl":
            return [self.cowl, "run", self.box, "--", "sh", script, *args(rel)]
        up, wk = os.path.join(self.ovl, "upper"), os.path.join(self.ovl, "work")
        os.makedirs(up), os.makedirs(wk)
        if env == "overlayfs":  # the kernel's overlayfs as cowl mounts it, without the rest of cowl
            inner = ('mount -t overlay -o lowerdir="$HOME",upperdir="$1",workdir="$2",userxattr,volatile '
                     'cowl-bench "$HOME"; shift 2; cd "$HOME" && exec sh "$@"')
        else:
            inner = ('fuse-overlayfs -o lowerdir="$HOME",upperdir="$1",workdir="$2" "$HOME" 2>/dev/null; '
                     'shift 2; rc=0; (cd "$HOME" && sh "$@") || rc=$?; cd /; fusermount3 -u "$HOME"; exit $rc')
        return ["unshare", "-Urm", "sh", "-c", inner, "sh", up, wk, script, *args(rel)]

    def before(self, env, i):
        if env == "cowl":
            self.box = f"{self.name}-{i}"
            sh(self.cowl, "run", self.box, "--", "true")

    def after(self, env):
        if env == "native":
            shutil.rmtree(self.target)
        elif env == "cowl":
            sh(self.cowl, "rm", self.box, stdout=DEVNULL)
        else:
            if env == "fuse-overlayfs":
                time.sleep(0.05)  # the FUSE daemon exits once unmounted
            shutil.rmtree(self.ovl)
        sync()

    def rounds(self, runs, script, args, on_first=None):
        """runs timed rounds after one warm-up round; returns, per environment,
        per step, the list of durations, with "total" the wall time of the
        whole command (start-up, mount and snapshot included)."""
        res = {e: {} for e in ENVS}
        for i in range(runs + 1):
            # Each round starts with the next environment: one may leave work
            # behind (writeback, the disk's discards of deleted files) that
            # slows whichever runs after it.
            for env in ENVS[i % len(ENVS):] + ENVS[:i % len(ENVS)]:
                self.before(env, i)
                cmd = self.cmd(env, script, args)
                if i == 0 and on_first:
                    on_first(env, cmd)
                else:
                    t = time.perf_counter()
                    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
                    wall = time.perf_counter() - t
                    if i > 0:
                        for k, v in dict(marks(out), total=wall).items():
                            res[env].setdefault(k, []).append(v)
                self.after(env)
        return res


def prepare(work, nfiles):
    """A deterministic tree of nfiles small text files in directories of 100,
    committed to git, as WORK/meta.tar (the .git directory included)."""
    src = os.path.join(work, "meta-src")
    os.makedirs(src)
    rnd = random.Random(20000)
    words = [f"w{n}" for n in range(500)]
    for i in range(nfiles):
        d = os.path.join(src, f"d{i // 100:03d}")
        if i % 100 == 0:
            os.mkdir(d)
        size = rnd.randint(100, 2000)
        text = " ".join(rnd.choice(words) for _ in range(size // 4))[:size] + "\n"
        with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
            f.write(text)
    env = dict(os.environ, GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")
    git = ["git", "-C", src, "-c", "user.name=bench", "-c", "user.email=bench@localhost",
           "-c", "gc.auto=0", "-c", "maintenance.auto=false"]
    sh(*git, "init", "-q", env=env)
    sh(*git, "add", "-A", env=env)
    sh(*git, "commit", "-q", "-m", "tree", env=env)
    sh(*git, "repack", "-adq", env=env)  # packed, as a clone is
    sh(*git, "prune", env=env)
    sh("tar", "-cf", os.path.join(work, "meta.tar"), "-C", src, ".")
    apparent, blocks = walk_size(src)
    json.dump({"files": nfiles, "apparent": apparent, "blocks": blocks,
               "tar": os.path.getsize(os.path.join(work, "meta.tar"))},
              open(os.path.join(work, "meta-src.json"), "w"))


def workload(cowl, work, name, runs, script, args, app_bytes):
    e = Envs(cowl, work, name)
    extra = {}

    def first(env, cmd):
        if env == "cowl":
            _, sup, init = run_polled(cmd)
            extra["rss"] = {"supervisor": sup, "init": init}
            extra["box"] = box_footprint(e.store, e.box)
        else:
            subprocess.run(cmd, check=True, stdout=DEVNULL)
            if env == "native":
                extra["native"] = dict(zip(("apparent", "blocks"), walk_size(e.target)))

    res = e.rounds(runs, os.path.join(HERE, script), args, first)
    json.dump(dict(extra, results=res, runs=runs, app=app_bytes),
              open(os.path.join(work, f"{name}.json"), "w"))


def log_head(cowl, box):
    return max(v["version"] for v in json.loads(sh(cowl, "log", "--json", box, stdout=subprocess.PIPE).stdout))


def growth(cowl, work, reps, files, mbs):
    """Boxes holding N changed files or M MiB; on each, R times, round-robin
    over the boxes: snapshot of a 10 MiB change, rollback of one version,
    diff --stat of the whole box, verify, and squash of the whole history
    (two new small versions on top of it each time)."""
    store = os.environ["COWL_HOME"]
    rel = f".cowl-bench-grow-{tag(work)}"
    d = os.path.join(HOME, rel)
    boxes = []
    for n in files:
        boxes.append((f"g-files-{n}", f"{n:,} files", "files", n, n * 100, (
            "python3", "-c", "import os, sys\nd, n = sys.argv[1], int(sys.argv[2])\n"
            "for i in range(n):\n"
            "    s = os.path.join(d, str(i % 100)); os.makedirs(s, exist_ok=True)\n"
            "    open(os.path.join(s, str(i)), 'w').write(str(i).rjust(99) + '\\n')\n", d, str(n))))
    for mb in mbs:
        boxes.append((f"g-mb-{mb}", f"{mb:,} MiB", "bytes", mb, mb << 20, (
            "sh", "-c", f'mkdir -p "$0" && dd if=/dev/zero of="$0/big" bs=1M count={mb} status=none', d)))
    out = {"boxes": [], "ops": {}}
    for box, label, kind, size, app, make in boxes:
        sh(cowl, "run", box, "--", "true")
        sh(cowl, "config", box, "snapshot=manual", "keep=1000", stdout=DEVNULL)
        sh(cowl, "run", box, "--", *make)
        t = time.perf_counter()
        sh(cowl, "snapshot", box, stdout=DEVNULL)
        first = time.perf_counter() - t
        out["boxes"].append({"box": box, "label": label, "kind": kind, "size": size, "app": app,
                             "first_snapshot": first, "footprint": box_footprint(store, box)})
    sync()
    time.sleep(2)
    ops = out["ops"]

    def timed(name, box, *cmd):
        t = time.perf_counter()
        sh(cowl, *cmd, stdout=DEVNULL)
        ops.setdefault(name, {}).setdefault(box, []).append(time.perf_counter() - t)

    def small_version(box, r, k):
        sh(cowl, "run", box, "--", "sh", "-c", f'echo {r} > "$0/small-{r}-{k}"', d)
        sh(cowl, "snapshot", box, stdout=DEVNULL)

    for r in range(reps):
        for b in out["boxes"]:
            box = b["box"]
            sh(cowl, "run", box, "--", "sh", "-c", f'head -c 10M /dev/urandom > "$0/change-{r}"', d)
            timed("snapshot", box, "snapshot", box)
            small_version(box, r, "a")
            timed("rollback", box, "rollback", box, str(log_head(cowl, box) - 1))
            timed("diff", box, "diff", "--stat", box)
            timed("verify", box, "verify", box)
            small_version(box, r, "b")
            small_version(box, r, "c")
            timed("squash", box, "squash", box)
    for b in out["boxes"]:
        sh(cowl, "rm", b["box"], stdout=DEVNULL)
    json.dump(out, open(os.path.join(work, "growth.json"), "w"))


def main():
    a = sys.argv[1:]
    if a[0] == "prepare":
        prepare(a[1], int(a[2]))
    elif a[0] == "meta":
        cowl, work, runs = a[1], a[2], int(a[3])
        src = json.load(open(os.path.join(work, "meta-src.json")))
        tar = os.path.join(work, "meta.tar")
        workload(cowl, work, "meta", runs, "meta.sh", lambda rel: [tar, rel], src)
    elif a[0] == "data":
        cowl, work, runs, mb = a[1], a[2], int(a[3]), int(a[4])
        count = 4
        workload(cowl, work, "data", runs, "data.sh", lambda rel: [rel, str(count), str(mb // count)],
                 {"apparent": mb << 20, "files": count})
    elif a[0] == "growth":
        growth(a[1], a[2], int(a[3]), [int(x) for x in a[4].split(",")], [int(x) for x in a[5].split(",")])
    elif a[0] == "rss-true":
        sh(a[1], "run", "rss-true", "--", "true")
        _, sup, init = run_polled([a[1], "run", "rss-true", "--", "true"])
        json.dump({"supervisor": sup, "init": init}, open(os.path.join(a[2], "rss-true.json"), "w"))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
