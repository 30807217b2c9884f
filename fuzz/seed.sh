#!/bin/sh
# Build the seed corpora of the fuzz targets from the captures in tests/fixtures:
#   corpus/decode/  one file per frame: [link type selector][frame bytes]
#   corpus/track/   runs of consecutive frames: [selector]([len u16 BE][time step i8][bytes])*
# The selector is the index of the capture's link type in LINKTYPES (fuzz_targets/common.rs).
# Usage: fuzz/seed.sh [FIXTURE_DIR]   (needs python3; corpus/ is not committed)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fixtures=${1:-$here/../tests/fixtures}
mkdir -p "$here/corpus/decode" "$here/corpus/track"
exec python3 - "$fixtures" "$here/corpus" <<'PY'
import hashlib, os, struct, sys

LINKTYPES = [0, 1, 12, 14, 18, 101, 108, 113, 121, 228, 229, 246, 276]
RUN = 8  # frames per track seed

def pcap_frames(d):
    magic = d[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError("not pcap")
    lt = struct.unpack_from(e + "I", d, 20)[0] & 0xFFFF
    off = 24
    while off + 16 <= len(d):
        sec, frac, incl, orig = struct.unpack_from(e + "IIII", d, off)
        off += 16
        yield lt, sec * 1_000_000 + frac, d[off:off + incl]
        off += incl

def pcapng_frames(d):
    off, e, lts = 0, "<", []
    while off + 12 <= len(d):
        bt = struct.unpack_from(e + "I", d, off)[0]
        if bt == 0x0A0D0D0A:
            e = "<" if d[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            lts = []
        bt, bl = struct.unpack_from(e + "II", d, off)
        if bl < 12:
            break
        if bt == 1:
            lts.append(struct.unpack_from(e + "H", d, off + 8)[0])
        elif bt == 6:
            iid, hi, lo, cap, orig = struct.unpack_from(e + "IIIII", d, off + 8)
            yield lts[iid], ((hi << 32) | lo), d[off + 28:off + 28 + cap]
        off += bl

def frames(path):
    d = open(path, "rb").read()
    if d[:4] == b"\x0a\x0d\x0d\x0a":
        return list(pcapng_frames(d))
    return list(pcap_frames(d))

def write(dirname, data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(dirname, name), "wb") as f:
        f.write(data)

fixtures, corpus = sys.argv[1], sys.argv[2]
n_dec = n_trk = 0
for fn in sorted(os.listdir(fixtures)):
    if not fn.endswith((".pcap", ".pcapng")):
        continue
    fr = frames(os.path.join(fixtures, fn))
    for lt, ts, data in fr:
        if lt not in LINKTYPES:
            continue
        write(os.path.join(corpus, "decode"), bytes([LINKTYPES.index(lt)]) + data)
        n_dec += 1
    for i in range(0, len(fr), RUN):
        chunk = [f for f in fr[i:i + RUN] if f[0] in LINKTYPES]
        if not chunk:
            continue
        out = bytearray([LINKTYPES.index(chunk[0][0])])
        prev = chunk[0][1]
        for lt, ts, data in chunk:
            step = max(-128, min(127, round((ts - prev) / 500_000)))
            prev = ts
            out += struct.pack(">Hb", min(len(data), 0xFFFF), step) + data[:0xFFFF]
        write(os.path.join(corpus, "track"), bytes(out))
        n_trk += 1
print(f"seed: {n_dec} frames -> {corpus}/decode, {n_trk} runs -> {corpus}/track")
PY
