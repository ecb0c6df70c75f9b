#!/usr/bin/env python3
"""gslbd's benchmark: dnsperf against the release build, side by side with gdnsd and Knot.

    python3 bench/run.py                  # build, run every workload 10 s, print the table
    python3 bench/run.py --seconds 5 --repeat 3 --only gslbd

Each server runs pinned to CPU 0 (taskset), dnsperf to CPU 1, one workload at a time:
static A, a geo name without ECS, a geo name with ECS from a mix of networks on every
continent (4096 different /24s, so no answer cache helps), a weighted name, NXDOMAIN.
Reported per workload: queries/s, queries per server-CPU-second (utime+stime of the
server process from /proc/PID/stat before and after) and the kernel's share of it,
average and p99 latency (from dnsperf -v), lost queries. When gdnsd is installed
(apt-get install gdnsd dnsperf), it serves the same zone and the same continent map in
the same run, the two servers taking turns run by run (A B, B A, ...), and the table
gets the gslbd/gdnsd ratio. With --repeat N the median run of each server (by queries
per CPU-second) is kept, and the ratio column gives the median of the N side-by-side
rounds with their range: on a shared VM the same server varies by ±10 % from one run
to the next, and pairing runs made a few seconds apart cancels the slow part of that.
Both read geoip/sample.mmdb (or --geoip FILE, e.g. a full country or City database);
neither runs health checks, so both measure the query path only.

DNSSEC: geo-ecs-mix-do is the geo+ECS mix with the DO bit, served by gslbd unsigned, by
gslbd-signed (the same deployment with [dnssec] and a key made for the run) and, when
Knot and its GeoIP module are installed (apt-get install knot knot-module-geoip), by
knotd 3.x: the same zone signed by Knot (a CSK, ECDSA P-256, NSEC, keys made with keymgr
before the start), and mod-geoip in geodb mode on the same database with `dnssec: on`
and EDNS Client Subnet, mapping www by continent as gslbd does (EU, AF -> eu-west; AS,
OC -> ap-south; the rest, and addresses not in the DB, get the zone's own www record,
us-east). Knot signs each geo answer once when the module loads, so neither server signs
on the query path. Knot runs one UDP worker, one TCP worker and one background worker
(gslbd: workers = 1), pinned to CPU 0 like the others. The table gets, per round, signed
over unsigned gslbd and gslbd-signed over Knot, per CPU-second.

    python3 bench/run.py --workloads geo-ecs-mix-do --repeat 5 --seconds 6

Needs Linux, python3, taskset, dnsperf.
"""
import argparse
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")
GEOIP = REPO / "geoip/sample.mmdb"  # --geoip replaces it
GSLBD = REPO / "target/release/gslbd"  # --gslbd replaces it

ZONE = """$ORIGIN gslb.example.com.
$TTL 300
@       IN SOA ns1.gslb.example.com. hostmaster.gslb.example.com. 2024010101 3600 600 604800 60
@       IN NS  ns1.gslb.example.com.
ns1     IN A   127.0.0.1
static  IN A   192.0.2.1
"""

# (name, dnsperf input, binary?, gdnsd can serve it?)
WORKLOADS = [
    ("static", "static.gslb.example.com A\n", False, True),
    ("geo", "www.gslb.example.com A\n", False, True),
    ("geo-ecs-mix", None, True, True),
    ("weighted", "api.gslb.example.com A\n", False, False),
    ("nxdomain", "nope.gslb.example.com A\n", False, True),
    # The geo+ECS mix with DO=1: served by gslbd unsigned and by gslbd-signed ([dnssec]),
    # whose answers carry precomputed RRSIGs (see --dnssec).
    ("geo-ecs-mix-do", None, True, False),
]

# Workloads the signed gslbd (port 5311) runs; the others are unsigned-only.
SIGNED_WORKLOADS = {"geo-ecs-mix-do"}
# Workloads Knot (signed, with mod-geoip; port 5302) runs.
KNOT_WORKLOADS = {"geo-ecs-mix-do"}

# Ratios per server-CPU-second kept round by round: (numerator, denominator), shown on
# the numerator's row.
RATIOS = [("gslbd", "gdnsd"), ("gslbd-signed", "gslbd"), ("gslbd-signed", "knot")]


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def ecs_queries(path: Path, n: int = 4096, dnssec_ok: bool = False) -> None:
    """dnsperf -B input: length-prefixed queries for www with ECS /24s from all continents
    (with the DO bit when `dnssec_ok`)."""
    rnd = random.Random(7)
    # Networks of geoip/sample.csv (by continent), plus unknown space (default).
    pools = [
        ("81.2", 40), ("198.51.100", 5), ("89.160.20", 5),          # EU
        ("1.0.16", 10), ("203.0.113", 5), ("175.16.199", 10),        # AS
        ("8.8.8", 10), ("216.160.83", 5), ("192.0.2", 5),            # NA
        ("103.1.1", 5), ("200.160", 5), ("41.0.0", 5),               # OC, SA, AF
        (None, 25),                                                   # not in the DB
    ]
    weights = [w for _, w in pools]
    out = bytearray()
    for i in range(n):
        prefix, _ = rnd.choices(pools, weights)[0]
        if prefix is None:
            octets = [rnd.randrange(11, 100), rnd.randrange(256), rnd.randrange(256)]
        else:
            parts = [int(p) for p in prefix.split(".")]
            while len(parts) < 3:
                parts.append(rnd.randrange(256) if len(parts) == 2 and prefix != "200.160" else rnd.randrange(16))
            octets = parts[:3]
        qname = b"".join(bytes([len(l)]) + l for l in [b"www", b"gslb", b"example", b"com"]) + b"\0"
        ecs = struct.pack("!HBB", 1, 24, 0) + bytes(octets)
        flags = 0x8000 if dnssec_ok else 0
        opt = b"\0" + struct.pack("!HHIH", 41, 1232, flags, 4 + len(ecs)) + struct.pack("!HH", 8, len(ecs)) + ecs
        msg = struct.pack("!HHHHHH", i & 0xFFFF, 0, 1, 0, 0, 1) + qname + struct.pack("!HH", 1, 1) + opt
        out += struct.pack("!H", len(msg)) + msg
    path.write_bytes(bytes(out))


def gslbd_signed_files(run: Path, port: int) -> list:
    """The same deployment with [dnssec] and a key made for the run."""
    cmd = gslbd_files(run, port)
    config = run / "gslb.toml"
    config.write_text(config.read_text() + '\n[dnssec]\nkeys = "keys"\n')
    keygen = subprocess.run([str(GSLBD), "dnssec", "keygen", "--config", str(config)],
                            capture_output=True, text=True)
    if keygen.returncode != 0:
        raise SystemExit(f"{GSLBD} dnssec keygen failed (a build without DNSSEC?): {keygen.stderr.strip()}")
    return cmd


def gslbd_files(run: Path, port: int) -> list:
    (run / "zones").mkdir(parents=True, exist_ok=True)
    (run / "zones/gslb.example.com.zone").write_text(ZONE)
    (run / "gslb.toml").write_text(f"""[server]
listen = ["127.0.0.1:{port}"]
zones = "zones"
geoip = "{GEOIP}"
workers = 1

[regions.us-east]
addresses = ["127.0.2.10"]
[regions.eu-west]
addresses = ["127.0.2.20"]
[regions.ap-south]
addresses = ["127.0.2.30"]

[records."www.gslb.example.com"]
policy = "geo"
regions = ["us-east", "eu-west", "ap-south"]
[records."www.gslb.example.com".geo]
continent.EU = ["eu-west", "us-east", "ap-south"]
continent.AF = ["eu-west", "us-east", "ap-south"]
continent.AS = ["ap-south", "eu-west", "us-east"]
continent.OC = ["ap-south", "us-east", "eu-west"]
default = ["us-east", "eu-west", "ap-south"]

[records."api.gslb.example.com"]
policy = "weighted"
weights = {{ us-east = 3, eu-west = 1 }}
""")
    return [str(GSLBD), "serve", "--config", str(run / "gslb.toml"), "--log-level", "warn"]


def gdnsd_files(run: Path, port: int) -> list:
    (run / "zones").mkdir(parents=True, exist_ok=True)
    (run / "zones/gslb.example.com").write_text(ZONE.replace("$ORIGIN gslb.example.com.\n", "") + "www 30 DYNA geoip!www\n")
    (run / "config").write_text(f"""options => {{
  listen => {{ 127.0.0.1:{port} => {{ udp_threads => 1, tcp_threads => 1 }} }}
  edns_client_subnet => true
  run_dir => {run}/run
  state_dir => {run}/state
}}
plugins => {{ geoip => {{
  maps => {{ gslb => {{
    geoip2_db => {GEOIP}
    datacenters => [ us-east, eu-west, ap-south ]
    map => {{
      default => [ us-east, eu-west, ap-south ]
      EU => [ eu-west, us-east, ap-south ]
      AF => [ eu-west, us-east, ap-south ]
      AS => [ ap-south, eu-west, us-east ]
      OC => [ ap-south, us-east, eu-west ]
    }}
  }} }}
  resources => {{ www => {{ map => gslb, dcmap => {{ us-east => 127.0.2.10, eu-west => 127.0.2.20, ap-south => 127.0.2.30 }} }} }}
}} }}
""")
    return ["gdnsd", "-c", str(run), "start"]


def knot_files(run: Path, port: int):
    """knotd signing the zone (CSK, ECDSA P-256, NSEC) with mod-geoip on the same map and
    database, its answers presigned (`dnssec: on`). None, after saying why on stderr, when
    knotd or the GeoIP module is missing."""
    if not (shutil.which("knotd") and shutil.which("knotc") and shutil.which("keymgr")):
        print("knot not installed: apt-get install knot knot-module-geoip to compare", file=sys.stderr)
        return None
    for d in ["zones", "storage", "run"]:
        (run / d).mkdir(parents=True, exist_ok=True)
    # mod-geoip answers www for the mapped continents; everyone else (other continents,
    # not in the DB) gets the zone's record, which the module also needs for the NSEC chain.
    (run / "zones/gslb.example.com.zone").write_text(ZONE + "www 30 IN A 127.0.2.10\n")
    (run / "geo.conf").write_text("""www.gslb.example.com:
  - geo: "EU"
    A: 127.0.2.20
  - geo: "AF"
    A: 127.0.2.20
  - geo: "AS"
    A: 127.0.2.30
  - geo: "OC"
    A: 127.0.2.30
""")
    config = run / "knot.conf"
    config.write_text(f"""server:
    rundir: {run}/run
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
    edns-client-subnet: on

log:
  - target: stderr
    any: warning

database:
    storage: {run}/storage

policy:
  - id: csk
    algorithm: ecdsap256sha256
    single-type-signing: on
    nsec3: off
    manual: on

mod-geoip:
  - id: geo
    config-file: {run}/geo.conf
    ttl: 30
    mode: geodb
    geodb-file: {GEOIP}
    geodb-key: continent/code
    dnssec: on
    policy: csk

zone:
  - domain: gslb.example.com
    file: {run}/zones/gslb.example.com.zone
    zonefile-sync: -1
    journal-content: none
    dnssec-signing: on
    dnssec-policy: csk
    module: mod-geoip/geo
""")
    check = subprocess.run(["knotc", "-c", str(config), "conf-check"], capture_output=True, text=True)
    if check.returncode != 0:
        why = "knot-module-geoip not installed" if "mod-geoip" in check.stderr else "knot config rejected"
        print(f"{why}: apt-get install knot-module-geoip to compare ({check.stderr.strip()})", file=sys.stderr)
        return None
    # The module signs its answers when it loads, with keys that must already exist:
    # make the CSK first (manual key management, as Knot's docs advise for mod-geoip).
    sh("keymgr", "-c", str(config), "gslb.example.com.", "generate", "algorithm=ecdsap256sha256",
       "ksk=yes", "zsk=yes", stdout=subprocess.DEVNULL)
    return ["knotd", "-c", str(config)]


def serves(server: str, wname: str, gdnsd_ok: bool) -> bool:
    if server == "gdnsd":
        return gdnsd_ok
    if server == "gslbd-signed":
        return wname in SIGNED_WORKLOADS
    if server == "knot":
        return wname in KNOT_WORKLOADS
    return True


def wait_ready(port: int, timeout: float = 20.0) -> None:
    q = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x04gslb\x07example\x03com\x00" + struct.pack("!HH", 6, 1)
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(q, ("127.0.0.1", port))
            if s.recv(512):
                return
        except OSError:
            time.sleep(0.1)
        finally:
            s.close()
    raise SystemExit(f"no answer on port {port}")


def cpu_seconds(pid: int) -> tuple:
    """(user, system) CPU seconds of the process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def dnsperf(port: int, qfile: Path, binary: bool, seconds: int) -> dict:
    cmd = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile),
           "-l", str(seconds), "-c", "10", "-q", "100", "-t", "2", "-v"]
    if binary:
        cmd.append("-B")
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    lat = []
    stats = {}
    for line in p.stdout.splitlines():
        if line.startswith("> "):
            lat.append(float(line.rsplit(" ", 1)[1]))
        elif "Queries per second:" in line:
            stats["qps"] = float(line.split(":")[1])
        elif "Queries lost:" in line:
            stats["lost"] = int(line.split(":")[1].split()[0])
        elif "Queries completed:" in line:
            stats["completed"] = int(line.split(":")[1].split()[0])
    lat.sort()
    stats["avg_ms"] = 1000 * sum(lat) / max(len(lat), 1)
    stats["p99_ms"] = 1000 * lat[int(len(lat) * 0.99)] if lat else float("nan")
    return stats


def start_server(cmd: list, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(port)
        if proc.poll() is not None:
            # Something else answered: a server left over from an interrupted run?
            raise SystemExit(f"{cmd[0]} exited (port {port} taken?): {proc.stderr.read()[-500:]}")
    except BaseException:
        stop_server(proc)
        raise
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure(proc: subprocess.Popen, port: int, qfile: Path, binary: bool, seconds: int) -> dict:
    u0, s0 = cpu_seconds(proc.pid)
    r = dnsperf(port, qfile, binary, seconds)
    u1, s1 = cpu_seconds(proc.pid)
    r["cpu_s"] = (u1 - u0) + (s1 - s0)
    r["sys_share"] = (s1 - s0) / r["cpu_s"] if r["cpu_s"] > 0 else float("nan")
    r["per_cpu_s"] = r["completed"] / r["cpu_s"] if r["cpu_s"] > 0 else float("nan")
    return r


def run_all(servers: list, qdir: Path, seconds: int, repeat: int) -> dict:
    """Every workload on every server, the servers taking turns run by run (A B, then
    B A, ...), so that noise on a shared machine falls on both; of each server's runs the
    median by queries per CPU-second is kept, and the RATIOS of the runs made side by side
    (round by round) are kept too."""
    procs = {}
    try:
        for name, cmd, port in servers:
            procs[name] = start_server(cmd, port)
        results = {name: {} for name, _, _ in servers}
        for wname, _, binary, gdnsd_ok in WORKLOADS:
            qfile = qdir / (wname + (".bin" if binary else ".txt"))
            runs = {name: [] for name in procs}
            ratios = {pair: [] for pair in RATIOS}
            for i in range(repeat):
                order = servers if i % 2 == 0 else servers[::-1]
                got = {}
                for name, _, port in order:
                    if not serves(name, wname, gdnsd_ok):
                        continue
                    got[name] = measure(procs[name], port, qfile, binary, seconds)
                    runs[name].append(got[name])
                for a, b in RATIOS:
                    if a in got and b in got:
                        ratios[(a, b)].append(got[a]["per_cpu_s"] / got[b]["per_cpu_s"])
            for name, rs in runs.items():
                if not rs:
                    continue
                rs.sort(key=lambda r: r["per_cpu_s"])
                best = rs[len(rs) // 2]
                best["ratios"] = {f"{a}/{b}": sorted(ratios[(a, b)])
                                  for a, b in RATIOS if a == name and ratios[(a, b)]}
                results[name][wname] = best
                print(f"  {name:12} {wname:14} {best['qps']:10.0f} q/s  {best['per_cpu_s']:10.0f} q/cpu-s  "
                      f"sys {100 * best['sys_share']:.0f} %  avg {best['avg_ms']:.3f} ms  "
                      f"p99 {best['p99_ms']:.3f} ms  lost {best['lost']}", file=sys.stderr)
            for (a, b), rs in ratios.items():
                if rs:
                    print(f"  {a}/{b} per CPU-s, round by round: {' '.join(f'{r:.2f}' for r in rs)}",
                          file=sys.stderr)
        return results
    finally:
        for proc in procs.values():
            stop_server(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="runs per workload and server; the median is kept")
    ap.add_argument("--only", choices=["gslbd", "gdnsd", "knot"],
                    help="one server only (gslbd: unsigned and, for -do workloads, signed)")
    ap.add_argument("--dnssec", action="store_true",
                    help="also run gslbd with [dnssec] (geo-ecs-mix-do; on by default when that workload is chosen)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--gslbd", type=Path, help="the gslbd binary to run (default target/release/gslbd; no build)")
    ap.add_argument("--workloads", help="comma-separated subset, e.g. geo-ecs-mix")
    ap.add_argument("--geoip", type=Path, help="the GeoIP database every server reads (default geoip/sample.mmdb)")
    args = ap.parse_args()
    global GEOIP, GSLBD, WORKLOADS
    if args.geoip:
        GEOIP = args.geoip.resolve()
    if args.gslbd:
        GSLBD = args.gslbd.resolve()
    if args.workloads:
        wanted = args.workloads.split(",")
        unknown = set(wanted) - {w[0] for w in WORKLOADS}
        if unknown:
            raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
        WORKLOADS = [w for w in WORKLOADS if w[0] in wanted]
    for tool in ["dnsperf", "taskset"]:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install dnsperf util-linux")
    if not args.no_build and not args.gslbd:
        sh("cargo", "build", "--release", "--locked", cwd=REPO)
    with tempfile.TemporaryDirectory(prefix="gslbd-bench-") as tmp:
        tmp = Path(tmp)
        qdir = tmp / "queries"
        qdir.mkdir()
        for wname, text, binary, _ in WORKLOADS:
            if binary:
                ecs_queries(qdir / (wname + ".bin"), dnssec_ok=wname.endswith("-do"))
            else:
                (qdir / (wname + ".txt")).write_text(text)
        servers = []
        if args.only in (None, "gslbd"):
            servers.append(("gslbd", gslbd_files(tmp / "gslbd", 5310), 5310))
        signed = args.dnssec or any(w[0] in SIGNED_WORKLOADS for w in WORKLOADS)
        if args.only in (None, "gslbd") and signed:
            servers.append(("gslbd-signed", gslbd_signed_files(tmp / "gslbd-signed", 5311), 5311))
        if args.only in (None, "gdnsd"):
            if shutil.which("gdnsd"):
                servers.append(("gdnsd", gdnsd_files(tmp / "gdnsd", 5301), 5301))
            else:
                print("gdnsd not installed: apt-get install gdnsd to compare", file=sys.stderr)
        if args.only in (None, "knot") and any(w[0] in KNOT_WORKLOADS for w in WORKLOADS):
            cmd = knot_files(tmp / "knot", 5302)
            if cmd:
                servers.append(("knot", cmd, 5302))
        results = run_all(servers, qdir, args.seconds, args.repeat)
    print("\n| workload | server | queries/s | queries per server-CPU-s | kernel share of CPU | avg ms | p99 ms | lost | this server over another, per CPU-s: median round (range) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for wname, *_ in WORKLOADS:
        for name in results:
            r = results[name].get(wname)
            if not r:
                continue
            shown = []
            for what, rs in r["ratios"].items():
                mid = rs[len(rs) // 2] if len(rs) % 2 else (rs[len(rs) // 2 - 1] + rs[len(rs) // 2]) / 2
                shown.append(f"{what} {mid:.2f} ({rs[0]:.2f}–{rs[-1]:.2f})" if len(rs) > 1 else f"{what} {mid:.2f}")
            ratio = "; ".join(shown)
            print(f"| {wname} | {name} | {r['qps']:.0f} | {r['per_cpu_s']:.0f} | {100 * r['sys_share']:.0f} % | "
                  f"{r['avg_ms']:.3f} | {r['p99_ms']:.3f} | {r['lost']} | {ratio} |")


if __name__ == "__main__":
    main()
