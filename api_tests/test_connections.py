"""A few raw connections must not stop the service: what a client declares
reserves nothing until it is sent. The connections are few and closed at the
end of each test; the service's own connection timeout bounds them too."""
import contextlib

import cjapi
from cjapi import still_serving

# As many as the review used: more than the body budget of a two-core host
# holds (max_body_bytes x 4 per execution slot) when charged by declaration.
DECLARING_CONNECTIONS = 8
DECLARED_LENGTH = 32 << 20  # the default max_body_bytes: not refused as too large


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
