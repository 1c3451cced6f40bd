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

from conftest import descendants, wait_for

NEXT_ENV_DIR = os.environ.get("CODEJAIL_NEXT_ENV_DIR", "")
pytestmark = pytest.mark.skipif(not NEXT_ENV_DIR, reason="CODEJAIL_NEXT_ENV_DIR is not set")
# Generous limits and helper deadline: these tests count every answer that is
# not a success as lost, and a reload starts whole environments on a busy host.
PATIENT = {"helper_timeout": 10, "limits": {"CPU": 5, "REALTIME": 30}}


@pytest.fixture(autouse=True)
def next_env_built():
    assert os.path.isdir(os.path.join(NEXT_ENV_DIR, "usr")), \
        f"CODEJAIL_NEXT_ENV_DIR={NEXT_ENV_DIR} is not a built environment"

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
# Whether the interpreter had yaml before the code (a pre-import), which
# tells two generations of "next" apart.
PRELOADED = "import sys\npreloaded = 'yaml' in sys.modules\n"


def two_environments(preimport=None):
    next_env = {"env_dir": NEXT_ENV_DIR, "pool_size": 1}
    if preimport:
        next_env["preimport"] = preimport
    return {
        **PATIENT,
        "environments": {"next": next_env},
        "context_environments": {"course-v1:NextX+*": "next"},
    }


def uid(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None


def sandbox_uids(helper):
    """The outer ids of a helper's pooled sandboxes (its launchers run as root)."""
    return {u for u in map(uid, descendants(helper)) if u not in (None, 0)}


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
    # Four helpers (two lanes in each environment), each with outer ids of its
    # own: no id is shared by sandboxes of two lanes or two environments.
    if os.geteuid() == 0:
        helpers = wait_for("four helpers", lambda: len(d.helpers()) == 4 and d.helpers(), 60)
        uids = wait_for("every helper has a pooled sandbox",
                        lambda: all(map(sandbox_uids, helpers)) and
                        [sandbox_uids(h) for h in helpers], 60)
        for i, mine in enumerate(uids):
            for theirs in uids[i + 1:]:
                assert not mine & theirs, uids
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


def log_events(d, event, environment):
    return [json.loads(line) for line in d.log.read_text().splitlines()
            if f'"event": "{event}"' in line and f'"environment": "{environment}"' in line]


def test_reload_under_load_loses_nothing(daemon):
    d = daemon(PATIENT)
    helpers_before = len(d.helpers())
    with Load(d) as load:
        wait_for("load is flowing", lambda: load.count() >= 6, 60)

        # Added: the course moves to "next".
        reload(d, two_environments())
        mark = load.count()
        wait_for("the course runs in next",
                 lambda: routed_to(load, NEXT_COURSE, "next", mark), 60)

        # Changed: a new "next" (yaml pre-imported) starts while a long
        # request runs in the old one (yaml not pre-imported), which drains:
        # the request is answered from the old "next", and only then does
        # the old one stop. The request is sent at once; the switch comes
        # only once the new environment has started and passed its check.
        long_answer = []
        long_request = threading.Thread(target=lambda: long_answer.append(
            d.execute(PRELOADED + "import time\ntime.sleep(12)\n" + WHERE, context=NEXT_COURSE)))
        long_request.start()
        reload(d, two_environments(preimport="yaml"))
        assert long_request.is_alive(), "the reload outlasted the long request: nothing drained"
        assert log_events(d, "environment_stopped", "next") == []
        long_request.join(timeout=60)
        status, body = long_answer[0]
        globals_dict = json.loads(body)["globals_dict"]
        assert status == 200 and globals_dict["where"] == "next", body[:500]
        assert globals_dict["preloaded"] is False, "the long request ran in the new next"
        wait_for("the old next stopped", lambda: log_events(d, "environment_stopped", "next"), 60)
        assert len(log_events(d, "environment_started", "next")) == 2
        status, body = d.execute(PRELOADED + WHERE, context=NEXT_COURSE)
        assert json.loads(body)["globals_dict"] == {"preloaded": True, "where": "next"}, body[:500]

        # Removed: the course is back on default.
        reload(d, PATIENT)
        mark = load.count()
        wait_for("the course runs in default again",
                 lambda: routed_to(load, NEXT_COURSE, "default", mark + 6), 60)
    assert load.failures == [], load.failures[:5]
    assert load.count() > 20
    # Only the default's helpers are left.
    wait_for("next's helpers are gone", lambda: len(d.helpers()) == helpers_before, 60)
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
    not start is kept, its courses are refused as unsafe, health and metrics
    say so, and the default's courses still run."""
    config = two_environments()
    config["environments"]["next"]["env_dir"] = str(tmp_path / "missing")
    d = daemon(config, ready=False)

    def answers():
        try:
            return d.health()
        except OSError:  # not listening yet
            return None
    # The default environment alone decides readiness.
    status, health = wait_for("health answers 200", lambda: (answers() or [0])[0] == 200 and
                              answers(), 90)
    assert health["status"] == "OK"
    assert health["environments"]["next"]["status"] == "UNAVAILABLE"
    assert health["environments"]["default"]["status"] == "OK"
    assert health["unavailable_environments"] == ["next"]
    assert d.metric("codejail_environment_ready", environment="next") == 0
    status, body = d.execute(WHERE, context=NEXT_COURSE)
    assert status == 500
    assert json.loads(body) == {"error": "Codejail service is not correctly configured"}
    assert where(d, DEFAULT_COURSE) == "default"
    d.stop()
