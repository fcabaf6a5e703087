"""What this process holds, and the fork rule: the one place for both.

The backends open resources that belong to one process: SQLite connections (and the
table of files they are open on, whose POSIX locks one stray ``close()`` would drop),
LMDB environments (a memory map and reader slots) and PostgreSQL connections (a socket in
the middle of a conversation).

**The fork rule.** A child process never uses, and never closes, what its parent opened:
it opens its own on first use. Using the parent's would interleave two processes on one
connection or lock table; closing it would release locks, reader slots or a session the
parent still holds. So a resource inherited across ``fork()`` is dropped from the
child's books and handed to :func:`keep_inherited`, which keeps it referenced (and so
never garbage-collected, never closed) for the life of the process.

Each backend registers one :class:`ForkHooks` with :func:`on_fork`; this is the only
module that calls ``os.register_at_fork``. A resource also records the pid that opened
it, which catches a fork no hook saw (one made by C code).
"""

from __future__ import annotations

import os

__all__ = ["ForkHooks", "keep_inherited", "on_fork"]


class ForkHooks:
    """What a backend does around ``fork()``; each step does nothing unless overridden."""

    def before(self) -> None:
        """In the parent, just before the fork (e.g. take the locks the child copies)."""

    def after_in_parent(self) -> None:
        """In the parent, just after the fork."""

    def after_in_child(self) -> None:
        """In the child, before it runs anything else: forget the parent's resources."""


_hooks: list[ForkHooks] = []
_inherited: list[object] = []


def on_fork(hooks: ForkHooks) -> None:
    """Run ``hooks`` around every fork of this process from now on."""
    _hooks.append(hooks)


def keep_inherited(resource: object) -> None:
    """Keep a resource a parent process opened referenced for good, so that this process
    never closes it (see the fork rule above)."""
    _inherited.append(resource)


def _before() -> None:
    for hooks in reversed(_hooks):
        hooks.before()


def _after_in_parent() -> None:
    for hooks in _hooks:
        hooks.after_in_parent()


def _after_in_child() -> None:
    for hooks in _hooks:
        hooks.after_in_child()


os.register_at_fork(
    before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child
)
