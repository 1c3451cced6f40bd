"""What the daemon's safety check asks of the host's layers: a deployment
can require a minimum Landlock ABI (`landlock_min_abi`), and a kernel
below it makes /health/ refuse, naming the ABI and what it lacks."""
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from conftest import BUILD, LANDLOCK_ABI, TIME_SCALE

import pytest

DAEMON = os.path.join(BUILD, "codejaild")


def first_health(config):
    """Starts codejaild with `config` on a free loopback port and returns
    its first /health/ answer as (status, body), then stops it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(config, f)
        f.flush()
        daemon = subprocess.Popen([DAEMON, "--profile", "development", "--listen", "127.0.0.1",
                                   "--port", str(port), "--config", f.name],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={})
        try:
            deadline = time.monotonic() + 60 * TIME_SCALE
            while daemon.poll() is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=5) as r:
                        return r.status, json.loads(r.read())
                except urllib.error.HTTPError as err:
                    return err.code, json.loads(err.read())
                except OSError:
                    time.sleep(0.1)  # not listening yet: poll again
            pytest.fail(f"codejaild gave no /health/ answer (exit status {daemon.poll()})")
        finally:
            daemon.terminate()
            daemon.wait()


@pytest.mark.skipif(not LANDLOCK_ABI, reason="the kernel has no Landlock")
def test_deny_health_when_landlock_is_below_the_required_abi():
    status, body = first_health({"landlock_min_abi": LANDLOCK_ABI + 1})
    assert status == 503, body
    landlock = body["layers"]["landlock"]
    assert landlock["state"] == "failed" and not landlock["ok"], landlock
    assert landlock["detail"].startswith(
        f"below the required ABI {LANDLOCK_ABI + 1}; ABI {LANDLOCK_ABI}: "), landlock


@pytest.mark.skipif(not LANDLOCK_ABI, reason="the kernel has no Landlock")
def test_support_health_when_landlock_meets_the_required_abi():
    status, body = first_health({"landlock_min_abi": LANDLOCK_ABI})
    assert status == 200, body
    assert body["layers"]["landlock"]["state"] == "active", body
