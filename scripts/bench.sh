#!/usr/bin/env bash
# scripts/bench.sh: the import, query and size benchmarks of BENCHMARKS.md, reproducible.
#
#   scripts/bench.sh import [--states N] [--base M] [--runs R] [--workdir DIR]
#       N new lifetimes (INS + DEL_C, default 1,000,000) imported R times (default 3), each
#       into a fresh copy of a base file of M generated lifetimes (default 0: an empty
#       file; BENCHMARKS.md's large-file figure uses --base 50000000, which takes about an
#       hour to generate once and ~12 GB; it is kept in the workdir for later runs).
#       Prints, per run: lifetimes per CPU-second (user + system of the importing process:
#       contention on a shared machine does not inflate it), wall seconds, peak RSS.
#   scripts/bench.sh query [--lifetimes M] [--workdir DIR]
#       who and history latency (in process, pfstatelog-bench who-bench / history-bench)
#       and whole-process `who` latency (p50, p99 of 200 runs) on a generated file of M
#       lifetimes (default 1,000,000) with hot pairs reused M/1000 times.
#   scripts/bench.sh size [--lifetimes M] [--workdir DIR]
#       bytes per lifetime of an import of M lifetimes into an empty file.
#
# Needs: a release build (cargo build --release --workspace; built here if missing), /usr/bin/time
# (Debian package `time`), python3. Data goes to the workdir (default /tmp/pfstatelog-bench),
# never into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-}
[ -n "$cmd" ] || { sed -n '2,21p' "$0"; exit 2; }
shift
states=1000000 base=0 runs=3 lifetimes=1000000 work=/tmp/pfstatelog-bench
while [ $# -gt 0 ]; do
    case "$1" in
        --states) states=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --lifetimes) lifetimes=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x target/release/pfstatelog ] && [ -x target/release/pfstatelog-bench ] || cargo build --release --workspace
[ -x /usr/bin/time ] || { echo "bench.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
P=$PWD/target/release/pfstatelog
B=$PWD/target/release/pfstatelog-bench
mkdir -p "$work"
echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load $(cut -d' ' -f1-3 /proc/loadavg) $(nproc) CPUs"

# A capture of N INS + DEL_C lifetimes, starting after any base file's lifetimes.
capture() {
    local n=$1 out="$work/cap-$1.pcap"
    [ -s "$out" ] || "$B" gen-capture --states "$n" --no-updates --drain --seed 130 \
        --start 2039-01-01T00:00:00Z --out "$out" >&2
    echo "$out"
}

case "$cmd" in
import)
    cap=$(capture "$states")
    basedb=""
    if [ "$base" -gt 0 ]; then
        basedb="$work/base-$base.db"
        [ -s "$basedb" ] || "$B" gen-db --states "$base" --copies 10 --reuse $((base / 1000)) --db "$basedb" >&2
    fi
    for r in $(seq "$runs"); do
        db="$work/import.db"
        rm -f "$db" "$db-wal" "$db-shm" "$db.lock"
        [ -n "$basedb" ] && cp "$basedb" "$db"
        sync
        /usr/bin/time -f "%U %S %e %M" -o "$work/time" "$P" import --db "$db" "$cap" 2>/dev/null
        read -r u s e m < "$work/time"
        python3 -c "n=$states; u=$u; s=$s; print(f'run $r: {n/(u+s):,.0f} lifetimes per CPU-second ({u}+{s} s), wall $e s, peak RSS {$m/1024:,.0f} MiB')"
    done
    ;;
query)
    db="$work/query-$lifetimes.db"
    [ -s "$db" ] || "$B" gen-db --states "$lifetimes" --reuse $((lifetimes / 1000)) --db "$db" >&2
    "$B" who-bench --db "$db" --queries 2000
    "$B" history-bench --db "$db" 2>/dev/null || true
    # Whole process, as a user feels it: a hot pair (present with --reuse) in the middle of
    # the generated traffic (gen-db starts at 2026-01-05T00:00:00Z, 1,200 new states/s).
    python3 - "$P" "$db" <<'EOF'
import subprocess, sys, time
p, db = sys.argv[1], sys.argv[2]
args = [p, "who", "--db", db, "--ip", "203.0.113.1", "--port", "40000",
        "--at", "2026-01-05T00:05:00Z", "--window", "1m", "--format", "json"]
ts = []
for _ in range(200):
    t = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ts.append((time.perf_counter() - t) * 1000)
ts.sort()
print(f"who whole process (200 runs): p50 {ts[100]:.2f} ms, p99 {ts[197]:.2f} ms")
EOF
    ;;
size)
    cap=$(capture "$lifetimes")
    db="$work/size.db"
    rm -f "$db" "$db-wal" "$db-shm" "$db.lock"
    "$P" import --db "$db" "$cap" 2>/dev/null
    bytes=$(stat -c %s "$db")
    python3 -c "print(f'{$bytes:,} bytes for $lifetimes lifetimes: {$bytes/$lifetimes:.1f} bytes per lifetime')"
    "$B" size --db "$db" | tail -n 20
    ;;
*) echo "bench.sh: unknown benchmark $cmd (import, query, size)" >&2; exit 2 ;;
esac
