#!/usr/bin/env bash
# Start-up as the host's mount count grows: in one private mount namespace
# per point, N read-only squashfs mounts under /srv/snap/NAME/REV (an Ubuntu
# desktop has 20-40 under /snap) plus 10 writable tmpfs mounts under /media;
# `cowl run box -- true` against `bwrap --ro-bind / / --unshare-all true` in
# the same namespace, both started as an unprivileged user (setpriv),
# round-robin, medians; with the number of overlays and binds cowl's plan
# makes. Needs root (loop mounts); prints a Markdown table.
#   bench/mounts.sh COWL WORK QUICK
set -euo pipefail
cowl=$1 work=$2 quick=$3
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/mounts.sh: needs root for its loop mounts (run bench/run with sudo); mount-count rows left out" >&2
  exit 0
fi
for c in mksquashfs bwrap setpriv; do
  command -v "$c" >/dev/null || { echo "bench/mounts.sh: $c is missing (apt-get install squashfs-tools bubblewrap util-linux)" >&2; exit 2; }
done
user=nobody
id cowl-test >/dev/null 2>&1 && user=cowl-test
runs=$($quick && echo 15 || echo 60)
dir=$work/mounts
mkdir -p "$dir/src/snap"
echo "snap" > "$dir/src/snap/README"
mksquashfs "$dir/src/snap" "$dir/snap.sqfs" -quiet -noappend >/dev/null
cp "$cowl" "$dir/cowl"
cat > "$dir/measure.py" <<'PY'
import json, os, subprocess, sys, time
runs = int(sys.argv[1])
plan = json.loads(sys.argv[2])
kinds = [l["base"]["kind"] for l in plan["layers"]]
overlays = sum(k in ("host", "skeleton", "empty") for k in kinds)
binds = sum(k in ("host-read-only", "host-file") for k in kinds)
user = os.environ["USER_NAME"]
gid = subprocess.run(["id", "-g", user], capture_output=True, text=True).stdout.strip()
pre = ["setpriv", "--reuid", user, "--regid", gid, "--clear-groups",
       "env", "HOME=/media/home", "COWL_HOME=/media/home/store"]
cmds = {"cowl": pre + ["/media/cowl", "run", "b", "--", "true"],
        "bwrap": pre + ["bwrap", "--ro-bind", "/", "/", "--unshare-all", "true"]}
t = {k: [] for k in cmds}
for i in range(runs + 3):
    for k in (list(cmds) if i % 2 else list(cmds)[::-1]):
        s = time.perf_counter()
        subprocess.run(cmds[k], check=True)
        if i >= 3:
            t[k].append((time.perf_counter() - s) * 1000)
med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
print("%.2f %.2f %d %d" % (med["cowl"], med["bwrap"], overlays, binds))
PY
chmod 755 "$dir" "$dir/cowl"
chmod 644 "$dir/measure.py"

echo
echo "Start-up as the host's mount count grows (each point in a private mount namespace; 10 writable tmpfs mounts in every one; cowl and bwrap started as an unprivileged user):"
echo
echo "| read-only mounts | cowl ms | bwrap ms | cowl / bwrap | cowl / cowl with none | overlays | read-only binds |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
base=""
for n in 0 25 50 100; do
  # One image per mount: each a squashfs of its own, as snaps are.
  line=$(unshare --mount --propagation private env N=$n DIR="$dir" USER_NAME=$user RUNS=$runs sh -c '
    set -e
    mount -t tmpfs -o mode=0755 bench /srv
    mount -t tmpfs -o mode=0755 bench /media
    i=1
    while [ "$i" -le "$N" ]; do
      mkdir -p "/srv/snap/app$i/$i"
      cp "$DIR/snap.sqfs" "/srv/app$i.sqfs"
      mount -t squashfs -o loop,ro "/srv/app$i.sqfs" "/srv/snap/app$i/$i"
      i=$((i + 1))
    done
    i=1
    while [ "$i" -le 10 ]; do
      mkdir -p "/media/w$i"
      mount -t tmpfs -o mode=0777 bench "/media/w$i"
      i=$((i + 1))
    done
    # Where the user can run it ($DIR may be under a home it cannot enter).
    cp "$DIR/cowl" /media/cowl
    chmod 755 /media/cowl
    home=/media/home
    mkdir -p "$home"
    chown "$USER_NAME" "$home"
    cd /
    as() { setpriv --reuid "$USER_NAME" --regid "$(id -g "$USER_NAME")" --clear-groups env HOME="$home" COWL_HOME="$home/store" "$@"; }
    as /media/cowl run b -- true
    plan=$(as /media/cowl run --dry-run --json b -- true)
    python3 "$DIR/measure.py" "$RUNS" "$plan"
  ')
  set -- $line
  cowl_ms=$1 bwrap_ms=$2 overlays=$3 binds=$4
  [ -z "$base" ] && base=$cowl_ms
  python3 -c "import sys; c,b,z=map(float,sys.argv[1:4]); print(f'| {sys.argv[4]} | {c:.2f} | {b:.2f} | {c/b:.2f}x | {c/z:.2f}x | {sys.argv[5]} | {sys.argv[6]} |')" \
    "$cowl_ms" "$bwrap_ms" "$base" "$n" "$overlays" "$binds"
done
echo
echo "Budget: cowl with 100 read-only mounts within 1.15x of cowl with none, and at every point at most 1.5x bwrap."
