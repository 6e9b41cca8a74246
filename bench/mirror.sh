#!/usr/bin/env bash
# Mirror rows of bench/run: bench/mirror.sh COWL WORKDIR QUICK(true|false) DATADIR,
# run from the repository root with the environment (COWL_HOME) bench/run set.
set -euo pipefail
cowl=$1 work=$2 quick=$3 data=$4
step() { echo "bench/mirror.sh: $1" >&2; }

# Mirrors: push and pull of a box holding random data (256 MiB quick, 1 GiB
# full) to a directory and to a local S3-compatible server, an incremental
# push of a 1 MB change, and the peak memory of those commands (streaming: it
# should not grow with the box). The S3 server is s3s-fs (a Rust server over
# a directory, installed with cargo, pinned to a version that builds on the
# project's Rust) on 127.0.0.1:9418, its objects under $work; moto (as
# scripts/test runs it) only if s3s-fs cannot be installed. The table says
# which one served.
s3s_root=/opt/cowl-bench-s3s s3s_version=0.14.1
server=s3s-fs s3_port=9418
if [ ! -x "$s3s_root/bin/s3s-fs" ] || ! "$s3s_root/bin/s3s-fs" --version | grep -qF " $s3s_version"; then
  step "installing s3s-fs $s3s_version (cargo install, a few minutes)"
  cargo install --quiet --locked s3s-fs --version "$s3s_version" --features binary --root "$s3s_root" >&2 || server=moto
fi
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work" "$HOME"/.cowl-bench-*-"${work##*/}"' EXIT
up() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
if [ "$server" = s3s-fs ]; then
  mkdir -p "$work/s3s"
  "$s3s_root/bin/s3s-fs" --host 127.0.0.1 --port "$s3_port" --access-key cowlbench --secret-key cowlbench "$work/s3s" >/dev/null 2>&1 &
  pids+=($!)
else
  step "s3s-fs could not be installed: measuring against moto"
  s3_port=9417
  moto=/opt/cowl-test-moto
  if ! up "$s3_port"; then
    if [ ! -x "$moto/bin/moto_server" ]; then
      python3 -m venv "$moto" && "$moto/bin/pip" install -q --disable-pip-version-check 'moto[server]'
    fi
    "$moto/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 &
    pids+=($!)
  fi
fi
for _ in $(seq 100); do up "$s3_port" && break; sleep 0.2; done
up "$s3_port" || { echo "bench/mirror.sh: the S3 server ($server) did not start on 127.0.0.1:$s3_port" >&2; exit 1; }
python3 - "$cowl" "$work" "$quick" "$data" "$server" "$s3_port" <<'PY' | tee -a bench/results/latest.md
import os, resource, socket, subprocess, sys, time
cowl, work, quick, data = sys.argv[1], sys.argv[2], sys.argv[3] == "true", sys.argv[4]
server, port = sys.argv[5], int(sys.argv[6])
mib = 256 if quick else 1024
size = mib << 20
env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="cowlbench",
           AWS_SECRET_ACCESS_KEY="cowlbench", AWS_REGION="us-east-1")
subprocess.run([cowl, "run", "mir", "--", "sh", "-c", f"head -c {mib}M /dev/urandom > {data}/mir-big"], env=env, check=True)
def timed(cmd, **extra):
    t = time.perf_counter()
    subprocess.run(cmd, env=dict(env, **extra), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t
bucket = f"cowl-bench-{os.getpid()}"
if server == "s3s-fs":
    # A bucket of s3s-fs is a directory of its root (it takes no unsigned request).
    os.mkdir(f"{work}/s3s/{bucket}")
else:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    assert s.recv(100).startswith(b"HTTP/1.1 200"), "cannot make the bench bucket"
    s.close()
rows = []
local, s3 = f"{work}/mirror", f"s3://{bucket}/mir"
label = "s3s-fs 0.14.1" if server == "s3s-fs" else "moto"
for where, url in (("a directory", local), (f"S3 ({label} on 127.0.0.1)", s3)):
    t = timed([cowl, "push", "--quiet", "mir", url])
    rows.append((f"push {mib} MiB to {where}", f"{size / t / 1e6:.0f} MB/s"))
    t = timed([cowl, "pull", "--quiet", url], COWL_HOME=f"{work}/pulled-{len(rows)}")
    rows.append((f"pull {mib} MiB from {where}", f"{size / t / 1e6:.0f} MB/s"))
subprocess.run([cowl, "run", "mir", "--", "sh", "-c", f"head -c 1M /dev/urandom > {data}/mir-small"], env=env, check=True)
t = timed([cowl, "push", "--quiet", "mir", s3])
rows.append((f"incremental push of a 1 MB change, box holds {mib} MiB, to S3 ({label})", f"{t * 1000:.0f} ms (budget 1000 ms)"))
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
rows.append(("peak memory of any push or pull above", f"{peak:.0f} MiB"))
print("\nMirrors:\n")
print("| measure | value |")
print("|---|---:|")
for k, v in rows:
    print(f"| {k} | {v} |")
PY
step "mirrors measured"
