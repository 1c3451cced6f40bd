"""Sandbox environments chosen by the course: a context that the instance
maps to another environment gets that environment's packages, and every
other context the default's.

Needs CODEJAIL_API_TESTS_ENVIRONMENT=CONTEXT=MODULE: a limit_overrides_context
the instance maps to an environment other than its default, and a module
that imports there and not in the default environment. Skipped without it.
"""
import os

import pytest

from cjapi import expect_ok, run

SETTING = os.environ.get("CODEJAIL_API_TESTS_ENVIRONMENT") or ""
CONTEXT, _, MODULE = SETTING.rpartition("=")
pytestmark = pytest.mark.skipif(not (CONTEXT and MODULE),
                                reason="CODEJAIL_API_TESTS_ENVIRONMENT (CONTEXT=MODULE) not set")

PROBE = f"""
try:
    import {MODULE}
    found = True
except ImportError:
    found = False
"""


def test_support_environment_chosen_by_context():
    assert expect_ok(run(PROBE, limit_overrides_context=CONTEXT))["found"] is True


def test_support_other_contexts_use_default_environment():
    assert expect_ok(run(PROBE))["found"] is False
    assert expect_ok(run(PROBE, limit_overrides_context="not-" + CONTEXT))["found"] is False
