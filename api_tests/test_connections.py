"""A few raw connections must not stop the service: what a client declares
reserves nothing until it is sent. The connections are few and closed at the
end of each test; the service's own connection timeout bounds them too."""
import contextlib
import json
import resource
import socket
import urllib.parse

import pytest
import requests

import cjapi
from cjapi import still_serving

# As many as the review used: more than the body budget of a two-core host
# holds (max_body_bytes x 4 per execution slot) when charged by declaration.
DECLARING_CONNECTIONS = 8
DECLARED_LENGTH = 32 << 20  # the default max_body_bytes: not refused as too large
# More than the daemon's connection limit on any host this runs on (cores +
# queue + 256), fewer than a test process may open.
FLOOD = 1024


@contextlib.contextmanager
def idle_uploads(count, declared):
    """count connections that send the head of a code-exec POST declaring a
    body of `declared` bytes, and then nothing."""
    socks = []
    try:
        for _ in range(count):
            sock, parts = cjapi._connect(timeout=5)
            socks.append(sock)
            head = (f"POST {parts.path.rstrip('/')}/api/v0/code-exec HTTP/1.1\r\n"
                    f"Host: {parts.netloc}\r\n"
                    "Content-Type: multipart/form-data; boundary=x\r\n"
                    f"Content-Length: {declared}\r\n\r\n")
            sock.sendall(head.encode("latin-1"))
        yield
    finally:
        for sock in socks:
            sock.close()


def test_support_declared_lengths_reserve_nothing():
    with idle_uploads(DECLARING_CONNECTIONS, DECLARED_LENGTH):
        still_serving()


def test_support_health_answers_while_one_client_floods():
    """A client holding every connection it can (each a request line left
    unfinished) leaves room for the health probe from another address.
    Loopback only: the flood comes from 127.0.0.2."""
    parts = urllib.parse.urlsplit(cjapi.BASE_URL)
    if parts.hostname != "127.0.0.1":
        pytest.skip("needs the service on 127.0.0.1 to flood it from 127.0.0.2")
    if cjapi.ONE_CLIENT_ADDRESS:
        pytest.skip("the service sees every client from one address (a NAT in between): "
                    "a per-address limit cannot tell the flood from the probe")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, FLOOD + 256), hard))
    socks = []
    try:
        for _ in range(FLOOD):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=5,
                                            source_address=("127.0.0.2", 0))
            socks.append(sock)
            sock.sendall(b"GET /hea")
        resp = requests.get(cjapi.url("/health/"), timeout=(5, 30))
        assert resp.status_code == 200, resp.text
    finally:
        for sock in socks:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def exchange(raw, deadline_s=10):
    """Sends raw bytes on a new connection and reads until the server closes
    it (a server that keeps it open fails the test at the deadline)."""
    sock, _ = cjapi._connect(timeout=deadline_s)
    received = b""
    try:
        sock.sendall(raw)
        while True:
            try:
                data = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            except socket.timeout:
                pytest.fail(f"connection still open after {deadline_s}s; got {received[:500]!r}")
            if not data:
                break
            received += data
    finally:
        sock.close()
    return received


SMUGGLED = b"GET /health/ HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("framing, body", [
    ([("Content-Length", "5"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n" + SMUGGLED),
    ([("Content-Length", "5"), ("Content-Length", "6")], b"abcdef"),
    ([("Transfer-Encoding", "xchunked")], b"0\r\n\r\n"),
], ids=["length_and_chunked", "two_lengths", "unknown_coding"])
def test_deny_ambiguous_framing_is_refused_and_closed(framing, body):
    parts = urllib.parse.urlsplit(cjapi.BASE_URL)
    head = [f"POST {parts.path.rstrip('/')}/api/v0/code-exec HTTP/1.1", f"Host: {parts.netloc}",
            "Content-Type: application/x-www-form-urlencoded"]
    head += [f"{k}: {v}" for k, v in framing]
    answer = exchange(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:500]
    assert answer.count(b"HTTP/1.1 ") == 1, answer[:2000]  # nothing smuggled answered
    head_bytes, _, body_bytes = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head_bytes.lower(), head_bytes
    assert json.loads(body_bytes)["error"], body_bytes
