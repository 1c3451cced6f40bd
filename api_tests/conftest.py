"""Black-box API tests of a running codejail service at $CODEJAIL_SERVICE_URL.
See README.md."""
import pytest
import requests

import cjapi

NAMING = ("test_deny_", "test_allow_", "test_support_")


def pytest_configure(config):
    if not cjapi.BASE_URL:
        raise pytest.UsageError(
            "set CODEJAIL_SERVICE_URL to the service's base URL, e.g. http://127.0.0.1:8080")


def pytest_report_header(config):
    return [f"codejail service: {cjapi.BASE_URL}",
            f"limit override context: {cjapi.OVERRIDE_CONTEXT or '(none: override tests skipped)'}"]


def pytest_collection_modifyitems(config, items):
    # Sabotage testing (README.md) relies on the names.
    bad = [item.nodeid for item in items if not item.name.startswith(NAMING)]
    if bad:
        raise pytest.UsageError(f"tests must be named test_deny_*, test_allow_* or test_support_*: {bad}")


def pytest_sessionstart(session):
    if session.config.option.collectonly:
        return
    try:
        requests.get(cjapi.url("/health/"), timeout=(5, 30))
    except requests.RequestException as err:
        pytest.exit(f"cannot reach the service at {cjapi.BASE_URL}: {err}", returncode=2)


@pytest.fixture(params=["multipart", "urlencoded"])
def encoding(request):
    """Both request encodings the API accepts."""
    return request.param
