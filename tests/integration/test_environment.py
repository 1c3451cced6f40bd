"""The sandbox environment: every top-level module of it imports inside the
sandbox (what library code needs at import time, such as a home for nltk, is
there), and pip's part of it never writes into the host's files, which the
Debian part hard-links."""
import hashlib
import json
import os
import subprocess
import zipfile

import pytest

from conftest import CLI

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_ENV = os.path.join(HERE, "..", "..", "sandbox", "build-env.py")
HOST_SIX = "/usr/lib/python3/dist-packages/six.py"

IMPORT_ALL = """
import importlib, pkgutil, sys
roots = [p for p in sys.path if p.endswith("dist-packages")]
names = sorted({m.name for m in pkgutil.iter_modules(roots)})
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except BaseException as e:
        failed[name] = f"{type(e).__name__}: {e}"
"""


def test_allow_every_top_level_module_imports(run):
    outcome = run(IMPORT_ALL, limits=("CPU=300", "REALTIME=600", "VMEM=0"), timeout=900)
    assert outcome.ok, outcome.emsg
    names, failed = outcome.globals["names"], outcome.globals["failed"]
    # What the LMS's prolog and lazy modules need, where they are installed.
    assert {"random2", "six", "numpy", "nltk"} <= set(names), names
    assert failed == {}, failed


def test_allow_identity_library_code_looks_for(run):
    code = ("import getpass, os, pwd\n"
            "user = getpass.getuser()\n"
            "entry = list(pwd.getpwuid(os.getuid()))\n"
            "home = os.path.expanduser('~')\n"
            "listing = os.listdir(home)\n")
    g = run(code).globals
    assert g["user"] == "sandbox" and g["home"] == "/home/sandbox" and g["listing"] == []
    assert g["entry"][0] == "sandbox" and g["entry"][5] == "/home/sandbox"


def wheel(directory, version, text):
    """A wheel of a distribution named six whose module collides by name with
    the host's Debian six.py."""
    path = os.path.join(directory, f"six-{version}-py3-none-any.whl")
    info = f"six-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("six.py", text)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: six\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                    "Tag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", f"six.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")


def fingerprint(path):
    st = os.stat(path)
    with open(path, "rb") as f:
        return st.st_ino, st.st_size, st.st_mtime_ns, hashlib.sha256(f.read()).hexdigest()


def build_env(tmp_path, version):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"six=={version}\n")
    packages = tmp_path / "packages.txt"
    packages.write_text("python3-six\n")
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(tmp_path / "wheels"))
    subprocess.run(["/usr/bin/python3", BUILD_ENV, "--packages", str(packages),
                    "--requirements", str(reqs), "--dest", str(tmp_path / "env")],
                   env=env, check=True, capture_output=True, timeout=600)
    return tmp_path / "env"


@pytest.mark.skipif(not os.path.exists(HOST_SIX), reason="python3-six is not installed on the host")
def test_deny_pip_install_and_upgrade_leave_the_host_files_alone(tmp_path):
    (tmp_path / "wheels").mkdir()
    wheel(tmp_path / "wheels", "99.0", "VERSION = 99\n")
    wheel(tmp_path / "wheels", "100.0", "VERSION = 100\n")
    before = fingerprint(HOST_SIX)
    for version in ("99.0", "100.0"):
        env = build_env(tmp_path, version)
        assert fingerprint(HOST_SIX) == before, f"installing six {version} changed {HOST_SIX}"
        pip_site = next((env / "usr/local/lib").glob("python3.*/dist-packages"))
        assert (pip_site / "six.py").read_text() == f"VERSION = {version.split('.')[0]}\n"
        linked = env / HOST_SIX.lstrip("/")
        assert fingerprint(linked)[1:] == before[1:]


def check(*args):
    return subprocess.run([CLI, "check", "--json", *args], capture_output=True, timeout=300,
                          env={}, check=False)


def test_support_check_reports_modules_and_fails_on_a_required_one_missing():
    ok = check("--require-modules", "random2,six")
    report = json.loads(ok.stdout)
    assert ok.returncode == 0, report
    assert report["modules"]["random2"] == {"imports": True, "required": True}
    assert report["modules"]["numpy"]["required"] is False
    missing = check("--require-modules", "random2,no_such_module_here")
    report = json.loads(missing.stdout)
    assert missing.returncode == 1 and report["ok"] is False and report["modules_ok"] is False
    entry = report["modules"]["no_such_module_here"]
    assert entry["imports"] is False and entry["required"] is True
    assert entry["detail"].startswith("ModuleNotFoundError"), entry
