#!/usr/bin/env bash
# scripts/sql-bench.sh: the "SQL and export" figures of BENCHMARKS.md, reproducible.
#
#   scripts/sql-bench.sh [--lifetimes M] [--workdir DIR]
#       On a generated file of M lifetimes (default 10,000,000; gen-db --reuse M/1000, as
#       scripts/bench.sh query builds it, kept in the workdir for later runs):
#       - `pfstatelog-bench sql-bench`: in process, warm, the `lifetimes` table asked for a
#         public ip:port at a time against store::query::who on the same probes (the ratio
#         of their p50s), and `SELECT count(*) FROM lifetimes` in lifetimes per second;
#       - `pfstatelog sql "SELECT count(*) FROM lifetimes"` as a user runs it (whole process);
#       - `pfstatelog export --format sqlite` of every lifetime, as a user runs it: lifetimes
#         per wall second and per CPU-second (user + system), peak RSS, file size.
#
# Needs: a release build (built here if missing), /usr/bin/time (Debian package `time`),
# python3. Data goes to the workdir (default /tmp/pfstatelog-bench), never into the
# repository.
set -euo pipefail
cd "$(dirname "$0")/.."
lifetimes=10000000 work=/tmp/pfstatelog-bench
while [ $# -gt 0 ]; do
    case "$1" in
        --lifetimes) lifetimes=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        *) sed -n '2,16p' "$0"; exit 2 ;;
    esac
done
[ -x target/release/pfstatelog ] && [ -x target/release/pfstatelog-bench ] || cargo build --release
[ -x /usr/bin/time ] || { echo "sql-bench.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
P=$PWD/target/release/pfstatelog
B=$PWD/target/release/pfstatelog-bench
mkdir -p "$work"
echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load $(cut -d' ' -f1-3 /proc/loadavg) $(nproc) CPUs"
db="$work/query-$lifetimes.db"
[ -s "$db" ] || "$B" gen-db --states "$lifetimes" --reuse $((lifetimes / 1000)) --db "$db" >&2
"$B" sql-bench --db "$db" --queries 2000
# The count as a user runs it: the whole process, start to exit.
/usr/bin/time -f "%U %S %e %M" -o "$work/time" \
    "$P" sql --db "$db" --format csv "SELECT count(*) FROM lifetimes" > "$work/count" 2>/dev/null
read -r u s e m < "$work/time"
n=$(tail -1 "$work/count")
python3 -c "n=$n; print(f'pfstatelog sql \"SELECT count(*) FROM lifetimes\": {n:,} in {$e} s wall: {n/$e:,.0f} lifetimes/s ({$u}+{$s} CPU-s), peak RSS {$m/1024:,.0f} MiB')"
out="$work/export-$lifetimes.sqlite"
rm -f "$out" "$out.partial"
/usr/bin/time -f "%U %S %e %M" -o "$work/time" \
    "$P" export --db "$db" --from @0 --to @4000000000 --format sqlite "$out" 2>/dev/null
read -r u s e m < "$work/time"
rows=$(python3 -c "import sqlite3,sys; print(sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True).execute('SELECT count(*) FROM lifetimes').fetchone()[0])" "$out")
bytes=$(stat -c %s "$out")
python3 -c "n=$rows; print(f'export --format sqlite: {n:,} lifetimes in {$e} s wall: {n/$e:,.0f} lifetimes/s ({n/($u+$s):,.0f} per CPU-second), peak RSS {$m/1024:,.0f} MiB, {$bytes/2**20:,.0f} MiB')"
rm -f "$out"
