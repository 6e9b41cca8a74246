#!/usr/bin/env bash
# Mirror rows of bench/run: bench/mirror.sh COWL WORKDIR QUICK(true|false) DATADIR,
# run from the repository root with the environment (COWL_HOME) bench/run set.
set -euo pipefail
cowl=$1 work=$2 quick=$3 data=$4
step() { echo "bench/mirror.sh: $1" >&2; }

# Mirrors: push and pull of a box holding random data (256 MiB quick, 1 GiB
# full) to a directory and to a local S3-compatible server (moto, as
# scripts/test runs it), an incremental push of a 1 MB change, and the peak
# memory of those commands (streaming: it should not grow with the box).
moto=/opt/cowl-test-moto
if ! (exec 3<>/dev/tcp/127.0.0.1/9417) 2>/dev/null; then
  if [ ! -x "$moto/bin/moto_server" ]; then
    python3 -m venv "$moto" && "$moto/bin/pip" install -q --disable-pip-version-check 'moto[server]'
  fi
  "$moto/bin/moto_server" -H 127.0.0.1 -p 9417 >/dev/null 2>&1 &
  moto_pid=$!
  trap 'kill "$moto_pid" 2>/dev/null; rm -rf "$work" "$HOME"/.cowl-bench-*-"${work##*/}"' EXIT
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/9417) 2>/dev/null && break; sleep 0.2; done
fi
python3 - "$cowl" "$work" "$quick" "$data" <<'PY' | tee -a bench/results/latest.md
import os, resource, socket, subprocess, sys, time
cowl, work, quick, data = sys.argv[1], sys.argv[2], sys.argv[3] == "true", sys.argv[4]
mib = 256 if quick else 1024
size = mib << 20
env = dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9417", AWS_ACCESS_KEY_ID="cowlbench",
           AWS_SECRET_ACCESS_KEY="cowlbench", AWS_REGION="us-east-1")
subprocess.run([cowl, "run", "mir", "--", "sh", "-c", f"head -c {mib}M /dev/urandom > {data}/mir-big"], env=env, check=True)
def timed(cmd, **extra):
    t = time.perf_counter()
    subprocess.run(cmd, env=dict(env, **extra), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t
bucket = f"cowl-bench-{os.getpid()}"
s = socket.create_connection(("127.0.0.1", 9417))
s.sendall(f"PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:9417\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
assert s.recv(100).startswith(b"HTTP/1.1 200"), "cannot make the bench bucket"
s.close()
rows = []
local, s3 = f"{work}/mirror", f"s3://{bucket}/mir"
for where, url in (("a directory", local), ("S3 (moto on 127.0.0.1)", s3)):
    t = timed([cowl, "push", "--quiet", "mir", url])
    rows.append((f"push {mib} MiB to {where}", f"{size / t / 1e6:.0f} MB/s"))
    t = timed([cowl, "pull", "--quiet", url], COWL_HOME=f"{work}/pulled-{len(rows)}")
    rows.append((f"pull {mib} MiB from {where}", f"{size / t / 1e6:.0f} MB/s"))
subprocess.run([cowl, "run", "mir", "--", "sh", "-c", f"head -c 1M /dev/urandom > {data}/mir-small"], env=env, check=True)
t = timed([cowl, "push", "--quiet", "mir", s3])
rows.append((f"incremental push of a 1 MB change, box holds {mib} MiB, to S3", f"{t * 1000:.0f} ms (budget 1000 ms)"))
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
rows.append(("peak memory of any push or pull above", f"{peak:.0f} MiB"))
print("\nMirrors:\n")
print("| measure | value |")
print("|---|---:|")
for k, v in rows:
    print(f"| {k} | {v} |")
PY
step "mirrors measured"
