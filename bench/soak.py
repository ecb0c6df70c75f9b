#!/usr/bin/env python3
"""gslbd's soak test: the release build under steady dnsperf load while everything moves.

    python3 bench/soak.py                       # build, 10 minutes at 5000 q/s
    python3 bench/soak.py --minutes 1 --no-build --keep

A throw-away deployment in a temp dir: one zone, three regions whose HTTP probes point at
three health endpoints served by this script (threads, 127.0.0.1, ephemeral ports; each
answers 200 "ok" or 503), probes every 500 ms (timeout 300 ms, rise 2, fall 2), a failover
name (db), a geo name (www, geoip/sample.mmdb), a sticky weighted name (api), a latency
name (edge), a static name and the admin API on a free loopback port.

While dnsperf sends a bounded rate (-Q, -c 10 -q 50, one 60 s run per minute) of a binary
(-B) query mix -- the dynamic names as A and AAAA, with and without EDNS Client Subnet, a
static name, NXDOMAIN -- the script
  - every 3 s flips one region's health endpoint (round robin: each region is 503 for 9 s,
    then 200 for 9 s; for 3 s in every 18 all three are down, so when_all_down is used),
  - every 5 s rewrites gslb.toml (atomically, alternating two valid variants: failover
    order and TTLs) and sends SIGHUP,
  - once a minute drains a region through the admin API and undrains it 10 s later,
  - every 10 s samples VmRSS, threads and open fds of gslbd, /metrics and
    /api/v1/regions (a region whose endpoint has been stable for 2.5 s must show it).

At the end: SIGTERM (exit 0 within 5 s expected), then a report on stdout and in
bench/soak-results.md. Exit status 1 when anything is wrong: lost > 0.1 %, any SERVFAIL,
a failed reload, an ERROR log line, an admin call that failed, a health state that did
not follow its endpoint, exit code != 0, or RSS growth after warm-up (minute 2) > 10 %.
Needs Linux, python3 (stdlib only), dnsperf.
"""
import argparse
import datetime
import http.server
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import run  # bench/run.py: the script's own folder is on sys.path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
BINARY = REPO / "target/release/gslbd"
RESULTS = HERE / "soak-results.md"

REGIONS = ["us-east", "eu-west", "ap-south"]
VIP4 = {"us-east": {"192.0.2.10", "192.0.2.11"}, "eu-west": {"192.0.2.20", "192.0.2.21"},
        "ap-south": {"192.0.2.30"}}
VIPS = {
    "us-east": ('"192.0.2.10", "192.0.2.11", "2001:db8:10::1"', "39.04, lon = -77.49"),
    "eu-west": ('"192.0.2.20", "192.0.2.21", "2001:db8:20::1"', "53.34, lon = -6.26"),
    "ap-south": ('"192.0.2.30", "2001:db8:30::1"', "19.08, lon = 72.88"),
}
FLIP_EVERY = 3.0
RELOAD_EVERY = 5.0
SAMPLE_EVERY = 10.0
DRAIN_AT = 30.0      # seconds into each minute
UNDRAIN_AFTER = 10.0
STABLE_AFTER = 2.5   # fall 2 x 500 ms + 300 ms timeout + slack

# The benchmark's zone (bench/run.py, beside this script), plus an AAAA for the mix.
ZONE = run.ZONE + "static  IN AAAA 2001:db8::1\n"


# --------------------------------------------------------------------------------------
# Health endpoints: in-process HTTP servers, switchable between 200 "ok" and 503.

class HealthHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        srv = self.server
        ok = srv.healthy
        body = b"ok\n" if ok else b"unavailable\n"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with srv.lock:
            srv.hits += 1

    def log_message(self, fmt, *args):
        pass


class HealthEndpoint:
    def __init__(self, name: str):
        self.name = name
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HealthHandler)
        self.httpd.daemon_threads = True
        self.httpd.healthy = True
        self.httpd.hits = 0
        self.httpd.lock = threading.Lock()
        self.port = self.httpd.server_address[1]
        self.last_change = time.monotonic()
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name=f"health-{name}", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    @property
    def healthy(self) -> bool:
        return self.httpd.healthy

    def set(self, healthy: bool) -> None:
        self.httpd.healthy = healthy
        self.last_change = time.monotonic()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------------------
# The deployment.

def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise SystemExit("no free port")


def config_text(variant: int, dns_port: int, admin_port: int, endpoints: dict) -> str:
    """Two valid variants: they differ in the failover order and in TTLs, never in probes
    (so probe state carries over every reload)."""
    db_order = DB_ORDER[variant]
    ttl = 30 if variant == 0 else 45
    www_ttl = 20 if variant == 0 else 15
    out = f"""# gslbd soak test, variant {variant}
[server]
listen = ["127.0.0.1:{dns_port}"]
admin  = "127.0.0.1:{admin_port}"
zones  = "zones"
geoip  = "{REPO / 'geoip/sample.mmdb'}"

[defaults]
ttl = {ttl}
probe = {{ interval = "500ms", timeout = "300ms", rise = 2, fall = 2 }}
"""
    for name in REGIONS:
        addrs, loc = VIPS[name]
        out += f"""
[regions.{name}]
addresses = [{addrs}]
location  = {{ lat = {loc} }}
probe = {{ url = "{endpoints[name].url}", expect_body = "ok" }}
"""
    out += f"""
[records."db.gslb.example.com"]
policy  = "failover"
regions = {json.dumps(db_order)}

[records."www.gslb.example.com"]
policy  = "geo"
ttl     = {www_ttl}
regions = ["us-east", "eu-west", "ap-south"]

[records."www.gslb.example.com".geo]
continent.EU = ["eu-west", "us-east"]
continent.AF = ["eu-west", "us-east"]
continent.AS = ["ap-south", "eu-west"]
continent.OC = ["ap-south", "us-east"]
country.CN   = ["us-east", "ap-south"]
default      = ["us-east", "eu-west", "ap-south"]

[records."api.gslb.example.com"]
policy  = "weighted"
weights = {{ us-east = 3, eu-west = 1, ap-south = 1 }}
sticky  = true

[records."edge.gslb.example.com"]
policy = "latency"
when_all_down = "{'all' if variant == 0 else 'nodata'}"
"""
    return out


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------
# The query mix, as a dnsperf -B file (length-prefixed wire messages).

ECS_POOLS = [
    ("81.2", 40), ("198.51.100", 5), ("89.160.20", 5),          # EU
    ("1.0.16", 10), ("203.0.113", 5), ("175.16.199", 10),        # AS
    ("8.8.8", 10), ("216.160.83", 5), ("192.0.2", 5),            # NA
    ("103.1.1", 5), ("200.160", 5), ("41.0.0", 5),               # OC, SA, AF
    (None, 25),                                                   # not in the DB
]
ECS6 = [bytes.fromhex("20010218"), bytes.fromhex("2a020dd8"), bytes.fromhex("20010db8")]

# (name, qtype, edns: none | plain | ecs, weight, expected rcode)
MIX = [
    ("www", 1, "ecs", 20, "NOERROR"),
    ("www", 28, "ecs", 8, "NOERROR"),
    ("www", 1, "plain", 5, "NOERROR"),
    ("www", 1, "none", 5, "NOERROR"),
    ("api", 1, "ecs", 10, "NOERROR"),
    ("api", 28, "ecs", 4, "NOERROR"),
    ("api", 1, "none", 5, "NOERROR"),
    ("db", 1, "none", 8, "NOERROR"),
    ("db", 28, "plain", 4, "NOERROR"),
    ("db", 1, "ecs", 3, "NOERROR"),
    ("edge", 1, "ecs", 5, "NOERROR"),
    ("edge", 28, "none", 2, "NOERROR"),
    ("static", 1, "none", 8, "NOERROR"),
    ("static", 28, "ecs", 3, "NOERROR"),
    ("nope", 1, "none", 5, "NXDOMAIN"),
    ("nope", 28, "ecs", 2, "NXDOMAIN"),
]


def ecs_option(rnd: random.Random, v6: bool) -> bytes:
    if v6:
        addr = rnd.choice(ECS6) + bytes([rnd.randrange(256), rnd.randrange(256)])  # /48 -> 6 bytes
        body = struct.pack("!HBB", 2, 48, 0) + addr
    else:
        prefix = rnd.choices(ECS_POOLS, [w for _, w in ECS_POOLS])[0][0]
        if prefix is None:
            octets = [rnd.randrange(11, 100), rnd.randrange(256), rnd.randrange(256)]
        else:
            octets = [int(p) for p in prefix.split(".")]
            while len(octets) < 3:
                octets.append(rnd.randrange(16))
        body = struct.pack("!HBB", 1, 24, 0) + bytes(octets)
    return struct.pack("!HH", 8, len(body)) + body


def write_queries(path: Path, n: int = 8192) -> dict:
    rnd = random.Random(11)
    out = bytearray()
    counts = {}
    for i in range(n):
        name, qtype, edns, _, _ = rnd.choices(MIX, [m[3] for m in MIX])[0]
        labels = [name.encode(), b"gslb", b"example", b"com"]
        qname = b"".join(bytes([len(l)]) + l for l in labels) + b"\0"
        arcount = 0 if edns == "none" else 1
        msg = struct.pack("!HHHHHH", i & 0xFFFF, 0, 1, 0, 0, arcount) + qname + struct.pack("!HH", qtype, 1)
        if edns != "none":
            opts = ecs_option(rnd, v6=(rnd.random() < 0.15)) if edns == "ecs" else b""
            msg += b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(opts)) + opts
        out += struct.pack("!H", len(msg)) + msg
        key = f"{name} {'A' if qtype == 1 else 'AAAA'} {edns}"
        counts[key] = counts.get(key, 0) + 1
    path.write_bytes(bytes(out))
    return counts


# --------------------------------------------------------------------------------------
# Observing gslbd.

def proc_sample(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return {"rss_kb": rss, "threads": threads, "fds": fds, "cpu_s": cpu}


METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict:
    """name -> list of (labels dict, value)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_RE.match(line)
        if not m:
            continue
        labels = dict(LABEL_RE.findall(m.group(2) or ""))
        out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return out


def metric_sum(metrics: dict, name: str, **want) -> float:
    return sum(v for labels, v in metrics.get(name, []) if all(labels.get(k) == x for k, x in want.items()))


def metric_by(metrics: dict, name: str, label: str) -> dict:
    out = {}
    for labels, v in metrics.get(name, []):
        out[labels.get(label, "")] = out.get(labels.get(label, ""), 0) + v
    return out


def ask_a(port: int, name: str) -> list:
    """The A records of one plain UDP query (no EDNS), as strings."""
    qid = random.randrange(65536)
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    msg = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(msg, ("127.0.0.1", port))
        data = s.recv(4096)
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
    if flags & 0xF:
        return [f"rcode {flags & 0xF}"]
    i = 12 + len(qname) + 4
    out = []
    for _ in range(an):
        if data[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while data[i]:
                i += data[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack("!HHIH", data[i:i + 10])
        i += 10
        if rtype == 1:
            out.append(socket.inet_ntoa(data[i:i + rdlen]))
        i += rdlen
    return out


DB_ORDER = {0: ["eu-west", "us-east", "ap-south"], 1: ["us-east", "ap-south", "eu-west"]}


class Admin:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, timeout: float = 5.0):
        req = urllib.request.Request(self.base + path, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


class LogPump(threading.Thread):
    """Drains gslbd's stderr into a file; notes `ready`, ERROR and WARN lines, transitions."""

    def __init__(self, stream, path: Path):
        super().__init__(name="log-pump", daemon=True)
        self.stream = stream
        self.file = path.open("w")
        self.ready = threading.Event()
        self.errors = []       # ERROR lines with their continuation lines
        self.warns = []
        self.region_transitions = []
        self.target_transitions = 0
        self.sighups = 0
        self.reloaded = 0
        self.drain_lines = 0
        self.lines = 0
        self.dns_addr = None
        self.admin_addr = None
        self._in_error = False

    def run(self):
        for line in self.stream:
            self.file.write(line)
            self.file.flush()
            self.lines += 1
            s = line.rstrip("\n")
            is_entry = bool(re.match(r"^\d{4}-\d\d-\d\dT", s))
            if not is_entry:
                if self._in_error and self.errors:
                    self.errors[-1] += "\n" + s
                continue
            self._in_error = False
            if " ERROR " in s:
                self.errors.append(s)
                self._in_error = True
            elif " WARN " in s:
                self.warns.append(s)
            if s.endswith(" ready") or s.endswith(": ready"):
                self.ready.set()
            m = re.search(r"listening for UDP on (\S+)", s)
            if m and not self.dns_addr:
                self.dns_addr = m.group(1)
            m = re.search(r"listening for admin HTTP on (\S+)", s)
            if m:
                self.admin_addr = m.group(1)
            m = re.search(r"region (\S+) is (up|down) \(", s)
            if m:
                self.region_transitions.append((time.monotonic(), m.group(1), m.group(2)))
            if re.search(r"probe target (up|down)", s):
                self.target_transitions += 1
            if "SIGHUP received" in s:
                self.sighups += 1
            if re.search(r"\breloaded \S+:", s):
                self.reloaded += 1
            if re.search(r"region \S+ (drained|undrained)", s):
                self.drain_lines += 1
        self.file.close()


# --------------------------------------------------------------------------------------
# dnsperf.

def parse_dnsperf(out: str) -> dict:
    r = {"sent": 0, "completed": 0, "lost": 0, "rcodes": {}, "qps": 0.0, "avg_ms": 0.0}
    for line in out.splitlines():
        if "Queries sent:" in line:
            r["sent"] = int(line.split(":")[1].split()[0])
        elif "Queries completed:" in line:
            r["completed"] = int(line.split(":")[1].split()[0])
        elif "Queries lost:" in line:
            r["lost"] = int(line.split(":")[1].split()[0])
        elif "Response codes:" in line:
            for code, n in re.findall(r"([A-Z]+) (\d+) \(", line.split(":", 1)[1]):
                r["rcodes"][code] = r["rcodes"].get(code, 0) + int(n)
        elif "Queries per second:" in line:
            r["qps"] = float(line.split(":")[1])
        elif "Average Latency" in line:
            m = re.search(r":\s*([\d.]+)", line)
            if m:
                r["avg_ms"] = 1000 * float(m.group(1))
    return r


class Load(threading.Thread):
    def __init__(self, port: int, qfile: Path, qps: int, seconds: float, logdir: Path):
        super().__init__(name="dnsperf", daemon=True)
        self.port, self.qfile, self.qps, self.seconds, self.logdir = port, qfile, qps, seconds, logdir
        self.runs = []
        self.failures = []
        self.proc = None
        self.stop = threading.Event()

    def run(self):
        end = time.monotonic() + self.seconds
        i = 0
        while not self.stop.is_set():
            left = end - time.monotonic()
            if left < 1:
                break
            length = int(min(60, left + 0.5))
            cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(self.port), "-B", "-d", str(self.qfile),
                   "-c", "10", "-q", "50", "-Q", str(self.qps), "-l", str(length), "-t", "2"]
            if i == 0:
                self.cmd = cmd
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = self.proc.communicate()
            (self.logdir / f"dnsperf-{i:02}.txt").write_text(out + ("\n--- stderr\n" + err if err else ""))
            if self.proc.returncode != 0:
                self.failures.append(f"dnsperf run {i} exited {self.proc.returncode}: {err.strip()[:300]}")
            r = parse_dnsperf(out)
            r["seconds"] = length
            self.runs.append(r)
            i += 1


# --------------------------------------------------------------------------------------

def fmt_mb(kb: int) -> str:
    return f"{kb / 1024:.1f} MiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--qps", type=int, default=5000)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (it is kept anyway on failure)")
    ap.add_argument("--results", default=str(RESULTS), help="markdown file to write ('' for none)")
    args = ap.parse_args()
    command = "python3 bench/soak.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started_at = datetime.datetime.now(datetime.timezone.utc)

    if not shutil.which("dnsperf"):
        raise SystemExit("dnsperf is missing: apt-get install dnsperf")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=REPO, check=True)
    if not BINARY.exists():
        raise SystemExit(f"{BINARY} is missing; run without --no-build")

    tmp = Path(tempfile.mkdtemp(prefix="gslbd-soak-"))
    (tmp / "zones").mkdir()
    (tmp / "zones/gslb.example.com.zone").write_text(ZONE)
    qfile = tmp / "queries.bin"
    mix = write_queries(qfile)
    endpoints = {name: HealthEndpoint(name) for name in REGIONS}
    dns_port, admin_port = free_port(), free_port()
    while admin_port == dns_port:
        admin_port = free_port()
    config = tmp / "gslb.toml"
    variants = [config_text(v, dns_port, admin_port, endpoints) for v in (0, 1)]
    write_atomically(config, variants[0])
    check = subprocess.run([str(BINARY), "check", "--config", str(config)], capture_output=True, text=True)
    for v in (1,):
        alt = tmp / "gslb-variant1.toml"
        alt.write_text(variants[v])
    check1 = subprocess.run([str(BINARY), "check", "--config", str(tmp / "gslb-variant1.toml")],
                            capture_output=True, text=True)
    if check.returncode or check1.returncode:
        print(check.stdout + check.stderr + check1.stdout + check1.stderr, file=sys.stderr)
        raise SystemExit(f"the generated config does not check; see {tmp}")

    problems = []
    cmd = [str(BINARY), "serve", "--config", str(config), "--listen", f"127.0.0.1:{dns_port}"]
    print(f"soak: {command}\n  dir {tmp}\n  gslbd {' '.join(cmd[1:])}", file=sys.stderr)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "RUST_LOG": "info"})
    log = LogPump(proc.stderr, tmp / "gslbd.log")
    log.start()
    if not log.ready.wait(30):
        proc.kill()
        raise SystemExit(f"gslbd did not log `ready` within 30 s; see {tmp / 'gslbd.log'}")
    admin = Admin(admin_port)

    duration = args.minutes * 60
    samples = []
    region_checks = {"ok": 0, "mismatch": []}
    flips = []
    hups = 0
    drains = {"ok": 0, "failed": []}
    drained_now = {}
    drain_checks = {"ok": 0, "mismatch": []}
    db_checks = {"ok": 0, "mismatch": [], "skipped": 0}
    cur_variant = [0, time.monotonic()]

    def sample(t: float) -> None:
        s = {"t": t, **proc_sample(proc.pid)}
        try:
            code, body = admin.call("GET", "/metrics")
            m = parse_metrics(body) if code == 200 else {}
            if code != 200:
                problems.append(f"GET /metrics: HTTP {code}")
        except OSError as e:
            m = {}
            problems.append(f"GET /metrics at {t:.0f}s: {e}")
        s["queries"] = metric_sum(m, "gslbd_queries_total")
        s["servfail"] = metric_sum(m, "gslbd_queries_total", rcode="SERVFAIL")
        s["rcodes"] = metric_by(m, "gslbd_queries_total", "rcode")
        s["reloads_ok"] = metric_sum(m, "gslbd_reloads_total", result="ok")
        s["reloads_failed"] = metric_sum(m, "gslbd_reloads_total", result="failed")
        s["udp_dropped"] = metric_sum(m, "gslbd_udp_dropped_total")
        s["answers_none"] = metric_sum(m, "gslbd_answers_total", region="none")
        s["answers"] = metric_by(m, "gslbd_answers_total", "region")
        # Regions: every region whose endpoint has been stable long enough must show it,
        # and a drain must hold (also across reloads) until the undrain.
        try:
            now = time.monotonic()
            code, body = admin.call("GET", "/api/v1/regions")
            if code != 200:
                problems.append(f"GET /api/v1/regions: HTTP {code}")
            else:
                regions = json.loads(body)["regions"]
                for r in regions:
                    ep = endpoints.get(r["name"])
                    if ep is None:
                        continue
                    if r["drained"] == drained_now.get(r["name"], False):
                        drain_checks["ok"] += 1
                    else:
                        drain_checks["mismatch"].append(
                            f"t={t:.0f}s {r['name']}: drained={r['drained']}, expected "
                            f"{drained_now.get(r['name'], False)}")
                    if now - ep.last_change < STABLE_AFTER:
                        continue
                    if r["up"] == ep.healthy:
                        region_checks["ok"] += 1
                    else:
                        region_checks["mismatch"].append(
                            f"t={t:.0f}s {r['name']}: endpoint {'200' if ep.healthy else '503'} for "
                            f"{now - ep.last_change:.1f}s, API says up={r['up']} state={r['state']}")
                # The failover name must answer with the first usable region of the order in
                # force (either order within 1 s of a reload), or the first when none is usable.
                answer = ask_a(dns_port, "db.gslb.example.com")
                code2, body2 = admin.call("GET", "/api/v1/regions")
                regions2 = json.loads(body2)["regions"] if code2 == 200 else []
                states = [(r["name"], r["up"] and not r["drained"]) for r in regions]
                if states == [(r["name"], r["up"] and not r["drained"]) for r in regions2]:
                    usable = dict(states)
                    ok_variants = {cur_variant[0]} if time.monotonic() - cur_variant[1] > 1.0 else {0, 1}
                    want = set()
                    for v in ok_variants:
                        order = DB_ORDER[v]
                        pick = next((n for n in order if usable.get(n)), order[0])
                        want.add(pick)
                    got = {n for n in REGIONS if set(answer) and set(answer) <= VIP4[n]}
                    if got & want:
                        db_checks["ok"] += 1
                    else:
                        db_checks["mismatch"].append(
                            f"t={t:.0f}s db A = {answer}, expected {sorted(want)} (usable: "
                            f"{[n for n, u in states if u]})")
                else:
                    db_checks["skipped"] += 1
        except (OSError, ValueError, KeyError) as e:
            problems.append(f"GET /api/v1/regions or db query at {t:.0f}s: {e}")
        samples.append(s)
        print(f"  t={t:5.0f}s rss {fmt_mb(s['rss_kb'])} threads {s['threads']} fds {s['fds']} "
              f"cpu {s['cpu_s']:.1f}s queries {s['queries']:.0f} reloads {s['reloads_ok']:.0f}/"
              f"{s['reloads_failed']:.0f} servfail {s['servfail']:.0f}", file=sys.stderr)

    t0 = time.monotonic()
    sample(0.0)
    load = Load(dns_port, qfile, args.qps, duration, tmp)
    load.start()
    next_flip, next_reload, next_sample = FLIP_EVERY, RELOAD_EVERY, SAMPLE_EVERY
    flip_i, variant = 0, 0
    drain_plan = []  # (time, region, drained)
    for minute in range(int(duration // 60) + 1):
        at = minute * 60 + DRAIN_AT
        if at + UNDRAIN_AFTER < duration:
            region = REGIONS[minute % len(REGIONS)]
            drain_plan += [(at, region, True), (at + UNDRAIN_AFTER, region, False)]
    try:
        while True:
            t = time.monotonic() - t0
            if t >= duration and not load.is_alive():
                break
            if proc.poll() is not None:
                problems.append(f"gslbd exited during the run with status {proc.returncode}")
                break
            if t < duration:
                if t >= next_flip:
                    name = REGIONS[flip_i % len(REGIONS)]
                    ep = endpoints[name]
                    ep.set(not ep.healthy)
                    flips.append((t, name, "up" if ep.healthy else "down"))
                    flip_i += 1
                    next_flip += FLIP_EVERY
                if t >= next_reload:
                    variant ^= 1
                    write_atomically(config, variants[variant])
                    os.kill(proc.pid, signal.SIGHUP)
                    cur_variant[:] = [variant, time.monotonic()]
                    hups += 1
                    next_reload += RELOAD_EVERY
                while drain_plan and t >= drain_plan[0][0]:
                    _, region, drained = drain_plan.pop(0)
                    path = f"/api/v1/regions/{region}/{'drain' if drained else 'undrain'}"
                    try:
                        code, body = admin.call("POST", path)
                        ok = code == 200 and json.loads(body).get("drained") is drained
                    except (OSError, ValueError) as e:
                        code, body, ok = None, str(e), False
                    drained_now[region] = drained
                    if ok:
                        drains["ok"] += 1
                    else:
                        drains["failed"].append(f"t={t:.0f}s POST {path}: {code} {body[:200]}")
            if t >= next_sample and t < duration + SAMPLE_EVERY:
                sample(round(next_sample))
                next_sample += SAMPLE_EVERY
            time.sleep(0.05)
        for ep in endpoints.values():      # all up again before the last look
            ep.set(True)
        load.join()
        time.sleep(1.0)
        if proc.poll() is None:
            sample(round(time.monotonic() - t0))
            end_sample = samples[-1]
        else:
            end_sample = samples[-1]
    finally:
        load.stop.set()
        if load.proc and load.proc.poll() is None:
            load.proc.terminate()
        # Stop gslbd: SIGTERM, exit 0 within 5 s.
        exit_code, stop_s = None, None
        if proc.poll() is None:
            ts = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                exit_code = proc.wait(5)
                stop_s = time.monotonic() - ts
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                exit_code = None
        else:
            exit_code = proc.returncode
        log.join(5)
        for ep in endpoints.values():
            ep.stop()

    # ------------------------------------------------------------------ the report
    runs = load.runs
    sent = sum(r["sent"] for r in runs)
    completed = sum(r["completed"] for r in runs)
    lost = sum(r["lost"] for r in runs)
    rcodes = {}
    for r in runs:
        for k, v in r["rcodes"].items():
            rcodes[k] = rcodes.get(k, 0) + v
    servfail = rcodes.get("SERVFAIL", 0)
    lost_pct = 100.0 * lost / sent if sent else 100.0
    last = end_sample
    reloads_ok, reloads_failed = last["reloads_ok"], last["reloads_failed"]
    start = samples[0]
    warm_t = min(120.0, duration / 2)
    warm = min(samples, key=lambda s: abs(s["t"] - warm_t))
    growth = 100.0 * (last["rss_kb"] - warm["rss_kb"]) / warm["rss_kb"]
    minute_samples = [s for s in samples if s["t"] > 0 and s["t"] % 60 == 0 and s is not last]
    flip_downs = sum(1 for f in flips if f[2] == "down")
    transitions = log.region_transitions

    if exit_code != 0:
        problems.append(f"gslbd exit code {exit_code} after SIGTERM (None = still running after 5 s)")
    if lost_pct > 0.1:
        problems.append(f"lost {lost} of {sent} queries ({lost_pct:.3f} % > 0.1 %)")
    if servfail or last["servfail"]:
        problems.append(f"SERVFAIL: {servfail} (dnsperf), {last['servfail']:.0f} (metrics)")
    unexpected = {k: v for k, v in rcodes.items() if k not in ("NOERROR", "NXDOMAIN")}
    if unexpected:
        problems.append(f"unexpected response codes: {unexpected}")
    if reloads_failed:
        problems.append(f"{reloads_failed:.0f} reload(s) failed (both variants are valid)")
    if reloads_ok < hups:
        problems.append(f"{hups} SIGHUPs sent but only {reloads_ok:.0f} reloads ok")
    if log.errors:
        problems.append(f"{len(log.errors)} ERROR line(s) in the log")
    if growth > 10.0:
        problems.append(f"RSS grew {growth:.1f} % from t={warm['t']:.0f}s to the end (> 10 %)")
    if region_checks["mismatch"]:
        problems.append(f"{len(region_checks['mismatch'])} region state(s) disagreed with a stable endpoint")
    if drain_checks["mismatch"]:
        problems.append(f"{len(drain_checks['mismatch'])} drain state(s) not as set through the API")
    if db_checks["mismatch"]:
        problems.append(f"{len(db_checks['mismatch'])} failover answer(s) not from the expected region")
    if drains["failed"]:
        problems.append(f"{len(drains['failed'])} admin drain/undrain call(s) failed")
    problems += load.failures
    if len(flips) and len(transitions) < len(flips) - 2:
        problems.append(f"{len(flips)} endpoint flips but only {len(transitions)} region transitions logged")
    if not runs:
        problems.append("no dnsperf run completed")

    rows = [
        ("duration", f"{args.minutes:g} min, dnsperf -Q {args.qps} -c 10 -q 50, {len(runs)} run(s) of <= 60 s"),
        ("queries sent", f"{sent}"),
        ("queries completed", f"{completed}"),
        ("queries lost", f"{lost} ({lost_pct:.4f} %)"),
        ("achieved rate", f"{completed / max(sum(r['seconds'] for r in runs), 1):.0f} q/s; avg latency "
                          f"{sum(r['avg_ms'] for r in runs) / max(len(runs), 1):.3f} ms (mean of runs)"),
        ("response codes (dnsperf)", ", ".join(f"{k} {v}" for k, v in sorted(rcodes.items()))),
        ("SERVFAIL", f"{servfail} (dnsperf), {last['servfail']:.0f} (gslbd_queries_total)"),
        ("queries counted by gslbd", f"{last['queries']:.0f}; udp dropped {last['udp_dropped']:.0f}"),
        ("answers by region", ", ".join(f"{k} {v:.0f}" for k, v in sorted(last["answers"].items()))),
        ("reloads (SIGHUP)", f"{hups} sent; gslbd_reloads_total ok {reloads_ok:.0f}, failed {reloads_failed:.0f}; "
                             f"log: {log.sighups} `SIGHUP received`, {log.reloaded} `reloaded`"),
        ("endpoint flips", f"{len(flips)} ({flip_downs} to 503, {len(flips) - flip_downs} to 200)"),
        ("health transitions logged", f"{len(transitions)} region ({sum(1 for x in transitions if x[2] == 'down')} "
                                      f"down, {sum(1 for x in transitions if x[2] == 'up')} up), "
                                      f"{log.target_transitions} probe target"),
        ("region state vs endpoint", f"{region_checks['ok']} agreed, {len(region_checks['mismatch'])} disagreed "
                                     f"(checked every 10 s, endpoints stable >= {STABLE_AFTER} s)"),
        ("drains via admin API", f"{drains['ok']} ok, {len(drains['failed'])} failed; {log.drain_lines} logged; "
                                 f"drained state checked {drain_checks['ok']} ok, "
                                 f"{len(drain_checks['mismatch'])} wrong"),
        ("failover answer (db A) vs region states", f"{db_checks['ok']} ok, {len(db_checks['mismatch'])} wrong, "
                                                    f"{db_checks['skipped']} skipped (state changed meanwhile)"),
        ("log lines", f"{log.lines}; ERROR {len(log.errors)}, WARN {len(log.warns)}"),
        ("RSS start / min 2 / end", f"{fmt_mb(start['rss_kb'])} / {fmt_mb(warm['rss_kb'])} (t={warm['t']:.0f}s) / "
                                    f"{fmt_mb(last['rss_kb'])}; growth after warm-up {growth:+.1f} %"),
        ("RSS each minute", ", ".join(f"{s['t'] / 60:.0f}: {fmt_mb(s['rss_kb'])}" for s in minute_samples) or "-"),
        ("threads start / end", f"{start['threads']} / {last['threads']} (max {max(s['threads'] for s in samples)})"),
        ("open fds start / end", f"{start['fds']} / {last['fds']} (max {max(s['fds'] for s in samples)})"),
        ("gslbd CPU", f"{last['cpu_s'] - start['cpu_s']:.1f} s over the run"),
        ("stop (SIGTERM)", f"exit {exit_code} after {stop_s:.2f} s" if stop_s is not None else f"exit {exit_code}"),
        ("verdict", "PASS" if not problems else "FAIL"),
    ]
    md = [f"# gslbd soak test\n",
          f"- command: `{command}`",
          f"- date: {started_at.strftime('%Y-%m-%d %H:%M UTC')}",
          f"- host: {os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f} (shared machine)",
          f"- commit: {git_head()}",
          "",
          "| | |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in rows]
    md += ["", "RSS and more every 10 s:", "",
           "| t (s) | RSS | threads | fds | gslbd CPU s | queries counted | reloads ok/failed |",
           "|---|---|---|---|---|---|---|"]
    md += [f"| {s['t']:.0f} | {fmt_mb(s['rss_kb'])} | {s['threads']} | {s['fds']} | {s['cpu_s']:.1f} | "
           f"{s['queries']:.0f} | {s['reloads_ok']:.0f}/{s['reloads_failed']:.0f} |" for s in samples]
    md += ["", "Query mix (of the 8192 queries dnsperf cycles through):", "",
           ", ".join(f"{k} {v}" for k, v in sorted(mix.items()))]
    if problems:
        md += ["", "## Problems", ""] + [f"- {p}" for p in problems]
    if log.errors:
        md += ["", "ERROR lines:", "", "```"] + log.errors[:50] + ["```"]
    if log.warns:
        md += ["", f"WARN lines ({len(log.warns)}, first 20):", "", "```"] + log.warns[:20] + ["```"]
    if region_checks["mismatch"]:
        md += ["", "Region states that disagreed:", ""] + [f"- {x}" for x in region_checks["mismatch"][:30]]
    if drain_checks["mismatch"] or db_checks["mismatch"]:
        md += ["", "State checks that failed:", ""] + [
            f"- {x}" for x in (drain_checks["mismatch"] + db_checks["mismatch"])[:30]]
    if drains["failed"]:
        md += ["", "Admin calls that failed:", ""] + [f"- {x}" for x in drains["failed"]]
    report = "\n".join(md) + "\n"
    print(report)
    if args.results:
        Path(args.results).write_text(report)
    if problems or args.keep:
        print(f"logs kept in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if problems else 0


def git_head() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
