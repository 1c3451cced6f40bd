#!/usr/bin/python3
"""Soak: codejaild under a realistic mixed load for a bounded time, with
sandbox helpers killed at random, sampled every few seconds.

Run by `make soak` inside a network namespace of its own (SOAK_S seconds,
default 600). It prints a table and writes a chart (gnuplot) to --out, and
fails when:
  - anything (daemon RSS, descriptors, processes, cgroups, run directories,
    mounts) grew and did not come back to its baseline once the load
    stopped (RSS: within RSS_SLACK of it; counts: exactly);
  - a request got a 5xx that no injected fault explains (one that ended
    within FAULT_WINDOW_S of a kill), or no answer at all;
  - a request waited past its wall-clock limit plus LATE_MARGIN_S;
  - a killed helper was not replaced.
"""
import argparse
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from cjprocs import children, descendants, form, free_port, http, own_cgroup_dirs  # noqa: E402

REALTIME_S = 3
# A request may wait for a helper being replaced (helper_timeout, 10 s by
# default) on top of its own limit and the queue.
LATE_MARGIN_S = 15
FAULT_WINDOW_S = 15
RSS_SLACK_KIB = 4096
SAMPLE_S = 5
SETTLE_S = 60

PAYLOADS = [
    # (name, weight, code)
    ("trivial", 30, "x = x + 1"),
    ("numpy", 15, "import numpy\nx = int(numpy.arange(x).sum())"),
    ("lms", 15, "import random2 as random\nimport six\nrandom.seed(x)\n"
                "answer = six.text_type(random.randint(1, 10))\nx = len(answer)"),
    ("error", 10, "raise ValueError('wrong answer')"),
    ("cpu_timeout", 5, "while True:\n    pass"),
    ("wall_timeout", 5, "import time\ntime.sleep(30)"),
    ("memory_bomb", 5, "b = bytearray(1 << 31)"),
    ("fork_bomb", 5, "import os\nwhile True:\n    os.fork()"),
    ("huge_output", 5, "x = 'a' * (10 << 20)"),
    ("sympy", 5, "import sympy\ns = sympy.Symbol('s')\nx = len(sympy.solve(s**2 - 4, s))"),
]


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def count_cgroups(helper_pids):
    """This daemon's parents and the groups in them."""
    n = 0
    for d in own_cgroup_dirs():
        for entry in os.listdir(d):
            m = re.match(r"codejail\.(\d+)", entry)
            if m and int(m.group(1)) in helper_pids:
                parent = os.path.join(d, entry)
                n += 1 + sum(1 for e in os.scandir(parent) if e.is_dir())
    return n


class Daemon:
    def __init__(self, build, out):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(out, "codejaild.log"), "w")
        self.proc = subprocess.Popen(
            [os.path.join(build, "codejaild"), "--profile", "development", "--listen",
             "127.0.0.1", "--port", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT)
        self.helpers_seen = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"codejaild exited with {self.proc.returncode}")
            try:
                if http("GET", self.base + "/health/", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        sys.exit("codejaild did not become ready")

    def helpers(self):
        found = children(self.proc.pid)
        self.helpers_seen.update(found)
        return found

    def metric(self, name):
        status, body = http("GET", self.base + "/metrics", timeout=10)
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def sample(self):
        self.helpers()
        procs = descendants(self.proc.pid)
        with open("/proc/self/mountinfo") as f:
            mounts = sum(1 for _ in f)
        return {
            "daemon_rss_kib": status_kib(self.proc.pid, "VmRSS"),
            "daemon_fds": len(os.listdir(f"/proc/{self.proc.pid}/fd")),
            "helpers_rss_kib": sum(status_kib(p, "VmRSS") for p in self.helpers()),
            "processes": len(procs),
            "cgroups": count_cgroups(self.helpers_seen),
            "run_dirs": sum(1 for e in os.listdir("/tmp")
                            if re.fullmatch(r"codejail-[a-z0-9_]{8}", e)),
            "mounts": mounts,
        }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_S", "600")))
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--kill-every", type=float, default=30, help="mean seconds between kills")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(int(os.environ.get("SOAK_SEED", "1")))
    names = [p[0] for p in PAYLOADS]
    weights = [p[1] for p in PAYLOADS]
    codes = {p[0]: p[2] for p in PAYLOADS}

    d = Daemon(args.build, args.out)
    # the baseline: pools full, nothing running
    deadline = time.monotonic() + 60
    while d.metric("codejail_pool_ready") < 2 * len(d.helpers()) and time.monotonic() < deadline:
        time.sleep(0.2)
    baseline = d.sample()
    print("baseline:", baseline, flush=True)

    results = []  # (end, name, status, seconds)
    kills = []    # (time, lane pid)
    samples = []  # (time, sample, requests done)
    lock = threading.Lock()
    stop = threading.Event()
    start = time.monotonic()

    def worker(seed):
        wrng = random.Random(seed)
        while not stop.is_set():
            name = wrng.choices(names, weights)[0]
            body, headers = form({"code": codes[name], "globals_dict": {"x": 16}})
            t0 = time.monotonic()
            try:
                status, _ = http("POST", d.base + "/api/v0/code-exec", body, headers, timeout=120)
            except OSError as err:
                status = f"no answer: {err}"
            t1 = time.monotonic()
            with lock:
                results.append((t1 - start, name, status, t1 - t0))

    def killer():
        while not stop.wait(rng.expovariate(1 / args.kill_every)):
            helpers = d.helpers()
            if helpers:
                victim = rng.choice(helpers)
                try:
                    os.kill(victim, signal.SIGKILL)
                    with lock:
                        kills.append((time.monotonic() - start, victim))
                except ProcessLookupError:
                    pass

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrency)]
    threads.append(threading.Thread(target=killer))
    for t in threads:
        t.start()
    while time.monotonic() - start < args.seconds:
        time.sleep(SAMPLE_S)
        with lock:
            done = len(results)
        samples.append((time.monotonic() - start, d.sample(), done))
        s = samples[-1][1]
        print(f"{samples[-1][0]:7.0f} s  requests {done:6d}  kills {len(kills):3d}  "
              f"rss {s['daemon_rss_kib']:6d} KiB  fds {s['daemon_fds']:3d}  "
              f"procs {s['processes']:3d}  cgroups {s['cgroups']:3d}", flush=True)
    stop.set()
    for t in threads:
        t.join(180)
    load_end = time.monotonic() - start

    # after the load: everything must come back to the baseline
    settled = None
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        now = d.sample()
        if (all(now[k] <= baseline[k] for k in now if k not in ("daemon_rss_kib",
                                                               "helpers_rss_kib"))
                and now["daemon_rss_kib"] <= baseline["daemon_rss_kib"] + RSS_SLACK_KIB
                and d.metric("codejail_pool_ready") >= 2 * len(d.helpers())):
            settled = now
            break
        time.sleep(0.5)
    final = settled or d.sample()
    samples.append((time.monotonic() - start, final, len(results)))
    restarts = d.metric("codejail_helper_restarts_total")
    health = http("GET", d.base + "/health/", timeout=10)[0]
    d.proc.send_signal(signal.SIGTERM)
    exit_code = d.proc.wait(timeout=60)

    failures = []
    unexplained, late, by_name = [], [], {}
    for end, name, status, secs in results:
        row = by_name.setdefault(name, {"n": 0, "5xx": 0, "explained": 0, "max": 0.0})
        row["n"] += 1
        row["max"] = max(row["max"], secs)
        if not isinstance(status, int) or status >= 500:
            row["5xx"] += 1
            if any(k <= end <= k + FAULT_WINDOW_S for k, _ in kills):
                row["explained"] += 1
            else:
                unexplained.append((end, name, status))
        if secs > REALTIME_S + LATE_MARGIN_S:
            late.append((end, name, secs))
    if unexplained:
        failures.append(f"{len(unexplained)} 5xx or unanswered requests no fault explains: "
                        f"{unexplained[:5]}")
    if late:
        failures.append(f"{len(late)} requests waited past {REALTIME_S} + {LATE_MARGIN_S} s: "
                        f"{late[:5]}")
    if not settled:
        failures.append(f"did not come back to the baseline within {SETTLE_S} s after the load: "
                        f"baseline {baseline}, after {final}")
    if restarts < len(kills):
        failures.append(f"{len(kills)} helpers killed, {restarts:.0f} replaced")
    if health != 200:
        failures.append(f"/health/ answered {health} after the load")
    if exit_code != 0:
        failures.append(f"codejaild exited with {exit_code} after SIGTERM")

    table = report(args, baseline, samples, final, by_name, kills, restarts, load_end,
                   len(results), failures)
    print(table)
    with open(os.path.join(args.out, "soak.md"), "w") as f:
        f.write(table + "\n")
    chart(args.out, samples, kills, baseline)
    return 1 if failures else 0


def report(args, baseline, samples, final, by_name, kills, restarts, load_end, n, failures):
    peak = {k: max(s[1][k] for s in samples) for k in baseline}
    lines = [f"soak: {load_end:.0f} s of load at concurrency {args.concurrency}, {n} requests "
             f"({n / load_end:.1f}/s), {len(kills)} helpers killed, {restarts:.0f} replaced",
             "", "| measure | baseline | peak under load | after the load |",
             "| --- | --- | --- | --- |"]
    for k in baseline:
        lines.append(f"| {k} | {baseline[k]} | {peak[k]} | {final[k]} |")
    lines += ["", "| payload | requests | 5xx | 5xx within a fault's window | slowest (s) |",
              "| --- | --- | --- | --- | --- |"]
    for name in sorted(by_name):
        r = by_name[name]
        lines.append(f"| {name} | {r['n']} | {r['5xx']} | {r['explained']} | {r['max']:.2f} |")
    lines += ["", "verdict: " + ("PASS" if not failures else "FAIL")]
    lines += [f"- {f}" for f in failures]
    return "\n".join(lines)


def chart(out, samples, kills, baseline):
    data = os.path.join(out, "soak.dat")
    with open(data, "w") as f:
        prev_t, prev_n = 0.0, 0
        for t, s, n in samples:
            rate = (n - prev_n) / (t - prev_t) if t > prev_t else 0
            prev_t, prev_n = t, n
            f.write(f"{t:.1f} {s['daemon_rss_kib'] / 1024:.2f} {s['helpers_rss_kib'] / 1024:.2f} "
                    f"{s['daemon_fds']} {s['processes']} {s['cgroups']} {rate:.2f}\n")
    marks = "\n".join(f"set arrow from {t:.1f}, graph 0 to {t:.1f}, graph 1 nohead "
                      f"lc rgb '#cc3311' dt 3" for t, _ in kills)
    png = os.path.join(out, "soak.png")
    script = f"""
set terminal pngcairo size 1100,700 font ',10'
set output '{png}'
set multiplot layout 3,1
set key top left
set xlabel 'seconds (dotted: a helper killed)'
{marks}
set title 'Memory (MiB)'
plot '{data}' using 1:2 with lines title 'daemon RSS', '' using 1:3 with lines title 'helpers RSS'
set title 'Descriptors, processes, cgroups'
plot '{data}' using 1:4 with lines title 'daemon fds', '' using 1:5 with lines title 'processes', \\
     '' using 1:6 with lines title 'cgroups'
set title 'Requests answered per second'
plot '{data}' using 1:7 with lines title 'requests/s'
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
    print(f"\nchart: {png}")


if __name__ == "__main__":
    sys.exit(main())
