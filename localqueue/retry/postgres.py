"""PostgresAttemptStore: retry budgets on a PostgreSQL server, shared by many hosts.

One ``attempts`` table in the schema (default ``localqueue``, the same one the queue
store uses by default), created on first use under an advisory lock and versioned in the
schema's ``meta`` table. Counting an attempt is one ``INSERT ... ON CONFLICT DO UPDATE
... RETURNING`` in autocommit, so it is durable before it returns and concurrent workers
never lose an attempt. Connection handling (reconnects, fork safety, error messages
without passwords) is shared with the queue store: :mod:`localqueue.backends.pg`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from localqueue.backends.pg import PgSession
from localqueue.retry.base import AttemptRecord, AttemptStore

__all__ = ["PostgresAttemptStore"]

SCHEMA_VERSION = 1

CREATE = (
    """CREATE TABLE {a} (
        key text PRIMARY KEY,
        attempts integer NOT NULL,
        first_attempt_at float8 NOT NULL,
        last_attempt_at float8 NOT NULL,
        exhausted boolean NOT NULL DEFAULT false,
        last_error bytea
    )""",
)

_COLUMNS = "key, attempts, first_attempt_at, last_attempt_at, exhausted, last_error"
_GET = f"SELECT {_COLUMNS} FROM {{a}} WHERE key = %(key)s"
_RECORD_ATTEMPT = f"""INSERT INTO {{a}} AS a (key, attempts, first_attempt_at, last_attempt_at)
    VALUES (%(key)s, 1, %(now)s, %(now)s)
    ON CONFLICT (key) DO UPDATE
    SET attempts = a.attempts + 1, last_attempt_at = excluded.last_attempt_at
    RETURNING {_COLUMNS}"""
_RECORD_FAILURE = """UPDATE {a} SET last_error = %(error)s, exhausted = exhausted OR %(exhausted)s
    WHERE key = %(key)s"""
_CLEAR = "DELETE FROM {a} WHERE key = %(key)s"
_RECORD_ATTEMPTS = f"""WITH cleared AS (DELETE FROM {{a}} WHERE key = ANY(%(clear)s::text[]))
INSERT INTO {{a}} AS a (key, attempts, first_attempt_at, last_attempt_at)
    SELECT u.key, 1, %(now)s, %(now)s FROM unnest(%(keys)s::text[]) AS u(key)
    ON CONFLICT (key) DO UPDATE
    SET attempts = a.attempts + 1, last_attempt_at = excluded.last_attempt_at
    RETURNING {_COLUMNS}"""
_CLEAR_MANY = "DELETE FROM {a} WHERE key = ANY(%(clear)s::text[])"
_UNCOUNT = """WITH gone AS (DELETE FROM {a} WHERE key = %(key)s AND attempts <= 1)
UPDATE {a} SET attempts = attempts - 1 WHERE key = %(key)s AND attempts > 1"""


def _record(row: tuple[Any, ...] | None) -> AttemptRecord | None:
    if row is None:
        return None
    key, attempts, first, last, exhausted, error = row
    return AttemptRecord(
        key, attempts, first, last, bool(exhausted), None if error is None else bytes(error)
    )


class PostgresAttemptStore(AttemptStore):
    """Attempt records in the ``schema`` of the PostgreSQL database ``dsn`` names (by
    default the URL's ``?schema=NAME`` parameter, else ``localqueue``).

    Thread-safe (one lock-guarded connection), safe across processes and hosts.
    ``busy_timeout`` bounds lock waits (StoreLockedError), ``reconnect_timeout`` how long
    a lost connection is retried before StoreError.
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
            component="attempt",
            version=SCHEMA_VERSION,
            tables={"a": "attempts"},
            create=CREATE,
            busy_timeout=busy_timeout,
            connect_timeout=connect_timeout,
            reconnect_timeout=reconnect_timeout,
        )
        self.schema = self._session.schema
        render = self._session.render
        self._get, self._attempt = render(_GET), render(_RECORD_ATTEMPT)
        self._failure, self._clear = render(_RECORD_FAILURE), render(_CLEAR)
        self._attempts, self._clear_many = render(_RECORD_ATTEMPTS), render(_CLEAR_MANY)
        self._uncount = render(_UNCOUNT)

    def __repr__(self) -> str:
        return f"PostgresAttemptStore({self._session.describe()!r})"

    def get(self, key: str) -> AttemptRecord | None:
        def op(conn: psycopg.Connection[Any]) -> AttemptRecord | None:
            return _record(conn.execute(self._get, {"key": key}).fetchone())

        return self._session.run("get", op)

    def record_attempt(self, key: str, now: float) -> AttemptRecord:
        def op(conn: psycopg.Connection[Any]) -> AttemptRecord:
            record = _record(conn.execute(self._attempt, {"key": key, "now": now}).fetchone())
            assert record is not None  # RETURNING always yields the row
            return record

        # Not repeated after a lost connection: that could count one attempt twice.
        return self._session.run("record_attempt", op, retry=False)

    def record_attempts(
        self, keys: Sequence[str], now: float, *, clear: Sequence[str] = ()
    ) -> list[AttemptRecord]:
        """ONE statement (one round trip, one commit) for all of them; two in one
        transaction when a key is both cleared and counted."""
        if not keys and not clear:
            return []
        params = {"keys": list(keys), "clear": list(clear), "now": now}

        def op(conn: psycopg.Connection[Any]) -> list[AttemptRecord]:
            if set(keys) & set(clear):
                with conn.transaction():
                    conn.execute(self._clear_many, params)
                    rows = conn.execute(self._attempts, {**params, "clear": []}).fetchall()
            else:
                rows = conn.execute(self._attempts, params).fetchall()
            records = {record.key: record for record in map(_record, rows) if record}
            return [records[key] for key in keys]

        # Not repeated after a lost connection: that could count attempts twice.
        return self._session.run("record_attempts", op, retry=False)

    def uncount_attempt(self, key: str) -> None:
        """One statement: one attempt fewer, the record gone at none."""
        self._session.run(
            "uncount_attempt", lambda conn: conn.execute(self._uncount, {"key": key}), retry=False
        )

    def record_failure(self, key: str, error: bytes | None, *, exhausted: bool) -> None:
        params = {"key": key, "error": error, "exhausted": exhausted}
        self._session.run("record_failure", lambda conn: conn.execute(self._failure, params))

    def clear(self, key: str) -> None:
        self._session.run("clear", lambda conn: conn.execute(self._clear, {"key": key}))

    def close(self) -> None:
        self._session.close()

    def drop_schema(self) -> None:
        """DROP SCHEMA ... CASCADE (any queue tables sharing the schema go too)."""
        self._session.drop_schema()
