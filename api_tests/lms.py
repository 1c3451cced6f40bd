"""Requests as the LMS and CMS send them: capa's prolog around the course
code, then send_safe_exec_request_v0's form (see fixtures/capa/README.md).

Also a plain-Python runner for comparison: the same wrapped code executed
outside any sandbox, with the same packages, the way codejail's runner
executes it (exec, then the JSON-safe globals)."""
import json
import os
import subprocess
import tempfile
from pathlib import Path

import requests

from cjapi import EXEC_PATH, TIME_SCALE, url

FIXTURES = Path(__file__).parent / "fixtures" / "capa"
CODE_PROLOG = (FIXTURES / "code_prolog.txt").read_text(encoding="utf-8")
LAZY_IMPORTS = (FIXTURES / "lazymod.py").read_text(encoding="utf-8") + "".join(
    f"{name} = LazyModule('{module}')\n"
    for name, module in (line.split() for line in
                         (FIXTURES / "assumed_imports.txt").read_text().splitlines() if line))

# The platform's CODE_JAIL_REST_SERVICE_CONNECT_TIMEOUT and _READ_TIMEOUT
# (the read timeout can be raised for a service that goes with a limit
# context above the platform's limits: CODEJAIL_API_TESTS_LMS_CONTEXT; both
# are scaled with the service's limits under emulation).
READ_TIMEOUT = float(os.environ.get("CODEJAIL_API_TESTS_LMS_READ_TIMEOUT") or 3.5)
PLATFORM_TIMEOUT = (0.5 * TIME_SCALE, READ_TIMEOUT * TIME_SCALE)

# Set by tests/run-api-tests.sh: sys.path entries that give /usr/bin/python3
# the sandbox's pip-installed packages, for the plain-Python comparison
# (unset against a deployment: the comparison is skipped, the checks stay).
PLAIN_PYTHONPATH = os.environ.get("CODEJAIL_API_TESTS_PLAIN_PYTHONPATH")


def wrap(code, seed=1):
    """What capa's safe_exec sends as `code`."""
    return CODE_PROLOG % seed + LAZY_IMPORTS + code


def send(code, globals_dict, seed=1, python_lib=None, python_path=None, context=None,
         slug="i4x://MITx/6.002x/problem/lms_test", timeout=PLATFORM_TIMEOUT):
    """send_safe_exec_request_v0: files only when there is a python_lib.zip,
    so requests urlencodes the form otherwise, exactly as the platform does."""
    extra_files = [("python_lib.zip", python_lib)] if python_lib is not None else []
    payload = json.dumps({
        "code": wrap(code, seed), "globals_dict": globals_dict, "python_path": python_path,
        "limit_overrides_context": context, "slug": slug, "unsafely": False,
    })
    return requests.post(url(EXEC_PATH), files=extra_files, data={"payload": payload},
                         timeout=timeout)


RUNNER = r"""
import json, sys
SAFE = (type(None), int, float, bytes, str, list, tuple, dict)
def dec(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, (list, tuple)):
        return [dec(i) for i in v]
    if isinstance(v, dict):
        return {dec(k): dec(i) for k, i in v.items()}
    return v
sys.path[1:1] = sys.argv[1].split(":")
code, g, path = json.load(sys.stdin)
sys.path.extend(path)
try:
    exec(code, g)
except BaseException as e:
    json.dump({"raised": type(e).__name__}, sys.stdout)
    sys.exit(0)
out = {}
for k, v in g.items():
    if k == "__builtins__" or not isinstance(v, SAFE):
        continue
    try:
        out[k] = json.loads(json.dumps(dec(v)))
    except Exception:
        pass
json.dump({"globals": out}, sys.stdout)
"""


def run_plain(code, globals_dict, seed=1, python_lib=None, python_path=None):
    """{"globals": ...} or {"raised": "ExceptionName"} from plain Python, or
    None when the comparison is not configured."""
    if PLAIN_PYTHONPATH is None:
        return None
    with tempfile.TemporaryDirectory(prefix="cjplain-") as work:
        os.mkdir(os.path.join(work, "tmp"))
        if python_lib is not None:
            Path(work, "python_lib.zip").write_bytes(python_lib)
        env = {"PATH": "/usr/bin:/bin", "HOME": work, "MPLBACKEND": "Agg"}
        done = subprocess.run(
            ["/usr/bin/python3", "-I", "-B", "-c", RUNNER, PLAIN_PYTHONPATH], cwd=work, env=env,
            check=True,
            input=json.dumps([wrap(code, seed), globals_dict, python_path or []]),
            capture_output=True, text=True, timeout=60 * TIME_SCALE)
    return json.loads(done.stdout)
