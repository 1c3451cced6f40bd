"""Runs code through the real sandbox with the `codejail run` CLI of the build
in $CODEJAIL_BUILD. Every test runs cold (a fresh interpreter per sandbox) and
warm (sandboxes forked from one started interpreter)."""
import ast
import json
import os
import re
import subprocess
import tempfile
import time

import pytest

BUILD = os.environ.get("CODEJAIL_BUILD", "")
CLI = os.path.join(BUILD, "codejail")


def _testing_build():
    probe = subprocess.run(
        [CLI, "run", "--without", "apparmor", "-"], input=b"", capture_output=True
    )
    return probe.returncode == 0


TESTING_BUILD = bool(BUILD) and _testing_build()


def _host_layers():
    """Each layer's state and detail on this host, as `codejail check` says."""
    proc = subprocess.run([CLI, "check", "--json"], capture_output=True, env={})
    return json.loads(proc.stdout)["layers"]


HOST_LAYERS = _host_layers() if BUILD else {}
# Where the kernel has AppArmor and the profile is loaded, it refuses disk,
# network and exec rows on its own (apparmor/codejail-sandbox).
APPARMOR = HOST_LAYERS.get("apparmor", {}).get("state") == "active"
_abi = re.match(r"ABI (\d+)", HOST_LAYERS.get("landlock", {}).get("detail", ""))
LANDLOCK_ABI = int(_abi.group(1)) if _abi else 0


EMSG = re.compile(r"Couldn't execute jailed code: stdout: (?P<stdout>b'.*'|b\".*\"), "
                  r"stderr: (?P<stderr>b'.*'|b\".*\") with status code: (?P<status>-?\d+)", re.S)


class Outcome:
    def __init__(self, answer, seconds):
        self.answer = answer
        self.seconds = seconds
        self.globals = answer["globals_dict"]
        self.emsg = answer.get("emsg")

    @property
    def ok(self):
        return self.emsg is None

    def _parts(self):
        match = EMSG.fullmatch(self.emsg or "")
        assert match, f"emsg not in the API's format: {self.emsg!r}"
        return match

    @property
    def stderr(self):
        """The sandbox's stderr, decoded from the bytes repr inside emsg."""
        return ast.literal_eval(self._parts()["stderr"]).decode("utf-8", "replace")

    @property
    def status(self):
        return int(self._parts()["status"])

    def __repr__(self):
        return f"Outcome({self.answer!r})"


# Under emulation (make vm-test) code runs many times slower: CPU and
# REALTIME limits, the service's defaults included (README, Resource
# limits), are multiplied by this factor. Only tests scale; the product never.
TIME_SCALE = int(os.environ.get("CODEJAIL_TEST_TIME_SCALE", "1"))
TIME_LIMITS = {"CPU": 1, "REALTIME": 3}


def scaled_limits(limits):
    if TIME_SCALE == 1:
        return list(limits)
    given = dict(limit.split("=", 1) for limit in limits)
    for name, default in TIME_LIMITS.items():
        given[name] = str(int(given.get(name, default)) * TIME_SCALE)
    return [f"{name}={value}" for name, value in given.items()]


def run_code(code, globals_=None, files=(), python_path=(), limits=(), without=(), warm=False,
             env=None, timeout=60):
    args = [CLI, "run"]
    if warm:
        args.append("--warm")
    if globals_ is not None:
        text = globals_ if isinstance(globals_, str) else json.dumps(globals_)
        if len(text) > 65536:
            path = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
            with path:
                path.write(text)
            args += ["--globals-file", path.name]
        else:
            args += ["--globals", text]
    for name, path in files:
        args += ["--file", f"{name}={path}"]
    for entry in python_path:
        args += ["--python-path", entry]
    for limit in scaled_limits(limits):
        args += ["--limit", limit]
    for layer in without:
        args += ["--without", layer]
    args.append("-")
    data = code if isinstance(code, bytes) else code.encode()
    start = time.monotonic()
    proc = subprocess.run(args, input=data, capture_output=True, timeout=timeout * TIME_SCALE,
                          env=env or {})
    seconds = time.monotonic() - start
    assert proc.returncode == 0, f"codejail run failed ({proc.returncode}): {proc.stderr!r}"
    return Outcome(json.loads(proc.stdout), seconds)


@pytest.fixture(params=["cold", "warm"])
def run(request):
    warm = request.param == "warm"

    def runner(code, **kwargs):
        kwargs.setdefault("warm", warm)
        return run_code(code, **kwargs)

    return runner


def pytest_collection_modifyitems(config, items):
    if not BUILD:
        raise pytest.UsageError("set CODEJAIL_BUILD to a build directory")
