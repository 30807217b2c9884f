#!/bin/bash
# What does an open state cost in memory? Whole-process RSS per state that is opened (INS)
# and never ended, for `pfstatelog import` and for `pfstatelog record`.
#
# Not a CI test. See scripts/README.md.
#
#   scripts/open-state-memory.sh [--states N] [--baseline N0] [--workdir DIR] [--seed S]
#                                [--cache-mib MIB] [--max-open M] [--pps P]
#                                [--after SECONDS] [--no-import] [--no-record]
#
# Defaults: --states 1000000 --baseline 1000 --workdir /work/bench-data/open-state-memory
# --seed 31 --cache-mib 256 (both commands' default) --pps 2000; no --max-open run.
#
# import: peak RSS ("Maximum resident set size" of /usr/bin/time -v) of importing a
#   capture of N never-ended states and one of N0, each into a fresh database;
#   reports (peak(N) - peak(N0)) / (N - N0). With --max-open M, also the peak of the
#   N-state import with `--max-open M`.
# record: VmRSS of a recorder on a veth pair in two network namespaces of its own,
#   before the replay of the N-state capture and once every state is open (its
#   database says so and it has gone idle); reports the difference / the open states.
#   Needs root. The replay runs at --pps packets/s (~5 INS a packet). With --after S,
#   VmRSS is read once more S seconds later (after 600 s the journal journal has handed
#   its states over to the database).
#
# Exit status: 0 when every measurement ran and every state ended up open; 1 when a
# count is off (the figure is still printed, per state actually open); 2 on a setup error.
set -eu

STATES=1000000
BASE=1000
WORKDIR=/work/bench-data/open-state-memory
SEED=31
CACHE_MIB=256
MAX_OPEN=
PPS=2000
AFTER=
DO_IMPORT=1
DO_RECORD=1

usage() {
    # The comment block at the top, up to the first line that is not a comment.
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --states) STATES=$2; shift 2 ;;
    --baseline) BASE=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --cache-mib) CACHE_MIB=$2; shift 2 ;;
    --max-open) MAX_OPEN=$2; shift 2 ;;
    --pps) PPS=$2; shift 2 ;;
    --after) AFTER=$2; shift 2 ;;
    --no-import) DO_IMPORT=0; shift ;;
    --no-record) DO_RECORD=0; shift ;;
    -h | --help) usage ;;
    *) echo "open-state-memory: unknown argument $1" >&2; usage ;;
    esac
done

die() { echo "open-state-memory: $*" >&2; exit 2; }
log() { echo "open-state-memory: $(date -u +%H:%M:%S) $*" >&2; }
for v in "$STATES" "$BASE" "$SEED" "$CACHE_MIB" "$PPS" ${MAX_OPEN:+"$MAX_OPEN"} ${AFTER:+"$AFTER"}; do
    case "$v" in '' | *[!0-9]*) die "'$v': a whole number is needed" ;; esac
done
[ "$STATES" -gt "$BASE" ] || die "--states must be larger than --baseline"
[ "$DO_RECORD" = 0 ] || [ "$(id -u)" -eq 0 ] || die "record needs root (namespaces, veth, capture); or --no-record"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PFSL=$ROOT/target/release/pfstatelog
BENCH=$ROOT/target/release/pfstatelog-bench
[ -x "$PFSL" ] && [ -x "$BENCH" ] || die "build first: cargo build --release --workspace"

# --- tools ------------------------------------------------------------------------------
command -v jq >/dev/null || apt-get install -y jq >/dev/null || die "cannot install jq"
[ -x /usr/bin/time ] || apt-get install -y time >/dev/null || die "cannot install time"
if [ "$DO_RECORD" = 1 ]; then
    command -v tcpreplay >/dev/null || apt-get install -y tcpreplay >/dev/null || die "cannot install tcpreplay"
    command -v ip >/dev/null || die "needs ip (iproute2)"
fi

# --- captures: INS only, never updated or deleted (gen-capture --never-end) ----------------
# --rate only sets the capture's timestamps (the replay is paced by --pps); 100,000/s keeps
# the span short so no clock-based check ever sees these states as stale.
mkdir -p "$WORKDIR"
capture() { # N -> path
    local cap=$WORKDIR/open-$1-s$SEED.pcap
    if [ ! -s "$cap" ]; then
        log "generating $1 never-ended states into $cap"
        "$BENCH" gen-capture --states "$1" --never-end --no-updates --rate 100000 --seed "$SEED" \
            --start 2026-01-07T00:00:00Z --out "$cap.tmp" >"$cap.gen.txt" 2>&1 ||
            { cat "$cap.gen.txt" >&2; die "gen-capture failed"; }
        mv "$cap.tmp" "$cap"
    fi
    echo "$cap"
}
CAP_N=$(capture "$STATES")
CAP_0=$(capture "$BASE")
PACKETS=$(sed -n 's/.*; packets \([0-9]*\);.*/\1/p' "$CAP_N.gen.txt")

PROBLEMS=
problem() { PROBLEMS="$PROBLEMS
  - $*"; }
SUMMARY=$WORKDIR/summary.txt
say() { echo "$*" | tee -a "$SUMMARY"; }
: >"$SUMMARY"
say "== open-state memory: $STATES never-ended states (baseline $BASE), seed $SEED, --cache-mib $CACHE_MIB"
say "   $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- import -----------------------------------------------------------------------------
import_peak() { # capture, states expected, extra args... -> PEAK (KiB)
    local cap=$1 n=$2 db=$WORKDIR/import.db out=$WORKDIR/import.log open
    shift 2
    rm -f "$db" "$db-wal" "$db-shm"
    /usr/bin/time -v "$PFSL" import --db "$db" --cache-mib "$CACHE_MIB" "$@" "$cap" >"$out" 2>&1 ||
        { cat "$out" >&2; die "import failed"; }
    open=$("$PFSL" stats --db "$db" --json | jq -r .open)
    [ "$open" = "$n" ] || problem "import $* of $cap: $open open states, expected $n"
    PEAK=$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\).*/\1/p' "$out")
}
if [ "$DO_IMPORT" = 1 ]; then
    log "import: $BASE states"
    import_peak "$CAP_0" "$BASE"
    P0=$PEAK
    log "import: $STATES states"
    import_peak "$CAP_N" "$STATES"
    PN=$PEAK
    say "import         peak RSS $P0 KiB at $BASE open, $PN KiB at $STATES open:" \
        "$(awk -v a="$P0" -v b="$PN" -v n0="$BASE" -v n="$STATES" 'BEGIN { printf "%.0f", (b - a) * 1024 / (n - n0) }') bytes per open state"
    if [ -n "$MAX_OPEN" ]; then
        log "import: $STATES states, --max-open $MAX_OPEN"
        import_peak "$CAP_N" "$STATES" --max-open "$MAX_OPEN"
        PM=$PEAK
        say "import         --max-open $MAX_OPEN: peak RSS $PM KiB at $STATES open ($(sed -n 's/.*evicted from memory (--max-open) \([0-9]*\).*/\1/p' "$WORKDIR/import.log") evicted from memory)"
    fi
    rm -f "$WORKDIR/import.db" "$WORKDIR/import.db-wal" "$WORKDIR/import.db-shm" "$WORKDIR/import.db.lock"
fi

# --- record -----------------------------------------------------------------------------
if [ "$DO_RECORD" = 1 ]; then
    NS_TX=pfmem-$$-tx
    NS_RX=pfmem-$$-rx
    IF_TX=pfmem$$t
    IF_RX=pfmem$$r
    REC_PID=
    REPLAY_PID=
    cleanup() {
        for p in $REPLAY_PID $REC_PID; do kill "$p" 2>/dev/null || true; done
        [ -z "$REC_PID" ] || wait "$REC_PID" 2>/dev/null || true
        ip netns del "$NS_TX" 2>/dev/null || true
        ip netns del "$NS_RX" 2>/dev/null || true
    }
    trap cleanup EXIT
    trap 'exit 2' INT TERM HUP
    ip netns add "$NS_TX"
    ip netns add "$NS_RX"
    ip link add "$IF_TX" netns "$NS_TX" type veth peer name "$IF_RX" netns "$NS_RX"
    ip -n "$NS_TX" link set "$IF_TX" up
    ip -n "$NS_RX" link set "$IF_RX" up

    DB=$WORKDIR/record.db
    rm -f "$DB" "$DB-wal" "$DB-shm"
    # `ip netns exec` execs the command, so $! is the recorder itself.
    ip netns exec "$NS_RX" "$PFSL" record "$IF_RX" --db "$DB" --no-syslog --cache-mib "$CACHE_MIB" \
        2>"$WORKDIR/record.log" &
    REC_PID=$!
    ready=0
    for _ in $(seq 1 100); do
        kill -0 "$REC_PID" 2>/dev/null || { cat "$WORKDIR/record.log" >&2; die "record exited at start-up"; }
        if [ -s "$DB" ] && "$PFSL" stats --db "$DB" --json 2>/dev/null |
            jq -e '[.runs[] | select(.kind == "record" and .status == "running")] | length > 0' >/dev/null; then
            ready=1
            break
        fi
        sleep 0.2
    done
    [ "$ready" = 1 ] || { cat "$WORKDIR/record.log" >&2; die "record not running after 20 s"; }
    rss() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$REC_PID/status"; }
    ticks() { local s; s=$(cat "/proc/$REC_PID/stat") || return 1; s=${s##*) }; set -- $s; echo $((${12} + ${13})); }
    sleep 2
    R0=$(rss VmRSS)

    # Pinned to one CPU so that frames arrive in order (see soak.sh).
    log "record: replaying $PACKETS packets at $PPS/s (~$((PACKETS / PPS)) s); VmRSS before $R0 KiB"
    ip netns exec "$NS_TX" taskset -c 0 tcpreplay -i "$IF_TX" --pps "$PPS" --timer nano --no-flow-stats \
        "$CAP_N" >"$WORKDIR/tcpreplay.log" 2>&1 &
    REPLAY_PID=$!
    wait "$REPLAY_PID" || problem "tcpreplay exited $?"
    REPLAY_PID=

    # Every state open in the database (the journal journal is committed on a timer) and the
    # recorder idle for 2 s: then nothing is left in flight.
    HZ=$(getconf CLK_TCK)
    OPEN=0
    idle=0
    prev=$(ticks)
    for i in $(seq 1 300); do
        sleep 1
        cur=$(ticks) || die "the recorder died"
        if [ $((cur - prev)) -le $((HZ / 50)) ]; then idle=$((idle + 1)); else idle=0; fi
        prev=$cur
        if [ $((i % 5)) = 0 ] || [ "$idle" -ge 2 ]; then
            OPEN=$("$PFSL" stats --db "$DB" --json 2>/dev/null | jq -r '.open // 0') || OPEN=0
        fi
        [ "$OPEN" -ge "$STATES" ] && [ "$idle" -ge 2 ] && break
        # Packets lost on the way: settle for what arrived once idle for 10 s.
        [ "$idle" -ge 10 ] && break
    done
    R1=$(rss VmRSS)
    HWM=$(rss VmHWM)
    DROPS=$("$PFSL" stats --db "$DB" --json | jq -r '.pcap_drops')
    [ "$OPEN" = "$STATES" ] || problem "record: $OPEN open states of $STATES sent (libpcap drops so far $DROPS)"
    say "record         VmRSS $R0 KiB before the replay, $R1 KiB with $OPEN open (VmHWM $HWM KiB):" \
        "$(awk -v a="$R0" -v b="$R1" -v n="$OPEN" 'BEGIN { printf "%.0f", n ? (b - a) * 1024 / n : 0 }') bytes per open state"
    if [ -n "$AFTER" ]; then
        log "record: reading VmRSS again in $AFTER s"
        sleep "$AFTER"
        say "               $AFTER s later: VmRSS $(rss VmRSS) KiB, $("$PFSL" stats --db "$DB" --json | jq -r .open) open"
    fi
    say "               replay tcpreplay --pps $PPS: $(grep 'Actual:' "$WORKDIR/tcpreplay.log" | sed 's/^[[:space:]]*//')"
fi

if [ -z "$PROBLEMS" ]; then
    say "RESULT: OK (summary in $SUMMARY)"
else
    say "RESULT: counts off:$PROBLEMS"
    exit 1
fi
