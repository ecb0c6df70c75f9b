#!/usr/bin/env python3
"""Load, reload and memory of a large config: the figures of the README's "Large configs".

    python3 bench/large_config.py                        # 50,000 records x 100 regions
    python3 bench/large_config.py --records 50000 --regions 10000 --no-build

Writes a deployment like tests/it/large_config.rs's (every policy in turn, each geo
record with rules of its own, the sample GeoIP DB; --regions-per-record N gives geo and
latency records N explicit regions instead of all of them), then with the release build: times
`gslbd check`; starts `gslbd serve` with an admin API, reports its RSS once ready; times
`POST /api/v1/reload` while a thread sends one TCP query every 50 ms and reports the
slowest answer; reports RSS after the reload and the peak (VmHWM); stops it with SIGTERM.
Needs Linux and python3.
"""
import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / "target/release/gslbd"

ZONE = """$ORIGIN big.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 604800 60
@ IN NS ns1
ns1 IN A 192.0.2.53
"""


def config(records: int, regions: int, per_record: int) -> str:
    out = [f'[server]\nlisten = ["127.0.0.1:0"]\nzones = "zones"\ngeoip = "{REPO}/geoip/sample.mmdb"\n']
    for i in range(regions):
        out.append(f'[regions.r{i}]\naddresses = ["10.{i // 256 % 256}.{i % 256}.1"]\n'
                   f'location = {{ lat = {i % 90}.0, lon = {i % 180}.0 }}\n')
    for j in range(records):
        a, b = j % regions, (j + 1 + (j // regions) % (regions - 1)) % regions
        out.append(f'[records."n{j}.big.test"]\n')
        # Geo and latency records: every region is a candidate unless `per_record` says.
        own = ""
        if per_record:
            own = "regions = [" + ", ".join(f'"r{(j + k) % regions}"' for k in range(per_record)) + "]\n"
        kind = j % 4
        if kind == 0:
            out.append(f'policy = "geo"\n{own}[records."n{j}.big.test".geo]\n'
                       f'continent.EU = ["r{a}", "r{b}"]\ncountry.JP = ["r{(j // 7) % regions}"]\n'
                       f'default = ["r{(j + 2) % regions}"]\n')
        elif kind == 1:
            out.append(f'policy = "latency"\n{own}')
        elif kind == 2:
            out.append(f'policy = "weighted"\nweights = {{ r{a} = 1, r{b} = 2 }}\n')
        else:
            out.append(f'policy = "failover"\nregions = ["r{a}", "r{b}"]\n')
    return "".join(out)


def status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def tcp_query(port: int) -> float:
    q = struct.pack(">HHHHHH", 0x4242, 0, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l for l in b"n3.big.test".split(b".")) + b"\0" + struct.pack(">HH", 1, 1)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(struct.pack(">H", len(q)) + q)
        n = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))[0]
        if s.recv(n, socket.MSG_WAITALL)[:2] != b"\x42\x42":
            raise RuntimeError("bad TCP answer")
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--regions", type=int, default=100)
    ap.add_argument("--regions-per-record", type=int, default=0)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=REPO, check=True)
    with tempfile.TemporaryDirectory(prefix="gslbd-large-") as tmp:
        tmp = Path(tmp)
        (tmp / "zones").mkdir()
        (tmp / "zones/big.test.zone").write_text(ZONE)
        conf = tmp / "gslb.toml"
        conf.write_text(config(args.records, args.regions, args.regions_per_record))
        print(f"{args.records} records x {args.regions} regions: {conf.stat().st_size / 1e6:.1f} MB of config")

        start = time.monotonic()
        out = subprocess.run([BIN, "check", "--config", conf], capture_output=True, text=True)
        print(f"check: {time.monotonic() - start:.2f} s, exit {out.returncode}")
        if out.returncode != 0:
            sys.exit(out.stderr[-2000:])

        start = time.monotonic()
        proc = subprocess.Popen([BIN, "serve", "--config", conf, "--admin", "127.0.0.1:0"],
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "info"})
        tcp = admin = None
        for line in proc.stderr:
            if "listening for TCP on " in line:
                tcp = int(line.rsplit(":", 1)[1])
            elif "listening for admin HTTP on " in line:
                admin = line.split(" on ")[1].strip()
            elif line.rstrip().endswith("ready"):
                break
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        print(f"serve: ready after {time.monotonic() - start:.2f} s, RSS {status(proc.pid, 'VmRSS') / 1024:.0f} MiB")

        worst, done = [0.0], threading.Event()

        def probe():
            while not done.is_set():
                worst[0] = max(worst[0], tcp_query(tcp))
                time.sleep(0.05)

        t = threading.Thread(target=probe)
        t.start()
        start = time.monotonic()
        req = urllib.request.Request(f"http://{admin}/api/v1/reload", method="POST")
        with urllib.request.urlopen(req, timeout=600) as r:
            body = r.read().decode()
        took = time.monotonic() - start
        done.set()
        t.join()
        print(f"reload: {took:.2f} s ({body.strip()[:80]}...); slowest TCP answer meanwhile {worst[0] * 1000:.0f} ms")
        print(f"RSS after the reload {status(proc.pid, 'VmRSS') / 1024:.0f} MiB, "
              f"peak {status(proc.pid, 'VmHWM') / 1024:.0f} MiB")
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        print(f"SIGTERM: exit {code} after {time.monotonic() - start:.2f} s")


if __name__ == "__main__":
    main()
