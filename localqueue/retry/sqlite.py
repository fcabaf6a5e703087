"""SQLiteAttemptStore: retry budgets in one SQLite file (default ``./localqueue_retries.sqlite3``).

The file handling (mode 0600 on creation, WAL, ``synchronous``, ``busy_timeout``, refusing
foreign or newer files, never reusing a connection across ``fork()``) is shared with the
queue store in :mod:`localqueue.backends.sqlite_file`. Counting an attempt is one
``BEGIN IMMEDIATE`` transaction around an ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING``, so concurrent processes never lose an attempt.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from localqueue.backends import DEFAULT_ATTEMPT_FILE
from localqueue.backends.sqlite_file import SQLiteFile
from localqueue.retry.base import AttemptRecord, AttemptStore

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any, Literal

__all__ = ["DEFAULT_RETRY_STORE_PATH", "SQLiteAttemptStore"]

DEFAULT_RETRY_STORE_PATH = DEFAULT_ATTEMPT_FILE
SCHEMA_VERSION = 1
APPLICATION_ID = 0x6C715231  # "lqR1": marks a localqueue attempt store

SCHEMA = (
    """CREATE TABLE attempts (
        key TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL,
        first_attempt_at REAL NOT NULL,
        last_attempt_at REAL NOT NULL,
        exhausted INTEGER NOT NULL DEFAULT 0,
        last_error BLOB
    ) WITHOUT ROWID""",
)

_COLUMNS = "key, attempts, first_attempt_at, last_attempt_at, exhausted, last_error"
_GET = f"SELECT {_COLUMNS} FROM attempts WHERE key = ?"
_RECORD_ATTEMPT = f"""INSERT INTO attempts (key, attempts, first_attempt_at, last_attempt_at)
    VALUES (:key, 1, :now, :now)
    ON CONFLICT (key) DO UPDATE SET attempts = attempts + 1, last_attempt_at = :now
    RETURNING {_COLUMNS}"""
_RECORD_FAILURE = """UPDATE attempts SET last_error = :error, exhausted = exhausted OR :exhausted
    WHERE key = :key"""
_CLEAR = "DELETE FROM attempts WHERE key = ?"
_UNCOUNT = "UPDATE attempts SET attempts = attempts - 1 WHERE key = ? AND attempts > 1"
_FORGET_LAST = "DELETE FROM attempts WHERE key = ? AND attempts <= 1"


def _record(row: tuple[Any, ...]) -> AttemptRecord:
    """The AttemptRecord of a ``_COLUMNS`` result (SQLite has no booleans, and may hand
    back a blob as a memoryview)."""
    key, attempts, first_at, last_at, exhausted, error = row
    return AttemptRecord(
        key, attempts, first_at, last_at, bool(exhausted), None if error is None else bytes(error)
    )


class SQLiteAttemptStore(AttemptStore):
    """Attempt records in one SQLite file, shared safely by threads and processes.

    Counting an attempt and clearing a key are written to the WAL before they return, so
    they survive a crash of the process (a handler that kills it still spends its
    attempt), but they skip their own fsync even at ``durability="full"``: a power cut
    can forget the latest counts (a key gets an attempt more), never corrupt the file.
    Failures (``record_failure``) are fsync'd at ``full``; ``"normal"`` fsyncs nothing.
    ``busy_timeout`` is how long a write waits for another process's lock before raising
    StoreLockedError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_RETRY_STORE_PATH,
        *,
        durability: Literal["full", "normal"] = "full",
        busy_timeout: float = 5.0,
    ) -> None:
        self._file = SQLiteFile(
            path,
            kind="attempt",
            application_id=APPLICATION_ID,
            schema_version=SCHEMA_VERSION,
            schema=SCHEMA,
            durability=durability,
            busy_timeout=busy_timeout,
        )

    def __repr__(self) -> str:
        return f"SQLiteAttemptStore({self._file.path!r})"

    @property
    def path(self) -> Path:
        """The store file."""
        from pathlib import Path

        return Path(self._file.path)

    @property
    def durability(self) -> str:
        return self._file.durability

    def get(self, key: str) -> AttemptRecord | None:
        with self._file.session as conn:
            row = conn.execute(_GET, (key,)).fetchone()
        return None if row is None else _record(row)

    def record_attempt(self, key: str, now: float) -> AttemptRecord:
        with (
            self._file.session as conn,
            self._file.relaxed(conn),
            self._file.transaction(conn),
        ):
            row = conn.execute(_RECORD_ATTEMPT, {"key": key, "now": now}).fetchone()
        return _record(row)

    def record_attempts(
        self, keys: Sequence[str], now: float, *, clear: Sequence[str] = ()
    ) -> list[AttemptRecord]:
        """One commit for all of them (a worker counting the attempts of the jobs it
        starts together)."""
        records: list[AttemptRecord] = []
        with (
            self._file.session as conn,
            self._file.relaxed(conn),
            self._file.transaction(conn),
        ):
            for cleared in clear:
                conn.execute(_CLEAR, (cleared,))
            for key in keys:
                row = conn.execute(_RECORD_ATTEMPT, {"key": key, "now": now}).fetchone()
                records.append(_record(row))
        return records

    def uncount_attempt(self, key: str) -> None:
        """One transaction: one attempt fewer (error and exhaustion kept), the record
        gone at none."""
        with (
            self._file.session as conn,
            self._file.relaxed(conn),
            self._file.transaction(conn),
        ):
            if conn.execute(_UNCOUNT, (key,)).rowcount == 0:
                conn.execute(_FORGET_LAST, (key,))

    def record_failure(self, key: str, error: bytes | None, *, exhausted: bool) -> None:
        params = {"key": key, "error": error, "exhausted": int(exhausted)}
        with self._file.session as conn, self._file.transaction(conn):
            conn.execute(_RECORD_FAILURE, params)

    def clear(self, key: str) -> None:
        with self._file.session as conn, self._file.relaxed(conn), self._file.transaction(conn):
            conn.execute(_CLEAR, (key,))

    def close(self) -> None:
        with self._file.lock:
            self._file.close()
