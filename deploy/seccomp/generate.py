#!/usr/bin/python3
"""Writes deploy/seccomp/codejail.json, the seccomp profile of the codejail
*container* (Podman --security-opt seccomp=..., Kubernetes Localhost profile).

usage: deploy/seccomp/generate.py            rewrite codejail.json
       deploy/seccomp/generate.py --check    exit 1 if codejail.json is stale,
                                             or if it refuses a syscall that the
                                             sandbox's own filter
                                             (seccomp/policy.def) allows

This is the outer of two filters. The inner one (seccomp/policy.def, loaded by
the sandbox helper just before untrusted code runs) is the strict one; this
one covers the whole container: the daemon, the sandbox helper while it builds
sandboxes (namespaces, mounts, pivot_root, Landlock, seccomp), and the Python
interpreter the helper hosts. A runtime's default profile does not fit:
Kubernetes' RuntimeDefault (containerd, CRI-O) refuses unshare, mount,
pivot_root, setns and sethostname without CAP_SYS_ADMIN and makes clone3 fail
with ENOSYS, and Podman's default refuses sethostname without CAP_SYS_ADMIN.
The container has no capabilities at all; what these calls reach is decided by
the kernel's user-namespace rules, not by this list.

Unlisted syscalls fail with ENOSYS (so code probing a newer feature falls back
as on an older kernel); the groups below say why each is needed. Compared with
Podman's default profile, this one drops ptrace, process_vm_*, keyctl,
name_to_handle_at, setns, bpf, perf, fanotify, syslog, reboot, System V and
POSIX IPC, legacy AIO, inotify, memory locking and policy, protection keys,
scheduler changes and the module, clock and swap calls, and allows the mount API, unshare, clone3 and
sethostname without CAP_SYS_ADMIN.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "codejail.json")
POLICY = os.path.join(HERE, "..", "..", "seccomp", "policy.def")

GROUPS = [
    ("Sandbox construction by the codejail-sandbox helper: new user, mount, PID, "
     "network, IPC, UTS and cgroup namespaces (clone3 with CLONE_NEW*, unshare), "
     "the sandbox root on tmpfs (mount, open_tree, move_mount, mount_setattr, "
     "pivot_root, umount2; the fs* calls of the same mount API), its hostname. "
     "Without capabilities these work only inside a user namespace the helper made.",
     """clone clone3 unshare mount umount2 pivot_root open_tree move_mount
        mount_setattr fsopen fsconfig fsmount fspick sethostname setdomainname"""),
    ("Confinement of each sandbox: identity inside the new user namespace, "
     "capability sets, securebits, no_new_privs, Landlock, the inner seccomp "
     "filter, rlimits (prlimit64 on the runner), pidfds for killing.",
     """setresuid setresgid setuid setgid setreuid setregid setfsuid setfsgid
        setgroups getgroups capget capset prctl seccomp landlock_create_ruleset
        landlock_add_rule landlock_restrict_self setrlimit prlimit64 getrlimit
        pidfd_open pidfd_send_signal"""),
    ("Processes, threads and signals (the daemon's worker threads, the helper, "
     "the interpreter and what sandboxed code may do under the inner filter).",
     """fork vfork execve execveat exit exit_group wait4 waitid kill tgkill
        tkill rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend
        rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_tgsigqueueinfo
        sigaltstack signalfd signalfd4 pause restart_syscall getpid getppid
        gettid getpgid getpgrp setpgid getsid setsid getuid geteuid getgid
        getegid getresuid getresgid set_tid_address set_robust_list
        get_robust_list futex futex_waitv rseq arch_prctl membarrier
        sched_yield sched_getaffinity sched_setaffinity sched_getparam
        sched_getscheduler sched_getattr sched_get_priority_max sched_get_priority_min
        sched_rr_get_interval getpriority setpriority ioprio_get ioprio_set
        getrusage times getcpu"""),
    ("Memory.",
     """brk mmap munmap mremap mprotect madvise mincore msync get_mempolicy
        memfd_create"""),
    ("Files and directories (the daemon's request bodies, the helper's run "
     "directories, the interpreter's imports).",
     """read write readv writev pread64 pwrite64 preadv pwritev preadv2
        pwritev2 open openat openat2 creat close close_range lseek dup dup2
        dup3 fcntl flock fsync fdatasync sync syncfs sync_file_range fadvise64
        readahead fallocate ftruncate truncate stat fstat lstat newfstatat
        statx statfs fstatfs access faccessat faccessat2 getcwd chdir fchdir
        mkdir mkdirat rmdir rename renameat renameat2 link linkat unlink
        unlinkat symlink symlinkat readlink readlinkat chmod fchmod fchmodat
        chown fchown lchown fchownat umask utime utimes utimensat futimesat
        getdents getdents64 mknod mknodat ioctl sendfile splice tee
        copy_file_range getxattr lgetxattr fgetxattr listxattr llistxattr
        flistxattr setxattr lsetxattr fsetxattr removexattr lremovexattr
        fremovexattr"""),
    ("Waiting and timers (the daemon's event loop, the wall-clock limit).",
     """poll ppoll select pselect6 epoll_create epoll_create1 epoll_ctl
        epoll_wait epoll_pwait epoll_pwait2 eventfd eventfd2 pipe pipe2
        nanosleep clock_nanosleep clock_gettime clock_getres gettimeofday time
        alarm getitimer setitimer timer_create timer_delete timer_gettime
        timer_settime timer_getoverrun timerfd_create timerfd_gettime
        timerfd_settime"""),
    ("Sockets: the HTTP listener and its connections, the helper's Unix "
     "socket pairs and descriptor passing, the netlink check that a sandbox's "
     "network namespace holds only loopback. Which networks exist is the "
     "pod's and the sandbox's network namespaces' business.",
     """socket socketpair bind listen accept accept4 connect getsockname
        getpeername getsockopt setsockopt shutdown sendto recvfrom sendmsg
        recvmsg sendmmsg recvmmsg"""),
    ("System information.",
     """uname sysinfo getrandom"""),
]

# personality(2) only with the values Docker and Podman allow: query, and the
# Linux persona with or without ADDR_NO_RANDOMIZE / UNAME26.
PERSONALITY_VALUES = [0, 8, 131072, 131080, 4294967295]


def allowed_names():
    names = []
    for _, text in GROUPS:
        for name in text.split():
            if name not in names:
                names.append(name)
    return names


def profile():
    syscalls = []
    for comment, text in GROUPS:
        names = sorted(set(text.split()))
        syscalls.append({"names": names, "action": "SCMP_ACT_ALLOW", "comment": comment})
    for value in PERSONALITY_VALUES:
        syscalls.append({
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
            "comment": "personality: query and the plain Linux persona only",
        })
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": syscalls,
    }


def render():
    return json.dumps(profile(), indent=2) + "\n"


def inner_allowed():
    """Syscalls the sandbox's own filter lets through (maybe conditionally)."""
    with open(POLICY) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    found = set()
    for m in re.finditer(r"^\s*CJ_ALLOW(?:_IF_EQ|_IF_CLEAR)?\(\s*(\w+)", text, flags=re.M):
        found.add(m.group(1))
    return found


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] and not check:
        print(__doc__, file=sys.stderr)
        return 2
    text = render()
    if not check:
        with open(OUT, "w") as f:
            f.write(text)
        print(f"wrote {OUT}")
    else:
        with open(OUT) as f:
            if f.read() != text:
                print(f"{OUT} is stale: run deploy/seccomp/generate.py", file=sys.stderr)
                return 1
    if os.path.exists(POLICY):
        missing = sorted(inner_allowed() - set(allowed_names()) - {"personality"})
        if missing:
            print("the container profile refuses syscalls the sandbox filter allows "
                  f"(seccomp/policy.def): {' '.join(missing)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
