#!/usr/bin/env python3
"""Overload: more UDP queries than gslbd can answer, and TCP must keep working.

    python3 bench/overload.py              # build, 20 s of overload, print the figures
    python3 bench/overload.py --seconds 60 --no-build

gslbd (release build, one UDP worker, the benchmark deployment of bench/run.py) runs
pinned to CPU 0 at nice 19. Two dnsperf processes flood it with the geo-ecs-mix queries,
one pinned to CPU 1 and one to CPU 0 at normal priority, so the server gets a small share
of one core for more queries than a whole core could answer (one dnsperf alone cannot
outrun gslbd on a core of its own). Meanwhile a client on CPU 1 sends one TCP query every 100 ms on a
fresh connection and times it. Printed: the server's RSS every 5 s, queries answered and
lost (dnsperf), datagrams the kernel dropped at the server's socket (/proc/net/udp),
and the TCP latencies. Healthy overload: RSS flat, the excess dropped by the kernel,
every TCP query answered promptly.
"""
import argparse
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import run  # bench/run.py, beside this script

PORT = 5311


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def socket_drops(port: int) -> int:
    """The drops column of /proc/net/udp for sockets bound to `port`."""
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port:
            total += int(f[-1])
    return total


def tcp_query(port: int) -> float:
    """One A query for static.gslb.example.com over a new TCP connection; seconds."""
    q = struct.pack(">HHHHHH", 0x4242, 0, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l for l in b"static.gslb.example.com".split(b".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">H", len(q)) + q)
        head = s.recv(2, socket.MSG_WAITALL)
        n = struct.unpack(">H", head)[0]
        body = s.recv(n, socket.MSG_WAITALL)
        if len(body) != n or body[:2] != b"\x42\x42":
            raise RuntimeError("bad TCP answer")
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        run.sh("cargo", "build", "--release", "--locked", cwd=run.REPO)
    with tempfile.TemporaryDirectory(prefix="gslbd-overload-") as tmp:
        tmp = Path(tmp)
        qfile = tmp / "mix.bin"
        run.ecs_queries(qfile)
        proc = run.start_server(["nice", "-n", "19"] + run.gslbd_files(tmp / "gslbd", PORT), PORT)
        try:
            drops0 = socket_drops(PORT)
            rss = [rss_kib(proc.pid)]
            floods, logs = [], []
            for cpu in ("1", "0"):
                cmd = ["taskset", "-c", cpu, "dnsperf", "-s", "127.0.0.1", "-p", str(PORT), "-d", str(qfile),
                       "-B", "-l", str(args.seconds), "-c", "100", "-q", "20000", "-t", "1"]
                # A file, not a pipe: dnsperf prints a line per timed-out query.
                logs.append(tmp / f"dnsperf-{cpu}.txt")
                floods.append(subprocess.Popen(cmd, stdout=logs[-1].open("w"), text=True))
            tcp = []
            stop = threading.Event()

            def tcp_loop():
                while not stop.is_set():
                    try:
                        tcp.append(tcp_query(PORT))
                    except OSError as e:
                        tcp.append(float("inf"))
                        print(f"TCP query failed: {e}", file=sys.stderr)
                    time.sleep(0.1)

            t = threading.Thread(target=tcp_loop)
            t.start()
            start = time.monotonic()
            while any(f.poll() is None for f in floods):
                time.sleep(1)
                if int(time.monotonic() - start) % 5 == 0:
                    rss.append(rss_kib(proc.pid))
            stop.set()
            t.join()
            rss.append(rss_kib(proc.pid))
            drops = socket_drops(PORT) - drops0
            sent = completed = lost = 0
            for log in logs:
                for line in log.read_text().splitlines():
                    if "Queries sent:" in line:
                        sent += int(line.split(":")[1].split()[0])
                    elif "Queries completed:" in line:
                        completed += int(line.split(":")[1].split()[0])
                    elif "Queries lost:" in line:
                        lost += int(line.split(":")[1].split()[0])
        finally:
            run.stop_server(proc)
    tcp.sort()
    ok = [x for x in tcp if x != float("inf")]
    print(f"UDP: {sent} sent, {completed} answered ({completed / args.seconds:.0f}/s), {lost} lost; "
          f"{drops} dropped by the kernel at the server's socket")
    print(f"RSS KiB: {' '.join(str(r) for r in rss)}")
    print(f"TCP: {len(ok)} of {len(tcp)} answered; median {1000 * ok[len(ok) // 2]:.1f} ms, "
          f"max {1000 * ok[-1]:.1f} ms")


if __name__ == "__main__":
    main()
