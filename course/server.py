#!/usr/bin/env python3
"""Runs the chat server (gochatd) with the arguments given, for a course
test harness that runs `python3 server.py -p PORT`. client.py, beside it,
does the same for the client (gochat).

Copy both files beside the harness. They find the Go programs, in order:

1. $GOCHAT_ROOT, the checkout of github.com/gochat/chat (the folder that
   holds its go.mod): the programs are built from it into a cache folder
   ($GOCHAT_CACHE, else $XDG_CACHE_HOME/gochat or ~/.cache/gochat), again
   whenever a source has changed since the last build;
2. the checkout this file lies in, if it is run from there (or through a
   symbolic link to it), built the same way;
3. gochatd and gochat on the PATH (`go install ./cmd/...` in the checkout).

Then the program replaces this process, with the same arguments, so the
harness talks to it directly: its stdout lines, exit status and signals.
Building needs the Go toolchain (`go` on the PATH); its messages go to
stderr.

The server's port is opened first of all, before anything is looked at or
built, and handed to gochatd as systemd hands a socket to a service
(LISTEN_FDS): a harness may connect as soon as this script runs, however
long the start takes, and its connection waits in the port's backlog
instead of being refused (issue 19). Arguments it cannot read as gochatd
does, a port it cannot open, and cluster mode are left to gochatd, which
then opens the port itself, or says what is wrong, as it always does.

Whether to build is decided without reading the checkout: each build
writes beside the program the modification times of every source file and
folder it was built from; a start compares those (a new or removed file
changes its folder's time) and builds again only if one differs.
"""

import os
import sys

MODULE = "module github.com/gochat/chat"

# The flags of gochatd that take no value (pflag booleans); every other
# flag it has takes one, as the next argument or after "=". Kept in step
# with cmd/gochatd; a flag missing here only means that the port is left
# for gochatd to open.
BOOL_FLAGS = {"limit-loopback"}
VALUE_FLAGS = {
    "port", "address", "max-clients", "max-file-size", "join-timeout", "stall-timeout",
    "send-queue", "log-level", "log-format", "flood-rate", "flood-burst", "flood-bytes",
    "flood-bytes-burst", "pace-backlog", "max-conns-per-ip", "metrics-addr", "tls-cert",
    "tls-key", "http-addr", "http-allow-origin", "http-trusted-proxy",
}
# Cluster mode opens the chat port only once the node is part of the
# cluster (docs/CLUSTER.md), so its port is not opened here.
CLUSTER_FLAGS = {
    "node", "cluster-name", "cluster-listen", "cluster-peers", "cluster-dir", "nats",
    "nats-creds", "nats-tls-ca", "cluster-wait", "cluster-replicas",
}
SHORT_FLAGS = {"p": "port", "a": "address"}


def parse_int(text):
    """Returns text as gochatd reads a number (internal/cli.ParseInt: base
    10, one optional sign, single underscores between digits, surrounding
    spaces), or None."""
    t = text.strip()
    digits = t.lstrip("+-")
    if len(t) - len(digits) > 1 or not digits or digits[0] == "_" or digits[-1] == "_" or "__" in digits:
        return None
    if any(c not in "0123456789_" for c in digits):
        return None
    value = int(digits.replace("_", ""))
    return -value if t.startswith("-") else value


def chat_address(args):
    """Returns the (host, port) gochatd would listen on for args, or None
    when it cannot tell for sure (help, an unknown flag, an argument out
    of place, a bad port, cluster mode): gochatd then decides alone."""
    values = {"port": "15000", "address": "localhost"}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            if name in BOOL_FLAGS:
                continue
            if name not in VALUE_FLAGS:
                return None  # --help, cluster flags, unknown flags
            if not eq:
                if i == len(args):
                    return None
                value = args[i]
                i += 1
        elif arg.startswith("-") and len(arg) > 1 and arg[1] in SHORT_FLAGS:
            name, value = SHORT_FLAGS[arg[1]], arg[2:]
            if value.startswith("="):
                value = value[1:]
            elif not value:
                if i == len(args):
                    return None
                value = args[i]
                i += 1
        else:
            return None  # -h, other short flags, "--", arguments
        values[name] = value
    port = parse_int(values["port"])
    host = values["address"]
    if port is None or not 0 <= port <= 65535 or any(c in host for c in "[]%"):
        return None
    return host, port


def open_port(host, port):
    """Opens a listening socket as gochatd's net.Listen("tcp", host:port)
    would (SO_REUSEADDR, the kernel's largest backlog; an unspecified host
    listens on every IPv6 and IPv4 address; a name listens on its first
    IPv4 address, else on its first), and returns it, or None if that
    fails: gochatd then tries and reports the error itself, in its own
    words."""
    import _socket  # a built-in module: cheaper than socket, which imports enum and more

    wildcard = host in ("", "0.0.0.0", "::")
    try:
        if wildcard:
            family, addr = _socket.AF_INET6, ("::", port)
        else:
            infos = _socket.getaddrinfo(host, port, _socket.AF_UNSPEC, _socket.SOCK_STREAM)
            v4 = [info for info in infos if info[0] == _socket.AF_INET]
            family, addr = (v4 or infos)[0][0], (v4 or infos)[0][4]
        try:
            sock = _socket.socket(family, _socket.SOCK_STREAM)
        except OSError:
            if not wildcard:
                raise
            family, addr = _socket.AF_INET, ("0.0.0.0", port)  # no IPv6 on this machine
            sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            if family == _socket.AF_INET6 and wildcard:
                sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 0)
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(65535)  # the kernel caps it at net.core.somaxconn, as Go asks
        except OSError:
            sock.close()
            raise
        return sock
    except OSError:
        return None


def is_root(path):
    """Reports whether path is the checkout: its go.mod names the module."""
    try:
        with open(os.path.join(path, "go.mod"), encoding="utf-8") as f:
            return f.readline().strip() == MODULE
    except OSError:
        return False


def find_root():
    """Returns the checkout to build from, or None."""
    root = os.environ.get("GOCHAT_ROOT")
    if root:
        if not is_root(root):
            sys.exit(f"{sys.argv[0]}: GOCHAT_ROOT={root} holds no go.mod of github.com/gochat/chat")
        return os.path.abspath(root)
    path = os.path.dirname(os.path.realpath(__file__))
    while True:
        if is_root(path):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def fnv64(text):
    """Returns the FNV-1a hash of text as 16 hex digits: a name for the
    checkout's cache folder without importing hashlib (3 ms)."""
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def sources(root):
    """Returns the modification times (ns) of what a build of root reads,
    by path relative to root: go.mod, go.sum, every non-test .go file,
    every other file at or below a folder that holds .go files (what
    //go:embed can reach), and every folder, whose time changes when a file
    in it is added, removed or renamed. Like the go command, it skips
    folders named testdata or starting with "." or "_"; and the checkout's
    bin, where programs are built to."""
    found = {}
    for name in ("go.mod", "go.sum", "go.work"):
        try:
            found[name] = os.stat(os.path.join(root, name)).st_mtime_ns
        except FileNotFoundError:
            pass
    in_package = {root: False}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not (d.startswith((".", "_")) or d == "testdata"
                                                   or dirpath == root and d == "bin")]
        rel = os.path.relpath(dirpath, root)
        found[rel] = os.stat(dirpath).st_mtime_ns
        package = in_package.pop(dirpath) or any(
            n.endswith(".go") and not n.endswith("_test.go") for n in filenames)
        for d in dirnames:
            in_package[os.path.join(dirpath, d)] = package
        for n in filenames:
            if n.endswith("_test.go") or not (package or n.endswith(".go")):
                continue
            path = os.path.join(dirpath, n)
            try:
                found[os.path.relpath(path, root)] = os.stat(path).st_mtime_ns
            except FileNotFoundError:
                pass  # removed meanwhile: its folder's time says so
    return found


MANIFEST_HEADER = "gochat-sources 1"


def up_to_date(root, binary, manifest):
    """Reports whether binary was built from root as it is now: the
    manifest its build wrote names root and this binary, and every path in
    it has the modification time it had then. This stats about a hundred
    paths where walking the checkout took 30 ms."""
    try:
        with open(manifest, encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines[0] != MANIFEST_HEADER or lines[1] != "root\t" + root:
            return False
        if lines[2] != f"binary\t{os.stat(binary).st_mtime_ns}":
            return False
        for line in lines[3:]:
            if line:
                mtime, _, rel = line.partition("\t")
                if os.stat(os.path.join(root, rel)).st_mtime_ns != int(mtime):
                    return False
    except (OSError, IndexError, ValueError):
        return False
    return True


def build(root, program):
    """Returns the path of program built from root, building it if it is
    missing or a source changed since it was built."""
    cache = os.environ.get("GOCHAT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gochat")
    folder = os.path.join(cache, fnv64(root))
    binary = os.path.join(folder, program)
    manifest = binary + ".sources"
    if up_to_date(root, binary, manifest):
        return binary
    import fcntl
    import subprocess

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others wait for it
        if up_to_date(root, binary, manifest):
            return binary  # built by another start while this one waited
        go = which("go")
        if go is None:
            sys.exit(f"{sys.argv[0]}: cannot build {program}: the Go toolchain (go) is not on the PATH")
        print(f"{sys.argv[0]}: building {program} from {root}", file=sys.stderr)
        found = sources(root)  # before building: an edit during the build makes the next start build again
        tmp = binary + ".tmp"
        done = subprocess.run([go, "build", "-o", tmp, "./cmd/" + program], cwd=root, stdout=sys.stderr, check=False)
        if done.returncode != 0:
            sys.exit(f"{sys.argv[0]}: building {program} failed")
        os.replace(tmp, binary)
        lines = [MANIFEST_HEADER, "root\t" + root, f"binary\t{os.stat(binary).st_mtime_ns}"]
        lines += [f"{mtime}\t{rel}" for rel, mtime in sorted(found.items())]
        with open(manifest + ".tmp", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(manifest + ".tmp", manifest)
    return binary


def which(program):
    """Returns the path of program on the PATH, or None (shutil.which,
    without importing shutil)."""
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", program)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def launch(program, sock=None):
    """Replaces this process by program, run with this one's arguments;
    sock, if given, is a listening socket it gets at descriptor 3 under
    the socket activation protocol (LISTEN_PID is this process's id, which
    exec keeps)."""
    root = find_root()
    if root is not None:
        binary = build(root, program)
    else:
        binary = which(program)
        if binary is None:
            sys.exit(f"{sys.argv[0]}: cannot find {program}: set GOCHAT_ROOT to the checkout of "
                     "github.com/gochat/chat, or put gochatd and gochat on the PATH")
    env = os.environ
    if sock is not None:
        if sock.fileno() != 3:
            os.dup2(sock.fileno(), 3)  # inheritable, as dup2 makes it
        else:
            os.set_inheritable(3, True)
        env = dict(env, LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="chat")
    sys.stdout.flush()
    os.execve(binary, [binary] + sys.argv[1:], env)


def main():
    """Opens the chat port, then becomes gochatd."""
    sock = None
    # A service manager that started this script with sockets of its own
    # (LISTEN_PID is this process) hands them on to gochatd as they are.
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        address = chat_address(sys.argv[1:])
        if address is not None:
            sock = open_port(*address)
    launch("gochatd", sock)


if __name__ == "__main__":
    main()
