#!/usr/bin/env python3
"""Runs the chat server (gochatd) with the arguments given, for a course
test harness that runs `python3 server.py -p PORT`. client.py, beside it,
does the same for the client (gochat).

Copy both files beside the harness. They find the Go programs, in order:

1. $GOCHAT_ROOT, the checkout of github.com/gochat/chat (the folder that
   holds its go.mod): the programs are built from it into a cache folder
   ($GOCHAT_CACHE, else $XDG_CACHE_HOME/gochat or ~/.cache/gochat), again
   whenever a source file is newer than the built program;
2. the checkout this file lies in, if it is run from there (or through a
   symbolic link to it), built the same way;
3. gochatd and gochat on the PATH (`go install ./cmd/...` in the checkout).

Then the program replaces this process, with the same arguments, so the
harness talks to it directly: its stdout lines, exit status and signals.
Building needs the Go toolchain (`go` on the PATH); its messages go to
stderr.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys

MODULE = "module github.com/gochat/chat"


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


def newest_source(root):
    """Returns the latest modification time of the checkout's Go sources."""
    newest = 0.0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "testdata"]
        for name in filenames:
            if name.endswith(".go") and not name.endswith("_test.go") or name in ("go.mod", "go.sum"):
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return newest


def build(root, program):
    """Returns the path of program built from root, building it if it is
    missing or older than a source file."""
    cache = os.environ.get("GOCHAT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gochat")
    folder = os.path.join(cache, hashlib.sha256(root.encode()).hexdigest()[:16])
    os.makedirs(folder, exist_ok=True)
    binary = os.path.join(folder, program)
    with open(os.path.join(folder, ".lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others wait for it
        if os.path.exists(binary) and os.stat(binary).st_mtime >= newest_source(root):
            return binary
        go = shutil.which("go")
        if go is None:
            sys.exit(f"{sys.argv[0]}: cannot build {program}: the Go toolchain (go) is not on the PATH")
        print(f"{sys.argv[0]}: building {program} from {root}", file=sys.stderr)
        tmp = binary + ".tmp"
        done = subprocess.run([go, "build", "-o", tmp, "./cmd/" + program], cwd=root, stdout=sys.stderr, check=False)
        if done.returncode != 0:
            sys.exit(f"{sys.argv[0]}: building {program} failed")
        os.replace(tmp, binary)
    return binary


def launch(program):
    """Replaces this process by program, run with this one's arguments."""
    root = find_root()
    if root is not None:
        binary = build(root, program)
    else:
        binary = shutil.which(program)
        if binary is None:
            sys.exit(f"{sys.argv[0]}: cannot find {program}: set GOCHAT_ROOT to the checkout of "
                     "github.com/gochat/chat, or put gochatd and gochat on the PATH")
    sys.stdout.flush()
    os.execv(binary, [binary] + sys.argv[1:])


if __name__ == "__main__":
    launch("gochatd")
