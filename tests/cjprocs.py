"""What the fault tests and the soak share: a daemon's processes and
cgroups as /proc and /sys show them, and plain HTTP to it."""
import json
import os
import socket
import urllib.error
import urllib.request


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid):
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def own_cgroup_dirs():
    """Where codejail.<pid> parents are made: beside this process's own
    groups in the memory, pids and cgroup2 hierarchies."""
    dirs = set()
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                base = "/sys/fs/cgroup/unified" if c == "" else f"/sys/fs/cgroup/{c}"
                if c in ("", "memory", "pids") and os.path.isdir(base + path):
                    dirs.add(os.path.normpath(base + path))
    return sorted(dirs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, data=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def form(payload):
    """A code-exec request body: the payload field of a multipart form."""
    boundary = "codejailtests"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"payload\"\r\n\r\n"
            f"{json.dumps(payload)}\r\n--{boundary}--\r\n").encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
