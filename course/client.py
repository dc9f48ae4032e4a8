#!/usr/bin/env python3
"""Runs the chat client (gochat) with the arguments given, for a course test
harness that runs `python3 client.py -p PORT -u NAME`. See server.py, which
must lie beside this file, for how the program is found.

Its start costs little more than the interpreter's own: server.py imports
nothing beyond os and sys until it has to build."""

import sys

sys.dont_write_bytecode = True  # leave nothing beside the harness
from server import launch  # noqa: E402

if __name__ == "__main__":
    launch("gochat")
