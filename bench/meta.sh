#!/bin/sh
# The metadata-heavy workload: unpack a tarball of small files into $HOME/DIR,
# then find, du and git status over it. Prints "@ STEP NANOSECONDS" after each
# step; bench/workloads.py times the steps from these marks.
#   meta.sh TARBALL DIR
set -e
d=$HOME/$2
m() { echo "@ $1 $(date +%s%N)"; }
m start
mkdir "$d"
tar -xf "$1" -C "$d"
m unpack
find "$d" >/dev/null
m find
du -s "$d" >/dev/null
m du
git -C "$d" status --porcelain >/dev/null
m git-status
