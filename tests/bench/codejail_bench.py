#!/usr/bin/python3
"""Benchmark of codejaild: latency, throughput and memory, with the bare
interpreter measured in the same run as the floor (in blocks that alternate
with the service's).

Starts the daemon of BUILD on a free loopback port (run it inside a network
namespace of its own: `make bench` does), once with the warm pool and once
with every sandbox cold, and prints a Markdown table of every figure with its
ratio to the floor; writes a chart with gnuplot. It reports; it never fails on
a slow figure."""
import argparse
from concurrent.futures import ThreadPoolExecutor
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

# The daemon's default pre-import (lib/service/config.c), for labels and the opt-in.
DEFAULT_PREIMPORT = ("numpy,random2,six.moves,calc,chem.chemcalc,chem.chemtools,chem.miller,"
                     "symmath,eia,verifiers.draganddrop")
PLOTTING_PREIMPORT = DEFAULT_PREIMPORT + ",matplotlib.pyplot"
TRIVIAL = {"code": "x = x + 1", "globals_dict": {"x": 16}}
NUMPY = {"code": "import os\nos.environ['OPENBLAS_NUM_THREADS'] = '1'\nimport numpy as np\n"
                 "x = int(np.arange(10).sum())", "globals_dict": {}}
CAPA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "api_tests", "fixtures",
                    "capa")


def lms_payload():
    """What the LMS sends for a calc-graded problem: capa's prolog (seeded),
    its lazy modules (api_tests/fixtures/capa), then the course's check."""
    def read(name):
        with open(os.path.join(CAPA, name), encoding="utf-8") as f:
            return f.read()
    lazy = read("lazymod.py") + "".join(f"{name} = LazyModule('{module}')\n" for name, module in
                                        (line.split() for line in read("assumed_imports.txt").splitlines()))
    check = ("r = calc.evaluator({'x': 2}, {}, expect)\n"
             "correct = abs(r - calc.evaluator({'x': 2}, {}, ans)) < 1e-9\n"
             "shift = random.randint(1, 9)\n")
    return {"code": read("code_prolog.txt") % 12345 + lazy + check,
            "globals_dict": {"expect": "3*x^2", "ans": "x*3*x"},
            "python_path": None, "limit_overrides_context": None,
            "slug": "i4x://MITx/bench/problem/calc", "unsafely": False}


LMS = lms_payload()

# The LMS payload's own work (two calc.evaluator calls build pyparsing
# grammars: tens of ms), timed by exec in a child forked from an interpreter
# that has the pre-import set loaded, as a pooled sandbox is: what any
# service would spend on it.
OWN_WORK = r"""
import glob, json, os, sys, time
sys.path[:0] = glob.glob(sys.argv[1] + "/usr/local/lib/python3.*/dist-packages")
for name in sys.argv[2].split(","):
    try:
        __import__(name)
    except ImportError:
        pass
payload = json.loads(sys.stdin.read())
times = []
for i in range(int(sys.argv[3])):
    r, w = os.pipe()
    if os.fork() == 0:
        start = time.perf_counter()
        exec(payload["code"], dict(payload["globals_dict"]))
        os.write(w, repr(time.perf_counter() - start).encode())
        os._exit(0)
    os.close(w)
    times.append(float(os.read(r, 64)))
    os.close(r)
    os.wait()
print(json.dumps(times))
"""


def own_work(env_dir, n):
    done = subprocess.run(["/usr/bin/python3", "-I", "-c", OWN_WORK, env_dir, DEFAULT_PREIMPORT,
                           str(n)], input=json.dumps(LMS).encode(), capture_output=True, check=True,
                          env={"MPLBACKEND": "Agg"})
    return json.loads(done.stdout)
PLOT = {"code": "import os\nos.environ['TMPDIR'] = 'tmp'\nimport matplotlib\nmatplotlib.use('Agg')\n"
                "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.savefig('tmp/p.png')\n"
                "size = os.path.getsize('tmp/p.png')", "globals_dict": {},
        "limit_overrides_context": "bench-plot"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Daemon:
    def __init__(self, build, config):
        self.port = free_port()
        self.config = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(config, self.config)
        self.config.close()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [os.path.join(build, "codejaild"), "--config", self.config.name, "--profile",
             "development", "--listen", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.get("/health/")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"codejaild exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise SystemExit("codejaild did not become healthy")

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, body

    def execute(self, payload):
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        start = time.perf_counter()
        conn.request("POST", "/api/v0/code-exec", body,
                     {"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        answer = response.read()
        elapsed = time.perf_counter() - start
        conn.close()
        ok = response.status == 200 and b'"emsg"' not in answer
        return elapsed, ok

    def pids(self):
        """The daemon; per helper, each sandbox (every process below one child
        of the helper: its init and runner, and on cgroup v1 hosts the
        launcher that made it); and per helper the launcher that waits, with
        nothing below it yet, for the next sandbox."""
        helpers = children(self.proc.pid)
        sandboxes, waiting = [], []
        for helper in helpers:
            below = [(child, descendants(child)) for child in children(helper)]
            sandboxes.append([[child] + rest for child, rest in below if rest])
            waiting.append([child for child, rest in below if not rest])
        return self.proc.pid, helpers, sandboxes, waiting

    def environment_starts(self):
        """Per environment, from its log line: helpers started, safety and
        module checks run."""
        self.log.seek(0)
        starts = {}
        for line in self.log.read().decode(errors="replace").splitlines():
            if '"environment_started"' in line:
                entry = json.loads(line)
                starts[entry["environment"]] = entry["start_ms"]
        return starts

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()
        os.unlink(self.config.name)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def descendants(pid):
    return [p for child in children(pid) for p in [child] + descendants(child)]


def memory_kib(pid, key):
    """VmRSS from status; Pss, or Uss (private pages), from smaps_rollup."""
    path = f"/proc/{pid}/status" if key == "VmRSS" else f"/proc/{pid}/smaps_rollup"
    keys = ("Private_Clean", "Private_Dirty") if key == "Uss" else (key,)
    total = 0
    try:
        with open(path) as f:
            for line in f:
                name = line.split(":")[0]
                if name in keys:
                    total += int(line.split()[1])
    except OSError:
        pass
    return total


def wait_pools(daemon, sandboxes):
    deadline = time.monotonic() + 30
    while sum(map(len, daemon.pids()[2])) < sandboxes and time.monotonic() < deadline:
        time.sleep(0.1)


def idle_memory(daemon, cores):
    """The daemon's RSS, and per interpreter (lane) the helper's PSS and each
    pooled sandbox's PSS and USS, once the pools are full."""
    wait_pools(daemon, 2 * cores)
    pid, helpers, lanes, waiting = daemon.pids()
    # PSS divides shared pages among their users, so it depends on how many
    # sandboxes share the helper's pages: the pool as configured. A waiting
    # launcher is counted with its helper.
    memory = [(sum(memory_kib(p, "Pss") for p in [h] + w) / 1024,
               [sum(memory_kib(p, "Pss") for p in s) / 1024 for s in lane],
               [sum(memory_kib(p, "Uss") for p in s) / 1024 for s in lane])
              for h, lane, w in zip(helpers, lanes, waiting)]
    return memory_kib(pid, "VmRSS") / 1024, memory


def tree_pss(daemon, sandboxes):
    """PSS of the daemon and everything below it, once `sandboxes` are pooled."""
    wait_pools(daemon, sandboxes)
    return sum(memory_kib(p, "Pss") for p in [daemon.proc.pid] + descendants(daemon.proc.pid)) / 1024


def environment_cost(build, next_env, cores):
    """What a second sandbox environment costs: each environment's start, and
    the whole tree's PSS with one environment and with two (the same
    settings; the second a different root)."""
    config = {"pool_size": cores}
    one = Daemon(build, config)
    try:
        alone = tree_pss(one, 2 * cores)
    finally:
        one.stop()
    two = Daemon(build, dict(config, environments={"next": {"env_dir": next_env}}))
    try:
        both = tree_pss(two, 4 * cores)
        starts = two.environment_starts()
    finally:
        two.stop()
    return starts, alone, both


def sequential(daemon, payload, n):
    times = []
    for _ in range(n):
        elapsed, ok = daemon.execute(payload)
        if not ok:
            raise SystemExit(f"request failed: {payload['code'][:40]!r}")
        times.append(elapsed)
    return times


def at_concurrency(daemon, payload, concurrency, n):
    errors = 0
    times = []
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for elapsed, ok in pool.map(lambda _: daemon.execute(payload), range(n)):
            times.append(elapsed)
            errors += not ok
    wall = time.perf_counter() - start
    return times, n / wall, errors


def alternating(service, floor, blocks=10):
    """Runs service() and floor() in turn, blocks times each; returns the
    times each gave, all together."""
    served, bare = [], []
    for _ in range(blocks):
        served += service()
        bare += floor()
    return served, bare


def spawn_floor(argv, n, stdin=""):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(argv, check=True, env={}, input=stdin.encode(), stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def ms(seconds):
    return seconds * 1000


def add_memory(rows, name, helper, pss, uss, target):
    rows.append((f"helper (and a waiting launcher), {name}, PSS", helper, "MiB", "", ""))
    if pss:
        rows.append((f"each pooled sandbox, {name}, PSS (mean of {len(pss)})",
                     statistics.mean(pss), "MiB", "", target))
        rows.append((f"each pooled sandbox, {name}, private memory (USS)", statistics.mean(uss),
                     "MiB", "", ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", default="build")
    parser.add_argument("--out", default="build/bench")
    parser.add_argument("--env", default="build/sandbox-env", help="the sandbox environment")
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--next-env", help="a second sandbox environment, to measure what one "
                        "costs (make environment NAME=next ...)")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1
    count = lambda n: max(5, int(n * scale))
    os.makedirs(args.out, exist_ok=True)
    cores = os.cpu_count()
    rows = []  # (figure, value, unit, ratio text, target text)

    # Each ratio is taken against its floor measured in the same run, in
    # blocks that alternate with the service's, so that both sides see the
    # same machine: on this shared host (its hypervisor steals time) a floor
    # has moved by a third within minutes, far more than some margins.
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sandbox",
                          "jailed_code.py")
    runner_input = json.dumps([TRIVIAL["code"], TRIVIAL["globals_dict"], []])
    bare_pass = ["/usr/bin/python3", "-E", "-B", "-c", "pass"]
    bare_numpy = ["/usr/bin/python3", "-E", "-B", "-c", "import numpy"]
    # The sandbox's own command run bare: the same interpreter flags, the
    # same runner script, the same input, no sandbox.
    bare_runner = ["/usr/bin/python3", "-I", runner]

    overrides = {"bench-plot": {"REALTIME": 30, "CPU": 20}}
    # The defaults (warm, numpy pre-imported in a second interpreter), with a
    # pool per interpreter as deep as the cores.
    warm_config = {"pool_size": cores, "limit_overrides": overrides}
    series = {}
    daemon = Daemon(args.build, warm_config)
    try:
        daemon_rss, memory = idle_memory(daemon, cores)
        series["trivial"], pass_times = alternating(
            lambda: sequential(daemon, TRIVIAL, count(30)), lambda: spawn_floor(bare_pass, count(10)))
        # The LMS-shaped payload against the trivial one, in alternating blocks.
        series["lms"], trivial_again = alternating(
            lambda: sequential(daemon, LMS, count(30)), lambda: sequential(daemon, TRIVIAL, count(30)))
        series["numpy"], numpy_times = alternating(
            lambda: sequential(daemon, NUMPY, count(10)), lambda: spawn_floor(bare_numpy, count(4)))
        series["matplotlib"] = sequential(daemon, PLOT, count(10))
        for c in (1, 4, 16):
            times, rps, errors = at_concurrency(daemon, TRIVIAL, c, count(400))
            series[f"c{c}"] = (times, rps, errors)
    finally:
        daemon.stop()

    # The opt-in for deployments that plot: matplotlib.pyplot pre-imported too.
    plotting = Daemon(args.build, dict(warm_config, preimport=PLOTTING_PREIMPORT))
    try:
        _, plotting_memory = idle_memory(plotting, cores)
        series["matplotlib, pre-imported"] = sequential(plotting, PLOT, count(20))
    finally:
        plotting.stop()

    # Pool off: every sandbox cold.
    cold = Daemon(args.build, {"warm": False, "pool_size": 0, "preimport": None})
    try:
        cold_times, runner_times = alternating(
            lambda: sequential(cold, TRIVIAL, count(10)),
            lambda: spawn_floor(bare_runner, count(10), runner_input))
    finally:
        cold.stop()

    if args.next_env:
        starts, alone, both = environment_cost(args.build, args.next_env, cores)

    pass_p50, numpy_p50, same_p50 = (statistics.median(t)
                                     for t in (pass_times, numpy_times, runner_times))
    rows.append(("bare `python3 -E -B -c pass`, p50", ms(pass_p50), "ms", "1.00", "floor"))
    rows.append(("bare `python3 -E -B -c 'import numpy'`, p50", ms(numpy_p50), "ms", "1.00", "floor"))
    rows.append(("bare `python3 -I jailed_code` on the trivial input, p50", ms(same_p50), "ms",
                 "1.00", "floor"))

    def add_latency(label, times, floor, target):
        p50, p90, p99 = (ms(percentile(times, p)) for p in (50, 90, 99))
        rows.append((f"{label} p50", p50, "ms", f"{p50 / ms(floor):.2f}", target))
        rows.append((f"{label} p90", p90, "ms", f"{p90 / ms(floor):.2f}", ""))
        rows.append((f"{label} p99", p99, "ms", f"{p99 / ms(floor):.2f}", ""))

    add_latency("trivial, sequential,", series["trivial"], pass_p50, "<= 0.2")
    add_latency("numpy, sequential,", series["numpy"], numpy_p50, "<= 0.5")
    lms_p50, trivial_p50 = statistics.median(series["lms"]), statistics.median(trivial_again)
    work_p50 = statistics.median(own_work(args.env, count(30)))
    add_latency("LMS-shaped (prolog, lazy modules, a calc check), sequential,", series["lms"],
                pass_p50, "")
    rows.append(("LMS-shaped payload's own work (exec in a warm interpreter), p50", ms(work_p50),
                 "ms", "", ""))
    rows.append(("LMS-shaped p50 less its own work, against trivial p50 (alternating blocks)",
                 ms(lms_p50 - work_p50), "ms",
                 f"{(lms_p50 - work_p50) / trivial_p50:.2f} x trivial ({ms(trivial_p50):.2f} ms)",
                 "<= 1.5"))
    add_latency("matplotlib plot, sequential,", series["matplotlib"], pass_p50, "")
    add_latency("matplotlib plot, matplotlib.pyplot pre-imported too (opt-in), sequential,",
                series["matplotlib, pre-imported"], pass_p50, "")
    spawn_rate = cores / pass_p50
    for c in (1, 4, 16):
        times, rps, errors = series[f"c{c}"]
        target = ">= 1.5" if c == 4 else ""
        rows.append((f"trivial throughput, concurrency {c}", rps, "req/s",
                     f"{rps / spawn_rate:.2f}", target))
        p50, p99 = ms(percentile(times, 50)), ms(percentile(times, 99))
        rows.append((f"trivial p50 / p99, concurrency {c}", p50, "ms",
                     f"p99 = {p99 / p50:.2f} x p50, {errors} errors",
                     "no errors, p99 <= 3 x p50" if c == 16 else ""))
    cold_p50 = statistics.median(cold_times)
    rows.append(("pool off (every sandbox cold), trivial p50", ms(cold_p50), "ms",
                 f"{cold_p50 / same_p50:.2f} x bare `python3 -I jailed_code`", "<= 1.15"))
    rows.append(("daemon RSS, idle", daemon_rss, "MiB", "", "<= 8 MiB"))
    lane_names = ("plain interpreter", "interpreter with the LMS pre-import set imported")
    for name, (helper, pss, uss) in zip(lane_names, memory):
        add_memory(rows, name, helper, pss, uss, "<= 12 MiB")
    for helper, pss, uss in plotting_memory[1:]:
        add_memory(rows, "interpreter with the LMS set and matplotlib.pyplot imported (opt-in)",
                   helper, pss, uss, "")

    if args.next_env:
        for name, start_ms in starts.items():
            rows.append((f"environment start ({name}): helpers up, safety and module checks run",
                         start_ms, "ms", "", ""))
        rows.append(("whole daemon, PSS, one environment, pools full", alone, "MiB", "", ""))
        rows.append(("whole daemon, PSS, two environments, pools full", both, "MiB",
                     f"a second environment costs {both - alone:.1f} MiB", ""))

    lines = ["| figure | value | ratio to the floor | target |", "| --- | --- | --- | --- |"]
    for figure, value, unit, ratio, target in rows:
        lines.append(f"| {figure} | {value:.2f} {unit} | {ratio} | {target} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write(table + "\n")
    write_chart(args.out, series)


def write_chart(out, series):
    data = os.path.join(out, "latency.dat")
    with open(data, "w") as f:
        for i, (name, label) in enumerate((("trivial", "trivial"), ("lms", "LMS-shaped"),
                                           ("numpy", "numpy"),
                                           ("matplotlib", "plot"),
                                           ("matplotlib, pre-imported", "plot/pre-imported"))):
            t = series[name]
            f.write(f"{i} {label} {ms(percentile(t, 50)):.3f} {ms(percentile(t, 90)):.3f} "
                    f"{ms(percentile(t, 99)):.3f}\n")
    rates = os.path.join(out, "throughput.dat")
    with open(rates, "w") as f:
        for i, c in enumerate((1, 4, 16)):
            f.write(f"{i} {c} {series[f'c{c}'][1]:.1f}\n")
    script = f"""
set terminal pngcairo size 1100,450 font ',10'
set output '{os.path.join(out, 'bench.png')}'
set multiplot layout 1,2
set title 'Sequential latency per payload (ms, log scale)'
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [0.5:*]
set key top left
plot '{data}' using 3:xtic(2) title 'p50', '' using 4 title 'p90', '' using 5 title 'p99'
unset logscale y
set yrange [0:*]
set title 'Throughput, trivial payload (requests/s)'
plot '{rates}' using 3:xtic(2) title 'concurrency' lc rgb '#4477aa'
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
    print(f"\nchart: {os.path.join(out, 'bench.png')}")


if __name__ == "__main__":
    sys.exit(main())
