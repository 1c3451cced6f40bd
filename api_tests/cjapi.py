"""Client helpers for the API tests: how to call a running codejail service
the way Open edX does, and how to read what it answers.

Nothing here talks to anything but the base URL in $CODEJAIL_SERVICE_URL.
"""
import ast
import io
import json
import os
import re
import select
import socket
import ssl
import time
import urllib.parse
import zipfile

import pytest
import requests

BASE_URL = os.environ.get("CODEJAIL_SERVICE_URL", "").rstrip("/")
EXEC_PATH = "/api/v0/code-exec"

# Set by tests/run-api-tests.sh: the name of a configured limit_overrides
# context with REALTIME >= 10 and CPU >= 5 over defaults with REALTIME <= 3.
OVERRIDE_CONTEXT = os.environ.get("CODEJAIL_API_TESTS_OVERRIDE_CONTEXT") or None
# Set by tests/run-api-tests.sh: an environment variable (NAME=VALUE) given to
# the service process, which sandboxed code must not see.
ENV_CANARY = os.environ.get("CODEJAIL_API_TESTS_ENV_CANARY") or None
# Set by tests/run-api-tests.sh --lms-prolog: every test's code is sent with
# the LMS's prolog in front (lms.py), as every real request is.
LMS_PROLOG = os.environ.get("CODEJAIL_API_TESTS_LMS_PROLOG") == "1"
# Set by tests/run-container-api-tests.sh: rootless Podman's network (slirp4netns)
# shows the service every client under one address.
ONE_CLIENT_ADDRESS = os.environ.get("CODEJAIL_API_TESTS_ONE_CLIENT_ADDRESS") == "1"
# Set by tests/run-api-tests.sh: base URLs of two more instances, one with
# execution switched off, one whose start-up safety check failed.
DISABLED_URL = (os.environ.get("CODEJAIL_API_TESTS_DISABLED_URL") or "").rstrip("/") or None
MISCONFIGURED_URL = (os.environ.get("CODEJAIL_API_TESTS_MISCONFIGURED_URL") or "").rstrip("/") or None

# Set by tests/run-api-tests.sh under emulation: the service's CPU and
# REALTIME limits are this many times the defaults, and so are the suite's
# own durations.
TIME_SCALE = int(os.environ.get("CODEJAIL_API_TESTS_TIME_SCALE") or 1)

JSON_TYPE = "application/json"
PERM = "PermissionError: [Errno 13] Permission denied"
EAGAIN = "BlockingIOError: [Errno 11] Resource temporarily unavailable"

# (connect, read) timeouts: nothing may hang the suite.
TIMEOUT = (5, 90 * TIME_SCALE)

EMSG = re.compile(
    r"Couldn't execute jailed code: stdout: (?P<stdout>b'.*'|b\".*\"), "
    r"stderr: (?P<stderr>b'.*'|b\".*\") with status code: (?P<status>-?\d+)",
    re.S,
)


def url(path, base=None):
    return (base or BASE_URL) + path


def content_type(resp):
    return resp.headers.get("Content-Type")


def body_json(resp):
    """The response body parsed with Python's json (which accepts NaN and
    Infinity), decoded as UTF-8 whatever requests guesses."""
    return json.loads(resp.content.decode("utf-8"))


def python_lib_zip(modules):
    """A zip of {module file name: source}."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as z:
        for name, source in modules.items():
            z.writestr(name, source)
    return data.getvalue()


def build_payload(code, globals_dict=None, python_path=None, limit_overrides_context=None,
                  slug=None, **extra):
    """The payload JSON text, in Python's JSON dialect (NaN, Infinity), with
    the keys edx-platform sends."""
    payload = {
        "code": code,
        "globals_dict": {} if globals_dict is None else globals_dict,
        "python_path": python_path,
        "limit_overrides_context": limit_overrides_context,
        "slug": slug,
    }
    payload.update(extra)
    return json.dumps(payload)


def post_payload(payload_text, files=None, encoding="multipart", timeout=TIMEOUT, base=None):
    """POSTs a payload field (text, or None for no payload field) the way
    clients do.

    multipart: form-data with `payload` as a plain field, plus the files
    (what send_safe_exec_request_v0 sends when there is a python_lib.zip);
    urlencoded: application/x-www-form-urlencoded (what requests sends for
    data= without files: edx-platform's request when there is no zip)."""
    data = {} if payload_text is None else {"payload": payload_text}
    if encoding == "multipart":
        if files:
            return requests.post(url(EXEC_PATH, base), data=data, files=files, timeout=timeout)
        # requests falls back to urlencoding without files: force form-data.
        fields = {k: (None, v) for k, v in data.items()} or {"other": (None, "x")}
        return requests.post(url(EXEC_PATH, base), files=fields, timeout=timeout)
    if encoding == "urlencoded":
        assert not files, "files need multipart"
        return requests.post(url(EXEC_PATH, base), data=data, timeout=timeout)
    raise ValueError(encoding)


class Outcome:
    """One code-exec request that ran (HTTP 200)."""

    def __init__(self, resp, seconds):
        self.resp = resp
        self.seconds = seconds
        self.text = resp.content.decode("utf-8")
        assert resp.status_code == 200, f"HTTP {resp.status_code}: {self.text[:2000]}"
        assert content_type(resp) == JSON_TYPE, f"Content-Type {content_type(resp)!r}"
        self.answer = json.loads(self.text)
        assert isinstance(self.answer, dict), self.text[:2000]
        assert "globals_dict" in self.answer, f"no globals_dict: {self.text[:2000]}"
        self.globals = self.answer["globals_dict"]
        self.emsg = self.answer.get("emsg")
        assert set(self.answer) <= {"globals_dict", "emsg"}, self.text[:2000]
        assert isinstance(self.globals, dict), self.text[:2000]
        assert "emsg" not in self.answer or isinstance(self.emsg, str), self.text[:2000]

    @property
    def ok(self):
        return "emsg" not in self.answer

    def _parts(self):
        match = EMSG.fullmatch(self.emsg or "")
        assert match, f"emsg not in the API's format: {self.emsg!r}"
        return match

    @property
    def stdout(self):
        return ast.literal_eval(self._parts()["stdout"])

    @property
    def stderr(self):
        """The sandbox's stderr, decoded from the bytes repr inside emsg."""
        return ast.literal_eval(self._parts()["stderr"]).decode("utf-8", "replace")

    @property
    def error_line(self):
        """The last line of stderr: the exception a traceback ends with."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert lines, f"empty stderr: {self.emsg!r}"
        return lines[-1]

    @property
    def status(self):
        return int(self._parts()["status"])

    def __repr__(self):
        return f"Outcome({self.text[:3000]})"


def run(code, globals_dict=None, files=None, python_path=None, limit_overrides_context=None,
        slug=None, encoding="multipart", timeout=TIMEOUT, **extra):
    """Runs code; asserts the request executed (HTTP 200 JSON)."""
    if files and encoding == "urlencoded":
        encoding = "multipart"
    if LMS_PROLOG:
        import lms  # pylint: disable=import-outside-toplevel (lms imports this module)
        code = lms.wrap(code)
    text = build_payload(code, globals_dict, python_path, limit_overrides_context, slug, **extra)
    start = time.monotonic()
    resp = post_payload(text, files=files, encoding=encoding, timeout=timeout)
    return Outcome(resp, time.monotonic() - start)


def expect_ok(outcome):
    assert outcome.ok, f"unexpected emsg: {outcome.emsg!r}"
    return outcome.globals


def expect_refusal(resp, status, message):
    text = resp.content.decode("utf-8", "replace")
    assert resp.status_code == status, f"HTTP {resp.status_code}: {text[:2000]}"
    assert content_type(resp) == JSON_TYPE, f"Content-Type {content_type(resp)!r}"
    assert body_json(resp) == {"error": message}


def expect_json_error(status, headers, body, statuses=range(400, 500)):
    """A 4xx (or the given statuses) whose body is a JSON `error`."""
    text = body.decode("utf-8", "replace")
    assert status in statuses, f"HTTP {status}: {text[:2000]}"
    assert headers.get("content-type") == JSON_TYPE, f"Content-Type {headers.get('content-type')!r}"
    answer = json.loads(text)
    assert isinstance(answer, dict) and isinstance(answer.get("error"), str) and answer["error"], text


def still_serving():
    """The service answers a normal request correctly."""
    outcome = run("x = x + 1", {"x": 16})
    assert outcome.globals == {"x": 17}, outcome


# --- raw HTTP, for bodies requests cannot or will not send ------------------

def _connect(timeout):
    parts = urllib.parse.urlsplit(BASE_URL)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sock = socket.create_connection((parts.hostname, port), timeout=timeout)
    if parts.scheme == "https":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
    return sock, parts


def raw_request(method, path, headers, body=b"", deadline_s=60, chunk=1 << 16):
    """Sends one request with exactly the given headers and body, reading
    the answer while sending (a server may answer, e.g. 413, and close
    before the body is all sent). Returns (status, lower-cased headers,
    body). Fails if nothing is answered within deadline_s: a hang."""
    deadline = time.monotonic() + deadline_s
    sock, parts = _connect(timeout=5)
    try:
        lines = [f"{method} {parts.path.rstrip('/')}{path} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sock.sendall(head)
        view = memoryview(body)
        sent = 0
        received = b""
        sock.setblocking(False)
        while sent < len(view):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no answer within {deadline_s}s while sending the body ({sent} of {len(view)} bytes sent)")
            readable, writable, _ = select.select([sock], [sock], [], remaining)
            if readable:
                break  # the server answered early
            if writable:
                try:
                    sent += sock.send(view[sent:sent + chunk])
                except (BlockingIOError, ssl.SSLWantWriteError):
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
        sock.setblocking(True)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no complete answer within {deadline_s}s; got {received[:500]!r}")
            sock.settimeout(remaining)
            try:
                data = sock.recv(1 << 16)
            except ConnectionResetError:
                data = b""
            except socket.timeout:
                pytest.fail(f"no complete answer within {deadline_s}s; got {received[:500]!r}")
            if not data:
                break
            received += data
            complete = _complete(received)
            if complete is not None:
                return complete
        complete = _complete(received, eof=True)
        assert complete is not None, f"connection closed without a complete answer: {received[:500]!r}"
        return complete
    finally:
        sock.close()


def _complete(data, eof=False):
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = data[end + 4:]
    if "content-length" in headers:
        length = int(headers["content-length"])
        if len(body) < length:
            return None
        return status, headers, body[:length]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        decoded = _dechunk(body)
        return None if decoded is None else (status, headers, decoded)
    return (status, headers, body) if eof else None


def _dechunk(body):
    out = b""
    while True:
        end = body.find(b"\r\n")
        if end < 0:
            return None
        size = int(body[:end].split(b";")[0], 16)
        if size == 0:
            return out
        if len(body) < end + 2 + size + 2:
            return None
        out += body[end + 2:end + 2 + size]
        body = body[end + 2 + size + 2:]


def multipart_body(boundary, parts):
    """parts: [(field name, file name or None, bytes)]."""
    out = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode())
        if filename is not None:
            out.append(b"Content-Type: application/octet-stream\r\n")
        out += [b"\r\n", data, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)
