#!/usr/bin/python3
"""Build the sandbox's read-only Python environment from installed Debian packages.

Usage: /usr/bin/python3 sandbox/build-env.py --packages sandbox/packages.txt \
           [--packages more.txt ...] [--requirements sandbox/requirements.txt ...] --dest DIR

DIR/usr receives the files of the listed packages and of everything they
Depend/Pre-Depend on (recursively, over installed packages), minus what an
interpreter never reads.  Files are hard links to the host's files where
possible, so the tree costs neither copying nor disk.  Nothing is done when
DIR's manifest (package versions, alternatives, this script's hash) is current;
otherwise the tree is built in DIR.new and swapped in by rename.
Python requirements that Debian does not package are installed by pip (its own
settings: PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX, ...) into a directory
of their own, DIR/usr/local/lib/pythonX.Y/dist-packages, which holds no host
file; when pip cannot get them the tree is built without them and the missing
modules are named.
See sandbox/README.md for the reasoning behind each rule.
"""

import argparse
import errno
import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import time

DPKG_DIR = "/var/lib/dpkg"
MANIFEST = ".codejail-env-manifest"

# Packages that satisfy a dependency without being followed: Debian depends on
# them for uses other than importing the library, and each drags whole
# toolchains or GUI stacks into the sandbox.  They and their own dependencies
# stay out unless packages.txt lists them.
NOT_FOLLOWED = {
    # scipy Depends on pythran so users can compile their own code with it;
    # scipy's pythran-built modules are ordinary extensions.  It pulls in g++,
    # clang, LLVM, boost and python3-dev: ~440 MiB.
    "python3-pythran",
    # Only matplotlib's Tk backends use PIL.ImageTk; it pulls in Tcl/Tk, X11
    # and fontconfig (~35 MiB).  The sandbox has no display.
    "python3-pil.imagetk",
    # python3.11 wants "media-types | mime-support"; both ship only
    # /etc/mime.types, but the transitional mime-support pulls in mailcap and
    # with it perl (~45 MiB).
    "mime-support",
    # fontTools reads the Unicode database only in its ttx command-line tool,
    # when given --unicodedata (~37 MiB).
    "unicode-data",
}

# dpkg states in which a package's files are unpacked *and* its maintainer
# scripts have run (so byte-compiled caches and alternatives exist).
INSTALLED_STATES = {"installed", "triggers-pending", "triggers-awaited"}

# Merged-/usr turned these top-level directories into symlinks into /usr, but
# dpkg still lists some files under the old names.  The sandbox mounts only
# DEST/usr (adding /lib -> usr/lib, /lib64 -> usr/lib64), so every file goes
# to its /usr name.
USR_ALIASES = ("/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/")

# What an interpreter and its extension modules read: code, shared libraries
# and their data (zoneinfo, fonts, mpl-data, ...).  Executables, headers, host
# configuration and state stay out.
KEEP_PREFIXES = ("/usr/lib/", "/usr/lib64/", "/usr/share/")

# Documentation, translations, and integration with the desktop, init system,
# binfmt_misc and debuggers.  The sandbox runs in the C locale, so message
# catalogues are dead weight too.
DROP_PREFIXES = tuple(
    f"/usr/share/{d}/"
    for d in ("applications", "bash-completion", "binfmts", "bug", "doc",
              "doc-base", "gcc", "gdb", "icons", "info", "lintian", "locale",
              "man", "menu", "pixmaps", "polkit-1")
) + ("/usr/lib/binfmt.d/", "/usr/lib/systemd/", "/usr/lib/valgrind/")

DIST_PACKAGES = "/usr/lib/python3/dist-packages/"

# Where pip installs: Debian's site module puts it on sys.path ahead of
# DIST_PACKAGES, and no Debian package ships files there, so pip writes only
# into a directory it created (never into a hard-linked host file).
PIP_SITE = f"/usr/local/lib/python{sys.version_info.major}.{sys.version_info.minor}/dist-packages"

# pip's settings that decide what it installs; their values (which may hold
# index credentials) enter the manifest only as a hash.
PIP_SETTINGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX",
                "PIP_CONFIG_FILE", "PIP_ONLY_BINARY", "PIP_NO_BINARY", "PIP_PRE")

# In DIR: what pip could not install, one requirement a line, for the next
# up-to-date run to repeat the warning.
MISSING = ".codejail-env-missing"

# CPython's regression-test package (only multiprocessing's test clean-up
# helper imports it), and Debian's sitecustomize: a link to /etc whose only
# job is installing apport's crash hook, which is not in the sandbox.  Having
# no byte-compiled cache, it would be compiled at every interpreter start-up.
STDLIB_DROPPED = re.compile(r"^/usr/lib/python3\.\d+/(test/|sitecustomize\.py$)")

# __pycache__/NAME.cpython-311[.opt-N].pyc
PYC_NAME = re.compile(r"^(?P<stem>[^.]+)\.cpython-\d+(?:\.opt-\d+)?\.pyc$")


class BuildError(Exception):
    pass


# --- Debian version comparison (a port of dpkg's verrevcmp) -------------------

def _order(c):
    if c == "" or c.isdigit():
        return 0
    if c == "~":
        return -1
    return ord(c) if c.isalpha() else ord(c) + 256


def _verrevcmp(a, b):
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            diff = _order(a[i:i + 1]) - _order(b[j:j + 1])
            if diff:
                return diff
            i += 1
            j += 1
        m = re.match(r"\d*", a[i:]).group()
        n = re.match(r"\d*", b[j:]).group()
        i += len(m)
        j += len(n)
        if int(m or 0) != int(n or 0):
            return int(m or 0) - int(n or 0)
    return 0


def _split_version(v):
    epoch, _, rest = v.partition(":") if ":" in v else ("0", "", v)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch), upstream, revision


def version_cmp(a, b):
    (ea, ua, ra), (eb, ub, rb) = _split_version(a), _split_version(b)
    return (ea - eb) or _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


VERSION_OPS = {
    "<<": lambda c: c < 0, "<=": lambda c: c <= 0, "<": lambda c: c <= 0,
    "=": lambda c: c == 0,
    ">>": lambda c: c > 0, ">=": lambda c: c >= 0, ">": lambda c: c >= 0,
}


# --- dpkg database ----------------------------------------------------------------

# "name[:arch] [(op version)]"
RELATION = re.compile(r"^([^\s:(]+)(?::(\S+))?\s*(?:\(\s*([<>=]+)\s*([^\s)]+)\s*\))?$")


def parse_relations(text):
    """'a (>= 1) | b:any, c' -> [[(a, None, '>=', '1'), (b, 'any', None, None)],
    [(c, None, None, None)]]"""
    groups = []
    for group in filter(None, (g.strip() for g in text.split(","))):
        alts = []
        for alt in group.split("|"):
            m = RELATION.match(alt.strip())
            if not m:
                raise BuildError(f"cannot parse dependency {alt.strip()!r}")
            alts.append(m.groups())
        groups.append(alts)
    return groups


class Package:
    def __init__(self, fields, native_arch):
        self.name = fields["Package"]
        self.arch = fields.get("Architecture", "all")
        # Relations of an arch:all package are resolved as if it were native.
        self.dep_arch = native_arch if self.arch == "all" else self.arch
        self.version = fields.get("Version", "")
        self.multiarch = fields.get("Multi-Arch", "no")
        self.depends = parse_relations(
            ", ".join(filter(None, (fields.get("Pre-Depends"), fields.get("Depends")))))
        self.provides = [(name, version) for alts in parse_relations(fields.get("Provides", ""))
                         for name, _, _, version in alts]

    def __str__(self):
        return f"{self.name}:{self.arch}"

    def arch_satisfies(self, qualifier, dep_arch):
        """Whether this package (or its Provides) satisfies a relation with arch
        qualifier `qualifier` from a package of architecture `dep_arch`."""
        if qualifier and qualifier != "any":
            return self.arch in (qualifier, "all")
        if qualifier == "any" and self.multiarch == "allowed":
            return True
        return self.arch in (dep_arch, "all") or self.multiarch == "foreign"

    def list_file(self):
        # Multi-Arch: same packages have arch-qualified database files.
        for name in (f"{self.name}:{self.arch}.list", f"{self.name}.list"):
            path = os.path.join(DPKG_DIR, "info", name)
            if os.path.exists(path):
                return path
        raise BuildError(f"dpkg has no file list for installed package {self}")


class Installed:
    """The installed packages in dpkg's status file, by name and by provided name."""

    def __init__(self):
        self.native_arch = subprocess.run(
            ["dpkg", "--print-architecture"], check=True, capture_output=True,
            text=True).stdout.strip()
        self.by_name, self.providers = {}, {}
        with open(os.path.join(DPKG_DIR, "status"), encoding="utf-8",
                  errors="surrogateescape") as f:
            stanzas = f.read().split("\n\n")
        for stanza in stanzas:
            fields = {}
            for line in stanza.splitlines():
                if line and not line[0].isspace():  # skip multi-line fields' bodies
                    key, _, value = line.partition(":")
                    fields[key] = value.strip()
            status = fields.get("Status", "").split()  # want, flag, state
            if len(status) != 3 or status[2] not in INSTALLED_STATES:
                continue
            pkg = Package(fields, self.native_arch)
            self.by_name.setdefault(pkg.name, []).append(pkg)
            for name, version in pkg.provides:
                self.providers.setdefault(name, []).append((pkg, version))

    def satisfiers(self, relation, dep_arch):
        """Installed packages satisfying one alternative of a relation."""
        name, qualifier, op, version = relation
        found = [p for p in self.by_name.get(name, [])
                 if p.arch_satisfies(qualifier, dep_arch)
                 and (not op or VERSION_OPS[op](version_cmp(p.version, version)))]
        # A versioned relation is only satisfied by a versioned Provides.
        found += [p for p, provided in self.providers.get(name, [])
                  if p.arch_satisfies(qualifier, dep_arch)
                  and (not op or provided
                       and VERSION_OPS[op](version_cmp(provided, version)))]
        return found

    def closure(self, names):
        """The requested packages and their Pre-Depends/Depends, recursively.
        Of an alternative 'a | b' every installed choice is taken: which one a
        library actually uses may be decided elsewhere (e.g. by alternatives)."""
        todo = []
        for name in names:
            found = [p for p in self.by_name.get(name, [])
                     if p.arch_satisfies(None, self.native_arch)]
            if not found:
                raise BuildError(f"package {name} is not installed "
                                 f"(run: apt-get install {name})")
            todo += found
        seen = {}
        while todo:
            pkg = todo.pop()
            if str(pkg) in seen:
                continue
            seen[str(pkg)] = pkg
            for alts in pkg.depends:
                found = [p for rel in alts for p in self.satisfiers(rel, pkg.dep_arch)]
                if not found:
                    wanted = " | ".join(rel[0] for rel in alts)
                    raise BuildError(f"{pkg} depends on {wanted}, which is not "
                                     "installed (broken dpkg state?)")
                todo += [p for p in found if p.name not in NOT_FOLLOWED]
        return sorted(seen.values(), key=str)


def read_diversions():
    """{diverted path: (path the file really is at, diverting package)}"""
    with open(os.path.join(DPKG_DIR, "diversions"), encoding="utf-8",
              errors="surrogateescape") as f:
        lines = f.read().splitlines()
    return {lines[i]: (lines[i + 1], lines[i + 2]) for i in range(0, len(lines) - 2, 3)}


def alternative_links():
    """Every link managed by update-alternatives (master and slaves).  They are
    in no package's file list, yet e.g. libblas.so.3, which numpy and scipy
    load, is one."""
    links = []
    alt_dir = os.path.join(DPKG_DIR, "alternatives")
    for name in sorted(os.listdir(alt_dir)):
        with open(os.path.join(alt_dir, name), encoding="utf-8",
                  errors="surrogateescape") as f:
            lines = f.read().splitlines()
        # mode, master link, then slave name/link pairs up to a blank line
        links.append(lines[1])
        i = 2
        while i + 1 < len(lines) and lines[i]:
            links.append(lines[i + 1])
            i += 2
    return links


# --- path rules -------------------------------------------------------------------

def usr_path(path):
    """The path a file has in a merged-/usr tree."""
    return "/usr" + path if path.startswith(USR_ALIASES) else path


def host_path(path):
    """Where a listed path really is on the host, following directory symlinks
    but not a symlink in the last component."""
    head, tail = os.path.split(path)
    return os.path.join(os.path.realpath(head), tail)


def wanted(path):
    if not path.startswith(KEEP_PREFIXES) or path.startswith(DROP_PREFIXES):
        return False
    # No .pth files: site would process every one at each start-up, and those
    # Debian ships buy nothing (mpl_toolkits works as an implicit namespace
    # package, and distutils-precedence.pth only serves setuptools).
    if path.endswith(".pth") or STDLIB_DROPPED.match(path):
        return False
    # Packages' own test suites: large, and only their test runners import them
    # (numpy.testing, matplotlib.testing etc. are kept; they are not "tests").
    if path.startswith(DIST_PACKAGES):
        return "tests" not in path[len(DIST_PACKAGES):].split("/")[:-1]
    return True


# --- manifest ---------------------------------------------------------------------

def file_hash(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest_text(packages, alt_links, requirements):
    """Everything the tree's contents depend on: a change to any line rebuilds."""
    lines = ["codejail-env 2", "script " + file_hash(__file__)]
    lines += [f"package {p} {p.version}" for p in packages]
    # The selected alternative (e.g. reference BLAS vs OpenBLAS) decides file
    # contents without any package version changing.
    lines += [f"alternative {link} {os.path.realpath(link)}"
              for link in alt_links if wanted(usr_path(link)) and os.path.lexists(link)]
    if requirements:
        lines += [f"requirements {path} {file_hash(path)}" for path in requirements]
        settings = "\0".join(f"{k}={os.environ.get(k, '')}" for k in PIP_SETTINGS)
        lines.append("pip-settings " + hashlib.sha256(settings.encode()).hexdigest())
    return "\n".join(lines) + "\n"


def read_manifest(dest):
    try:
        with open(os.path.join(dest, MANIFEST), encoding="utf-8",
                  errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError:
        return None


# --- planning ---------------------------------------------------------------------

class Plan:
    """What DEST will hold: tree path -> host path to link or copy (files) and
    tree path -> symlink text (symlinks)."""

    def __init__(self):
        self.files, self.symlinks = {}, {}
        self._pycache = {}

    def add_package_files(self, pkg, diversions):
        with open(pkg.list_file(), encoding="utf-8", errors="surrogateescape") as f:
            listed = f.read().splitlines()
        links = {}
        for path in listed:
            # A path diverted by another package holds that package's file; the
            # one this package shipped was renamed.
            to, by = diversions.get(path, (None, None))
            if to and by != pkg.name:
                path = to
            tree = usr_path(path)
            if not wanted(tree):
                continue
            src = host_path(path)
            try:
                st = os.lstat(src)
            except FileNotFoundError:  # removed by the admin; dpkg does not mind
                continue
            if stat.S_ISLNK(st.st_mode):
                links[tree] = src
            elif stat.S_ISREG(st.st_mode):
                self.add_file(tree, src, st)
                if tree.endswith(".py"):
                    self._add_pyc(tree, src)
            # Directories are created as parents of what they contain.
        return links

    def add_file(self, tree, src, st):
        # Nothing in an interpreter's tree needs privileges; keep setuid/setgid
        # files out rather than rely on nosuid/no_new_privs alone.
        if not st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            self.files[tree] = src

    def _add_pyc(self, tree, src):
        """Debian byte-compiles at install time, so the caches are on disk but
        in no file list; without them every import compiles from source."""
        src_dir, name = os.path.split(src)
        cache_dir = os.path.join(src_dir, "__pycache__")
        if cache_dir not in self._pycache:
            by_stem = {}
            try:
                for entry in os.scandir(cache_dir):
                    m = PYC_NAME.match(entry.name)
                    if m and entry.is_file(follow_symlinks=False):
                        by_stem.setdefault(m["stem"], []).append(entry)
            except FileNotFoundError:
                pass
            self._pycache[cache_dir] = by_stem
        tree_cache = os.path.join(os.path.dirname(tree), "__pycache__")
        for entry in self._pycache[cache_dir].get(name[:-3], []):
            self.add_file(os.path.join(tree_cache, entry.name), entry.path,
                          entry.stat(follow_symlinks=False))

    def directories(self):
        dirs = set()
        for path in (*self.files, *self.symlinks):
            path = os.path.dirname(path)
            while path not in dirs and path != "/":
                dirs.add(path)
                path = os.path.dirname(path)
        return dirs

    def resolve_links(self, links):
        """Keep a symlink as a symlink when what it finally points to is in the
        tree; when that is outside (/etc/alternatives chains, conffiles such as
        /etc/matplotlibrc), put the file itself there instead; drop it when
        dangling.  Link text is made relative so the tree is self-contained
        wherever it is mounted or inspected."""
        dirs = self.directories()
        for tree, src in sorted(links.items()):
            target = os.path.realpath(src)
            final = usr_path(target)
            if final in self.files or final in dirs:
                first = usr_path(os.path.normpath(
                    os.path.join(os.path.dirname(src), os.readlink(src))))
                # Preserve the link's own step when it lands in the tree (e.g.
                # libfoo.so.1 -> libfoo.so.1.2.3), else skip the outside hops.
                via = first if first in self.files or first in links or first in dirs \
                    else final
                self.symlinks[tree] = os.path.relpath(via, os.path.dirname(tree))
            elif os.path.isfile(target):
                self.add_file(tree, target, os.stat(target))

    def add_alternatives(self, alt_links, links):
        """Alternatives links whose selected target is a file of the tree."""
        for link in alt_links:
            tree = usr_path(link)
            if wanted(tree) and os.path.islink(link) \
                    and usr_path(os.path.realpath(link)) in self.files:
                links[tree] = host_path(link)


# --- building ---------------------------------------------------------------------

def place_file(src, dst):
    """Hard-link the host file (no copy, no disk), else copy it.  The link IS
    the host's file: it must never be chmod'ed, chown'ed or written."""
    try:
        os.link(src, dst)
        return True
    except OSError as e:
        # EXDEV: other filesystem; EPERM: fs.protected_hardlinks for non-owners;
        # EMLINK: link count limit.
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
    shutil.copy2(src, dst)
    return False


def remove_tree(path):
    """rmtree that copes with our mode-0000 usr/bin and usr/sbin (which are
    directories we created, never hard links, so chmod is safe)."""
    for sealed in ("usr/bin", "usr/sbin"):
        d = os.path.join(path, sealed)
        if os.path.isdir(d) and not os.path.islink(d):
            os.chmod(d, 0o755)
    shutil.rmtree(path)


def build(plan, root, manifest):
    os.mkdir(root, 0o755)
    for d in sorted(plan.directories()):
        os.mkdir(root + d, 0o755)
    linked = 0
    for tree, src in plan.files.items():
        linked += place_file(src, root + tree)
    for tree, text in plan.symlinks.items():
        os.symlink(text, root + tree)
    # Present but unusable: exec of /usr/bin/anything fails with EACCES, which
    # is the error the API promises, rather than ENOENT.
    for sealed in ("/usr/bin", "/usr/sbin"):
        os.mkdir(root + sealed, 0)
    with open(os.path.join(root, MANIFEST), "w", encoding="utf-8",
              errors="surrogateescape") as f:
        f.write(manifest)
    return linked


def swap_in(new, dest):
    """Replace DEST by DEST.new with renames, so DEST is always either the old
    or the new complete tree (bar the instant between the two renames)."""
    old = dest + ".old"
    if os.path.lexists(old):
        remove_tree(old)
    if os.path.lexists(dest):
        os.rename(dest, old)
    os.rename(new, dest)
    if os.path.lexists(old):
        remove_tree(old)


def tree_size(plan):
    return sum(os.stat(src).st_size for src in plan.files.values())


# --- Python requirements (pip) ----------------------------------------------------

def requirement_lines(paths):
    """(requirement, [modules]) for each requirement of the files; the modules
    come from a trailing "# modules: a b" comment and name what goes missing."""
    out = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                text, _, comment = line.partition("#")
                text = text.strip()
                if text and not text.startswith("-"):
                    m = re.search(r"modules:(.*)", comment)
                    out.append((text, m.group(1).split() if m else []))
    return out


def pip_install(requirements, site):
    """Install the requirements into site (a new directory) without their
    dependencies, which the Debian part provides; pip's error text, or None."""
    cmd = [sys.executable, "-m", "pip", "install", "--target", site, "--no-deps",
           "--disable-pip-version-check", "--no-input", "--no-warn-script-location"]
    for path in requirements:
        cmd += ["--requirement", path]
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        return (result.stderr.strip() or result.stdout.strip() or
                f"pip exited with status {result.returncode}")
    # Entry-point scripts: nothing in the sandbox can execute them.
    shutil.rmtree(os.path.join(site, "bin"), ignore_errors=True)
    return None


def unmet_dependencies(root):
    """What the pip-installed distributions require that the tree lacks."""
    # Imported here: only a build with requirements needs them.
    from importlib import metadata
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion

    site, debian = root + PIP_SITE, root + DIST_PACKAGES.rstrip("/")
    have = {canonicalize_name(d.metadata["Name"]): d.version
            for d in metadata.distributions(path=[debian, site])}
    unmet = []
    for dist in metadata.distributions(path=[site]):
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not req.marker.evaluate({"extra": ""}):
                continue
            version = have.get(canonicalize_name(req.name))
            try:
                ok = version is not None and req.specifier.contains(version, prereleases=True)
            except InvalidVersion:
                ok = False
            if not ok:
                unmet.append(f"{dist.metadata['Name']} requires {req}; "
                             f"the environment has {version or 'none'}")
    return unmet


def warn_missing(dest, pip_error=None):
    """Say which requirements the tree lacks and how to add them."""
    try:
        with open(os.path.join(dest, MISSING), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return
    names = [line.split("\t")[0] for line in lines]
    modules = [m for line in lines for m in line.split("\t")[1:]]
    if pip_error:
        last = pip_error.splitlines()[-1]
        print(f"build-env: warning: pip could not install the Python requirements: {last}",
              file=sys.stderr)
    print(f"build-env: warning: the sandbox environment lacks {', '.join(names)}"
          + (f" (modules {', '.join(modules)})" if modules else "")
          + "; course code that imports them fails.\n"
          "  Point pip at an index or a folder of wheels and rebuild, e.g.\n"
          "    PIP_INDEX_URL=https://your-mirror/simple make env\n"
          "    PIP_FIND_LINKS=/path/to/wheels PIP_NO_INDEX=1 make env\n"
          "  or, with unchanged settings, retry: make env FORCE=1",
          file=sys.stderr)


def add_requirements(root, requirements):
    """pip's part of the tree; on failure the tree goes without it and MISSING
    records what is absent.  Unmet dependencies are an error: they are a
    configuration mistake, not an unreachable index."""
    error = pip_install(requirements, root + PIP_SITE)
    if error is None:
        unmet = unmet_dependencies(root)
        if unmet:
            raise BuildError("unmet dependencies (add their Debian packages to "
                             "sandbox/packages.txt, or the requirements to a requirements "
                             "file):\n  " + "\n  ".join(unmet))
        return None
    shutil.rmtree(root + PIP_SITE, ignore_errors=True)
    with open(os.path.join(root, MISSING), "w", encoding="utf-8") as f:
        for req, modules in requirement_lines(requirements):
            f.write("\t".join([req, *modules]) + "\n")
    return error


# --- main -------------------------------------------------------------------------

def read_package_names(path):
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f
                 if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise BuildError(f"{path} lists no packages")
    return names


def check_dest(dest):
    """Refuse to replace a directory this script did not build (a mistyped
    --dest such as / or $HOME would otherwise be renamed away and deleted)."""
    if dest == "/":
        raise BuildError("refusing to use / as the destination")
    if not os.path.lexists(dest):
        return
    if not os.path.isdir(dest) or os.path.islink(dest):
        raise BuildError(f"{dest} exists and is not a directory")
    if os.listdir(dest) and read_manifest(dest) is None:
        raise BuildError(f"{dest} is not empty and was not built by this script "
                         f"(no {MANIFEST}); remove it or choose another --dest")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", action="append", required=True,
                        help="file listing Debian packages (repeatable: an environment "
                             "adds its own to sandbox/packages.txt)")
    parser.add_argument("--requirements", action="append", default=[],
                        help="pip requirements file for what Debian lacks (repeatable)")
    parser.add_argument("--dest", required=True, help="directory to build (DEST/usr/...)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even if the manifest is current (e.g. after "
                             "editing /etc/matplotlibrc, which no version tracks)")
    args = parser.parse_args()
    dest = os.path.abspath(args.dest)
    start = time.monotonic()
    os.umask(0o022)

    installed = Installed()
    packages = installed.closure([name for path in args.packages
                                  for name in read_package_names(path)])
    alt_links = alternative_links()
    requirements = [os.path.abspath(path) for path in args.requirements]
    manifest = manifest_text(packages, alt_links, requirements)
    check_dest(dest)
    if not args.force and read_manifest(dest) == manifest:
        print(f"build-env: {dest} is up to date "
              f"({time.monotonic() - start:.2f} s)")
        warn_missing(dest)
        return

    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    # Serialise concurrent builds of the same DEST (e.g. two make targets)
    # without leaving a lock file behind: lock the parent directory itself.
    lock = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not args.force and read_manifest(dest) == manifest:
        print(f"build-env: {dest} was brought up to date concurrently")
        return

    plan = Plan()
    links = {}
    diversions = read_diversions()
    for pkg in packages:
        links.update(plan.add_package_files(pkg, diversions))
    plan.add_alternatives(alt_links, links)
    plan.resolve_links(links)

    new = dest + ".new"
    if os.path.lexists(new):  # left over from an interrupted build
        remove_tree(new)
    try:
        linked = build(plan, new, manifest)
        pip_error = add_requirements(new, requirements) if requirements else None
    except BaseException:
        remove_tree(new)
        raise
    swap_in(new, dest)

    print(f"build-env: {dest}: {len(packages)} packages, {len(plan.files)} files "
          f"({linked} hard-linked, {len(plan.files) - linked} copied), "
          f"{len(plan.symlinks)} symlinks, {tree_size(plan) / 2**20:.1f} MiB, "
          f"{time.monotonic() - start:.2f} s")
    warn_missing(dest, pip_error)


if __name__ == "__main__":
    try:
        main()
    except (BuildError, OSError, subprocess.CalledProcessError) as e:
        print(f"build-env: error: {e}", file=sys.stderr)
        sys.exit(1)
