"""Failpoints: let the fault-injection tests stop a process at an exact spot.

A failpoint is honoured only when BOTH ``LOCALQUEUE_TESTING=1`` and
``LOCALQUEUE_FAILPOINT=<name>`` are in the environment when localqueue is imported, so a
stray variable in production does nothing. On reaching it the process writes
``localqueue: failpoint <name> reached`` to stderr and blocks until it is killed: the
test then SIGKILLs it and checks that nothing was half written.

Names: ``<operation>-before-commit`` with operation one of put, lease, ack, release,
dead_letter, extend, requeue, settle (``settle_many``: SQLite, LMDB and PostgreSQL, where
it runs the one statement in a transaction so that there is a moment to stop in).
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["ACTIVE", "reached"]

ACTIVE: str | None = (
    os.environ.get("LOCALQUEUE_FAILPOINT") if os.environ.get("LOCALQUEUE_TESTING") == "1" else None
) or None


def reached(name: str) -> None:
    """Block forever here when ``name`` is the active failpoint."""
    if name != ACTIVE:
        return
    sys.stderr.write(f"localqueue: failpoint {name} reached\n")
    sys.stderr.flush()
    while True:
        time.sleep(3600)
