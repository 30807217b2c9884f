#!/usr/bin/env bash
# scripts/digest-bench.sh: the "Closing days" figures of BENCHMARKS.md, reproducible.
#
#   scripts/digest-bench.sh [--lifetimes M] [--workdir DIR]
#       A capture of M lifetimes (default 10,000,000) that all start on one UTC day
#       (gen-capture --no-updates --seed 130 --start 2025-03-14T00:30:00Z), imported into a
#       new file (kept in the workdir for later runs); then:
#       - `pfstatelog-bench seal-bench`: every creator's days marked and closed, in process:
#         CPU seconds (user + system) of the close alone, lifetimes per CPU-second;
#       - `pfstatelog verify` of the file, as a user runs it: user + system, wall, peak RSS;
#       - the day exported as JSON with a manifest, without and with --proof: user + system
#         CPU, wall, peak RSS and size of each, and what --proof adds.
#
# Needs: a release build (built here if missing), /usr/bin/time (Debian package `time`).
# Data goes to the workdir (default /tmp/pfstatelog-bench), never into the repository:
# about 300 B a lifetime for the capture (deleted after the import) and 80 B for the file;
# each export (about 2 kB a lifetime with proofs) is deleted once timed.
set -euo pipefail
cd "$(dirname "$0")/.."
lifetimes=10000000 work=/tmp/pfstatelog-bench
while [ $# -gt 0 ]; do
    case "$1" in
        --lifetimes) lifetimes=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        *) sed -n '2,18p' "$0"; exit 2 ;;
    esac
done
[ -x target/release/pfstatelog ] && [ -x target/release/pfstatelog-bench ] || cargo build --release --workspace
[ -x /usr/bin/time ] || { echo "digest-bench.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
P=$PWD/target/release/pfstatelog
B=$PWD/target/release/pfstatelog-bench
mkdir -p "$work"
echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load $(cut -d' ' -f1-3 /proc/loadavg) $(nproc) CPUs"
db="$work/digest-$lifetimes.db"
if [ ! -s "$db" ]; then
    cap="$work/digest-$lifetimes.pcap"
    "$B" gen-capture --states "$lifetimes" --no-updates --seed 130 --start 2025-03-14T00:30:00Z --out "$cap" >&2
    "$P" import --db "$db" "$cap" >&2
    rm -f "$cap"
fi
"$B" seal-bench --db "$db" | grep '^seal:'
/usr/bin/time -f "%U %S %e %M" -o "$work/time" "$P" verify --db "$db" >/dev/null
read -r u s e m < "$work/time"
echo "verify: $u + $s s CPU, $e s wall, peak RSS $((m / 1024)) MiB"
run() { # name, extra args
    local out="$work/proof-bench.json" m="$work/proof-bench.manifest"
    rm -f "$out" "$m"
    /usr/bin/time -f "%U %S %e %M" -o "$work/time" "$P" export --db "$db" \
        --from 2025-03-14T00:00:00Z --to 2025-03-14T23:59:59.999999Z --format json \
        --manifest "$m" "${@:2}" "$out" 2>/dev/null
    read -r u s e m < "$work/time"
    local size; size=$(stat -c %s "$out")
    rm -f "$out" "$work/proof-bench.manifest"
    echo "$1: $u + $s s CPU, $e s wall, peak RSS $((m / 1024)) MiB, $((size / 1048576)) MiB written" >&2
    echo "$u $s $e"
}
read -r pu ps pe < <(run "export" )
read -r qu qs qe < <(run "export --proof" --proof)
awk -v a="$pu" -v b="$ps" -v c="$pe" -v x="$qu" -v y="$qs" -v z="$qe" 'BEGIN {
    printf "--proof adds %.0f %% CPU, %.0f %% wall\n", 100 * ((x + y) / (a + b) - 1), 100 * (z / c - 1) }'
