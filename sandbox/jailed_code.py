# The runner inside the sandbox, written into each run directory as
# jailed_code and run as __main__ by the embedded interpreter.
#
# stdin carries one JSON array: [code, globals, python_path]. The code runs
# with exec() against the globals; whatever it prints goes nowhere. The
# JSON-safe part of the globals afterwards is written to the real stdout. If
# the code raises, the interpreter prints the traceback to stderr and exits 1,
# and the service answers with the input globals and an emsg.
import json
import os
import pwd
import sys

SAFE_TYPES = (type(None), int, float, bytes, str, list, tuple, dict)


def decode_bytes(value):
    """Bytes become UTF-8 text, inside containers too (undecodable raises)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [decode_bytes(item) for item in value]
    if isinstance(value, dict):
        return {decode_bytes(k): decode_bytes(v) for k, v in value.items()}
    return value


def json_safe(namespace):
    """The entries of namespace that survive a JSON round trip through UTF-8."""
    safe = {}
    for name, value in namespace.items():
        if name == "__builtins__" or not isinstance(name, str):
            continue
        if not isinstance(value, SAFE_TYPES):
            continue
        try:
            name.encode("utf-8")
            text = json.dumps(decode_bytes(value), ensure_ascii=False)
            safe[name] = json.loads(text.encode("utf-8"))
        except Exception:
            continue
    return safe


# In warm mode every sandbox is forked from one interpreter. The random module
# reseeds itself after a fork; the global generators of numpy and random2
# (the LMS's prolog imports it), when imported ahead of time, do not, and
# would hand every request the same numbers.
for name in ("numpy.random", "random2"):
    module = sys.modules.get(name)
    if module is not None:
        module.seed()
del name, module



def answer_for_own_id(lookup, own, entry):
    """lookup, except that the sandbox's own id or name is answered with entry."""
    def wrapper(key):
        return entry if key == own else lookup(key)
    return wrapper


# Library code asks for the user's name and home (getpass, expanduser,
# pwd.getpwuid(os.getuid())).  /etc/passwd stays unreadable, like every host
# file (reading it is the reference's own test of the jail), so the lookups
# for the sandbox's own id are answered from its environment here.
if "USER" in os.environ and "HOME" in os.environ:
    own_entry = pwd.struct_passwd((os.environ["USER"], "x", os.getuid(), os.getgid(),
                                   "codejail sandbox", os.environ["HOME"], "/usr/sbin/nologin"))
    pwd.getpwuid = answer_for_own_id(pwd.getpwuid, os.getuid(), own_entry)
    pwd.getpwnam = answer_for_own_id(pwd.getpwnam, own_entry.pw_name, own_entry)
    del own_entry

code, g_dict, python_path = json.load(sys.stdin)
for entry in python_path:
    sys.path.append(entry)

real_stdout = sys.stdout
sys.stdout = open("/dev/null", "w")

exec(code, g_dict)

sys.stdout = real_stdout
json.dump(json_safe(g_dict), real_stdout)
real_stdout.flush()
