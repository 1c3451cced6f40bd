"""Nothing passes between two executions through what they share (the host's
/usr: its inodes, its page cache), and a sandbox does not learn the host's
clocks. The two-party probes run two executions at once: against the policy
before these rules, each pair finds the other (see rows.py for the one-call
rows that the layer ablation also runs)."""
import ctypes
import mmap
import os
import time
from concurrent.futures import ThreadPoolExecutor

# Each party waits for the other at most this long, and is killed well after.
DEADLINE_S = 5
LIMITS = ["REALTIME=20", "CPU=10"]

COMMON = f"""
import ctypes, errno, fcntl, json, os, time
deadline = time.monotonic() + {DEADLINE_S}
def until(condition):
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()
"""

# The holder keeps a lock on one /usr file until the prober shows, through a
# lock on a second file, that it has seen the first.
LOCKS = COMMON + """
first, second = open(os.__file__, 'rb'), open(json.__file__, 'rb')
def held_elsewhere(f):
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(f, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
"""

LOCK_HOLDER = LOCKS + """
try:
    fcntl.flock(first, fcntl.LOCK_SH | fcntl.LOCK_NB)
    result = 'held'
    saw_other = until(lambda: held_elsewhere(second))
except OSError as e:
    result, saw_other = e.errno, False
"""

LOCK_PROBER = LOCKS + """
try:
    saw_other = until(lambda: held_elsewhere(first))
    if saw_other:
        fcntl.flock(second, fcntl.LOCK_SH | fcntl.LOCK_NB)
        until(lambda: False)  # hold it for the holder to see
    result = 'probed'
except OSError as e:
    result, saw_other = e.errno, False
"""

# Both map the first page of one /usr file, shared and read-only: a wait in
# one is a wake-up target for the other unless the futex is private.
FUTEX_MAP = COMMON + """
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
f = open(os.__file__, 'rb')
word = libc.mmap(None, 4096, 1, 1, f.fileno(), 0)  # PROT_READ, MAP_SHARED
value = ctypes.c_uint32.from_address(word).value
def futex(op, val, timeout=None):
    rc = libc.syscall(202, ctypes.c_void_p(word), op, val, timeout, None, 0)  # SYS_futex
    return rc if rc >= 0 else -ctypes.get_errno()
"""

FUTEX_WAITER = FUTEX_MAP + f"""
class timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]
rc = futex(0, value, ctypes.byref(timespec({DEADLINE_S}, 0)))  # FUTEX_WAIT
result = 'woken' if rc == 0 else -rc
"""

FUTEX_WAKER = FUTEX_MAP + """
woken = 0
def wake():
    global woken
    woken = futex(1, 1)  # FUTEX_WAKE
    return woken != 0
until(wake)
result = 'woke' if woken > 0 else -woken
"""


def two_at_once(run, first, second):
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(run, first, limits=LIMITS)
        b = pool.submit(run, second, limits=LIMITS)
        return a.result(), b.result()


def test_deny_lock_between_two_executions(run):
    holder, prober = two_at_once(run, LOCK_HOLDER, LOCK_PROBER)
    assert holder.ok and prober.ok, (holder, prober)
    for party in (holder, prober):
        assert party.globals["result"] == 37, party  # ENOLCK
        assert party.globals["saw_other"] is False, party


def test_deny_futex_between_two_executions(run):
    waiter, waker = two_at_once(run, FUTEX_WAITER, FUTEX_WAKER)
    assert waiter.ok and waker.ok, (waiter, waker)
    assert waiter.globals["result"] == 22, waiter  # EINVAL
    assert waker.globals["result"] == 22, waker


def _mincore_resident(path):
    """Pages of path in the page cache, seen from the host (root may ask
    about any file)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        anchor = ctypes.c_char.from_buffer(m)
        vec = (ctypes.c_ubyte * pages)()
        rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(size), vec)
        del anchor
        assert rc == 0, os.strerror(ctypes.get_errno())
        return sum(v & 1 for v in vec), pages


def test_deny_evicting_the_shared_page_cache(run):
    """A sandbox cannot drop a /usr file from the page cache that every
    other reader (sandbox or host) shares."""
    path = "/usr/lib/python3.11/os.py"  # the same inode as the sandbox's /usr
    with open(path, "rb") as f:
        f.read()
    resident, pages = _mincore_resident(path)
    assert resident == pages
    outcome = run("import os\nfd = os.open(os.__file__, os.O_RDONLY)\n"
                  "os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\nsame = os.__file__")
    assert outcome.ok, outcome
    assert outcome.globals["same"] == path
    assert _mincore_resident(path) == (pages, pages)


def test_deny_host_uptime(run):
    """CLOCK_BOOTTIME and CLOCK_MONOTONIC count from the sandbox's birth: both
    read less inside than the host's clocks did before the sandbox existed."""
    host = {"boot": time.clock_gettime(time.CLOCK_BOOTTIME), "mono": time.monotonic()}
    outcome = run("import time\nboot = time.clock_gettime(time.CLOCK_BOOTTIME)\n"
                  "mono = time.monotonic()")
    assert outcome.ok, outcome
    assert 0 <= outcome.globals["boot"] < host["boot"], (outcome, host)
    assert 0 <= outcome.globals["mono"] < host["mono"], (outcome, host)
