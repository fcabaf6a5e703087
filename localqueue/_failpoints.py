"""Failpoints: let the fault-injection tests stop a process at an exact spot.

A failpoint is honoured only when BOTH ``LOCALQUEUE_TESTING=1`` and
``LOCALQUEUE_FAILPOINT=<name>`` are in the environment when localqueue is imported, so a
stray variable in production does nothing. On reaching it the process writes
``localqueue: failpoint <name> reached`` to stderr and blocks until it is killed: the
test then SIGKILLs it and checks that nothing was half written.

Names: ``<operation>-before-commit`` with operation one of put, lease, ack, release,
dead_letter, extend, requeue, settle (``settle_many``: SQLite, LMDB and PostgreSQL, where
it runs the one statement in a transaction so that there is a moment to stop in). A keyed
put (``put_keyed``) reaches ``put-before-commit`` on SQLite, LMDB and PostgreSQL.

A failpoint can also make an operation fail instead of blocking: ``settle-error:N`` makes
the first N commits of ``settle_many`` raise StoreError, ``settle-busy:N``
StoreLockedError (``:always`` for every one; ``:1`` when no count is given), with
nothing written, as a store that failed the commit would; ``extend-...`` does it to
lease extensions (a heartbeat), ``store-...`` to both.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["ACTIVE", "fail", "reached"]

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


_failures = {"n": 0}  # how many times a failing failpoint has failed in this process


def fail(operation: str) -> None:
    """Raise the store error that an ``<operation>-error`` or ``<operation>-busy``
    failpoint names, while its count lasts."""
    if ACTIVE is None:
        return
    target, _, rest = ACTIVE.partition("-")
    if target not in (operation, "store"):
        return
    kind, _, count = rest.partition(":")
    if kind not in ("error", "busy"):
        return
    if count != "always" and _failures["n"] >= int(count or 1):
        return
    _failures["n"] += 1
    from localqueue import errors

    if kind == "busy":
        raise errors.StoreLockedError(f"failpoint {ACTIVE}: the store is busy")
    raise errors.StoreError(f"failpoint {ACTIVE}: the commit failed")
