"""The sandbox's AppArmor profile (apparmor/codejail-sandbox) where the
kernel has AppArmor and the profile is loaded: `make vm-test` boots Debian
12's kernel for this. Elsewhere these tests are skipped."""
import os
import select
import time

import pytest

from conftest import APPARMOR, TESTING_BUILD, TIME_SCALE, run_code
from rows import ROWS, Row

pytestmark = pytest.mark.skipif(not (APPARMOR and TESTING_BUILD),
                                reason="needs AppArmor with the profile loaded, and a testing build")

ALONE = [r for r in ROWS if r.apparmor and r.breaks_without]


@pytest.mark.parametrize("row", ALONE, ids=[r.name for r in ALONE])
def test_deny_row_by_apparmor_alone(row: Row):
    """With every other layer that refuses the row switched off, the profile
    refuses it on its own. Switching AppArmor off as well opens the row
    (test_deny_row_fails_when_its_protection_is_removed), so this test fails
    when the profile is not applied."""
    outcome = run_code(row.code, limits=row.limits, without=list(row.breaks_without))
    assert not outcome.ok, f"{row.name} allowed with only AppArmor against it: {outcome}"
    assert row.error in outcome.stderr


def _kernel_log_until(kmsg, needle, seconds):
    """Kernel log records from kmsg's position until one contains needle.
    The audit thread logs after the denial returns, so this waits for it,
    at most `seconds` (then the test fails)."""
    records = []
    deadline = time.monotonic() + seconds
    while not any(needle in r for r in records):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([kmsg], [], [], left)[0]:
            break
        try:
            records.append(os.read(kmsg, 8192).decode("utf-8", "replace"))
        except BrokenPipeError:
            continue  # records were overwritten before they were read
    return records


def test_deny_socket_is_audited_as_the_profiles_denial():
    """The kernel reports the profile's denials: a socket refused by AppArmor
    (seccomp off, so the call reaches it) shows up as an apparmor="DENIED"
    record of profile codejail-sandbox. A first attempt with AppArmor off
    too must leave no record: audit records come in order, so by the time
    the second one's arrives, any of the first would have been seen.

    The profile's explicit `deny` rules are silent (AppArmor does not audit
    them), so the families are ones it names nowhere, refused because no
    rule allows them; and ones no other test uses (tests run in parallel)."""
    kmsg = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.lseek(kmsg, 0, os.SEEK_END)
        unconfined = run_code("import socket\nsocket.socket(socket.AF_TIPC, socket.SOCK_RDM)",
                              without=["seccomp", "apparmor"])
        assert "PermissionError" not in unconfined.stderr, unconfined
        confined = run_code("import socket\nsocket.socket(socket.AF_RDS, socket.SOCK_SEQPACKET)",
                            without=["seccomp"])
        assert "PermissionError: [Errno 13]" in confined.stderr, confined
        records = _kernel_log_until(kmsg, 'family="rds"', 60 * TIME_SCALE)
    finally:
        os.close(kmsg)
    denials = [r for r in records
               if 'apparmor="DENIED"' in r and 'profile="codejail-sandbox"' in r]
    assert any('family="rds"' in r for r in denials), records
    assert not any('family="tipc"' in r for r in denials), denials
