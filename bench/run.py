#!/usr/bin/env python3
"""Benchmark pushgateway-rs ("ours") against the Go Pushgateway ("upstream") and nginx.

Starts each server on a free 127.0.0.1 port, drives them with the same workloads, interleaved
(ours, upstream, nginx, ours, upstream, nginx, ... one round per repetition), prints each
figure as it is measured, and ends with a table of medians and ratios, first as text and then
as Markdown for BENCHMARKS.md.

Workloads (ids for --only):
  1a  push-empty   small PUTs (10 series incl. a histogram) to 1,000 rotating groups, 32
                   connections, wrk, fixed duration; 0 series stored before. nginx = ceiling.
  1b  push-loaded  the same with 100,000 series stored before (1,000 groups x 100 series).
  2   big-put      one PUT of 100,000 series into one group, into an empty gateway.
  3   scrape       GET /metrics of 1,000,000 stored series, plain and gzip (nginx serves the
                   same bytes, taken from ours, as static files).
  4   memory       VmRSS after loading those 1,000,000 series, per series.
  5   restart      1,000,000 series persisted (100 groups x 10,000), the gateway stopped with
                   SIGTERM and started again on the same file: time until /-/ready answers 200
                   and until a scrape shows every series.
  6   churn        the same 1,000 groups replaced round after round; RSS before and after.
  8   ttl          1a against ours holding 100,000 groups, once without TTLs and once with
                   --push.group-ttl=1h (every group filed by deadline): the expiry index must
                   not slow pushes down.
  7   persist      1a with persistence on (ours: every push fsynced before its answer; upstream:
                   its default of a file written every 5 minutes) next to ours in memory only.

Only the Python standard library plus the `wrk`, `curl` and `nginx` executables are used.
Every load is bounded in count and in time. Only processes started here are stopped, by PID.
Traffic goes only to 127.0.0.1.
"""

import argparse
import datetime
import gzip
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_OURS = os.path.join(REPO, "target", "release", "pushgateway")
DEFAULT_UPSTREAM = "/usr/bin/prometheus-pushgateway"
HOST = "127.0.0.1"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Flags given to both gateways (plus --web.listen-address). Upstream must never persist.
COMMON_FLAGS = ["--persistence.file="]

WORKLOADS = {
    "1a": "push-empty",
    "1b": "push-loaded",
    "2": "big-put",
    "3": "scrape",
    "4": "memory",
    "5": "restart",
    "6": "churn",
    "7": "persist",
    "8": "ttl",
}

FULL = dict(
    reps=3,
    wrk_duration=10,
    wrk_threads=2,
    wrk_connections=32,
    wrk_timeout=60,
    push_groups=1000,
    preload_groups=1000,
    preload_series=100,
    big_put_series=100_000,
    # Both gateways hold the same 1M series in the same layout. Upstream re-checks the whole
    # store on every push, so 10,000 pushes would take hours there: 100 groups x 10,000.
    scrape_groups=100,
    scrape_series=10_000,
    # Ours is also loaded with the layout of the issue (10,000 groups x 100), alone.
    ours_scrape_groups=10_000,
    ours_scrape_series=100,
    churn_groups=1000,
    churn_rounds=20,
    churn_budget=45.0,
    churn_conns=4,
    ttl_groups=100_000,
)

QUICK = dict(
    reps=1,
    wrk_duration=2,
    wrk_threads=2,
    wrk_connections=32,
    wrk_timeout=20,
    push_groups=1000,
    preload_groups=100,
    preload_series=100,
    big_put_series=10_000,
    scrape_groups=10,
    scrape_series=10_000,
    ours_scrape_groups=1000,
    ours_scrape_series=100,
    churn_groups=200,
    churn_rounds=3,
    churn_budget=8.0,
    churn_conns=4,
    ttl_groups=10_000,
)


# --------------------------------------------------------------------------------------------
# small helpers


def log(msg=""):
    print(msg, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def hwm_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid):
    """pid and every process below it (nginx: the master and its workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def tree_cpu_seconds(pid):
    total = 0.0
    for p in descendants(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def machine_busy_seconds():
    """CPU seconds spent not idle by the whole machine (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / CLK_TCK


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def small_body(n):
    """The same 10-series body as bench/push.lua."""
    return (
        "# TYPE bench_requests_total counter\n"
        f'bench_requests_total{{code="200"}} {n}\n'
        f'bench_requests_total{{code="500"}} {n % 7}\n'
        "# TYPE bench_in_progress gauge\n"
        f"bench_in_progress {n % 3}\n"
        "# TYPE bench_last_run_timestamp_seconds gauge\n"
        f"bench_last_run_timestamp_seconds {1700000000 + n}.5\n"
        "# TYPE bench_duration_seconds histogram\n"
        "# HELP bench_duration_seconds Duration of the benchmark job.\n"
        f'bench_duration_seconds_bucket{{le="0.1"}} {n}\n'
        f'bench_duration_seconds_bucket{{le="0.5"}} {2 * n}\n'
        f'bench_duration_seconds_bucket{{le="1"}} {3 * n}\n'
        f'bench_duration_seconds_bucket{{le="+Inf"}} {4 * n}\n'
        f"bench_duration_seconds_sum {n}.25\n"
        f"bench_duration_seconds_count {4 * n}\n"
    ).encode()


SMALL_BODY_SERIES = 10
LOAD_FAMILIES = 10


def load_body(series, seed):
    """`series` gauge series in LOAD_FAMILIES families bench_load_<f>, label s="<i>"."""
    per_family = max(1, series // LOAD_FAMILIES)
    out = []
    done = 0
    f = 0
    while done < series:
        n = min(per_family, series - done)
        out.append(f"# TYPE bench_load_{f} gauge\n")
        out.extend(f'bench_load_{f}{{s="{i}"}} {seed}.{i % 10}\n' for i in range(n))
        done += n
        f += 1
    return "".join(out).encode()


def fmt_num(v, unit):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if unit in ("B",):
        return f"{v:,.0f} B" if v < 10_000 else f"{v / 1e6:,.1f} MB"
    if unit == "MiB":
        return f"{v / 2**20:,.1f} MiB"
    if unit == "ms":
        return f"{v:,.3g} ms" if v < 1000 else f"{v:,.0f} ms"
    if unit == "s":
        return f"{v:,.3g} s" if v < 1000 else f"{v:,.0f} s"
    if unit in ("req/s", "push/s"):
        return f"{v:,.0f} {unit}" if v >= 100 else f"{v:,.3g} {unit}"
    if unit == "B/series":
        return f"{v:,.0f} B/series"
    if unit == "":
        return f"{v:,.0f}" if float(v).is_integer() or v >= 100 else f"{v:,.3g}"
    return f"{v:,.3g} {unit}"


def fmt_ratio(a, b):
    if a is None or b is None or isinstance(a, str) or isinstance(b, str) or a <= 0 or b <= 0:
        return "n/a"
    r = a / b
    if r >= 100:
        return f"{r:,.0f}"
    if r >= 0.01:
        return f"{r:.3g}"
    return f"{r:.2g}"


# --------------------------------------------------------------------------------------------
# servers


class Server:
    """A process we started, answering on 127.0.0.1:port. Stopped by its PID only."""

    def __init__(self, bench, kind, argv, port, log_path):
        self.bench = bench
        self.kind = kind  # "ours" | "upstream" | "nginx"
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.proc = None

    def start(self):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        logf.close()
        self.bench.started.append(self)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited at start: {self.log_tail()}")
            try:
                status, _, _ = self.request("GET", "/-/ready", timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not become ready on port {self.port}")

    @property
    def pid(self):
        return self.proc.pid

    def request(self, method, path, body=None, headers=None, timeout=600):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def rss(self):
        return rss_bytes(self.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # our own child, by PID
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        if self in self.bench.started:
            self.bench.started.remove(self)

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""


# --------------------------------------------------------------------------------------------
# load generation with the standard library


class PushResult:
    def __init__(self):
        self.done = 0
        self.failed = 0
        self.statuses = {}
        self.first_errors = []
        self.latencies = []  # (index, seconds)
        self.elapsed = 0.0
        self.stopped_by_deadline = False


def push_many(port, items, conns=1, deadline=None, timeout=600, keep_latencies=False):
    """Send items [(method, path, body)] over `conns` keep-alive connections, each item once,
    until all are done or `deadline` (time.time()) passes. Returns a PushResult."""
    res = PushResult()
    lock = threading.Lock()
    next_i = [0]
    t0 = time.time()

    def worker():
        conn = None
        while True:
            if deadline is not None and time.time() >= deadline:
                with lock:
                    res.stopped_by_deadline = True
                break
            with lock:
                i = next_i[0]
                if i >= len(items):
                    break
                next_i[0] += 1
            method, path, body = items[i]
            if conn is None:
                left = timeout if deadline is None else max(1.0, min(timeout, deadline - time.time() + 60))
                conn = http.client.HTTPConnection(HOST, port, timeout=left)
            t = time.time()
            try:
                conn.request(method, path, body=body, headers={"Content-Type": CONTENT_TYPE})
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                status = f"error: {type(e).__name__}: {e}"
                data = b""
                conn.close()
                conn = None
            dt = time.time() - t
            with lock:
                res.statuses[status] = res.statuses.get(status, 0) + 1
                if isinstance(status, int) and 200 <= status < 300:
                    res.done += 1
                else:
                    res.failed += 1
                    if len(res.first_errors) < 5:
                        res.first_errors.append(f"{method} {path}: {status} {data[:300]!r}")
                if keep_latencies:
                    res.latencies.append((i, dt))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    res.elapsed = time.time() - t0
    res.latencies.sort()
    return res


# --------------------------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, args, cfg):
        self.args = args
        self.cfg = cfg
        self.tmp = tempfile.mkdtemp(prefix="pgbench-")
        self.started = []
        self.rows = []  # ordered row keys
        self.row_info = {}  # key -> (label, unit, better)
        self.values = {}  # key -> {server: [values]}
        self.notes = []
        self.problems = []
        self.n_servers = 0

    # ---- results

    def record(self, key, label, unit, server, value, better=None):
        if key not in self.row_info:
            self.rows.append(key)
            self.row_info[key] = (label, unit, better)
            self.values[key] = {}
        self.values[key].setdefault(server, []).append(value)

    def median(self, key, server):
        vals = self.values.get(key, {}).get(server)
        if not vals:
            return None
        if any(isinstance(v, str) for v in vals):
            return vals[-1]
        return statistics.median(vals)

    def note(self, text):
        self.notes.append(text)
        log(f"  note: {text}")

    def problem(self, text):
        self.problems.append(text)
        log(f"  PROBLEM: {text}")

    # ---- servers

    def gateway(self, kind, flags=None, port=None):
        """Starts a gateway with COMMON_FLAGS, or with `flags` instead of them."""
        binary = self.args.ours if kind == "ours" else self.args.upstream
        port = port or free_port()
        self.n_servers += 1
        argv = [binary, f"--web.listen-address={HOST}:{port}"] + (COMMON_FLAGS if flags is None else flags)
        log_path = os.path.join(self.tmp, f"{kind}-{self.n_servers}.log")
        return Server(self, kind, argv, port, log_path).start()

    def nginx(self):
        port = free_port()
        d = os.path.join(self.tmp, "nginx")
        www = os.path.join(d, "www")
        os.makedirs(www, exist_ok=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = f"""daemon off;
master_process on;
worker_processes {os.cpu_count() or 2};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
{user}events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_max_body_size 0;
    server {{
        listen {HOST}:{port};
        location = /metrics {{
            root {www};
            default_type "text/plain; version=0.0.4; charset=utf-8";
            gzip_static on;
        }}
        location / {{
            return 200;
        }}
    }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.n_servers += 1
        argv = [self.args.nginx, "-p", d, "-c", path, "-e", os.path.join(d, "error.log")]
        return Server(self, "nginx", argv, port, os.path.join(d, "stdout.log")).start()

    def stop_all(self):
        for s in list(self.started):
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001
                log(f"could not stop {s.kind} pid {s.pid}: {e}")

    # ---- loading

    def load_groups(self, server, job, groups, series, what):
        """PUT `groups` groups of `series` series each, one at a time. Returns seconds."""
        bodies = [load_body(series, g) for g in range(groups)]
        items = [("PUT", f"/metrics/job/{job}/instance/g{g}", bodies[g]) for g in range(groups)]
        res = push_many(server.port, items, conns=1, timeout=900, keep_latencies=True)
        if res.failed:
            self.problem(f"{server.kind}: loading {what}: {res.failed} pushes failed: {res.first_errors}")
        per_push = [dt for _, dt in res.latencies]
        log(f"  {server.kind}: loaded {what} in {res.elapsed:.2f} s "
            f"({res.done} pushes ok; first push {per_push[0] * 1000:.1f} ms, "
            f"last push {per_push[-1] * 1000:.1f} ms)")
        return res

    def count_series(self, server, prefix):
        status, headers, data = server.request("GET", "/metrics", headers={"Accept-Encoding": "identity"})
        if status != 200:
            self.problem(f"{server.kind}: GET /metrics answered {status}: {data[:300]!r}")
            return -1, data
        return data.count(b"\n" + prefix) + (1 if data.startswith(prefix) else 0), data

    # ---- wrk

    def wrk(self, server, label):
        c = self.cfg
        argv = [
            self.args.wrk,
            f"-t{c['wrk_threads']}",
            f"-c{c['wrk_connections']}",
            f"-d{c['wrk_duration']}s",
            f"--timeout={c['wrk_timeout']}s",
            "-s", os.path.join(HERE, "push.lua"),
            f"http://{HOST}:{server.port}",
            "--", str(c["wrk_threads"]), str(c["push_groups"]),
        ]
        cpu0 = tree_cpu_seconds(server.pid)
        ch0 = children_cpu()
        m0 = machine_busy_seconds()
        t0 = time.time()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=c["wrk_duration"] + c["wrk_timeout"] + 60)
        wall = time.time() - t0
        srv_cpu = (tree_cpu_seconds(server.pid) - cpu0) / wall
        wrk_cpu = (children_cpu() - ch0) / wall
        other_cpu = max(0.0, (machine_busy_seconds() - m0) / wall - srv_cpu - wrk_cpu)
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("BENCHJSON ")]
        if p.returncode != 0 or not line:
            raise RuntimeError(f"wrk failed ({p.returncode}): {p.stdout}\n{p.stderr}")
        r = json.loads(line[-1][len("BENCHJSON "):])
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        r["server_cpu"] = srv_cpu
        r["wrk_cpu"] = wrk_cpu
        r["other_cpu"] = other_cpu
        errs = {k: v for k, v in r.items() if k.startswith("errors_") and v}
        log(f"  {label} {server.kind:8}: {r['rps']:>9,.0f} req/s  p50 {r['p50_us'] / 1000:8.2f} ms  "
            f"p99 {r['p99_us'] / 1000:8.2f} ms  max {r['max_us'] / 1000:8.1f} ms  "
            f"{r['requests']:,} requests in {r['duration_us'] / 1e6:.1f} s  "
            f"cpu: server {srv_cpu:.2f} cores, wrk {wrk_cpu:.2f}, other processes {other_cpu:.2f}"
            + (f"  ERRORS {errs}" if errs else ""))
        if errs:
            self.problem(f"{label} {server.kind}: wrk reported {errs} "
                         f"(errors_status = answers >= 400; errors_timeout = no answer within "
                         f"{c['wrk_timeout']} s)")
        return r

    def drain(self, server):
        """Wait until the gateway has worked off what wrk left queued (a push is answered)."""
        t = time.time()
        status, _, data = server.request("PUT", "/metrics/job/bench/instance/i0",
                                         body=small_body(1), headers={"Content-Type": CONTENT_TYPE},
                                         timeout=600)
        if status // 100 != 2:
            self.problem(f"{server.kind}: drain push answered {status}: {data[:200]!r}")
        return time.time() - t

    # ---- workloads

    def w1a(self):
        c = self.cfg
        log(f"\n== 1a. small PUTs ({SMALL_BODY_SERIES} series) to {c['push_groups']:,} rotating groups, "
            f"{c['wrk_connections']} connections, {c['wrk_duration']} s, 0 series stored ==")
        for rep in range(c["reps"]):
            for kind in ("ours", "upstream", "nginx"):
                srv = self.nginx() if kind == "nginx" else self.gateway(kind)
                try:
                    r = self.wrk(srv, f"[1a rep {rep + 1}]")
                    if kind != "nginx":
                        self.check_bench_groups(srv, "1a")
                finally:
                    srv.stop()
                self.record("1a.rps", "1a. small push, 0 stored: throughput", "req/s", kind, r["rps"], "higher")
                self.record("1a.p50", "1a. small push, 0 stored: p50 latency", "ms", kind, r["p50_us"] / 1000, "lower")
                self.record("1a.p99", "1a. small push, 0 stored: p99 latency", "ms", kind, r["p99_us"] / 1000, "lower")
                self.record("1a.cpu", f"1a. server CPU during the run (of {os.cpu_count()} cores; wrk shares them)", "cores", kind, r["server_cpu"])
                self.record("1a.wrkcpu", "1a. wrk CPU during the run", "cores", kind, r["wrk_cpu"])
                self.record("1a.othercpu", "1a. CPU of other processes on the machine during the run (noise)", "cores", kind, r["other_cpu"])

    def check_bench_groups(self, srv, label):
        n, _ = self.count_series(srv, b"bench_requests_total{")
        want = 2 * self.cfg["push_groups"]
        if n != want:
            # with a short run some groups may not have been reached
            log(f"  {label} {srv.kind}: {n} bench_requests_total series after the run (expected {want})")
        else:
            log(f"  {label} {srv.kind}: scrape after the run shows all {self.cfg['push_groups']:,} groups")

    def w1b(self):
        c = self.cfg
        stored = c["preload_groups"] * c["preload_series"]
        log(f"\n== 1b. small PUTs as in 1a, {stored:,} series stored before "
            f"({c['preload_groups']:,} groups x {c['preload_series']}) ==")
        servers = {}
        try:
            for kind in ("ours", "upstream"):
                servers[kind] = srv = self.gateway(kind)
                res = self.load_groups(srv, "preload", c["preload_groups"], c["preload_series"],
                                       f"{stored:,} series ({c['preload_groups']:,} PUTs of {c['preload_series']})")
                self.record("1b.load", f"1b. preload {stored:,} series: {c['preload_groups']:,} PUTs of "
                            f"{c['preload_series']} series, one at a time (single run)", "s", kind, res.elapsed, "lower")
                if kind == "upstream":
                    self.preload_upstream = (c["preload_groups"], c["preload_series"], res.elapsed)
                self.record("1b.loadlast", "1b. preload: latency of the last preload PUT (single run)", "ms", kind,
                            res.latencies[-1][1] * 1000, "lower")
            for rep in range(c["reps"]):
                for kind in ("ours", "upstream"):
                    srv = servers[kind]
                    r = self.wrk(srv, f"[1b rep {rep + 1}]")
                    d = self.drain(srv)
                    if d > 0.5:
                        log(f"  [1b rep {rep + 1}] {kind}: {d:.1f} s until the pushes left queued by wrk were worked off")
                    self.record("1b.rps", f"1b. small push, {stored:,} stored: throughput", "req/s", kind, r["rps"], "higher")
                    self.record("1b.p50", f"1b. small push, {stored:,} stored: p50 latency", "ms", kind, r["p50_us"] / 1000, "lower")
                    self.record("1b.p99", f"1b. small push, {stored:,} stored: p99 latency", "ms", kind, r["p99_us"] / 1000, "lower")
                    self.record("1b.n", f"1b. pushes completed in {c['wrk_duration']} s", "", kind, r["requests"], "higher")
                    self.record("1b.cpu", "1b. server CPU during the run", "cores", kind, r["server_cpu"])
            for kind, srv in servers.items():
                n, _ = self.count_series(srv, b"bench_load_")
                if n != stored:
                    self.problem(f"1b {kind}: {n} preloaded series exposed, expected {stored}")
                self.check_bench_groups(srv, "1b")
        finally:
            for srv in servers.values():
                srv.stop()

    def w2(self):
        c = self.cfg
        n = c["big_put_series"]
        body = load_body(n, 7)
        log(f"\n== 2. one PUT of {n:,} series into one group ({len(body) / 1e6:.1f} MB body), empty gateway ==")
        for rep in range(c["reps"]):
            for kind in ("ours", "upstream", "nginx"):
                srv = self.nginx() if kind == "nginx" else self.gateway(kind)
                try:
                    conn = http.client.HTTPConnection(HOST, srv.port, timeout=600)
                    conn.connect()
                    t = time.perf_counter()
                    conn.request("PUT", "/metrics/job/big/instance/one", body=body,
                                 headers={"Content-Type": CONTENT_TYPE})
                    resp = conn.getresponse()
                    data = resp.read()
                    dt = time.perf_counter() - t
                    conn.close()
                    log(f"  [2 rep {rep + 1}] {kind:8}: {resp.status} in {dt * 1000:.1f} ms")
                    if resp.status // 100 != 2:
                        self.problem(f"2 {kind}: PUT of {n} series answered {resp.status}: {data[:300]!r}")
                    if kind != "nginx" and rep == 0:
                        cnt, _ = self.count_series(srv, b"bench_load_")
                        if cnt != n:
                            self.problem(f"2 {kind}: {cnt} series exposed after the PUT, expected {n}")
                finally:
                    srv.stop()
                self.record("2.lat", f"2. one PUT of {n:,} series (one group): latency", "ms", kind, dt * 1000, "lower")

    def curl_get(self, srv, gz):
        argv = [self.args.curl, "-s", "-o", "/dev/null", "-m", "600",
                "-w", "%{http_code} %{time_total} %{size_download} %{time_starttransfer}"]
        if gz:
            argv += ["-H", "Accept-Encoding: gzip"]
        argv.append(f"http://{HOST}:{srv.port}/metrics")
        p = subprocess.run(argv, capture_output=True, text=True, timeout=700)
        code, total, size, ttfb = p.stdout.split()
        if code != "200":
            self.problem(f"scrape of {srv.kind} (gzip={gz}) answered {code}")
        return float(total), int(size), float(ttfb)

    def w34(self, do_scrape, do_memory):
        c = self.cfg
        groups, series = c["scrape_groups"], c["scrape_series"]
        total = groups * series
        layout = f"{groups:,} groups x {series:,}"
        log(f"\n== 3/4. {total:,} series stored ({layout}): load, memory, scrape ==")
        servers = {}
        try:
            for kind in ("ours", "upstream"):
                srv = self.gateway(kind)
                servers[kind] = srv
                time.sleep(0.5)
                rss0 = srv.rss()
                res = self.load_groups(srv, "load", groups, series, f"{total:,} series ({layout})")
                self.record("3.load", f"3. load {total:,} series ({groups:,} PUTs of {series:,}, one at a time; single run)",
                            "s", kind, res.elapsed, "lower")
                if kind == "upstream":
                    self.estimate_upstream(res, series, c["ours_scrape_groups"], c["ours_scrape_series"])
                time.sleep(2)
                rss1 = srv.rss()
                cnt, _ = self.count_series(srv, b"bench_load_")
                if cnt != total:
                    self.problem(f"3 {kind}: {cnt} series exposed after loading, expected {total}")
                log(f"  {kind}: RSS empty {rss0 / 2**20:.1f} MiB, after loading {rss1 / 2**20:.1f} MiB, "
                    f"{(rss1 - rss0) / total:.0f} B/series")
                if do_memory:
                    self.record("4.rss0", "4. RSS of the empty process", "MiB", kind, rss0, "lower")
                    self.record("4.rss1", f"4. RSS after loading {total:,} series ({layout})", "MiB", kind, rss1, "lower")
                    self.record("4.per", f"4. RSS per series ({layout})", "B/series", kind, (rss1 - rss0) / total, "lower")
            if do_scrape:
                self.prepare_nginx_files(servers["ours"])
                ngx = self.nginx()
                servers["nginx"] = ngx
                for rep in range(c["reps"]):
                    for gz in (False, True):
                        for kind in ("ours", "upstream", "nginx"):
                            srv = servers[kind]
                            t, size, ttfb = self.curl_get(srv, gz)
                            enc = "gzip " if gz else "plain"
                            log(f"  [3 rep {rep + 1}] {enc} {kind:8}: {t * 1000:9.1f} ms  {size:>12,} B  "
                                f"first byte after {ttfb * 1000:.1f} ms")
                            tag = "gz" if gz else "plain"
                            what = "Accept-Encoding: gzip" if gz else "plain"
                            self.record(f"3.{tag}.lat", f"3. scrape {total:,} series, {what}: latency", "ms", kind, t * 1000, "lower")
                            self.record(f"3.{tag}.bytes", f"3. scrape {total:,} series, {what}: bytes", "B", kind, size)
                            self.record(f"3.{tag}.ttfb", f"3. scrape {total:,} series, {what}: time to first byte", "ms", kind, ttfb * 1000, "lower")
            if do_memory:
                for kind in ("ours", "upstream"):
                    srv = servers[kind]
                    self.record("4.rss2", "4. RSS after the scrapes" if do_scrape else "4. RSS at the end",
                                "MiB", kind, srv.rss(), "lower")
                    self.record("4.hwm", "4. peak RSS (VmHWM)", "MiB", kind, hwm_bytes(srv.pid), "lower")
        finally:
            for srv in servers.values():
                srv.stop()
        self.w34_ours_layout(do_scrape, do_memory)

    def w34_ours_layout(self, do_scrape, do_memory):
        """Ours alone with the layout of the issue: many groups of 100 series."""
        c = self.cfg
        groups, series = c["ours_scrape_groups"], c["ours_scrape_series"]
        if (groups, series) == (c["scrape_groups"], c["scrape_series"]):
            return
        total = groups * series
        layout = f"{groups:,} groups x {series:,}"
        log(f"\n== 3/4 (ours only). {total:,} series stored ({layout}) ==")
        srv = self.gateway("ours")
        try:
            time.sleep(0.5)
            rss0 = srv.rss()
            res = self.load_groups(srv, "load", groups, series, f"{total:,} series ({layout})")
            self.record("3b.load", f"3. load {total:,} series ({groups:,} PUTs of {series}, one at a time; single run)",
                        "s", "ours", res.elapsed, "lower")
            self.record("3b.load", "", "s", "upstream", self.upstream_estimate or "not run")
            time.sleep(2)
            rss1 = srv.rss()
            cnt, _ = self.count_series(srv, b"bench_load_")
            if cnt != total:
                self.problem(f"3 ours ({layout}): {cnt} series exposed after loading, expected {total}")
            if do_memory:
                self.record("4b.per", f"4. RSS per series ({layout}; ours only)", "B/series", "ours", (rss1 - rss0) / total, "lower")
            log(f"  ours: RSS empty {rss0 / 2**20:.1f} MiB, after loading {rss1 / 2**20:.1f} MiB, "
                f"{(rss1 - rss0) / total:.0f} B/series")
            if do_scrape:
                for rep in range(c["reps"]):
                    for gz in (False, True):
                        t, size, ttfb = self.curl_get(srv, gz)
                        tag = "gz" if gz else "plain"
                        what = "gzip" if gz else "plain"
                        log(f"  [3 rep {rep + 1}] {what:5} ours ({layout}): {t * 1000:9.1f} ms  {size:>12,} B")
                        self.record(f"3b.{tag}.lat", f"3. scrape {total:,} series ({layout}; ours only), {what}: latency",
                                    "ms", "ours", t * 1000, "lower")
        finally:
            srv.stop()

    upstream_estimate = None
    preload_upstream = None  # (groups, series, seconds) of 1b's preload of upstream

    def estimate_upstream(self, res, series, groups2, series2):
        """Fit upstream's per-push latency against the stored series count (it re-checks the
        whole store on each push) and extrapolate to groups2 pushes of series2 series."""
        pts = [(i * series, dt) for i, dt in res.latencies]
        if len(pts) < 3:
            return
        n = len(pts)
        mx = sum(x for x, _ in pts) / n
        my = sum(y for _, y in pts) / n
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        if sxx == 0:
            return
        b = sum((x - mx) * (y - my) for x, y in pts) / sxx
        a = my - b * mx
        # pushes of series2 series each, the k-th push finding k * series2 stored
        est = groups2 * max(a * series2 / series, 0) + b * series2 * groups2 * (groups2 - 1) / 2
        how = "extrapolated from the fit"
        # Better: 1b measured the same layout at a tenth of the size; the cost is quadratic.
        if self.preload_upstream and self.preload_upstream[1] == series2:
            g1, _, t1 = self.preload_upstream
            est = t1 * (groups2 / g1) ** 2
            how = f"from 1b's {g1:,} pushes of {series2} series, scaled quadratically"
        self.upstream_estimate = f"est. {est / 60:,.0f} min (not run)"
        self.note(f"upstream: each push took about {b * 1e6:.2f} ms longer per 1,000 series already stored "
                  f"(slope of a least-squares fit over its {n} load pushes of {series:,} series: it "
                  f"re-checks the whole store on every push); loading {groups2:,} pushes of {series2} series "
                  f"one at a time would take about {est / 60:,.0f} min ({how}), so both gateways are compared "
                  f"with fewer, larger groups and ours is also measured alone with {groups2:,} x {series2}")

    def prepare_nginx_files(self, ours):
        www = os.path.join(self.tmp, "nginx", "www")
        os.makedirs(www, exist_ok=True)
        status, _, plain = ours.request("GET", "/metrics", headers={"Accept-Encoding": "identity"})
        status2, headers, gz = ours.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        enc = {k.lower(): v for k, v in headers.items()}.get("content-encoding", "")
        if status != 200 or status2 != 200:
            raise RuntimeError(f"ours: scrape for the nginx files answered {status}/{status2}")
        if enc != "gzip":
            self.problem(f"ours: GET /metrics with Accept-Encoding: gzip came back with Content-Encoding {enc!r}")
            gz = gzip.compress(plain, 6)
        else:
            try:
                unz = gzip.decompress(gz)
                if unz.count(b"\nbench_load_") != plain.count(b"\nbench_load_"):
                    self.problem("ours: the gzip scrape does not hold the same series as the plain one")
            except OSError as e:
                self.problem(f"ours: the gzip scrape does not decompress: {e}")
        with open(os.path.join(www, "metrics"), "wb") as f:
            f.write(plain)
        with open(os.path.join(www, "metrics.gz"), "wb") as f:
            f.write(gz)
        log(f"  nginx will serve ours' scrape as static files: {len(plain):,} B plain, {len(gz):,} B gzip")

    def w5(self):
        c = self.cfg
        groups, series = c["scrape_groups"], c["scrape_series"]
        total = groups * series
        log(f"\n== 5. restart with {total:,} persisted series ({groups:,} groups x {series:,}) ==")
        for kind in ("ours", "upstream"):
            path = os.path.join(self.tmp, f"{kind}-restart.state")
            flags = [f"--persistence.file={path}"]
            srv = self.gateway(kind, flags)
            port = srv.port
            try:
                self.load_groups(srv, "load", groups, series, f"{total:,} series, persistence on")
            finally:
                srv.stop()  # SIGTERM: both write their file on the way out
            size = os.path.getsize(path)
            log(f"  {kind}: persistence file {size / 2**20:.1f} MiB after SIGTERM")
            self.record("5.size", f"5. persistence file with {total:,} series (single run)", "B", kind, size)
            for rep in range(c["reps"]):
                ready, complete = self.time_restart(kind, flags, port, total)
                log(f"  [5 rep {rep + 1}] {kind:8}: ready after {ready * 1000:.0f} ms, "
                    f"every series scrapable after {complete * 1000:.0f} ms")
                self.record("5.ready", f"5. restart with {total:,} persisted series: until /-/ready", "ms", kind,
                            ready * 1000, "lower")
                self.record("5.complete", f"5. restart with {total:,} persisted series: until a scrape shows all",
                            "ms", kind, complete * 1000, "lower")

    def time_restart(self, kind, flags, port, total):
        """Starts the gateway on its file; seconds until ready and until a scrape shows all."""
        binary = self.args.ours if kind == "ours" else self.args.upstream
        argv = [binary, f"--web.listen-address={HOST}:{port}"] + flags
        srv = Server(self, kind, argv, port, os.path.join(self.tmp, f"{kind}-restart.log"))
        t0 = time.perf_counter()
        srv.start()  # returns once /-/ready answers 200 (bounded: 30 s)
        ready = time.perf_counter() - t0
        try:
            deadline = time.time() + 120
            while True:
                count, _ = self.count_series(srv, b"bench_load_")
                if count == total:
                    return ready, time.perf_counter() - t0
                if time.time() > deadline:
                    self.problem(f"5 {kind}: only {count} of {total} series after 120 s")
                    return ready, float("nan")
                time.sleep(0.02)
        finally:
            srv.stop()

    def w7(self):
        c = self.cfg
        log(f"\n== 7. small pushes as in 1a with persistence on ({c['wrk_connections']} connections, "
            f"{c['wrk_duration']} s) ==")
        for rep in range(c["reps"]):
            for kind, persist in (("ours", False), ("ours", True), ("upstream", True)):
                flags = [f"--persistence.file={os.path.join(self.tmp, f'{kind}-{rep}.persist')}"] if persist else None
                srv = self.gateway(kind, flags)
                try:
                    r = self.wrk(srv, f"[7 rep {rep + 1}{' persist' if persist else ' memory'}]")
                    self.check_bench_groups(srv, "7")
                finally:
                    srv.stop()
                if persist:
                    self.record("7.rps", "7. small push with persistence on: throughput", "req/s", kind, r["rps"], "higher")
                    self.record("7.p99", "7. small push with persistence on: p99 latency", "ms", kind,
                                r["p99_us"] / 1000, "lower")
                else:
                    self.record("7.mem", "7. the same, ours in memory only (same run, for the on/off ratio)",
                                "req/s", kind, r["rps"], "higher")
        on, off = self.median("7.rps", "ours"), self.median("7.mem", "ours")
        if on and off:
            self.note(f"7. ours with persistence on (fsync before every answer, group commit) runs at "
                      f"{on / off:.2f}x its memory-only throughput; upstream persists only every 5 minutes.")

    def w6(self):
        c = self.cfg
        groups, rounds, budget = c["churn_groups"], c["churn_rounds"], c["churn_budget"]
        log(f"\n== 6. churn: {groups:,} groups of {SMALL_BODY_SERIES} series replaced, up to {rounds} rounds "
            f"or {budget:.0f} s per server, {c['churn_conns']} connections ==")
        for rep in range(c["reps"]):
            for kind in ("ours", "upstream"):
                srv = self.gateway(kind)
                try:
                    time.sleep(0.3)
                    rss0 = srv.rss()
                    deadline = time.time() + budget
                    rss_after = []
                    pushes = 0
                    t0 = time.time()
                    done_rounds = 0.0
                    for r in range(rounds):
                        items = [("PUT", f"/metrics/job/churn/instance/c{g}", small_body(r * groups + g))
                                 for g in range(groups)]
                        res = push_many(srv.port, items, conns=c["churn_conns"], deadline=deadline, timeout=120)
                        pushes += res.done
                        if res.failed:
                            self.problem(f"6 {kind}: {res.failed} pushes failed: {res.first_errors}")
                        if res.stopped_by_deadline and res.done + res.failed < groups:
                            done_rounds += (res.done + res.failed) / groups
                            break
                        done_rounds += 1
                        rss_after.append(srv.rss())
                    elapsed = time.time() - t0
                    # let queued work finish before reading the final RSS
                    time.sleep(1)
                    rss_end = srv.rss()
                    first = rss_after[0] if rss_after else None
                    log(f"  [6 rep {rep + 1}] {kind:8}: {done_rounds:.2f} rounds ({pushes:,} pushes) in {elapsed:.1f} s; "
                        f"RSS empty {rss0 / 2**20:.1f} MiB, after round 1 "
                        f"{(first / 2**20) if first else float('nan'):.1f} MiB, at the end {rss_end / 2**20:.1f} MiB"
                        + (f"; per round: {', '.join(f'{x / 2**20:.1f}' for x in rss_after)} MiB" if rss_after else ""))
                    if kind == "ours":
                        cnt, _ = self.count_series(srv, b"bench_requests_total{")
                        if cnt != 2 * groups:
                            self.problem(f"6 ours: {cnt} bench_requests_total series after churn, expected {2 * groups}")
                finally:
                    srv.stop()
                self.record("6.rounds", f"6. churn: rounds completed (max {rounds}, {budget:.0f} s budget)", "", kind, round(done_rounds, 2), "higher")
                self.record("6.rate", f"6. churn: pushes/s (Python client, {c['churn_conns']} connections)", "push/s", kind, pushes / elapsed, "higher")
                self.record("6.rss1", "6. churn: RSS after round 1", "MiB", kind, first if first else "n/a", "lower")
                self.record("6.rss2", "6. churn: RSS after the last round", "MiB", kind, rss_end, "lower")
                self.record("6.growth", "6. churn: RSS growth from round 1 to the end", "MiB", kind,
                            (rss_end - first) if first else "n/a", "lower")

    def w8(self):
        c = self.cfg
        groups = c["ttl_groups"]
        log(f"\n== 8. small pushes as in 1a, ours holding {groups:,} groups, without and with TTLs ==")
        servers = {}
        try:
            for label, flags in (("no TTL", COMMON_FLAGS), ("TTL 1h", COMMON_FLAGS + ["--push.group-ttl=1h"])):
                srv = self.gateway("ours", flags)
                servers[label] = srv
                items = [("PUT", f"/metrics/job/ttl/instance/t{g}", f"ttl_load{{n=\"{g}\"}} {g}\n".encode())
                         for g in range(groups)]
                res = push_many(srv.port, items, conns=4, timeout=120)
                if res.failed:
                    self.problem(f"8 {label}: {res.failed} preload pushes failed: {res.first_errors}")
                log(f"  {label}: {groups:,} groups loaded in {res.elapsed:.1f} s")
            for rep in range(c["reps"]):
                # Alternate which goes first, so whatever one run leaves behind (sockets in
                # TIME_WAIT, allocator work) does not always fall on the same server.
                order = list(servers.items())
                if rep % 2:
                    order.reverse()
                for label, srv in order:
                    r = self.wrk(srv, f"[8 rep {rep + 1} {label}]")
                    # Both rows are ours; the 'upstream' column holds the run without TTLs.
                    column = "ours" if label == "TTL 1h" else "upstream"
                    self.record("8.rps", f"8. small push, {groups:,} groups stored: ours with --push.group-ttl=1h "
                                f"(ours column) vs without TTLs (upstream column)", "req/s", column, r["rps"], "higher")
                    self.record("8.p99", "8. the same: p99 latency", "ms", column, r["p99_us"] / 1000, "lower")
        finally:
            for srv in servers.values():
                srv.stop()
        on, off = self.median("8.rps", "ours"), self.median("8.rps", "upstream")
        if on and off:
            self.note(f"8. with every one of {groups:,} groups carrying a TTL, ours pushes at {on / off:.2f}x "
                      "its rate without TTLs (both columns are ours).")

    # ---- output

    def table(self):
        hdr = ["workload", "ours", "upstream", "nginx", "ours/upstream", "ours/nginx"]
        rows = []
        order = ["1a", "1b", "2", "3", "3b", "4", "4b", "5", "6", "7", "8"]
        keys = sorted(self.rows, key=lambda k: order.index(k.split(".")[0]))
        for key in keys:
            label, unit, better = self.row_info[key]
            if not label:
                continue
            o = self.median(key, "ours")
            u = self.median(key, "upstream")
            n = self.median(key, "nginx")
            if n is None and key.startswith("1b.") and key.replace("1b.", "1a.") in self.values \
                    and key in ("1b.rps", "1b.p50", "1b.p99"):
                n = self.median(key.replace("1b.", "1a."), "nginx")
                n_s = fmt_num(n, unit) + " (1a)"
            else:
                n_s = fmt_num(n, unit) if n is not None else "-"
            unit_s = f" ({unit})" if unit else ""
            if better:
                unit_s += ", higher is better" if better == "higher" else ", lower is better"
            rows.append([
                label + unit_s,
                fmt_num(o, unit) if o is not None else "-",
                fmt_num(u, unit) if u is not None else "-",
                n_s,
                fmt_ratio(o, u) if (better or unit == "B") else "-",
                fmt_ratio(o, n) if n is not None and (better or unit == "B") else "-",
            ])
        return hdr, rows

    def print_text_table(self, hdr, rows):
        widths = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
        widths[0] = min(widths[0], 90)
        line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(hdr, widths)))
        log(line)
        log("-" * len(line))
        for r in rows:
            log("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))

    def markdown(self, hdr, rows):
        out = ["| " + " | ".join(hdr) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(hdr) - 1)) + " |"]
        for r in rows:
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
        return "\n".join(out)


def version_line(binary):
    try:
        p = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        out = (p.stdout or p.stderr).strip().splitlines()
        return out[0] if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def git_head():
    try:
        p = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h %s"], capture_output=True,
                           text=True, timeout=10)
        head = p.stdout.strip()[:80] or "?"
        d = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
                           capture_output=True, text=True, timeout=10).stdout.splitlines()
        return head + (f" + uncommitted changes in {len(d)} file(s) under src/ or Cargo.*" if d else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def parse_only(values):
    if not values:
        return set(WORKLOADS)
    names = {v: k for k, v in WORKLOADS.items()}
    sel = set()
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if not part:
                continue
            if part in WORKLOADS:
                sel.add(part)
            elif part in names:
                sel.add(names[part])
            elif part == "1":
                sel |= {"1a", "1b"}
            else:
                raise SystemExit(f"--only: unknown workload {part!r}; use one of "
                                 + ", ".join(f"{k} ({v})" for k, v in WORKLOADS.items()) + ", 1")
    return sel


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition: a smoke run (< 2 min)")
    ap.add_argument("--only", action="append", metavar="WORKLOAD",
                    help="run only these workloads (ids or names, comma-separated or repeated): "
                         + ", ".join(f"{k}={v}" for k, v in WORKLOADS.items()) + ", 1=1a+1b")
    ap.add_argument("--ours", default=DEFAULT_OURS, help=f"our gateway binary (default {DEFAULT_OURS})")
    ap.add_argument("--upstream", default=DEFAULT_UPSTREAM, help=f"the Go Pushgateway (default {DEFAULT_UPSTREAM})")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    ap.add_argument("--curl", default=shutil.which("curl") or "curl")
    ap.add_argument("--reps", type=int, help="repetitions of each measurement (default 3, --quick 1)")
    ap.add_argument("--duration", type=int, help="seconds of each wrk run (default 10, --quick 2)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, nginx files)")
    args = ap.parse_args()

    cfg = dict(QUICK if args.quick else FULL)
    if args.reps:
        cfg["reps"] = args.reps
    if args.duration:
        cfg["wrk_duration"] = args.duration
    only = parse_only(args.only)
    for exe in (args.ours, args.upstream, args.nginx, args.wrk, args.curl):
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            raise SystemExit(f"missing executable {exe} (build ours with `cargo build --release`; "
                             "apt-get install wrk nginx prometheus-pushgateway curl)")

    bench = Bench(args, cfg)
    # Run a private copy of our binary: a `cargo build` during the run must not swap it.
    snapshot = os.path.join(bench.tmp, "pushgateway-ours")
    try:
        shutil.copy2(args.ours, snapshot)
    except OSError:
        shutil.rmtree(bench.tmp, ignore_errors=True)
        raise
    ours_given = args.ours
    args.ours = snapshot

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    started = time.time()
    cmd = " ".join(["python3", "bench/run.py"] + sys.argv[1:])
    log(f"# pushgateway benchmark, {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    log(f"command: {cmd}")
    log(f"ours: {ours_given}   upstream: {args.upstream}   nginx: {args.nginx}   wrk: {args.wrk}")
    log(f"machine: {os.cpu_count()} CPUs, {platform.machine()}, kernel {platform.release()}")
    log(f"ours: {version_line(args.ours)} ({ours_given}, modified {time.ctime(os.path.getmtime(ours_given))}, "
        f"copied to the temporary directory; repository at {git_head()})")
    log(f"load average at start: {open('/proc/loadavg').read().strip()}")
    log(f"upstream: {version_line(args.upstream)}")
    log(f"mode: {'quick' if args.quick else 'full'}; repetitions {cfg['reps']}; workloads {', '.join(sorted(only))}")
    log(f"temporary directory: {bench.tmp}")
    try:
        if "1a" in only:
            bench.w1a()
        if "1b" in only:
            bench.w1b()
        if "2" in only:
            bench.w2()
        if "3" in only or "4" in only:
            bench.w34("3" in only, "4" in only)
        if "5" in only:
            bench.w5()
        if "6" in only:
            bench.w6()
        if "7" in only:
            bench.w7()
        if "8" in only:
            bench.w8()
    except KeyboardInterrupt as e:
        log(f"\ninterrupted ({e}); stopping the servers started here")
        bench.stop_all()
        raise SystemExit(130)
    finally:
        bench.stop_all()
        if not args.keep_tmp:
            shutil.rmtree(bench.tmp, ignore_errors=True)

    elapsed = time.time() - started
    log(f"\nload average at the end: {open('/proc/loadavg').read().strip()}")
    hdr, rows = bench.table()
    log(f"\n== results: medians of {cfg['reps']} interleaved repetition(s) unless marked 'single run'; "
        f"total time {elapsed / 60:.1f} min ==\n")
    bench.print_text_table(hdr, rows)
    if bench.notes:
        log("\nnotes:")
        for n in bench.notes:
            log(f"- {n}")
    log("\nproblems seen: " + ("none" if not bench.problems else ""))
    for p in bench.problems:
        log(f"- {p}")
    log("\n== markdown ==\n")
    log(f"Command: `{cmd}` ({'quick' if args.quick else 'full'} mode, {cfg['reps']} repetition(s), "
        f"{elapsed / 60:.1f} min)\n")
    log(bench.markdown(hdr, rows))
    if bench.notes or bench.problems:
        log("")
        for n in bench.notes:
            log(f"- {n}")
        for p in bench.problems:
            log(f"- problem: {p}")


if __name__ == "__main__":
    main()
