"""The service around the sandbox: health, metrics, uploads, concurrency,
single use, and resource limits selected by limit_overrides_context."""
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from cjapi import (EXEC_PATH, JSON_TYPE, OVERRIDE_CONTEXT, TIME_SCALE, TIMEOUT, body_json,
                   build_payload, content_type, expect_ok, post_payload, python_lib_zip, run, url,
                   Outcome)

# --- health -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health/", "/health"])
def test_support_health(path):
    resp = requests.get(url(path), timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text[:2000]
    assert content_type(resp) == JSON_TYPE
    body = body_json(resp)
    assert body["status"] == "OK", body


# --- metrics ------------------------------------------------------------------

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{.*\})?[ \t]+(?P<value>\S+)([ \t]+-?\d+)?$')


def scrape():
    resp = requests.get(url("/metrics"), timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text[:2000]
    assert (content_type(resp) or "").startswith("text/plain"), content_type(resp)
    types, samples = {}, []
    for line in resp.text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text format: {line!r}"
        samples.append((match["name"], match["labels"] or "", float(match["value"])))
    return types, samples


def request_counter_total(types, samples):
    families = {name for name, kind in types.items() if kind == "counter" and "request" in name}
    assert families, f"no request counter among {sorted(types)}"
    return sum(value for name, _, value in samples
               if name in families or (name.endswith("_total") and name[:-6] in families))


def test_support_metrics_count_requests():
    before = request_counter_total(*scrape())
    expect_ok(run("x = 1"))
    expect_ok(run("x = 2"))
    after = request_counter_total(*scrape())
    assert after >= before + 2, (before, after)


# --- python_lib.zip -----------------------------------------------------------

COURSE_LIB = python_lib_zip({
    "helper_mod.py": "def answer():\n    return 42\n",
    "course_pkg/__init__.py": "",
    "course_pkg/grading.py": "VALUE = 'graded'\n",
})


def test_support_python_lib_zip_importable():
    code = "import helper_mod\nfrom course_pkg import grading\nx = helper_mod.answer()\ny = grading.VALUE"
    g = expect_ok(run(code, files={"python_lib.zip": COURSE_LIB}, python_path=["python_lib.zip"]))
    assert (g["x"], g["y"]) == (42, "graded")


def test_support_python_lib_zip_as_edx_platform_sends_it():
    """send_safe_exec_request_v0: data={'payload': json.dumps(data)},
    files=[('python_lib.zip', bytes)], the payload with every key."""
    payload = build_payload("import helper_mod\nx = helper_mod.answer() + n", {"n": 1},
                            python_path=["python_lib.zip"], slug="problem-1", unsafely=False)
    resp = requests.post(url(EXEC_PATH), files=[("python_lib.zip", COURSE_LIB)],
                         data={"payload": payload}, timeout=TIMEOUT)
    assert Outcome(resp, 0).globals == {"n": 1, "x": 43}


def test_support_python_lib_zip_not_on_path_without_python_path():
    outcome = run("import helper_mod", files={"python_lib.zip": COURSE_LIB})
    assert outcome.error_line == "ModuleNotFoundError: No module named 'helper_mod'", outcome.emsg


# --- concurrency ----------------------------------------------------------------

def test_support_parallel_requests_without_cross_talk():
    """20 at once, each with its own globals (and some with their own zip):
    every answer belongs to its request. The default queue (64) must not
    overflow into 503s for 20."""
    run_id = uuid.uuid4().hex
    code = ("import os, time\ntime.sleep(0.3)\ny = x * 2\ntag = tag + '-done'\n"
            "with open('tmp/mine', 'w') as f:\n    f.write(tag)\nwith open('tmp/mine') as f:\n    back = f.read()\n"
            "files = sorted(os.listdir('tmp'))\n"
            "if os.path.exists('python_lib.zip'):\n"
            "    import mod\n    from_zip = mod.VALUE\n")

    def one(i):
        globals_dict = {"x": i, "tag": f"req-{i}-{run_id}"}
        if i % 4 == 0:
            zip_bytes = python_lib_zip({"mod.py": f"VALUE = {i}\n"})
            return i, run(code, globals_dict, files={"python_lib.zip": zip_bytes},
                          python_path=["python_lib.zip"])
        return i, run(code, globals_dict, encoding="urlencoded" if i % 2 else "multipart")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    for i, outcome in results:
        tag = f"req-{i}-{run_id}-done"
        expected = {"x": i, "y": 2 * i, "tag": tag, "back": tag, "files": ["mine"]}
        if i % 4 == 0:
            expected["from_zip"] = i
        assert outcome.globals == expected, f"request {i}: {outcome}"


# --- single use -------------------------------------------------------------------

def test_deny_state_survives_between_requests():
    """A later request sees nothing of an earlier one: files, modules,
    environment, interpreter state, the uploaded zip, the run directory."""
    first = expect_ok(run(
        "import builtins, json, os, sys\njson.cj_marker = 1\nbuiltins.cj_marker = 1\n"
        "os.environ['CJ_MARKER'] = '1'\nsys.modules['cj_marker'] = json\nsys.path.append('/cj-marker')\n"
        "open('tmp/cj_marker', 'w').write('x')\nimport helper_mod\ncwd = os.getcwd()",
        files={"python_lib.zip": COURSE_LIB}, python_path=["python_lib.zip"]))
    check = ("import builtins, json, os, sys\n"
             "seen = [hasattr(json, 'cj_marker'), hasattr(builtins, 'cj_marker'), 'CJ_MARKER' in os.environ,\n"
             "        'cj_marker' in sys.modules, 'helper_mod' in sys.modules, '/cj-marker' in sys.path,\n"
             "        'python_lib.zip' in sys.path, os.listdir('tmp'), sorted(os.listdir('.'))]\n"
             "cwd = os.getcwd()")
    for _ in range(4):  # several, in case the service keeps a pool
        g = expect_ok(run(check))
        assert g["seen"] == [False, False, False, False, False, False, False, [], ["jailed_code", "tmp"]]
        assert g["cwd"] != first["cwd"], "run directory reused"


# --- limits -----------------------------------------------------------------------

needs_override = pytest.mark.skipif(
    not OVERRIDE_CONTEXT,
    reason="no limit override configured: set CODEJAIL_API_TESTS_OVERRIDE_CONTEXT to a "
           "limit_overrides context with REALTIME >= 10 and CPU >= 5 on a service whose default "
           "REALTIME <= 3 and CPU <= 1 (tests/run-api-tests.sh does)")

SLEEP_4 = f"import time\ntime.sleep({4 * TIME_SCALE})\nslept = True"
CPU_2 = f"import time\nwhile time.process_time() < {2 * TIME_SCALE}:\n    pass\nspun = True"


@needs_override
def test_deny_sleep_past_default_realtime_is_killed():
    outcome = run(SLEEP_4, {"a": 1})
    assert outcome.status == -9, outcome.emsg
    assert outcome.globals == {"a": 1}


@needs_override
def test_support_override_context_raises_realtime():
    g = expect_ok(run(SLEEP_4, {"a": 1}, limit_overrides_context=OVERRIDE_CONTEXT))
    assert g == {"a": 1, "slept": True}


@needs_override
def test_support_unknown_override_context_uses_defaults():
    outcome = run(SLEEP_4, limit_overrides_context=f"no-such-context-{uuid.uuid4().hex}")
    assert outcome.status == -9, outcome.emsg


@needs_override
def test_deny_cpu_past_default_limit():
    assert run(CPU_2).status == -24


@needs_override
def test_support_override_context_raises_cpu():
    assert expect_ok(run(CPU_2, limit_overrides_context=OVERRIDE_CONTEXT)) == {"spun": True}


def test_support_null_override_context_uses_defaults():
    outcome = Outcome(post_payload(build_payload("x = 1", {}, limit_overrides_context=None)), 0)
    assert outcome.globals == {"x": 1}
