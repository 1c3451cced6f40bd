"""Every row of API.md's allowed/denied table, the globals and emsg
semantics, bad input, and single use, through the real sandbox."""
import io
import json
import math
import os
import zipfile

import pytest

from conftest import APPARMOR, EMSG, LANDLOCK_ABI, TESTING_BUILD, TIME_SCALE, run_code
from rows import ONLY_LAYER, ROWS, Row

LAYERS = ["userns", "mountns", "pidns", "netns", "seccomp", "landlock", "apparmor", "rlimits",
          "cgroups"]


# --- denied ---------------------------------------------------------------

@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_deny_row(run, row: Row):
    outcome = run(row.code, limits=row.limits)
    assert not outcome.ok, f"{row.name} was allowed: {outcome}"
    assert row.error in outcome.stderr


def test_deny_sleep_ignoring_signals_is_killed(run):
    code = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"signal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep({30 * TIME_SCALE})")
    outcome = run(code, limits=["REALTIME=2"])
    assert outcome.status == -9
    assert outcome.seconds < 15 * TIME_SCALE


def test_deny_cpu_hog_gets_sigxcpu(run):
    outcome = run("while True:\n    pass", limits=["CPU=1", "REALTIME=10"])
    assert outcome.status == -24


def test_deny_nothing_leaks_between_runs_warm():
    # The second sandbox is forked from the same started interpreter as the
    # first: nothing the first did may be visible to it.
    first = run_code("import json, os, sys\njson.marker = 1\nos.environ['MARK'] = '1'\n"
                     "sys.modules['marker'] = json\nopen('tmp/marker', 'w').write('x')",
                     warm=True)
    assert first.ok, first
    second = run_code("import json, os, sys\nseen = [hasattr(json, 'marker'), 'MARK' in os.environ,"
                      " 'marker' in sys.modules, os.listdir('tmp')]", warm=True)
    assert second.globals["seen"] == [False, False, False, []]


# --- allowed --------------------------------------------------------------

def test_allow_read_and_list_run_directory(run):
    outcome = run("import os\nnames = sorted(os.listdir('.'))\nhead = open('jailed_code').read(10)")
    assert outcome.ok, outcome
    assert outcome.globals["names"] == ["jailed_code", "tmp"]


def test_allow_run_directory_path(run):
    outcome = run("import os\ncwd = os.getcwd()")
    assert outcome.globals["cwd"].startswith("/tmp/codejail-")


def test_allow_write_and_delete_in_tmp(run):
    code = ("import os\nos.mkdir('tmp/d')\nwith open('tmp/d/f', 'w') as f:\n    f.write('hello')\n"
            "back = open('tmp/d/f').read()\nos.remove('tmp/d/f')\nos.rmdir('tmp/d')\n"
            "left = os.listdir('tmp')")
    outcome = run(code)
    assert outcome.globals["back"] == "hello" and outcome.globals["left"] == []


def test_allow_unix_socket_in_tmp(run):
    outcome = run("import socket\ns = socket.socket(socket.AF_UNIX)\ns.bind('tmp/sock')\n"
                  "s.listen(1)\nname = s.getsockname()")
    assert outcome.ok, outcome
    assert outcome.globals["name"] == "tmp/sock"


def test_allow_python_lib_zip(run, tmp_path):
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as z:
        z.writestr("helper_mod.py", "def answer():\n    return 42\n")
    path = tmp_path / "python_lib.zip"
    path.write_bytes(data.getvalue())
    outcome = run("import helper_mod\nx = helper_mod.answer()\nsize = len(open('python_lib.zip', 'rb').read())",
                  files=[("python_lib.zip", str(path))], python_path=["python_lib.zip"])
    assert outcome.ok, outcome
    assert outcome.globals["x"] == 42 and outcome.globals["size"] == len(data.getvalue())


@pytest.mark.parametrize("module", ["numpy", "scipy", "sympy", "networkx", "matplotlib", "lxml.etree",
                                    "six"])
def test_allow_import(run, module):
    outcome = run(f"import {module}\nname = {module}.__name__")
    assert outcome.ok, outcome


def test_allow_numpy_compute(run):
    outcome = run("import os\nos.environ['OPENBLAS_NUM_THREADS'] = '1'\nimport numpy as np\n"
                  "x = int(np.arange(10).sum())\ny = float(np.linalg.inv([[2.0]])[0][0])")
    assert outcome.globals == {"x": 45, "y": 0.5}


def test_allow_matplotlib_plot_in_tmp(run):
    code = ("import os\nos.environ['TMPDIR'] = 'tmp'\nimport matplotlib\nmatplotlib.use('Agg')\n"
            "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.savefig('tmp/plot.png')\n"
            "size = os.path.getsize('tmp/plot.png')")
    outcome = run(code, limits=["REALTIME=20", "CPU=10"])
    assert outcome.ok, outcome
    assert outcome.globals["size"] > 1000


def test_allow_read_every_sys_path_entry(run):
    code = ("import os, sys\nlisted = {}\nfor p in sys.path:\n    if os.path.isdir(p):\n"
            "        listed[p] = len(os.listdir(p))")
    outcome = run(code)
    assert outcome.ok, outcome
    assert "/usr/lib/python3.11" in outcome.globals["listed"]


def test_allow_environment_has_path_and_nothing_of_the_service(run):
    outcome = run("import os\nenv = dict(os.environ)",
                  env={"SERVICE_SECRET": "hunter2", "PATH": "/usr/bin"})
    env = outcome.globals["env"]
    assert "PATH" in env
    assert "SERVICE_SECRET" not in env and "hunter2" not in json.dumps(env)


# --- globals and emsg -----------------------------------------------------

def test_support_basic_execution(run):
    assert run("x = x + 1", globals_={"x": 16}).globals == {"x": 17}


def test_support_non_serialisable_globals_are_omitted(run):
    outcome = run("out1 = object()\nout2 = 'hi'")
    assert outcome.globals == {"out2": "hi"}


def test_support_bytes_decoded_and_bad_values_dropped(run):
    code = ("a = b'abc'\nb = [b'x', (1, b'y')]\nc = {'k': b'v'}\nbad = b'\\xff'\n"
            "surrogate = '\\ud800'\nok = 1.5")
    assert run(code).globals == {"a": "abc", "b": ["x", [1, "y"]], "c": {"k": "v"}, "ok": 1.5}


def test_support_nan_and_infinity_round_trip(run):
    outcome = run("out = inn\nneg = -inn2\nbig = inn2", globals_='{"inn": NaN, "inn2": Infinity}')
    g = outcome.globals
    assert math.isnan(g["out"]) and g["big"] == math.inf and g["neg"] == -math.inf


def test_support_exception_keeps_input_globals_and_formats_emsg(run):
    outcome = run("x = 2\n1 / 0", globals_={"x": 1})
    assert outcome.globals == {"x": 1}
    emsg = outcome.emsg
    assert emsg.startswith("Couldn't execute jailed code: stdout: b'', stderr: b'Traceback")
    assert 'File "/tmp/codejail-' in emsg and '/jailed_code", line ' in emsg
    assert "    exec(code, g_dict)\\n" in emsg
    assert 'File "<string>", line 2, in <module>' in emsg
    assert outcome.stderr.endswith("ZeroDivisionError: division by zero\n")
    assert outcome.status == 1


def test_support_exit_status(run):
    assert run("import sys\nsys.exit(3)").status == 3


def test_support_print_goes_nowhere(run):
    outcome = run("print('hello')\nx = 1")
    assert outcome.ok and outcome.globals == {"x": 1}


def test_support_corrupted_stdout(run):
    outcome = run("import os\nos.write(1, b'garbage')")
    assert outcome.emsg == "Sandboxed code produced corrupted stdout."


# --- bad input ------------------------------------------------------------

def test_support_empty_code(run):
    assert run("", globals_={"a": 1}).globals == {"a": 1}


def test_support_non_utf8_code_is_refused_clearly():
    import subprocess
    from conftest import CLI
    proc = subprocess.run([CLI, "run", "-"], input=b"x = '\xff'", capture_output=True, env={})
    assert proc.returncode == 1
    assert b"not valid UTF-8" in proc.stderr


def test_support_megabytes_of_stderr_are_capped(run):
    outcome = run("import sys\nsys.stderr.write('e' * 5_000_000)\nsys.stderr.flush()\nraise SystemExit(2)")
    assert outcome.emsg.endswith("with status code: 2")
    assert len(outcome.emsg) < 300_000


def test_support_stdout_flood_is_stopped(run):
    outcome = run("import os\nwhile True:\n    os.write(1, b'x' * 65536)", limits=["REALTIME=20"])
    assert outcome.emsg.endswith("with status code: -9")
    assert outcome.seconds < 15 * TIME_SCALE
    assert len(outcome.emsg) < 300_000


def test_support_huge_globals(run):
    big = "y" * 5_000_000
    outcome = run("n = len(s)", globals_={"s": big}, limits=["REALTIME=20"])
    assert outcome.globals["n"] == 5_000_000 and outcome.globals["s"] == big


def test_support_python_lib_zip_that_is_not_a_zip(run, tmp_path):
    path = tmp_path / "python_lib.zip"
    path.write_bytes(b"this is not a zip file")
    outcome = run("import helper_mod", files=[("python_lib.zip", str(path))],
                  python_path=["python_lib.zip"])
    assert "ModuleNotFoundError: No module named 'helper_mod'" in outcome.stderr


# --- layer ablation (testing builds) -------------------------------------

ablation = pytest.mark.skipif(not TESTING_BUILD, reason="layer switches exist in testing builds only")


def expectation(row: Row, layer):
    """What the row gives on this host with `layer` off: other code to run
    (None: the row's own) and the error it must give, or ONLY_LAYER."""
    if layer != "apparmor" and APPARMOR and row.apparmor:
        return None, row.error
    if layer != "landlock" and row.tcp and LANDLOCK_ABI >= 4:
        return None, row.error
    return row.alone.get(layer, (None, row.error))


def carriers(row: Row):
    """The layers that carry a row here: removed together, it opens."""
    return row.breaks_without + (("apparmor",) if APPARMOR and row.apparmor else ())


@ablation
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_deny_row_without_one_layer(row: Row, layer):
    """Every deny row holds with any single layer switched off. Where the
    kernel has AppArmor, that is every other layer off while AppArmor stays,
    and AppArmor alone off."""
    if expectation(row, layer) == ONLY_LAYER:
        pytest.skip(f"{row.name} rests on {layer} alone on this host (see README, Security)")
    code, expected = expectation(row, layer)
    outcome = run_code(code or row.code, limits=row.limits, without=[layer])
    assert not outcome.ok, f"{row.name} allowed without {layer}: {outcome}"
    assert expected in outcome.emsg or expected in outcome.stderr


@ablation
@pytest.mark.parametrize("row", [r for r in ROWS if r.breaks_without],
                         ids=[r.name for r in ROWS if r.breaks_without])
def test_deny_row_fails_when_its_protection_is_removed(row: Row):
    """The deny tests can fail: with the layers that carry a row removed
    together, the attempt is no longer refused the way the row says."""
    outcome = run_code(row.code, limits=row.limits, without=list(carriers(row)))
    refused_as_the_row_says = (not outcome.ok and EMSG.fullmatch(outcome.emsg)
                               and row.error in outcome.stderr)
    assert not refused_as_the_row_says, outcome
