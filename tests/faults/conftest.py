"""A codejaild of the build under test, with faults injected from outside.

Run by tests/run-fault-tests.sh inside new network and mount namespaces
(loopback only; /tmp a private tmpfs), as root. Every wait here polls a
real condition with a bounded deadline.
"""
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from cjprocs import children, descendants, form, free_port, http, own_cgroup_dirs  # noqa: E402

BUILD = os.environ.get("CODEJAIL_BUILD", "")
# Keys the code before supervision did not know (it refuses unknown keys):
# CODEJAIL_FAULTS_OLD=1 leaves them out, to see each test fail on that code.
OLD = os.environ.get("CODEJAIL_FAULTS_OLD") == "1"
HELPER_TIMEOUT_S = 2

PR_SET_CHILD_SUBREAPER = 36
# Orphans (a sandbox whose helper died) come back here, where they can be
# counted, rather than to the machine's init.
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def wait_for(what, predicate, seconds):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def state(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1]
    except OSError:
        return None


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def pid_ns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def reap_orphans():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def cgroup_parents(helper_pids):
    """The codejail.<pid>[.n] parents of the given helpers, in every hierarchy."""
    names = re.compile(r"codejail\.(\d+)(\.\d+)?$")
    found = []
    for d in own_cgroup_dirs():
        for entry in os.listdir(d):
            m = names.match(entry)
            if m and int(m.group(1)) in helper_pids:
                found.append(os.path.join(d, entry))
    return found


def mount_count():
    with open("/proc/self/mountinfo") as f:
        return sum(1 for _ in f)


class Daemon:
    def __init__(self, tmp_path, config=None, name="codejaild"):
        self.config = {"helper_timeout": HELPER_TIMEOUT_S, "pool_size": 2}
        self.config.update(config or {})
        if OLD:
            self.config.pop("helper_timeout", None)
        self.path = tmp_path / f"{name}.json"
        self.path.write_text(json.dumps(self.config))
        self.log = tmp_path / f"{name}.log"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.helpers_seen = set()
        env = {k: v for k, v in os.environ.items()
               if k not in ("PORT", "CODEJAIL_PORT", "CODEJAIL_LISTEN", "CODEJAIL_PROFILE",
                            "CODEJAIL_ENABLED")}
        self.proc = subprocess.Popen(
            [f"{BUILD}/codejaild", "--profile", "development", "--listen", "127.0.0.1",
             "--port", str(self.port), "--config", str(self.path)],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self):
        return self.proc.pid

    def helpers(self):
        found = [p for p in children(self.pid) if comm(p).startswith("codejail-sandbo")]
        self.helpers_seen.update(found)
        return found

    def helper(self, lane):
        """The helper of a lane: the pre-import one has numpy mapped."""
        for pid in self.helpers():
            try:
                with open(f"/proc/{pid}/maps") as f:
                    has_numpy = "numpy" in f.read()
            except OSError:
                continue
            if has_numpy == (lane == "preimport"):
                return pid
        pytest.fail(f"no {lane} helper among {self.helpers()}")

    def health(self):
        status, body = http("GET", self.base + "/health/", timeout=10)
        return status, json.loads(body)

    def metrics(self):
        status, body = http("GET", self.base + "/metrics", timeout=10)
        assert status == 200
        return body.decode()

    def metric(self, name, environment="default", **labels):
        """A series; of an environment unless environment is None."""
        if environment:
            labels = {"environment": environment, **labels}
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pattern = re.escape(name + (f"{{{want}}}" if want else "")) + r" (\S+)"
        m = re.search("^" + pattern + "$", self.metrics(), re.M)
        return float(m.group(1)) if m else None

    def wait_ready(self, seconds=90):
        def ready():
            if self.proc.poll() is not None:
                pytest.fail(f"codejaild exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                return self.health()[0] == 200
            except OSError:
                return False
        wait_for("/health/ answers 200", ready, seconds)
        self.helpers()

    def pool_full(self):
        """Every lane's pool holds its sandboxes (descriptors are then steady)."""
        lanes = len(self.helpers())
        want = self.config.get("pool_size", 2) * lanes
        return self.metric("codejail_pool_ready") == want

    def fds(self):
        found = {}
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                found[int(fd)] = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except OSError:
                pass
        return found

    def fd_count(self):
        return len(self.fds())

    def execute(self, code, globals_dict=None, timeout=60, context=None):
        payload = {"code": code, "globals_dict": globals_dict or {}}
        if context:
            payload["limit_overrides_context"] = context
        body, headers = form(payload)
        return http("POST", self.base + "/api/v0/code-exec", body, headers, timeout=timeout)

    def tail(self, n=40):
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if '"/health' not in line)[-8000:]

    def stop(self):
        """SIGTERM: exits 0, and nothing of it is left."""
        self.helpers()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.tail()
        assert_nothing_left(self)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)


def no_process_left():
    reap_orphans()
    return not [p for p in descendants(os.getpid()) if state(p) not in (None, "Z")]


def assert_nothing_left(daemon, baseline=None):
    wait_for("no process of the daemon is left", no_process_left, 30)
    assert cgroup_parents(daemon.helpers_seen) == []
    if baseline:
        assert mount_count() == baseline["mounts"]


def executes(daemon, code="x = x + 1", seconds=30):
    """Requests succeed again within a bounded time."""
    def ok():
        status, body = daemon.execute(code, {"x": 16})
        return status == 200 and json.loads(body).get("globals_dict", {}).get("x") == 17
    wait_for(f"{code!r} runs again", ok, seconds)


def killed_answer(status, body):
    """What a killed execution gets: 200, emsg with status -9."""
    assert status == 200, f"HTTP {status}: {body[:500]!r}"
    answer = json.loads(body)
    assert "status code: -9" in answer.get("emsg", ""), answer


@pytest.fixture
def baseline():
    # Run directories are not compared: these daemons make them in each
    # sandbox's own tmpfs, and other tests on the machine come and go in /tmp.
    return {"mounts": mount_count()}


@pytest.fixture
def daemon(tmp_path, baseline):
    started = []

    def start(config=None, name="codejaild", ready=True):
        d = Daemon(tmp_path, config, name)
        started.append(d)
        if ready:
            d.wait_ready()
        return d
    yield start
    for d in started:
        if d.proc.poll() is None:
            d.kill()
