"""PgListener: LISTEN on one channel in a background thread and wake waiters per payload.

The store NOTIFYs ``channel`` with the queue name as payload whenever a message becomes
leasable. One daemon thread per store keeps a dedicated connection LISTENing and counts
notifications per payload; :meth:`PgListener.wait` blocks on a condition until the count
for its queue moves. Reading continuously matters: a listener that stops reading would
let the server's notification queue grow and, in the end, make every NOTIFY fail.

Writers skip the NOTIFY when nobody listens: the thread announces itself with shared
advisory locks (``_pg_sql.LISTEN_SLOTS``) after LISTEN and before it reports listening,
so every change committed after a waiter's next look at the queue notifies it.

When the listening connection is lost the thread reconnects with backoff and wakes every
waiter once (a notification may have been missed meanwhile). Waiting never raises: with
no listening connection it is just a sleep, and the caller polls as it would anyway.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from localqueue._signals import start_quietly
from localqueue.backends.pg import register_for_fork
from localqueue.errors import StoreError
from localqueue.stores._pg_sql import LISTEN_SLOTS

__all__ = ["PgListener"]

_READ_SLICE = 0.5  # seconds between checks of the stop flag
_PAUSE_MIN, _PAUSE_MAX = 0.05, 2.0


class PgListener:
    """Notifications on ``channel``, read by a thread started on first use."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], channel: str) -> None:
        self._connect = connect
        self._listen_sql = sql.SQL("LISTEN {}").format(sql.Identifier(channel))
        # Writers NOTIFY only while some listener holds these (see _pg_sql.LISTEN_SLOTS);
        # taking them waits for the writers that decided nobody listens to commit.
        self._present_sql = sql.SQL(
            "SELECT pg_advisory_lock_shared(hashtext({}), slot) FROM generate_series(0, {}) AS slot"
        ).format(sql.Literal(channel), sql.Literal(LISTEN_SLOTS - 1))
        self._cond = threading.Condition()
        self._events: dict[str, int] = {}
        self._epoch = 0  # bumped when notifications may have been missed
        self._listening = False
        self._stop: threading.Event | None = None
        register_for_fork(self)

    def _start(self) -> None:
        """Start the reader thread unless it runs; call with ``_cond`` held."""
        if self._stop is None:
            self._stop = threading.Event()
            thread = threading.Thread(
                target=self._read_loop, args=(self._stop,), name="localqueue-listen", daemon=True
            )
            start_quietly(thread)

    def wait(self, key: str, timeout: float) -> None:
        """Return when a notification with payload ``key`` arrives (or one may have been
        missed), or after ``timeout`` seconds."""
        if timeout <= 0:
            return
        with self._cond:
            self._start()
            seen, epoch = self._events.get(key, 0), self._epoch
            self._cond.wait_for(
                lambda: self._events.get(key, 0) != seen or self._epoch != epoch, timeout
            )

    def listen(self, timeout: float) -> None:
        """Block until the channel is LISTENed to, so that no later NOTIFY is missed;
        StoreError when that does not happen within ``timeout`` seconds."""
        with self._cond:
            self._start()
            if not self._cond.wait_for(lambda: self._listening, timeout):
                raise StoreError(f"could not LISTEN within {timeout:g}s")

    def _read_loop(self, stop: threading.Event) -> None:
        conn: psycopg.Connection[Any] | None = None
        pause = _PAUSE_MIN
        while not stop.is_set():
            try:
                if conn is None:
                    conn = self._connect()
                    conn.execute(self._listen_sql)
                    conn.execute(self._present_sql)
                    pause = _PAUSE_MIN
                    self._set_listening(True)
                for note in conn.notifies(timeout=_READ_SLICE):
                    with self._cond:
                        self._events[note.payload] = self._events.get(note.payload, 0) + 1
                        self._cond.notify_all()
            except (psycopg.Error, StoreError):
                self._set_listening(False)
                conn = self._close(conn)
                stop.wait(pause)
                pause = min(pause * 2, _PAUSE_MAX)
        self._close(conn)

    def _set_listening(self, listening: bool) -> None:
        with self._cond:
            if listening != self._listening:
                self._listening = listening
                self._epoch += 1  # wake everyone: notifications may have been missed
                self._cond.notify_all()

    @staticmethod
    def _close(conn: psycopg.Connection[Any] | None) -> None:
        if conn is not None:
            with contextlib.suppress(Exception):  # it is gone either way
                conn.close()

    def close(self) -> None:
        """Stop the reader thread; it closes its connection (a later wait restarts it)."""
        with self._cond:
            if self._stop is not None:
                self._stop.set()
                self._stop = None
                self._listening = False

    def _after_fork(self) -> None:
        # The reader thread did not survive fork(); its connection belongs to the parent.
        self._cond = threading.Condition()
        self._stop = None
        self._listening = False
