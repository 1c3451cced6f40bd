"""Fault injection into a running codejaild: each test injects one fault and
checks that the request in flight gets a defined answer (no hang, no
crash), that health reports the fault, that requests succeed again within
a bounded time, and that afterwards nothing is left over.
"""
import json
import os
import signal
import subprocess
import threading

import pytest

from conftest import (HELPER_TIMEOUT_S, assert_nothing_left, cgroup_parents,
                      descendants, executes, killed_answer, state, wait_for)

SLEEP = "import time\ntime.sleep(2)\nx = 1"
NUMPY_SLEEP = "import numpy, time\ntime.sleep(2)\nx = int(numpy.int64(1))"


def wchan(pid):
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read()
    except OSError:
        return ""


def parent(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])


class InFlight:
    """One request running in a thread, and the process running its code."""

    def __init__(self, daemon, code):
        self.answer = None
        self.thread = threading.Thread(target=self._run, args=(daemon, code))
        self.thread.start()
        self.runner = wait_for(
            "the code is running (its runner sleeps)",
            lambda: next((p for p in descendants(daemon.pid) if "nanosleep" in wchan(p)), None),
            30)

    def _run(self, daemon, code):
        self.answer = daemon.execute(code, timeout=60)

    def result(self):
        self.thread.join(90)
        assert not self.thread.is_alive(), "the request in flight got no answer"
        return self.answer


def lane_fault(daemon, lane, text):
    """Health names the fault of that lane (while down: why; once back: its
    last fault) and counts its restarts."""
    status, body = daemon.health()
    lanes = body.get("lanes", {})
    assert lane in lanes, f"health says nothing of lane {lane}: {body}"
    info = lanes[lane]
    said = info.get("why", "") + info.get("last_fault", "")
    return text in said and info["restarts"] >= 1


def restarts(daemon, lane):
    return daemon.metric("codejail_helper_restarts_total", lane=lane) or 0


@pytest.mark.parametrize("lane", ["plain", "preimport"])
def test_helper_killed(daemon, baseline, lane):
    d = daemon()
    wait_for("pools full", d.pool_full, 60)
    fds = d.fd_count()
    flight = InFlight(d, SLEEP if lane == "plain" else NUMPY_SLEEP)
    victim = d.helper(lane)
    os.kill(victim, signal.SIGKILL)
    killed_answer(*flight.result())
    wait_for("health names the killed helper",
             lambda: lane_fault(d, lane, "killed by signal 9"), 30)
    executes(d, "x = x + 1" if lane == "plain" else "import numpy\nx = x + 1")
    assert restarts(d, lane) >= 1
    # the old helper's groups are gone, the new helper's pools refill, and
    # the daemon holds as many descriptors as before
    wait_for("the dead helper's groups are removed", lambda: not cgroup_parents({victim}), 30)
    # (the self-check that follows a restart holds a sandbox for a while)
    wait_for("the daemon holds as many descriptors as before",
             lambda: d.pool_full() and d.fd_count() == fds, 60)
    d.stop()
    assert_nothing_left(d, baseline)


def sandbox_init(runner):
    """The init of the sandbox the runner is in: its parent."""
    return parent(runner)


@pytest.mark.parametrize("victim", ["init", "launcher"])
def test_sandbox_process_killed(daemon, baseline, victim):
    d = daemon({"pool_size": 0})
    flight = InFlight(d, SLEEP)
    init = sandbox_init(flight.runner)
    target = init
    if victim == "launcher":
        target = parent(init)
        if target in d.helpers():
            pytest.skip("no launcher on this host (cgroup2 clones into the group itself)")
    os.kill(target, signal.SIGKILL)
    killed_answer(*flight.result())
    executes(d)
    d.stop()
    assert_nothing_left(d, baseline)


def test_helper_stopped(daemon, baseline):
    d = daemon()
    wait_for("pools full", d.pool_full, 60)
    victim = d.helper("plain")
    os.kill(victim, signal.SIGSTOP)
    try:
        # More requests than the pool holds: the refill, then a request,
        # must ask the stopped helper.
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(_try_execute(d)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(4 * HELPER_TIMEOUT_S + 30)
        assert not any(t.is_alive() for t in threads), "a request hung on a stopped helper"
        assert answers == [200] * 4, answers
        wait_for("health names the hung helper", lambda: lane_fault(d, "plain", "helper_hung"),
                 30)
        assert state(victim) in (None, "Z"), "the stopped helper was not killed"
    finally:
        try:
            os.kill(victim, signal.SIGCONT)
        except ProcessLookupError:
            pass
    executes(d)
    d.stop()
    assert_nothing_left(d, baseline)


def test_daemon_killed_then_a_fresh_start_sweeps(daemon, baseline):
    first = daemon(name="first")
    executes(first)
    helpers = set(first.helpers())
    first.kill()
    wait_for("the helpers die with the daemon",
             lambda: all(state(p) in (None, "Z") for p in helpers), 30)
    left = cgroup_parents(helpers)
    if not left:
        pytest.skip("no cgroups on this host")
    second = daemon(name="second")
    assert cgroup_parents(helpers) == [], "a fresh start left the dead instance's groups"
    executes(second)
    second.stop()
    assert_nothing_left(first, baseline)


def test_helper_cannot_start(daemon, baseline, tmp_path):
    """The environment directory disappears: a new helper fails its start,
    health says so and why, requests get a defined answer, and the lane
    comes back once the directory is there again."""
    env = tmp_path / "env"
    env.mkdir()
    source = os.environ["CODEJAIL_ENV_DIR"]
    subprocess.run(["mount", "--bind", source, str(env)], check=True)
    try:
        d = daemon({"env_dir": str(env)})
        subprocess.run(["umount", "-l", str(env)], check=True)
        os.kill(d.helper("plain"), signal.SIGKILL)

        def unavailable():
            status, body = d.health()
            plain = body.get("lanes", {}).get("plain", {})
            return status == 503 and "helper_start" in plain.get("why", "")
        wait_for("health says the plain lane cannot start a helper", unavailable, 30)
        status, body = d.execute("x = 1", timeout=4 * HELPER_TIMEOUT_S + 30)
        assert status == 500 and json.loads(body)["error"] == "Codejail execution failed"
        subprocess.run(["mount", "--bind", source, str(env)], check=True)
        # the back-off is capped at 30 s
        wait_for("/health/ answers 200 again", lambda: d.health()[0] == 200, 60)
        executes(d)
        d.stop()
    finally:
        subprocess.run(["umount", "-l", str(env)], check=False, capture_output=True)
    assert_nothing_left(d, baseline)


@pytest.mark.parametrize("knob,broken", [("pids.max", "1"), ("cgroup.max.descendants", "0")])
def test_sandboxes_cannot_start(daemon, baseline, knob, broken):
    """The helper's cgroup parent stops taking sandboxes: pids.max 1 (every
    clone into it fails), or cgroup.max.descendants 0 (no group can be made
    for a new sandbox). The lane goes down with the cause, requests get a
    defined answer, and the lane comes back when the limit is lifted."""
    d = daemon({"pool_size": 1})
    plain = d.helper("plain")
    parents = [p for p in cgroup_parents({plain}) if os.path.exists(f"{p}/{knob}")]
    if not parents:
        pytest.skip(f"no cgroup with {knob} here")
    with open(f"{parents[0]}/{knob}", "w") as f:
        f.write(broken)
    try:
        for _ in range(3):
            status, _ = d.execute("x = 1", timeout=4 * HELPER_TIMEOUT_S + 30)
            assert status in (200, 500)

        def unavailable():
            status, body = d.health()
            why = body.get("lanes", {}).get("plain", {}).get("why", "")
            return status == 503 and why.startswith(("spawn", "setup"))
        wait_for("health says the plain lane cannot start sandboxes", unavailable, 30)
        assert d.metric("codejail_lane_up", lane="plain") == 0
    finally:
        with open(f"{parents[0]}/{knob}", "w") as f:
            f.write("max")
    wait_for("/health/ answers 200 again", lambda: d.health()[0] == 200, 30)
    executes(d)
    d.stop()
    assert_nothing_left(d, baseline)


def test_descriptor_exhaustion(daemon, baseline):
    """The daemon runs out of descriptors: RLIMIT_NOFILE is lowered to what
    it holds plus three, so that two connections running code and one asking
    for health fit, but no new sandbox's five. Requests get a defined answer,
    health says why the lane cannot serve while it lasts, and once
    descriptors are there again it serves with as many as before."""
    d = daemon({"limits": {"REALTIME": 10}})
    wait_for("pools full", d.pool_full, 60)
    fds = d.fd_count()
    soft = subprocess.run(["prlimit", f"--pid={d.pid}", "--nofile", "--output=SOFT",
                           "--noheadings"], check=True, capture_output=True, text=True).stdout
    subprocess.run(["prlimit", f"--pid={d.pid}", f"--nofile={fds + 3}:"], check=True)
    try:
        flights = [InFlight(d, "import time\ntime.sleep(6)\nx = 1") for _ in range(2)]

        def unavailable():
            status, body = d.health()
            why = body.get("lanes", {}).get("plain", {}).get("why", "")
            return status == 503 and "descriptors" in why
        wait_for("health says the plain lane is out of descriptors", unavailable, 30)
        for flight in flights:
            status, body = flight.result()
            assert status in (200, 500), body
        assert d.proc.poll() is None, "the daemon died"
    finally:
        subprocess.run(["prlimit", f"--pid={d.pid}", f"--nofile={soft.strip()}:"], check=True)
    wait_for("/health/ answers 200 again", lambda: d.health()[0] == 200, 30)
    executes(d)
    wait_for("the daemon holds as many descriptors as before",
             lambda: d.pool_full() and d.fd_count() == fds, 60)
    d.stop()
    assert_nothing_left(d, baseline)


def _try_execute(d):
    """The HTTP status, or what happened instead."""
    try:
        return d.execute("x = x + 1", {"x": 1}, timeout=4 * HELPER_TIMEOUT_S + 20)[0]
    except OSError as err:
        return repr(err)
