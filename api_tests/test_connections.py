"""A few raw connections must not stop the service: what a client declares
reserves nothing until it is sent. The connections are few and closed at the
end of each test; the service's own connection timeout bounds them too."""
import contextlib
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
