#!/usr/bin/env bash
# Mirror rows of bench/run: bench/mirror.sh COWL WORKDIR QUICK(true|false) DATADIR,
# run from the repository root with the environment (COWL_HOME) bench/run set.
set -euo pipefail
cowl=$1 work=$2 quick=$3 data=$4
step() { echo "bench/mirror.sh: $1" >&2; }

# Mirrors: push and pull of a box holding random data (256 MiB quick, 1 GiB
# full) to a directory and to two local S3-compatible servers, an incremental
# push of a 1 MB change, and the peak memory of those commands (streaming: it
# should not grow with the box). The servers: s3s-fs (a Rust server over a
# directory, installed with cargo, pinned to a version that builds on the
# project's Rust) on 127.0.0.1:9418, its objects under $work; and moto (as
# scripts/test runs it) on 127.0.0.1:9417. Each is slow somewhere of its own
# (s3s-fs re-reads every part to complete a multipart upload and serves
# downloads in 4 KiB reads; moto is Python), so both are measured and named.
s3s_root=/opt/cowl-bench-s3s s3s_version=0.14.1
servers=()
if [ ! -x "$s3s_root/bin/s3s-fs" ] || ! "$s3s_root/bin/s3s-fs" --version | grep -qF " $s3s_version"; then
  step "installing s3s-fs $s3s_version (cargo install, a few minutes)"
  cargo install --quiet --locked s3s-fs --version "$s3s_version" --features binary --root "$s3s_root" >&2 \
    || step "s3s-fs could not be installed: measuring against moto only"
fi
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work" "$HOME"/.cowl-bench-*-"${work##*/}"' EXIT
up() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
wait_up() { for _ in $(seq 100); do up "$1" && return 0; sleep 0.2; done; return 1; }
if [ -x "$s3s_root/bin/s3s-fs" ]; then
  mkdir -p "$work/s3s"
  "$s3s_root/bin/s3s-fs" --host 127.0.0.1 --port 9418 --access-key cowlbench --secret-key cowlbench "$work/s3s" >/dev/null 2>&1 &
  pids+=($!)
  wait_up 9418 && servers+=(s3s-fs:9418) || step "s3s-fs did not start on 127.0.0.1:9418"
fi
moto=/opt/cowl-test-moto
if ! up 9417; then
  if [ ! -x "$moto/bin/moto_server" ]; then
    python3 -m venv "$moto" && "$moto/bin/pip" install -q --disable-pip-version-check 'moto[server]'
  fi
  "$moto/bin/moto_server" -H 127.0.0.1 -p 9417 >/dev/null 2>&1 &
  pids+=($!)
fi
wait_up 9417 && servers+=(moto:9417) || step "moto did not start on 127.0.0.1:9417"
[ ${#servers[@]} -gt 0 ] || { echo "bench/mirror.sh: no S3 server started" >&2; exit 1; }
python3 - "$cowl" "$work" "$quick" "$data" "${servers[@]}" <<'PY' | tee -a bench/results/latest.md
import os, resource, socket, subprocess, sys, time
cowl, work, quick, data = sys.argv[1], sys.argv[2], sys.argv[3] == "true", sys.argv[4]
servers = [(s.split(":")[0], int(s.split(":")[1])) for s in sys.argv[5:]]
mib = 256 if quick else 1024
size = mib << 20
def env_of(port):
    return dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="cowlbench",
                AWS_SECRET_ACCESS_KEY="cowlbench", AWS_REGION="us-east-1")
subprocess.run([cowl, "run", "mir", "--", "sh", "-c", f"head -c {mib}M /dev/urandom > {data}/mir-big"], check=True)
def timed(cmd, port=None, **extra):
    env = dict(env_of(port) if port else os.environ, **extra)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t
def bucket_on(server, port):
    bucket = f"cowl-bench-{os.getpid()}"
    if server == "s3s-fs":
        # A bucket of s3s-fs is a directory of its root (it takes no unsigned request).
        os.mkdir(f"{work}/s3s/{bucket}")
    else:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 200"), f"cannot make the bench bucket on {server}"
        s.close()
    return bucket
rows = []
targets = [("a directory", f"{work}/mirror", None)]
for server, port in servers:
    label = "s3s-fs 0.14.1" if server == "s3s-fs" else "moto"
    targets.append((f"S3 ({label} on 127.0.0.1)", f"s3://{bucket_on(server, port)}/mir", port))
for where, url, port in targets:
    t = timed([cowl, "push", "--quiet", "mir", url], port)
    rows.append((f"push {mib} MiB to {where}", f"{size / t / 1e6:.0f} MB/s"))
    t = timed([cowl, "pull", "--quiet", url], port, COWL_HOME=f"{work}/pulled-{len(rows)}")
    rows.append((f"pull {mib} MiB from {where}", f"{size / t / 1e6:.0f} MB/s"))
subprocess.run([cowl, "run", "mir", "--", "sh", "-c", f"head -c 1M /dev/urandom > {data}/mir-small"], check=True)
for where, url, port in targets[1:]:
    t = timed([cowl, "push", "--quiet", "mir", url], port)
    rows.append((f"incremental push of a 1 MB change, box holds {mib} MiB, to {where}", f"{t * 1000:.0f} ms (budget 1000 ms)"))
# Many small files in a deep tree: the importer's cost per entry (each
# entry's parent opened without following a symlink) rather than bytes.
files = 2000 if quick else 20000
script = ("import os\n"
          f"b = '{data}/many/a/b/c/d/e'\n"
          f"for d in range({files // 100}):\n"
          "    p = f'{b}/d{d}/x/y'\n"
          "    os.makedirs(p, exist_ok=True)\n"
          "    for i in range(100):\n"
          "        open(f'{p}/f{i}', 'w').write('x')\n")
subprocess.run([cowl, "run", "many", "--", "python3", "-c", script], check=True, stdout=subprocess.DEVNULL)
subprocess.run([cowl, "push", "--quiet", "many", f"{work}/mirror-many"], check=True, stdout=subprocess.DEVNULL)
t = timed([cowl, "pull", "--quiet", f"{work}/mirror-many"], None, COWL_HOME=f"{work}/pulled-many")
rows.append((f"pull a layer of {files:,} one-byte files a dozen directories deep, from a directory", f"{t * 1000:.0f} ms ({files / t:,.0f} files/s)"))
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
rows.append(("peak memory of any push or pull above", f"{peak:.0f} MiB"))
print("\nMirrors:\n")
print("| measure | value |")
print("|---|---:|")
for k, v in rows:
    print(f"| {k} | {v} |")
PY
step "mirrors measured"
