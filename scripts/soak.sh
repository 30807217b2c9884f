#!/bin/bash
# Soak test of `pfstatelog record` under sustained synthetic pfsync traffic.
#
# Not a CI test: it runs for about --minutes, needs root, and leaves its capture and
# database in --workdir for inspection. See scripts/README.md.
#
#   scripts/soak.sh [--rate STATES_PER_S] [--minutes M] [--workdir DIR] [--seed N] [--no-updates]
#                   [--cache-mib MIB (record's, default 256)] [--prepare]
#
# Defaults: --rate 20000 --minutes 10 --workdir /work/bench-data/soak --seed 1.
# --prepare only generates the capture (kept in WORKDIR/captures for later runs).
#
# Exit status: 0 when every state sent is in the database as expected and nothing was
# dropped; 1 when states are missing, packets were lost or anything was dropped; 2 on a
# setup error.
set -eu

RATE=20000
MINUTES=10
WORKDIR=/work/bench-data/soak
SEED=1
UPDATES=1
PREPARE=0
CACHE_MIB=256

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --no-updates) UPDATES=0; shift ;;
    --cache-mib) CACHE_MIB=$2; shift 2 ;;
    --prepare) PREPARE=1; shift ;;
    -h | --help) usage ;;
    *) echo "soak: unknown argument $1" >&2; usage ;;
    esac
done

die() { echo "soak: $*" >&2; exit 2; }
log() { echo "soak: $(date -u +%H:%M:%S) $*" >&2; }

case "$RATE" in '' | *[!0-9]*) die "--rate must be a whole number of states per second" ;; esac
case "$MINUTES" in '' | *[!0-9.]*) die "--minutes must be a number" ;; esac
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, veth, live capture)"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
PFSL=$BIN/pfstatelog
BENCH=$BIN/pfstatelog-bench

# --- tools ------------------------------------------------------------------------------
for pkg in tcpreplay jq; do
    command -v "$pkg" >/dev/null || apt-get install -y "$pkg" >/dev/null || die "cannot install $pkg"
done
command -v ip >/dev/null || die "needs ip (iproute2)"
if [ ! -x "$PFSL" ] || [ ! -x "$BENCH" ]; then
    log "binaries missing: cargo build --release --workspace"
    (cd "$ROOT" && cargo build --release --workspace) || die "cargo build --release --workspace failed"
fi

# --- the capture ------------------------------------------------------------------------
# One capture covers the whole run (the generator makes ~150k states/s here, so 12 M states
# take ~80 s, 4.3 GiB): no looping, so no state id is ever sent twice and every INS must end up
# as exactly one row. Without --drain the generator stops one minute after the last new
# state; the states still alive then stay open.
STATES=$(awk -v r="$RATE" -v m="$MINUTES" 'BEGIN { printf "%d", r * m * 60 }')
[ "$STATES" -gt 0 ] || die "--rate x --minutes gives no states"
mkdir -p "$WORKDIR/captures"
TAG=r${RATE}-n${STATES}-s${SEED}$([ "$UPDATES" = 1 ] || echo -noupd)
CAP=$WORKDIR/captures/soak-$TAG.pcap
META=$CAP.gen.txt
RUN=$WORKDIR/run
DB=$RUN/soak.db

# Disk: ~370 B/state of capture with UPD_C (~280 without), ~280 B/state of recorder-grown
# database, plus room for the WAL.
need_kib=$((STATES * 280 / 1024 + 1048576))
[ -s "$CAP" ] || need_kib=$((need_kib + STATES * 370 / 1024))
avail_kib=$(df -Pk "$WORKDIR" | awk 'NR == 2 { print $4 }')
[ "$avail_kib" -ge "$need_kib" ] ||
    die "$WORKDIR: $((avail_kib / 1024)) MiB free, this run needs ~$((need_kib / 1024)) MiB"

if [ -s "$CAP" ] && grep -q '^creation_packets ' "$META" 2>/dev/null; then
    log "reusing $CAP"
else
    log "generating $STATES states at $RATE/s into $CAP"
    t0=$(date +%s)
    "$BENCH" gen-capture --states "$STATES" --rate "$RATE" --seed "$SEED" \
        $([ "$UPDATES" = 1 ] || echo --no-updates) --out "$CAP.tmp" >"$META.tmp" 2>&1 ||
        { cat "$META.tmp" >&2; die "gen-capture failed"; }
    log "generated in $(($(date +%s) - t0)) s: $(grep '^wrote' "$META.tmp")"
    # Packets sent while new states are being created (up to the last INS, flushed at most
    # 1 s later): the replay is paced on these, see below.
    python3 - "$CAP.tmp" "$(awk -v n="$STATES" -v r="$RATE" 'BEGIN { print n / r + 1 }')" >>"$META.tmp" <<'PY'
import struct, sys
f = open(sys.argv[1], "rb")
magic = struct.unpack("<I", f.read(24)[:4])[0]
order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
div = 1e9 if magic in (0xA1B23C4D, 0x4D3CB2A1) else 1e6
cutoff, first, n = float(sys.argv[2]), None, 0
while True:
    h = f.read(16)
    if len(h) < 16:
        break
    sec, frac, caplen, _ = struct.unpack(order + "IIII", h)
    f.seek(caplen, 1)
    t = sec + frac / div
    first = t if first is None else first
    n += t - first < cutoff
print("creation_packets", n)
PY
    mv "$CAP.tmp" "$CAP"
    mv "$META.tmp" "$META"
fi
# "... messages INS a UPD_C b DEL_C c; packets p; span ..."
gen_line=$(grep '^states ' "$META")
field() { echo "$gen_line" | sed -n "s/.* $1 \([0-9]*\).*/\1/p"; }
SENT_INS=$(field INS)
SENT_UPD=$(field UPD_C)
SENT_DEL=$(field DEL_C)
SENT_PKTS=$(field packets)
CREATION_PKTS=$(sed -n 's/^creation_packets \([0-9]*\)$/\1/p' "$META")
[ -n "$SENT_INS" ] && [ -n "$SENT_DEL" ] && [ -n "$SENT_PKTS" ] && [ -n "$CREATION_PKTS" ] ||
    die "cannot read the counts in $META (delete it and the capture to regenerate)"
# tcpreplay paces in one of two ways. --multiplier sleeps packet to packet, so each
# oversleep adds up (a 2-minute capture took 178 s here under load); --pps aims at an
# absolute schedule and catches up. So: --pps at the creation phase's packet rate, which
# sends the new states at --rate; the last minute (deletes only, 1-3 % of the packets)
# then goes by in a few seconds instead of a minute.
PPS=$(awk -v p="$CREATION_PKTS" -v n="$STATES" -v r="$RATE" 'BEGIN { printf "%d", p / (n / r) + 0.5 }')
if [ "$PREPARE" = 1 ]; then
    echo "capture ready: $CAP ($SENT_INS states, $SENT_PKTS packets, replay at $PPS packets/s)"
    exit 0
fi

# --- network: two namespaces of our own, joined by a veth pair -----------------------------
# The sender gets its own namespace too, so nothing of the run touches the root namespace.
NS_TX=pfsoak-$$-tx
NS_RX=pfsoak-$$-rx
IF_TX=pfsoak$$t
IF_RX=pfsoak$$r
REC_PID=
SAMPLER_PID=
REPLAY_PID=

cleanup() {
    for p in $REPLAY_PID $SAMPLER_PID $REC_PID; do
        kill "$p" 2>/dev/null || true
    done
    [ -z "$REC_PID" ] || wait "$REC_PID" 2>/dev/null || true
    ip netns del "$NS_TX" 2>/dev/null || true
    ip netns del "$NS_RX" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

ip netns add "$NS_TX"
ip netns add "$NS_RX"
ip link add "$IF_TX" netns "$NS_TX" type veth peer name "$IF_RX" netns "$NS_RX"
for ns in "$NS_TX" "$NS_RX"; do
    # No IPv6 autoconf chatter: the veth counters then count only the replayed frames.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$NS_TX" link set "$IF_TX" up
ip -n "$NS_RX" link set "$IF_RX" up

# --- the recorder -----------------------------------------------------------------------
rm -rf "$RUN"
mkdir -p "$RUN"
SAMPLES=$RUN/samples.csv
# `ip netns exec` execs the command, so $! is the recorder itself.
ip netns exec "$NS_RX" "$PFSL" record "$IF_RX" --db "$DB" --no-syslog --cache-mib "$CACHE_MIB" 2>"$RUN/record.log" &
REC_PID=$!

# Ready once its run row says "running" (the capture is opened before the database).
ready=0
for _ in $(seq 1 100); do
    kill -0 "$REC_PID" 2>/dev/null || { cat "$RUN/record.log" >&2; die "record exited at start-up"; }
    if [ -s "$DB" ] && "$PFSL" stats --db "$DB" --json 2>/dev/null |
        jq -e '[.runs[] | select(.kind == "record" and .status == "running")] | length > 0' >/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
[ "$ready" = 1 ] || { cat "$RUN/record.log" >&2; die "record not running after 20 s"; }
log "recorder pid $REC_PID on $IF_RX in $NS_RX, db $DB"

HZ=$(getconf CLK_TCK)
runq_ns() { # time the recorder's threads spent runnable but waiting for a CPU
    cat /proc/"$REC_PID"/task/*/schedstat 2>/dev/null | awk '{ n += $2 } END { printf "%d", n }'
}
cpu_ticks() { # utime + stime of the recorder (fields 14, 15 of /proc/PID/stat)
    local s
    s=$(cat "/proc/$REC_PID/stat" 2>/dev/null) || return 1
    s=${s##*) }
    set -- $s
    echo $((${12} + ${13}))
}
softnet_drops() { # packets the kernel dropped from its per-CPU backlogs, all CPUs
    local n=0 d
    for d in $(awk '{ print $2 }' /proc/net/softnet_stat); do n=$((n + 16#$d)); done
    echo "$n"
}

# Every 10 s: RSS; CPU as a share of one core over the interval, and cumulative; the share
# of the interval spent waiting for a CPU (high: the machine, not the recorder, is short);
# database size (with WAL).
sampler() {
    local t0 prev_ticks prev_wait prev_t now ticks waited rss dbk
    t0=$(date +%s.%N)
    prev_t=$t0
    prev_ticks=$(cpu_ticks)
    prev_wait=$(runq_ns)
    echo "elapsed_s,rss_kib,cpu_pct,runq_wait_pct,cpu_total_s,db_mib,load1" >"$SAMPLES"
    while kill -0 "$REC_PID" 2>/dev/null; do
        now=$(date +%s.%N)
        ticks=$(cpu_ticks) || break
        waited=$(runq_ns)
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$REC_PID/status" 2>/dev/null) || break
        dbk=$(du -ck "$DB"* 2>/dev/null | awk 'END { print $1 }')
        awk -v t="$now" -v t0="$t0" -v pt="$prev_t" -v k="$ticks" -v pk="$prev_ticks" \
            -v w="$waited" -v pw="$prev_wait" -v hz="$HZ" -v rss="$rss" -v dbk="$dbk" \
            -v load="$(cut -d' ' -f1 /proc/loadavg)" \
            'BEGIN { dt = t - pt; printf "%.0f,%d,%.1f,%.1f,%.2f,%.1f,%s\n", t - t0, rss,
                     (dt > 0 ? 100 * (k - pk) / hz / dt : 0), (dt > 0 ? (w - pw) / 1e7 / dt : 0),
                     k / hz, dbk / 1024, load }' >>"$SAMPLES"
        prev_t=$now
        prev_ticks=$ticks
        prev_wait=$waited
        sleep 10
    done
}
sampler &
SAMPLER_PID=$!

# --- the replay ---------------------------------------------------------------------------
# --pps (see above). --timer nano sleeps between packets: the default (gtod) spins a whole
# core, which on a small machine is taken from the recorder under test. Pinned to one CPU:
# a veth queues each frame on the sending CPU's backlog, so a sender that migrates could
# deliver frames out of order (a DEL_C before its INS).
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
SOFTNET0=$(softnet_drops)
log "replaying $SENT_PKTS packets ($SENT_INS INS, $SENT_UPD UPD_C, $SENT_DEL DEL_C) at $PPS packets/s on $IF_TX; load $LOAD_START"
T_START=$(date +%s.%N)
ip netns exec "$NS_TX" taskset -c 0 \
    tcpreplay -i "$IF_TX" --pps "$PPS" --timer nano --no-flow-stats --stats 60 "$CAP" \
    >"$RUN/tcpreplay.log" 2>&1 &
REPLAY_PID=$!
REPLAY_RC=0
wait "$REPLAY_PID" || REPLAY_RC=$?
REPLAY_PID=
T_END=$(date +%s.%N)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
log "replay done (tcpreplay exit $REPLAY_RC); waiting for the recorder to go idle"

# The recorder may still be draining its capture ring, and it reads libpcap's drop counter
# only every 5 s (not at exit): stop it once it has been idle for 2 s and at least 6 s passed.
idle=0
prev=$(cpu_ticks)
for i in $(seq 1 300); do
    sleep 1
    cur=$(cpu_ticks) || break
    if [ $((cur - prev)) -le $((HZ / 50)) ]; then idle=$((idle + 1)); else idle=0; fi
    prev=$cur
    [ "$idle" -ge 2 ] && [ "$i" -ge 6 ] && break
done
DRAIN_S=$i
kill -TERM "$REC_PID" 2>/dev/null || true
REC_RC=0
wait "$REC_PID" || REC_RC=$?
REC_PID=
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=
SOFTNET1=$(softnet_drops)

# --- what arrived -----------------------------------------------------------------------
STATS=$RUN/stats.json
"$PFSL" stats --db "$DB" --json >"$STATS"
j() { jq -r "$1" "$STATS"; }
ROWS=$(j .states)
OPEN=$(j .open)
EVIDENCE=$(j .evidence_only)
RECRUN='[.runs[] | select(.kind == "record")] | last'
R_PKTS=$(j "$RECRUN.packets")
R_MSGS=$(j "$RECRUN.messages")
R_DROPS=$(j .pcap_drops)
R_DECERR=$(j .decode_errors)
R_SKIPPED=$(j "$RECRUN.skipped")
R_STATUS=$(j "$RECRUN.status")
GAPS=$(j .gaps)

tr_num() { # the last "LABEL N" in tcpreplay's output, 0 if none
    local n
    n=$(grep -F "$1" "$RUN/tcpreplay.log" | tail -1 | sed -n 's/.*:[[:space:]]*\([0-9][0-9]*\).*/\1/p')
    echo "${n:-0}"
}
TR_OK=$(tr_num 'Successful packets:')
TR_FAIL=$(tr_num 'Failed packets:')
TR_RETRY=$(($(tr_num 'Retried packets (ENOBUFS):') + $(tr_num 'Retried packets (EAGAIN):')))
TR_ACTUAL=$(grep 'Actual:' "$RUN/tcpreplay.log" | tail -1 | sed 's/^[[:space:]]*//')
TR_RATED=$(grep 'Rated:' "$RUN/tcpreplay.log" | tail -1 | sed 's/^[[:space:]]*//')

veth() { ip -n "$1" -s -j link show "$2" | jq -r ".[0].stats64.$3"; }
RX_PKTS=$(veth "$NS_RX" "$IF_RX" rx.packets)
RX_DROP=$(veth "$NS_RX" "$IF_RX" rx.dropped)
TX_DROP=$(veth "$NS_TX" "$IF_TX" tx.dropped)

EXP_OPEN=$((SENT_INS - SENT_DEL))
REPLAY_S=$(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%.1f", b - a }')
# tcpreplay's own packet rate over the whole replay, turned into new states per second
# (INS are spread evenly over the first CREATION_PKTS packets).
TR_PPS=$(echo "$TR_RATED" | sed -n 's/.* \([0-9.]*\) pps.*/\1/p')
ACHIEVED=$(awk -v pps="${TR_PPS:-0}" -v ins="$SENT_INS" -v cp="$CREATION_PKTS" \
    'BEGIN { printf "%.0f", pps * ins / cp }')

# RSS: first, min, max, last; "flat" = under 10 % growth over the second half of the run
# (the first half is when open states pile up to their steady level).
RSS=$(awk -F, 'NR > 1 { n++; v[n] = $2; c[n] = $3; w[n] = $4; if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2 }
    END { if (!n) { print "no samples"; exit }
          mid = v[int((n + 1) / 2)]; g = mid ? 100 * (v[n] - mid) / mid : 0
          for (i = 2; i <= n; i++) { s += c[i]; if (c[i] > cm) cm = c[i]; sw += w[i] }
          printf "RSS KiB first %d min %d max %d last %d; second-half growth %+.1f%% (%s)\n", v[1], min, max, v[n], g, (n < 6 ? "too few samples to tell" : g < 10 ? "flat" : "GROWING")
          printf "               CPU mean %.0f%% max %.0f%% of one core, waiting for a CPU %.0f%% of the time (%d samples)",
                 (n > 1 ? s / (n - 1) : 0), cm, (n > 1 ? sw / (n - 1) : 0), n }' "$SAMPLES" 2>&1) || true
CPU_TOTAL=$(tail -1 "$SAMPLES" 2>/dev/null | cut -d, -f5)

# --- verdict ----------------------------------------------------------------------------
PROBLEMS=
problem() { PROBLEMS="$PROBLEMS
  - $*"; }
[ "$REPLAY_RC" -eq 0 ] || problem "tcpreplay exited $REPLAY_RC"
[ "$TR_FAIL" -eq 0 ] || problem "tcpreplay failed to send $TR_FAIL packets"
[ "$TR_OK" -eq "$SENT_PKTS" ] || problem "tcpreplay sent $TR_OK of $SENT_PKTS packets"
[ "$RX_PKTS" -ge "$TR_OK" ] || problem "the receiving veth saw $RX_PKTS of $TR_OK packets sent"
[ "$R_PKTS" -eq "$TR_OK" ] || problem "the recorder captured $R_PKTS of $TR_OK packets sent ($((TR_OK - R_PKTS)) lost)"
[ "$R_DROPS" -eq 0 ] || problem "libpcap dropped $R_DROPS packets"
[ "$R_DECERR" -eq 0 ] || problem "$R_DECERR decode errors"
[ "$ROWS" -eq "$SENT_INS" ] || problem "$ROWS rows for $SENT_INS states sent ($((SENT_INS - ROWS)) missing)"
[ "$OPEN" -eq "$EXP_OPEN" ] || problem "$OPEN open states, expected $EXP_OPEN (INS - DEL_C)"
[ "$EVIDENCE" -eq 0 ] || problem "$EVIDENCE evidence-only rows (messages for states never seen in full)"
[ "$REC_RC" -eq 0 ] || problem "record exited $REC_RC"

{
    echo "== pfstatelog soak: $RATE new states/s, $MINUTES min of new states, seed $SEED$([ "$UPDATES" = 1 ] || echo ', no UPD_C')"
    echo "capture        $CAP"
    echo "               $gen_line"
    echo "               $CREATION_PKTS packets while states are created, $((SENT_PKTS - CREATION_PKTS)) in the last minute (deletes)"
    echo "replay         ${REPLAY_S}s, tcpreplay --pps $PPS --timer nano pinned to CPU 0: ~$ACHIEVED new states/s achieved (asked $RATE)"
    echo "               recorder stopped ${DRAIN_S}s after the replay ended"
    echo "tcpreplay      $TR_ACTUAL"
    echo "               $TR_RATED"
    echo "               successful $TR_OK, failed $TR_FAIL, retried $TR_RETRY"
    echo "kernel         veth rx $RX_PKTS packets, rx dropped $RX_DROP, tx dropped $TX_DROP; backlog drops (all CPUs) $((SOFTNET1 - SOFTNET0))"
    echo "recorder       status $R_STATUS, exit $REC_RC; captured $R_PKTS packets, $R_MSGS messages (sent $((SENT_INS + SENT_UPD + SENT_DEL))), skipped $R_SKIPPED"
    echo "               libpcap drops $R_DROPS, decode errors $R_DECERR, gaps $GAPS; CPU ${CPU_TOTAL}s in all"
    echo "               $RSS"
    echo "states         sent (INS) $SENT_INS; rows $ROWS; open $OPEN (expected $EXP_OPEN); closed $((ROWS - OPEN)) (DEL_C sent $SENT_DEL); evidence-only $EVIDENCE"
    echo "load average   start $LOAD_START, end $LOAD_END ($(nproc) CPUs)"
    echo "files          $SAMPLES, $STATS, $RUN/tcpreplay.log, $RUN/record.log"
    if [ -z "$PROBLEMS" ]; then
        echo "RESULT: OK: every state sent is in the database, nothing dropped"
    else
        echo "RESULT: FAIL:$PROBLEMS"
    fi
} | tee "$RUN/summary.txt"

[ -z "$PROBLEMS" ]
