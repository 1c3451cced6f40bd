"""Two sandbox environments side by side, chosen by the course, and reloaded
(SIGHUP) under load without losing a request.

"next" is built by `make environment NAME=next FROM=tests/environments/next`:
the default's packages plus PyYAML, which only it has. CODEJAIL_NEXT_ENV_DIR
names it.
"""
import json
import os
import signal
import threading

import pytest

from conftest import HELPER_TIMEOUT_S, wait_for

NEXT_ENV_DIR = os.environ.get("CODEJAIL_NEXT_ENV_DIR", "")
pytestmark = pytest.mark.skipif(not os.path.isdir(NEXT_ENV_DIR),
                                reason="CODEJAIL_NEXT_ENV_DIR is not a built environment")

NEXT_COURSE = "course-v1:NextX+Physics+2026"
DEFAULT_COURSE = "course-v1:OldX+Physics+2026"

# Where the code ran: only "next" has yaml.
WHERE = """
try:
    import yaml
    where = "next" if yaml.safe_load("a: 1") == {"a": 1} else "broken"
except ImportError:
    where = "default"
"""
# Long enough to be running while a reload swaps the environments.
SLOW_WHERE = "import time\ntime.sleep(0.3)\n" + WHERE


def two_environments(pool_size=1, warm=True):
    return {
        "environments": {"next": {"env_dir": NEXT_ENV_DIR, "pool_size": pool_size,
                                  "warm": warm}},
        "context_environments": {"course-v1:NextX+*": "next"},
    }


def where(daemon, context, code=WHERE):
    status, body = daemon.execute(code, context=context)
    assert status == 200, body[:500]
    answer = json.loads(body)
    assert "emsg" not in answer, answer["emsg"]
    return answer["globals_dict"]["where"]


def test_course_chooses_environment(daemon):
    d = daemon(two_environments())
    assert where(d, NEXT_COURSE) == "next"
    assert where(d, DEFAULT_COURSE) == "default"
    assert where(d, None) == "default"
    # The LMS's own modules are in both.
    for course in (NEXT_COURSE, DEFAULT_COURSE):
        status, body = d.execute("import calc\nx = calc.evaluator({}, {}, '1+2')", context=course)
        assert json.loads(body)["globals_dict"]["x"] == 3, body[:500]

    status, health = d.health()
    assert status == 200
    assert health["status"] == "OK"
    assert set(health["environments"]) == {"default", "next"}
    assert all(e["status"] == "OK" for e in health["environments"].values())
    assert d.metric("codejail_selfcheck_ok", environment="next") == 1
    assert d.metric("codejail_environment_ready", environment="next") == 1
    assert d.metric("codejail_module_importable", environment="next", module="chem.chemcalc",
                    required="false") == 1
    logged = [json.loads(line) for line in d.log.read_text().splitlines()
              if '"event": "request"' in line and '"/api/v0/code-exec"' in line]
    assert {(r["limit_overrides_context"], r["environment"]) for r in logged} >= {
        (NEXT_COURSE, "next"), (DEFAULT_COURSE, "default"), (None, "default")}
    d.stop()


class Load:
    """Clients sending requests for both courses until stopped; every answer
    is kept."""

    def __init__(self, daemon, clients=3):
        self.daemon = daemon
        self.stopping = threading.Event()
        self.answers = []
        self.failures = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(clients)]

    def client(self, i):
        n = 0
        while not self.stopping.is_set():
            course = NEXT_COURSE if (i + n) % 2 == 0 else DEFAULT_COURSE
            code = SLOW_WHERE if n % 3 == 0 else WHERE
            n += 1
            try:
                status, body = self.daemon.execute(code, context=course)
                answer = json.loads(body)
                result = answer.get("globals_dict", {}).get("where")
                ok = status == 200 and "emsg" not in answer and result in ("next", "default")
            except Exception as exc:  # a dropped connection is a lost request too
                status, answer, ok, result = None, repr(exc), False, None
            with self.lock:
                (self.answers if ok else self.failures).append((course, status, result, answer))

    def count(self):
        with self.lock:
            return len(self.answers)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=120)


def reload(d, config):
    applied = d.metric("codejail_config_reloads_total", environment=None, result="applied")
    d.path.write_text(json.dumps({**d.config, **config}))
    d.proc.send_signal(signal.SIGHUP)
    wait_for("the reload is applied",
             lambda: d.metric("codejail_config_reloads_total", environment=None,
                              result="applied") == applied + 1, 120)


def routed_to(load, course, environment, since):
    """Some request for course, sent after `since` answers, went to environment."""
    with load.lock:
        return any(c == course and r == environment for c, _, r, _ in load.answers[since:])


def test_reload_under_load_loses_nothing(daemon):
    d = daemon({})
    helpers_before = len(d.helpers())
    with Load(d) as load:
        wait_for("load is flowing", lambda: load.count() >= 6, 60)

        # Added: the course moves to "next".
        reload(d, two_environments())
        mark = load.count()
        wait_for("the course runs in next",
                 lambda: routed_to(load, NEXT_COURSE, "next", mark), 60)

        # Changed: a new "next" starts, the old one drains and stops.
        reload(d, two_environments(pool_size=2, warm=False))
        mark = load.count()
        wait_for("the changed next serves", lambda: routed_to(load, NEXT_COURSE, "next", mark), 60)
        wait_for("the old next stopped",
                 lambda: '"environment_stopped", "environment": "next"' in d.log.read_text(), 60)

        # Removed: the course is back on default.
        reload(d, {})
        mark = load.count()
        wait_for("the course runs in default again",
                 lambda: routed_to(load, NEXT_COURSE, "default", mark + 6), 60)
    assert load.failures == [], load.failures[:5]
    assert load.count() > 20
    # Only the default's helpers are left.
    wait_for("next's helpers are gone", lambda: len(d.helpers()) == helpers_before,
             HELPER_TIMEOUT_S * 10)
    d.stop()


def test_refused_reload_changes_nothing(daemon, tmp_path):
    d = daemon(two_environments())
    bad = {"environments": {"next": {"env_dir": str(tmp_path / "missing")}},
           "context_environments": {"course-v1:NextX+*": "next"}}
    for config_text in (json.dumps({**d.config, **bad}), "{not json"):
        refused = d.metric("codejail_config_reloads_total", environment=None, result="refused")
        d.path.write_text(config_text)
        d.proc.send_signal(signal.SIGHUP)
        wait_for("the reload is refused",
                 lambda: d.metric("codejail_config_reloads_total", environment=None,
                                  result="refused") == refused + 1, 120)
        assert where(d, NEXT_COURSE) == "next"
        status, health = d.health()
        assert status == 200 and health["reload"]["error"], health["reload"]
    d.stop()


def test_failed_environment_refuses_only_its_courses(daemon, tmp_path):
    """At start there is nothing to fall back to: an environment that does
    not start is kept, its courses are refused as unsafe, and readiness says
    so; the default's courses still run."""
    config = two_environments()
    config["environments"]["next"]["env_dir"] = str(tmp_path / "missing")
    d = daemon(config, ready=False)

    def answers():
        try:
            return d.health()
        except OSError:  # not listening yet
            return None
    status, health = wait_for("health answers", answers, 90)
    assert status == 503
    assert health["environments"]["next"]["status"] == "UNAVAILABLE"
    assert health["environments"]["default"]["status"] == "OK"
    status, body = d.execute(WHERE, context=NEXT_COURSE)
    assert status == 500
    assert json.loads(body) == {"error": "Codejail service is not correctly configured"}
    assert where(d, DEFAULT_COURSE) == "default"
    d.stop()
