#!/usr/bin/env bash
# startup.sh: whole-process wall time of the short commands, as a user sees it.
#
#   scripts/startup.sh [--states 1000000] [--workdir /tmp/pfstatelog-startup] [--runs 300]
#                      [--bin PATH]   (another pfstatelog build to time, e.g. an older one)
#
# Builds (once, kept in WORKDIR) a capture of --states lifetimes with
# `pfstatelog-bench gen-capture` and imports it into WORKDIR/big.db, then times, each
# as a whole process (exec, dynamic loading, relocation, allocator start, work, exit):
#   1. `pfstatelog --version`
#   2. `pfstatelog who` on WORKDIR/big.db, for a public ip:port taken from the file
#   3. `pfstatelog import` of examples/sample-ha-pair.pcap into a new database
# and prints p50 and p99 in milliseconds. It uses hyperfine if installed (no shell
# between runs, -N), else a plain loop. Runs `cargo build --release --workspace` only if a
# binary is missing. On a shared machine read the figures with the load average printed
# first; `perf stat -r 200 target/release/pfstatelog --version` gives CPU time, which load
# disturbs less.
set -euo pipefail

states=1000000
workdir=/tmp/pfstatelog-startup
runs=300
bin_arg=""
while [ $# -gt 0 ]; do
    case "$1" in
        --states) states="$2"; shift 2 ;;
        --workdir) workdir="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --bin) bin_arg="$2"; shift 2 ;;
        *) echo "startup.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$repo/target/release/pfstatelog"
bench="$repo/target/release/pfstatelog-bench"
sample="$repo/examples/sample-ha-pair.pcap"
if [ ! -x "$bin" ] || [ ! -x "$bench" ]; then
    (cd "$repo" && cargo build --release --workspace)
fi
mkdir -p "$workdir"
cap="$workdir/big-$states.pcap"
db="$workdir/big-$states.db"
if [ ! -s "$db" ]; then
    rm -f "$db" "$db-wal" "$db-shm" "$db.lock"
    [ -s "$cap" ] || "$bench" gen-capture --states "$states" --out "$cap" >/dev/null
    "$bin" import --db "$db" "$cap" >/dev/null 2>&1
fi
[ -z "$bin_arg" ] || bin="$bin_arg"

# A lifetime in the middle of the capture (gen-capture starts at 2026-01-05T00:00:00Z).
at="2026-01-05T00:00:30Z"
row="$("$bin" export --db "$db" --from "$at" --to "$at" | grep -v '^#' | sed -n 2p)"
ip="$(echo "$row" | cut -d, -f3)"
port="$(echo "$row" | cut -d, -f4)"
[ -n "$ip" ] && [ -n "$port" ] || { echo "startup.sh: no lifetime at $at in $db" >&2; exit 2; }

newdb="$workdir/sample.db"
clean="rm -f $newdb $newdb-wal $newdb-shm $newdb.lock"
declare -a names=("--version" "who ($states states)" "import sample")
declare -a cmds=(
    "$bin --version"
    "$bin who --db $db --ip $ip --port $port --at $at"
    "$bin import --db $newdb $sample"
)
declare -a preps=("" "" "$clean")
declare -a nruns=("$runs" "$runs" "$(( runs / 10 > 10 ? runs / 10 : 10 ))")

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; binary: $bin"
pct() { # p50 and p99 of seconds, one a line, on stdin
    sort -g | awk '{t[NR]=$1} END {
        i50 = int((NR - 1) * 0.50) + 1; i99 = int((NR - 1) * 0.99) + 1
        printf "p50 %7.2f ms   p99 %7.2f ms   (%d runs)\n", t[i50]*1000, t[i99]*1000, NR }'
}
for i in 0 1 2; do
    out="$workdir/times-$i.txt"
    if command -v hyperfine >/dev/null; then
        args=(-N --warmup 5 --runs "${nruns[$i]}" --export-json "$workdir/h-$i.json" --style none)
        [ -n "${preps[$i]}" ] && args+=(--prepare "${preps[$i]}")
        hyperfine "${args[@]}" "${cmds[$i]}" >/dev/null 2>&1
        python3 -c 'import json,sys; print("\n".join(map(str, json.load(open(sys.argv[1]))["results"][0]["times"])))' \
            "$workdir/h-$i.json" > "$out"
    else
        : > "$out"
        for _ in $(seq "${nruns[$i]}"); do
            [ -n "${preps[$i]}" ] && ${preps[$i]}
            t0=$(date +%s%N); ${cmds[$i]} >/dev/null 2>&1 || true; t1=$(date +%s%N)
            echo "$(( t1 - t0 ))e-9" >> "$out"
        done
    fi
    printf "%-22s " "${names[$i]}"; pct < "$out"
done
