#!/usr/bin/env python3
"""Memory of a large zone (serving and reloading) and of `gslbd geoip build`.

    python3 bench/memory.py                        # build, 1,000,000 records, 452,608 networks
    python3 bench/memory.py --records 200000 --networks 0 --no-build

Zone: in a temporary folder, a zone of N simple A records (`hN IN A 10.x.y.z`) beside the
SOA and NS, and a config with one dynamic name. The release build's `serve` starts on
127.0.0.1:0; once it logs `ready` the script reads VmRSS and VmHWM (the peak so far: the
load's) from /proc/PID/status (and checks that one of the records is answered), then
twice resets the peak (`echo 5 > /proc/PID/clear_refs`), sends SIGHUP, waits for the
`reloaded` line and reads VmHWM (the reload's peak) and, a second later, VmRSS: first
with the files as they were (the zones are kept), then with a record added to the zone
(it is built anew beside the one serving). The same run with an empty zone gives the
baseline, so the per-record figure is (VmRSS with N records - VmRSS empty) / N.

GeoIP: a CSV of N networks like a City database's worst case (80 % IPv4 /24s, 20 % IPv6
/48s, every row its own country, subdivision and coordinates, so nothing merges), built
with `/usr/bin/time -v gslbd geoip build`: wall time, maximum RSS and the file's size.
"""
import argparse
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GSLBD = REPO / "target/release/gslbd"


def status(pid: int) -> dict:
    """The kB fields of /proc/PID/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            out[key] = int(value.split()[0])
    return out


def write_zone(folder: Path, records: int) -> None:
    (folder / "zones").mkdir()
    with open(folder / "zones/big.example.zone", "w") as f:
        f.write("$ORIGIN big.example.\n$TTL 300\n")
        f.write("@ IN SOA ns1 hostmaster 1 3600 600 604800 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n")
        for i in range(records):
            f.write(f"h{i} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n")
    (folder / "gslb.toml").write_text("""[server]
listen = ["127.0.0.1:0"]
zones = "zones"

[regions.one]
addresses = ["192.0.2.10"]

[records."www.big.example"]
policy = "failover"
""")


class Server:
    """`gslbd serve` with its log read by a thread (so it never blocks on a full pipe)."""

    def __init__(self, gslbd: Path, config: Path):
        self.proc = subprocess.Popen(
            [str(gslbd), "serve", "--config", str(config), "--listen", "127.0.0.1:0", "--log-level", "info"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, needle: str, start: int = 0, timeout: float = 600) -> int:
        """Waits for a log line containing `needle` at index >= start; returns the next index."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    if needle in self.lines[i]:
                        return i + 1
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gslbd: no {needle!r} line:\n{''.join(self.lines[-20:])}")
                self.cond.wait(0.2)

    def udp_addr(self) -> tuple:
        for line in self.lines:
            if "listening for UDP on " in line:
                addr = line.split("listening for UDP on ")[1].split()[0]
                host, port = addr.rsplit(":", 1)
                return host, int(port)
        raise SystemExit("gslbd: no `listening for UDP` line")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def query_a(addr: tuple, name: str) -> bytes:
    """The A records' RDATA of an answer (the last answer record's 4 bytes)."""
    q = struct.pack(">HHHHHH", 0x4242, 0, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(q, addr)
        reply = s.recv(4096)
    if reply[:2] != b"\x42\x42" or struct.unpack(">H", reply[6:8])[0] != 1:
        raise SystemExit(f"bad answer for {name}: {reply!r}")
    return reply[-4:]


def zone_run(gslbd: Path, records: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="gslbd-memory-") as tmp:
        tmp = Path(tmp)
        write_zone(tmp, records)
        started = time.monotonic()
        srv = Server(gslbd, tmp / "gslb.toml")
        try:
            at = srv.wait_for("ready")
            load_s = time.monotonic() - started
            if records:
                i = records - 1
                got = query_a(srv.udp_addr(), f"h{i}.big.example")
                assert got == bytes([10, i >> 16 & 255, i >> 8 & 255, i & 255]), got
            ready = status(srv.proc.pid)
            reloads = []
            for changed in (False, True):
                if changed:
                    # A zone that changed is built anew beside the one serving.
                    with open(tmp / "zones/big.example.zone", "a") as f:
                        f.write("added IN A 192.0.2.99\n")
                Path(f"/proc/{srv.proc.pid}/clear_refs").write_text("5")
                started = time.monotonic()
                srv.proc.send_signal(signal.SIGHUP)
                at = srv.wait_for("reloaded", at)
                took = time.monotonic() - started
                peak = status(srv.proc.pid)["VmHWM"]
                time.sleep(1)
                after = status(srv.proc.pid)["VmRSS"]
                reloads.append({"peak": peak, "after": after, "s": took})
            if records:
                assert query_a(srv.udp_addr(), "h0.big.example") == bytes([10, 0, 0, 0])
                assert query_a(srv.udp_addr(), "added.big.example") == bytes([192, 0, 2, 99])
        finally:
            srv.stop()
    return {"records": records, "ready_rss": ready["VmRSS"], "ready_hwm": ready["VmHWM"],
            "load_s": load_s, "same": reloads[0], "changed": reloads[1]}


def write_csv(path: Path, networks: int) -> None:
    rnd = random.Random(7)
    v6 = networks // 5
    v4 = networks - v6
    countries = [("EU", "DE"), ("EU", "FR"), ("NA", "US"), ("NA", "CA"), ("AS", "JP"),
                 ("AS", "IN"), ("SA", "BR"), ("OC", "AU"), ("AF", "ZA"), ("AS", "CN")]
    with open(path, "w") as f:
        f.write("network,continent,country,subdivision,lat,lon\n")
        # Distinct /24s spread over 1.0.0.0-223.255.255.0.
        for n in sorted(rnd.sample(range(1 << 16, 224 << 16), v4)):
            cont, cc = rnd.choice(countries)
            f.write(f"{n >> 16}.{n >> 8 & 255}.{n & 255}.0/24,{cont},{cc},{cc}-{rnd.randrange(1, 99):02d},"
                    f"{rnd.uniform(-60, 70):.4f},{rnd.uniform(-180, 180):.4f}\n")
        # Distinct /48s under 2400::/12.
        for n in sorted(rnd.sample(range(1 << 36), v6)):
            p = (0x2400 << 32) | n
            cont, cc = rnd.choice(countries)
            f.write(f"{p >> 32:x}:{p >> 16 & 0xffff:x}:{p & 0xffff:x}::/48,{cont},{cc},,"
                    f"{rnd.uniform(-60, 70):.4f},{rnd.uniform(-180, 180):.4f}\n")


def geoip_run(gslbd: Path, networks: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="gslbd-memory-") as tmp:
        tmp = Path(tmp)
        write_csv(tmp / "networks.csv", networks)
        out = subprocess.run(
            ["/usr/bin/time", "-v", str(gslbd), "geoip", "build", "--csv", str(tmp / "networks.csv"),
             "--out", str(tmp / "out.mmdb")],
            capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": "1767225600"})
        if out.returncode != 0:
            raise SystemExit(f"geoip build failed:\n{out.stderr[-2000:]}")
        fields = {}
        for line in out.stderr.splitlines():
            key, _, value = line.strip().rpartition(": ")
            fields[key] = value
        wall = fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
        return {"networks": networks, "csv_kib": (tmp / "networks.csv").stat().st_size // 1024,
                "out_kib": (tmp / "out.mmdb").stat().st_size // 1024,
                "max_rss": int(fields["Maximum resident set size (kbytes)"]),
                "wall_s": sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="A records in the zone (0: skip)")
    ap.add_argument("--networks", type=int, default=452_608, help="CSV rows for geoip build (0: skip)")
    ap.add_argument("--gslbd", type=Path, default=GSLBD)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=REPO, check=True)
    if args.records:
        base = zone_run(args.gslbd, 0)
        big = zone_run(args.gslbd, args.records)
        print("records    load s  VmRSS ready  VmHWM ready | reload, zones unchanged: peak, after, s "
              "| reload, zone changed: peak, after, s   (KiB)")
        for r in (base, big):
            same, changed = r["same"], r["changed"]
            print(f"{r['records']:>9,}  {r['load_s']:6.1f}  {r['ready_rss']:>11,}  {r['ready_hwm']:>11,} | "
                  f"{same['peak']:>11,} {same['after']:>11,} {same['s']:5.1f} | "
                  f"{changed['peak']:>11,} {changed['after']:>11,} {changed['s']:5.1f}")
        n = args.records
        per = (big["ready_rss"] - base["ready_rss"]) * 1024 / n
        print(f"bytes per record served: {per:.0f}; reload peak / VmRSS at ready: "
              f"{big['same']['peak'] / big['ready_rss']:.2f} (zones unchanged), "
              f"{big['changed']['peak'] / big['ready_rss']:.2f} (zone changed)")
    if args.networks:
        g = geoip_run(args.gslbd, args.networks)
        print(f"geoip build: {g['networks']:,} networks (CSV {g['csv_kib']:,} KiB) -> {g['out_kib']:,} KiB "
              f"in {g['wall_s']:.1f} s, max RSS {g['max_rss']:,} KiB ({g['max_rss'] / g['out_kib']:.1f}x the file)")


if __name__ == "__main__":
    sys.exit(main())
