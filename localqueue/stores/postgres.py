"""PostgresQueueStore: the queue store on a PostgreSQL server, for work spread over hosts.

Same contract and semantics as every other store (``localqueue/stores/base.py``), with
the server as the single source of truth:

* one table per schema (default ``localqueue``), created or migrated on first use under
  an advisory lock and versioned in the schema's ``meta`` table;
* a lease is ONE statement: ``UPDATE ... WHERE seq = (SELECT ... FOR UPDATE SKIP LOCKED
  LIMIT 1) RETURNING ...``, so concurrent workers never wait on each other's rows;
* every lease and delay is computed from the server's ``now()``, so hosts with skewed
  clocks agree; :meth:`PostgresQueueStore.clock` reads the server's clock too;
* ``put`` (and release / requeue) NOTIFY in the same statement and :meth:`wait` LISTENs
  on its own connection, so a blocked ``get_message`` wakes within milliseconds;
* connection loss is survived: see :mod:`localqueue.stores._pg`.

Ids are ``<tag>-<n>``: ``n`` from an identity sequence (never reused) and ``tag`` random
per schema, so ids stay unique even across a dropped and recreated schema.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from localqueue.errors import Full, LeaseLostError, MessageNotFoundError, StoreError
from localqueue.message import QueueStats
from localqueue.stores import _pg_sql as q
from localqueue.stores._pg import PgSession, register_for_fork
from localqueue.stores.base import QueueStore, Row

__all__ = ["PostgresQueueStore"]

_MAX_SEQ_DIGITS = 18  # fits a bigint
_LISTEN_RETRY_PAUSE = 0.5
_STATEMENTS = [
    *("LOCK_QUEUE", "PENDING", "PUT", "LEASE", "ACK", "PROBE", "RELEASE", "DEAD_LETTER"),
    *("EXTEND_LEASE", "REQUEUE_DEAD", "REQUEUE_ALL_DEAD", "PURGE", "PURGE_DEAD", "GET"),
    *("DEAD_LETTERS", "STATS", "QUEUES", "NEXT_VISIBLE_IN", "CLOCK"),
]


def _new_tag() -> dict[str, str]:
    return {"queue_tag": secrets.token_hex(4)}


class PostgresQueueStore(QueueStore):
    """Queues in the ``schema`` of the PostgreSQL database ``dsn`` names (by default
    the URL's ``?schema=NAME`` parameter, else ``localqueue``).

    ``busy_timeout`` is how long a statement waits for a lock another session holds
    before StoreLockedError; ``reconnect_timeout`` how long a lost connection is retried
    (with backoff) before StoreError. Thread-safe (threads share one connection and take
    turns); safe across processes and hosts; a connection is never reused after
    ``fork()``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        busy_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        reconnect_timeout: float = 30.0,
    ) -> None:
        self._session = PgSession(
            dsn,
            schema=schema,
            component="queue",
            version=q.SCHEMA_VERSION,
            tables={"m": "messages"},
            create=q.CREATE,
            meta_init=_new_tag,
            busy_timeout=busy_timeout,
            connect_timeout=connect_timeout,
            reconnect_timeout=reconnect_timeout,
        )
        self.schema = self._session.schema
        self.channel = "localqueue_" + hashlib.sha256(self.schema.encode()).hexdigest()[:24]
        render = self._session.render
        self._sql = {name: render(getattr(q, name)) for name in _STATEMENTS}
        # LISTEN side: one thread at a time reads notifications and counts them per
        # queue; waiters compare counts.
        self._cond = threading.Condition()
        self._listener: psycopg.Connection[Any] | None = None
        self._reading = False
        self._close_listener = False
        self._events: dict[str, int] = {}
        register_for_fork(self)

    def __repr__(self) -> str:
        return f"PostgresQueueStore({self._session.describe()!r})"

    # -- helpers -----------------------------------------------------------------------

    @property
    def _tag(self) -> str:
        return self._session.meta["queue_tag"]

    def _row(self, raw: Sequence[Any]) -> Row:
        return (f"{self._tag}-{raw[0]}", *raw[1:])

    def _seq(self, message_id: str) -> int | None:
        prefix = f"{self._tag}-"
        if not isinstance(message_id, str) or not message_id.startswith(prefix):
            return None
        digits = message_id[len(prefix) :]
        if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_SEQ_DIGITS:
            return None
        return int(digits)

    def _one(self, conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> Any:
        return conn.execute(self._sql[name], params).fetchone()

    def _settle(
        self,
        what: str,
        name: str,
        queue: str,
        message_id: str,
        token: str | None,
        **params: Any,
    ) -> Row:
        """Run a fenced statement on a held message; raise as the contract says when it
        matched nothing."""

        def op(conn: psycopg.Connection[Any]) -> Row:
            seq = self._seq(message_id)
            args = {"seq": seq, "queue": queue, "token": token, "channel": self.channel}
            args.update(params)
            raw = None if seq is None else self._one(conn, name, args)
            if raw is not None:
                return self._row(raw)
            probe = None if seq is None else self._one(conn, "PROBE", args)
            if probe is None and token is None:
                raise MessageNotFoundError(f"no message {message_id!r} in queue {queue!r}")
            if probe is None:
                raise LeaseLostError(
                    f"message {message_id!r} is no longer leased (already settled)"
                )
            raise LeaseLostError(f"lease on message {message_id!r} was lost")

        # Fenced by token, so repeating after a lost connection cannot settle twice;
        # a token-less retry might, so it is not repeated.
        return self._session.run(what, op, retry=token is not None)

    # -- writing -----------------------------------------------------------------------

    def put(
        self, queue: str, values: Sequence[bytes], *, delay: float = 0.0, maxsize: int = 0
    ) -> list[Row]:
        if not values:
            return []
        params = {
            "queue": queue,
            "values": [bytes(value) for value in values],
            "delay": float(delay),
            "channel": self.channel,
            "lock": f"localqueue:{self.schema}:{queue}",
        }

        def op(conn: psycopg.Connection[Any]) -> list[Row]:
            if maxsize <= 0:
                rows = conn.execute(self._sql["PUT"], params).fetchall()
            else:
                with conn.transaction():
                    conn.execute(self._sql["LOCK_QUEUE"], params)
                    pending = self._one(conn, "PENDING", params)[0]
                    if pending + len(values) > maxsize:
                        raise Full
                    rows = conn.execute(self._sql["PUT"], params).fetchall()
            return [self._row(raw) for raw in rows]

        return self._session.run("put", op, retry=False)

    def lease(self, queue: str, *, lease_timeout: float, leased_by: str | None) -> Row | None:
        params = {
            "queue": queue,
            "timeout": float(lease_timeout),
            "by": leased_by,
            "token": secrets.token_hex(16),
        }

        def op(conn: psycopg.Connection[Any]) -> Row | None:
            raw = self._one(conn, "LEASE", params)
            return None if raw is None else self._row(raw)

        # Repeating a lease whose reply was lost only strands that lease until it expires.
        return self._session.run("lease", op)

    def ack(self, queue: str, message_id: str, lease_token: str | None) -> None:
        self._settle("ack", "ACK", queue, message_id, lease_token)

    def release(
        self,
        queue: str,
        message_id: str,
        lease_token: str | None,
        *,
        delay: float = 0.0,
        error: bytes | None = None,
    ) -> Row:
        return self._settle(
            "release", "RELEASE", queue, message_id, lease_token, delay=float(delay), error=error
        )

    def dead_letter(
        self, queue: str, message_id: str, lease_token: str | None, *, error: bytes | None = None
    ) -> Row:
        return self._settle(
            "dead_letter", "DEAD_LETTER", queue, message_id, lease_token, error=error
        )

    def extend_lease(
        self, queue: str, message_id: str, lease_token: str | None, seconds: float
    ) -> Row:
        return self._settle(
            "extend_lease", "EXTEND_LEASE", queue, message_id, lease_token, seconds=float(seconds)
        )

    def requeue_dead(self, queue: str, message_id: str, *, delay: float = 0.0) -> Row:
        def op(conn: psycopg.Connection[Any]) -> Row:
            seq = self._seq(message_id)
            params = {"seq": seq, "queue": queue, "delay": float(delay), "channel": self.channel}
            raw = None if seq is None else self._one(conn, "REQUEUE_DEAD", params)
            if raw is None:
                raise MessageNotFoundError(f"no dead letter {message_id!r} in queue {queue!r}")
            return self._row(raw)

        return self._session.run("requeue_dead", op, retry=False)

    def requeue_all_dead(self, queue: str, *, delay: float = 0.0) -> int:
        params = {"queue": queue, "delay": float(delay), "channel": self.channel}
        return int(self._count("requeue_all_dead", "REQUEUE_ALL_DEAD", params))

    def purge(self, queue: str, *, dead_only: bool = False) -> int:
        name = "PURGE_DEAD" if dead_only else "PURGE"
        return int(self._count("purge", name, {"queue": queue}))

    def _count(self, what: str, name: str, params: dict[str, Any]) -> Any:
        return self._session.run(what, lambda conn: self._one(conn, name, params)[0], retry=False)

    # -- reading -----------------------------------------------------------------------

    def get(self, queue: str, message_id: str) -> Row | None:
        def op(conn: psycopg.Connection[Any]) -> Row | None:
            seq = self._seq(message_id)
            raw = None if seq is None else self._one(conn, "GET", {"seq": seq, "queue": queue})
            return None if raw is None else self._row(raw)

        return self._session.run("get", op)

    def dead_letters(self, queue: str, limit: int | None = None) -> list[Row]:
        def op(conn: psycopg.Connection[Any]) -> list[Row]:
            params = {"queue": queue, "limit": limit}
            return [self._row(raw) for raw in conn.execute(self._sql["DEAD_LETTERS"], params)]

        return self._session.run("dead_letters", op)

    def stats(self, queue: str) -> QueueStats:
        def op(conn: psycopg.Connection[Any]) -> QueueStats:
            ready, delayed, inflight, dead = self._one(conn, "STATS", {"queue": queue})
            return QueueStats(ready=ready, delayed=delayed, inflight=inflight, dead=dead)

        return self._session.run("stats", op)

    def queues(self) -> dict[str, QueueStats]:
        def op(conn: psycopg.Connection[Any]) -> dict[str, QueueStats]:
            rows = conn.execute(self._sql["QUEUES"]).fetchall()
            return {name: QueueStats(*counts) for name, *counts in sorted(rows)}

        return self._session.run("queues", op)

    def next_visible_in(self, queue: str) -> float | None:
        def op(conn: psycopg.Connection[Any]) -> float | None:
            (due,) = self._one(conn, "NEXT_VISIBLE_IN", {"queue": queue})
            return None if due is None else max(0.0, float(due))

        return self._session.run("next_visible_in", op)

    def clock(self) -> float:
        """Seconds since the epoch on the server's clock (what leases are measured by)."""
        return float(self._session.run("clock", lambda conn: self._one(conn, "CLOCK", {})[0]))

    # -- waiting -----------------------------------------------------------------------

    def wait(self, queue: str, timeout: float) -> None:
        """Block until a NOTIFY says something was put (or released, or requeued) to
        ``queue``, or ``timeout`` seconds pass. Spurious wake-ups happen (a notification
        that arrived before the call); without a listening connection this sleeps."""
        if timeout <= 0:
            return
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = self._events.get(queue, 0)
        while (remaining := deadline - time.monotonic()) > 0:
            with self._cond:
                if self._events.get(queue, 0) != seen:
                    return
                if self._reading:
                    self._cond.wait(remaining)
                    continue
                self._reading = True
            try:
                self._read_notifications(remaining)
            finally:
                self._done_reading()

    def _done_reading(self) -> None:
        with self._cond:
            self._reading = False
            if self._close_listener:  # close() came while this thread was reading
                self._close_listener = False
                self._drop_listener()
            self._cond.notify_all()

    def listen(self) -> None:
        """Start listening now (``wait`` does it on first use), so that notifications
        sent from now on wake the next ``wait`` even if it starts later."""
        with self._cond:
            while self._reading:
                self._cond.wait()
            self._reading = True
        try:
            self._listen_connection()
        finally:
            self._done_reading()

    def _listen_connection(self) -> psycopg.Connection[Any]:
        """The LISTENing connection; only the thread that set ``_reading`` calls this."""
        conn = self._listener
        if conn is None or conn.closed:
            conn = self._session.connect()
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            except psycopg.Error:
                conn.close()
                raise
            self._listener = conn
        return conn

    def _read_notifications(self, remaining: float) -> None:
        try:
            conn = self._listen_connection()
        except (StoreError, psycopg.Error):
            time.sleep(min(remaining, _LISTEN_RETRY_PAUSE))
            return
        try:
            for note in conn.notifies(timeout=remaining, stop_after=1):
                with self._cond:
                    self._events[note.payload] = self._events.get(note.payload, 0) + 1
        except psycopg.Error:
            self._drop_listener()
            time.sleep(min(remaining, _LISTEN_RETRY_PAUSE))

    def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):  # it is gone either way
                conn.close()

    # -- lifetime ----------------------------------------------------------------------

    def _after_fork(self) -> None:
        # The session orphans the inherited sockets; forget them and any reader state.
        self._cond = threading.Condition()
        self._listener = None
        self._reading = self._close_listener = False

    def close(self) -> None:
        """Close both connections (a later call opens new ones)."""
        with self._cond:
            if self._reading:
                self._close_listener = True  # the reading thread closes it when done
            else:
                self._drop_listener()
        self._session.close()

    def drop_schema(self) -> None:
        """DROP SCHEMA ... CASCADE: every message (and any attempt store sharing the
        schema) is gone. Meant for tests and teardown."""
        self._session.drop_schema()
