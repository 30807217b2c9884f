#!/bin/sh
# First contact on a fresh Debian/Ubuntu machine: install libpcap, build, import the bundled
# capture (an OpenBSD HA pair seen on its sync network) and ask who held a public ip:port.
set -eu
cd "$(dirname "$0")/.."
if ! pkg-config --exists libpcap 2>/dev/null && [ ! -e /usr/include/pcap.h ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends build-essential libpcap-dev pkg-config
fi
cargo build --release
db=${TMPDIR:-/tmp}/pfstatelog-demo.db
rm -f "$db" "$db-wal" "$db-shm"
set -x
./target/release/pfstatelog decode --count 2 examples/sample-ha-pair.pcap
./target/release/pfstatelog import --db "$db" examples/sample-ha-pair.pcap
./target/release/pfstatelog who --db "$db" --ip 203.0.113.5 --port 443 --at 2025-03-14T09:02:38Z --window 30s
./target/release/pfstatelog who --db "$db" --ip 203.0.113.10 --port 50020 --at 2025-03-14T09:01:30Z --format json
