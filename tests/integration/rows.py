"""The deny rows of API.md ("What sandboxed code may and may not do"): the
code that tries each thing, and the error text clients match on."""
from dataclasses import dataclass, field

PERM = "PermissionError: [Errno 13] Permission denied"


def isolated(family, kind, address):
    """Without seccomp a socket can be made, but it reaches nothing (TCP is
    refused by Landlock too, everything by the empty network namespace)."""
    return ("import socket\n"
            f"s = socket.socket(socket.{family}, socket.{kind})\n"
            "try:\n"
            f"    s.connect({address!r})\n"
            "    s.send(b'x')\n"
            "except OSError:\n"
            "    raise RuntimeError('nothing reachable')\n")


NETLINK_SEES_ONLY_LOOPBACK = (
    "import socket\n"
    "names = [name for _, name in socket.if_nameindex()]\n"
    "assert names == ['lo'], names\n"
    "raise RuntimeError('only loopback')\n")

# In `alone`: the row rests on this layer alone on this host (AppArmor would
# be the second layer where the kernel has it); the ablation test says so and
# skips rather than pretend.
ONLY_LAYER = "only layer"


@dataclass
class Row:
    name: str
    code: str
    error: str  # must appear in emsg with every layer on
    limits: tuple = ()
    # Rows that honestly depend on one layer for their exact error: with that
    # layer off, the given fallback (other code, or None for the same code)
    # must give the given error instead, showing what still holds.
    alone: dict = field(default_factory=dict)
    # Layers that, all removed together, let the attempt succeed: proof that
    # the row's test can fail. Where AppArmor is active, rows it refuses too
    # (`apparmor`) count it among them.
    breaks_without: tuple = ()
    # The sandbox's AppArmor profile refuses this attempt as well, with the
    # same error: where the profile is in force, no `alone` fallback applies.
    apparmor: bool = False
    # A TCP attempt that Landlock refuses from ABI 4 on; below that, without
    # seccomp (and AppArmor), only the network namespace stops it.
    tcp: bool = False


def exec_row(name, argv):
    return Row(name, f"import subprocess, sys\nsubprocess.run({argv})", PERM,
               breaks_without=("seccomp", "landlock", "mountns"), apparmor=True)


ROWS = [
    Row("read_etc_hosts", "open('/etc/hosts').read()", f"{PERM}: '/etc/hosts'",
        breaks_without=("mountns", "landlock"), apparmor=True),
    Row("read_proc_cmdline", "open('/proc/1/cmdline').read()", f"{PERM}: '/proc/1/cmdline'",
        breaks_without=("mountns", "landlock"), apparmor=True),
    Row("list_root", "import os\nos.listdir('/')", f"{PERM}: '/'",
        breaks_without=("mountns", "landlock"), apparmor=True),
    Row("list_sys", "import os\nos.listdir('/sys')", f"{PERM}: '/sys'",
        breaks_without=("mountns", "landlock"), apparmor=True),
    Row("list_tmp", "import os\nos.listdir('/tmp')", f"{PERM}: '/tmp'",
        breaks_without=("mountns", "landlock"), apparmor=True),
    Row("list_parent", "import os\nos.listdir('../')", f"{PERM}: '../'",
        breaks_without=("mountns", "landlock"), apparmor=True),
    Row("list_proc", "import os\nos.listdir('/proc')", PERM,
        breaks_without=("mountns", "landlock"), apparmor=True),
    Row("write_tmp", "open('/tmp/x', 'w').write('x')", f"{PERM}: '/tmp/x'",
        breaks_without=("mountns", "landlock"), apparmor=True),
    Row("write_parent", "open('../x', 'w').write('x')", f"{PERM}: '../x'",
        breaks_without=("mountns", "landlock"), apparmor=True),
    # Only seccomp refuses to create sockets (AppArmor too, where the host has
    # it). Without it the socket exists but has nowhere to go: the network
    # namespace holds nothing but a loopback device that is down.
    Row("socket_inet_stream", "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)",
        PERM, alone={"seccomp": (isolated("AF_INET", "SOCK_STREAM", ('127.0.0.1', 9)), "RuntimeError: nothing reachable")},
        breaks_without=("seccomp",), apparmor=True),
    Row("socket_inet_dgram", "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
        PERM, alone={"seccomp": (isolated("AF_INET", "SOCK_DGRAM", ('127.0.0.1', 9)), "RuntimeError: nothing reachable")},
        breaks_without=("seccomp",), apparmor=True),
    Row("socket_inet6_stream", "import socket\nsocket.socket(socket.AF_INET6, socket.SOCK_STREAM)",
        PERM, alone={"seccomp": (isolated("AF_INET6", "SOCK_STREAM", ('::1', 9)), "RuntimeError: nothing reachable")},
        breaks_without=("seccomp",), apparmor=True),
    Row("socket_inet6_dgram", "import socket\nsocket.socket(socket.AF_INET6, socket.SOCK_DGRAM)",
        PERM, alone={"seccomp": (isolated("AF_INET6", "SOCK_DGRAM", ('::1', 9)), "RuntimeError: nothing reachable")},
        breaks_without=("seccomp",), apparmor=True),
    Row("socket_netlink", "import socket\nsocket.socket(socket.AF_NETLINK, socket.SOCK_RAW)",
        PERM, alone={"seccomp": (NETLINK_SEES_ONLY_LOOPBACK, "RuntimeError: only loopback")},
        breaks_without=("seccomp",), apparmor=True),
    # A network namespace does not isolate vsock, and Landlock has no socket
    # families: only seccomp (and AppArmor) stand between code and a
    # hypervisor's vsock listeners. Never connected to here.
    Row("socket_vsock", "import socket\nsocket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)",
        PERM, alone={"seccomp": ONLY_LAYER}, breaks_without=("seccomp",), apparmor=True),
    Row("nested_user_namespace",
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.unshare(0x10000000) != 0:\n"
        "    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))",
        "PermissionError: [Errno 1] Operation not permitted",
        alone={"seccomp": (None, "OSError: [Errno 28] No space left on device")},
        breaks_without=("seccomp", "userns")),
    Row("connect_loopback",
        "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', 9))",
        PERM,
        alone={"seccomp": (isolated("AF_INET", "SOCK_STREAM", ('127.0.0.1', 9)),
                           "RuntimeError: nothing reachable")},
        breaks_without=("seccomp", "netns", "landlock"), apparmor=True, tcp=True),
    # Ownership and mode of the run directory and Landlock refuse this (run as
    # an unprivileged user, the code owns its run directory and only Landlock
    # holds).
    Row("bind_unix_outside_tmp", "import socket\nsocket.socket(socket.AF_UNIX).bind('sock')", PERM,
        apparmor=True),
    # Never run with both seccomp and netns off: that would be a real lookup.
    Row("dns_lookup", "import socket\nsocket.getaddrinfo('example.com', 80)", "socket.gaierror"),
    Row("http_request", "import urllib.request\nurllib.request.urlopen('http://example.com/')",
        "urllib.error.URLError"),
    exec_row("exec_true", "['/usr/bin/true']"),
    exec_row("exec_ls", "['ls']"),
    exec_row("exec_ps", "['ps']"),
    exec_row("exec_python3", "['python3', '-c', 'pass']"),
    exec_row("exec_sys_executable", "[sys.executable, '-c', 'pass']"),
    # The kernel offers no second layer against a memfd: Landlock's execute
    # right and noexec mounts do not reach it.
    Row("exec_memfd",
        "import os\nfd = os.memfd_create('x')\n"
        "os.write(fd, open('/usr/lib64/ld-linux-x86-64.so.2', 'rb').read())\n"
        "os.execve(fd, ['x', '--version'], {})",
        PERM, alone={"seccomp": ONLY_LAYER}, breaks_without=("seccomp",), apparmor=True),
    Row("exec_proc_self_exe", "import os\nos.execv('/proc/self/exe', ['x'])", PERM,
        breaks_without=("seccomp", "landlock", "mountns"), apparmor=True),
    # With rlimits off, 256 processes are made before pids.max stops them:
    # on a busy host that can take the 3 s default, which the row is not
    # about.
    Row("fork_1000",
        "import os, time\nfor i in range(1000):\n    if os.fork() == 0:\n"
        "        time.sleep(10)\n        os._exit(0)",
        "BlockingIOError: [Errno 11] Resource temporarily unavailable", limits=("REALTIME=10",),
        breaks_without=("rlimits", "cgroups")),
    # Without rlimits the memory cgroup stops it instead, by killing it.
    Row("allocate_1gib", "x = bytearray(1 << 30)", "MemoryError",
        alone={"rlimits": (None, "with status code: -9")}, breaks_without=("rlimits", "cgroups")),
    # A sparse file takes no room, so only RLIMIT_FSIZE stops it; without
    # rlimits a file that really is large still hits the cap of tmp/.
    Row("write_1gib_sparse_file",
        "with open('tmp/big', 'wb') as f:\n    f.seek(1 << 30)\n    f.write(b'x')",
        "OSError: [Errno 27] File too large",
        alone={"rlimits": ("with open('tmp/big', 'wb') as f:\n    for i in range(1024):\n"
                           "        f.write(bytes(1 << 20))",
                           "OSError: [Errno 28] No space left on device")},
        breaks_without=("rlimits",)),
    Row("write_1gib_file",
        "with open('tmp/big', 'wb') as f:\n    for i in range(1024):\n"
        "        f.write(bytes(1 << 20))",
        "OSError: [Errno 27] File too large",
        alone={"rlimits": (None, "OSError: [Errno 28] No space left on device")}),
]

# What every sandbox shares: the host's /usr (the same inodes and page cache)
# and the kernel. Only seccomp refuses these calls (AppArmor, where the host
# has it, refuses locks on /usr too); test_channels.py shows two executions
# using each one against the previous policy.
LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
RAISE_ERRNO = "    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))\n"
USR_FILE = "import os\nf = open(os.__file__, 'rb')\n"


def seccomp_row(name, code, error):
    return Row(name, code, error, alone={"seccomp": ONLY_LAYER}, breaks_without=("seccomp",))


CHANNEL_ROWS = [
    seccomp_row("flock_usr_file", USR_FILE + "import fcntl\nfcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)",
                "OSError: [Errno 37] No locks available"),
    seccomp_row("record_lock_usr_file",
                USR_FILE + "import fcntl\nfcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB)",
                "OSError: [Errno 37] No locks available"),
    seccomp_row("notify_usr_directory",
                "import fcntl, os\nfd = os.open(os.path.dirname(os.__file__), os.O_RDONLY)\n"
                "fcntl.fcntl(fd, fcntl.F_NOTIFY, fcntl.DN_ACCESS)",
                "OSError: [Errno 22] Invalid argument"),
    seccomp_row("shared_futex_on_usr_file",
                LIBC + USR_FILE + "libc.mmap.restype = ctypes.c_void_p\n"
                "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,"
                " ctypes.c_int, ctypes.c_long]\n"
                "word = libc.mmap(None, 4096, 1, 1, f.fileno(), 0)\n"  # PROT_READ, MAP_SHARED
                "if libc.syscall(202, ctypes.c_void_p(word), 1, 1, None, None, 0) < 0:\n"  # FUTEX_WAKE
                + RAISE_ERRNO,
                "OSError: [Errno 22] Invalid argument"),
    seccomp_row("read_only_if_cached",
                "import os\nfd = os.open(os.__file__, os.O_RDONLY)\n"
                "os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)",
                "OSError: [Errno 95] Operation not supported"),
    seccomp_row("sysinfo",
                LIBC + "if libc.sysinfo(ctypes.create_string_buffer(128)) != 0:\n" + RAISE_ERRNO,
                "OSError: [Errno 38] Function not implemented"),
    seccomp_row("prctl_set_dumpable",
                LIBC + "if libc.prctl(4, 1, 0, 0, 0) != 0:\n" + RAISE_ERRNO,  # PR_SET_DUMPABLE
                "PermissionError: [Errno 1] Operation not permitted"),
]
ROWS += CHANNEL_ROWS
