#!/bin/sh
# The data-heavy workload: write COUNT files of MB MiB each into $HOME/DIR,
# read them back, rewrite them in place. Writes end with a sync, so each step
# includes getting its bytes to the disk. Prints "@ STEP NANOSECONDS" after
# each step.
#   data.sh DIR COUNT MB
set -e
d=$HOME/$1 n=$2 mb=$3
m() { echo "@ $1 $(date +%s%N)"; }
each() { i=0; while [ $i -lt "$n" ]; do "$@" "$d/f$i"; i=$((i + 1)); done; }
put() { dd if=/dev/zero of="$1" bs=1M count="$mb" status=none; }
get() { dd if="$1" of=/dev/null bs=1M status=none; }
reput() { dd if=/dev/zero of="$1" bs=1M count="$mb" conv=notrunc status=none; }
mkdir "$d"
m start
each put
sync
m write
each get
m read
each reput
sync
m rewrite
