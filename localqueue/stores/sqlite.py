"""SQLiteQueueStore: the default store, one SQLite file in WAL mode.

Every write is one statement (SQLite starts a single write statement as a write
transaction, the same as ``BEGIN IMMEDIATE``, so it waits on ``busy_timeout`` instead of
failing with SQLITE_BUSY) or an explicit ``BEGIN IMMEDIATE`` transaction when it needs
several. Leasing is a single ``UPDATE ... RETURNING`` over a partial index, so it costs
the same with a million messages as with ten.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time

from localqueue import errors
from localqueue.backends import StoreAddress
from localqueue.backends.sqlite_file import SQLiteFile
from localqueue.errors import LeaseLostError, MessageNotFoundError
from localqueue.history import PRUNE_BATCH, HistoryRow, encode_output
from localqueue.message import QueueSettings, QueueStats
from localqueue.stores import _sqlite_sql as sql
from localqueue.stores.base import (
    PEEK_STATES,
    QueueStore,
    Row,
    check_groups,
    check_keyed,
    effective_state,
    hold,
    key_held,
    merged_limits,
)

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from typing import Any, Literal

    from localqueue.outcome import Settlement
    from localqueue.stores.base import OnConflict

    Retention = tuple[float | None, int | None]

__all__ = ["SQLiteQueueStore"]


def _nonce() -> int:
    """48 random bits from the OS (a seeded or forked ``random`` could repeat them)."""
    return int.from_bytes(os.urandom(6))


_NEW = (None,) * 7  # a new message's leased_at, ..., dead_at
_KEYLESS = (None,) * 8  # ... and its key
# Row(*fields) checks its 14 arguments in Python: tuple.__new__ makes the same Row at
# half the cost, which was 5% of put_many and 20% of peek (bench put_many; peek of 5000).
_new_row = tuple.__new__
# The least pause between two pruning steps of store vacuum while others write (see
# SQLiteQueueStore.prune_expired).
_PRUNE_YIELD = 0.01
# How many records a store writes between two pruning steps of its settles, each of which
# deletes up to a batch (PRUNE_BATCH) of each kind: pruning keeps up with any number of
# processes settling, and a store whose history is full outgrows its bound by less than
# one batch per process.
_PRUNE_EVERY = 50


def _history_row(r: tuple[Any, ...]) -> HistoryRow:
    """The HistoryRow of a ``sql.HISTORY_COLUMNS`` result, maybe with more columns after
    (``errors`` is JSON text there)."""
    errors = r[13]
    return _new_row(HistoryRow, (*r[:13], None if errors is None else errors.encode(), r[14]))


class SQLiteQueueStore(QueueStore):
    """Queues in one SQLite file.

    ``durability="full"`` (default) runs ``synchronous=FULL``: a commit is on disk when
    the call returns. ``"normal"`` runs ``synchronous=NORMAL``: commits survive a process
    crash but the last ones may be lost on power failure or an OS crash.
    ``busy_timeout`` is how long (seconds) a write waits for another process's lock
    before raising StoreLockedError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "localqueue_queue.sqlite3",
        *,
        durability: Literal["full", "normal"] = "full",
        busy_timeout: float = 5.0,
    ) -> None:
        self._file = SQLiteFile(
            path,
            kind="queue",
            application_id=sql.APPLICATION_ID,
            schema_version=sql.SCHEMA_VERSION,
            schema=sql.SCHEMA,
            migrations=sql.MIGRATIONS,
            durability=durability,
            busy_timeout=busy_timeout,
            initialise=self._initialise,
        )
        self._checked_at = self.clock()
        self._skew = self._checked_at - time.monotonic()
        self._rebased_at = 0.0
        # The first lease, and any after one that found nothing, first looks with a
        # read: an UPDATE takes the write lock even when it matches no row, so consumers
        # polling an empty queue would hold producers up (2 producers + 2 consumers:
        # +7%), and would wait on, or fail under, a lock another process holds.
        self._found_none = True
        # Records this store wrote since its last pruning step: the settle that makes
        # them _PRUNE_EVERY prunes a batch of its queue's. It starts one short, so a
        # store's first record prunes: a cron drain of a few jobs a run keeps the
        # history within its bound too.
        self._recorded = _PRUNE_EVERY - 1
        self._kept: set[str] = set()  # queues whose last ack here found a history kept

    @staticmethod
    def _initialise(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (str(time.time()),))

    def __repr__(self) -> str:
        return f"SQLiteQueueStore({self._file.path!r})"

    @property
    def path(self) -> Path:
        """The store file."""
        from pathlib import Path

        return Path(self._file.path)

    @property
    def address(self) -> StoreAddress:
        return StoreAddress("sqlite", self._file.path)

    @property
    def durability(self) -> str:
        return self._file.durability

    # -- plumbing ---------------------------------------------------------------------
    #
    # A message id is "<seq>-<nonce>": the rowid, which SQLite may hand out again once
    # the newest rows are deleted, and a random 48-bit nonce stored with the row, so an
    # id never names two messages (AUTOINCREMENT would cost a page write per commit).

    @staticmethod
    def _key(queue: str, message_id: str) -> dict[str, Any] | None:
        seq, _, nonce = message_id.partition("-")
        if not seq.isdigit() or len(nonce) != 12:
            return None
        try:
            return {"seq": int(seq), "nonce": int(nonce, 16), "queue": queue}
        except ValueError:
            return None

    @staticmethod
    def _row(r: tuple[Any, ...], now: float) -> Row:
        """The Row of a ``sql.COLUMNS`` result: seq, nonce, queue, value, state, visible_at, ..."""
        state = effective_state(r[4], r[5], now)
        return _new_row(Row, (f"{r[0]}-{r[1]:012x}", r[2], r[3], state, *r[6:]))

    def _held(
        self, operation: str, statement: str, queue: str, message_id: str, params: dict[str, Any]
    ) -> Row:
        key = self._key(queue, message_id)
        with self._file.session as conn:
            if key is not None:
                params.update(key)
                with self._file.atomic(conn, operation):
                    found = conn.execute(statement, params).fetchone()
                if found is not None:
                    return self._row(found, params["now"])
            raise self._lease_lost(conn, queue, message_id, key, params.get("token"))

    @staticmethod
    def _lease_lost(
        conn: sqlite3.Connection,
        queue: str,
        message_id: str,
        key: dict[str, Any] | None,
        token: str | None,
    ) -> Exception:
        """Why settling a message failed (called after the fenced statement matched nothing)."""
        exists = key is not None and conn.execute(sql.GET, key).fetchone() is not None
        if not exists and token is None:
            return MessageNotFoundError(f"no message {message_id!r} in queue {queue!r}")
        if not exists:
            return LeaseLostError(f"message {message_id!r} is no longer leased (already settled)")
        return LeaseLostError(f"lease on message {message_id!r} was lost or it is not inflight")

    # -- writing ----------------------------------------------------------------------

    def put(
        self,
        queue: str,
        values: Sequence[bytes],
        *,
        delay: float = 0.0,
        maxsize: int = 0,
        priority: int = 0,
        groups: Sequence[str | None] | None = None,
    ) -> list[Row]:
        count = len(values)
        if not count:
            return []
        if groups is not None:  # a keyed put's statements carry the groups
            check_groups(values, groups)
            keys = [None] * count
            return self.put_keyed(
                queue, values, keys, delay=delay, maxsize=maxsize, priority=priority, groups=groups
            )[0]
        # One nonce serves the whole batch: its rowids already differ from each other.
        nonce = _nonce()
        with self._file.session as conn:
            now = self.clock()
            available = now + delay
            if count == 1 and maxsize <= 0:
                value = values[0]
                params = (nonce, queue, value, available, now, available, priority)
                with self._file.atomic(conn, "put"):
                    seq = conn.execute(sql.INSERT, params)
                state = "delayed" if delay > 0 else "ready"
                message_id = f"{seq.lastrowid}-{nonce:012x}"
                fields = (message_id, queue, value, state, 0, now, available, *_KEYLESS)
                return [_new_row(Row, (*fields, priority, None))]  # (no group)
            else:
                with self._file.transaction(conn, "put"):
                    self._check_room(conn, queue, count, maxsize)
                    last = self._insert(conn, nonce, queue, values, now, available, priority)
        first = last - count + 1
        suffix = f"-{nonce:012x}"
        shared = ("delayed" if delay > 0 else "ready", 0, now, available, *_NEW, None, priority)
        return [
            _new_row(Row, (f"{first + i}{suffix}", queue, value, *shared, None))
            for i, value in enumerate(values)
        ]

    @staticmethod
    def _check_room(conn: sqlite3.Connection, queue: str, count: int, maxsize: int) -> None:
        if maxsize > 0:
            (pending,) = conn.execute(sql.PENDING, (queue,)).fetchone()
            if pending + count > maxsize:
                raise errors.Full

    def put_keyed(
        self,
        queue: str,
        values: Sequence[bytes],
        keys: Sequence[str | None],
        *,
        on_conflict: OnConflict = "skip",
        delay: float = 0.0,
        maxsize: int = 0,
        priority: int = 0,
        groups: Sequence[str | None] | None = None,
    ) -> tuple[list[Row], list[bool]]:
        check_keyed(values, keys, on_conflict)
        check_groups(values, groups)
        if not values:
            return [], []
        with self._file.session as conn:
            now = self.clock()
            if len(values) == 1 and maxsize <= 0 and on_conflict != "replace":
                group = None if groups is None else groups[0]
                return self._put_one(
                    conn, queue, values[0], keys[0], group, now, delay, priority, on_conflict
                )
            with self._file.transaction(conn, "put"):
                self._check_room(conn, queue, len(values), maxsize)
                if on_conflict == "replace":
                    return self._put_replacing(
                        conn, queue, values, keys, groups, now, delay, priority
                    )
                return self._put_skipping(
                    conn, queue, values, keys, groups, now, delay, priority, on_conflict == "error"
                )

    def _put_one(
        self,
        conn: sqlite3.Connection,
        queue: str,
        value: bytes,
        key: str | None,
        group: str | None,
        now: float,
        delay: float,
        priority: int,
        on_conflict: str,
    ) -> tuple[list[Row], list[bool]]:
        """A keyed put of one value that skips (or refuses) a held key: one statement,
        which SQLite runs as its own transaction, then a read of the holder when the
        key was held (again when that holder is gone by then)."""
        available = now + delay
        nonce = _nonce()
        params = {"nonce": nonce, "queue": queue, "value": value, "key": key, "now": now}
        params.update(available=available, priority=priority, grp=group)
        while True:
            with self._file.atomic(conn, "put"):
                done = conn.execute(sql.INSERT_SKIPPING, params)
            if done.rowcount == 1:
                state = "delayed" if delay > 0 else "ready"
                fields = (f"{done.lastrowid}-{nonce:012x}", queue, value, state, 0, now, available)
                return [_new_row(Row, (*fields, *_NEW, key, priority, group))], [False]
            holder = conn.execute(sql.KEY_HOLDER, params).fetchone()
            if holder is not None:
                row = self._row(holder, now)
                if on_conflict == "error":
                    raise key_held(queue, key, row.id)
                return [row], [True]

    def _put_skipping(
        self,
        conn: sqlite3.Connection,
        queue: str,
        values: Sequence[bytes],
        keys: Sequence[str | None],
        groups: Sequence[str | None] | None,
        now: float,
        delay: float,
        priority: int,
        error: bool,
    ) -> tuple[list[Row], list[bool]]:
        """A keyed put that skips held keys (``error``: raises on the first), in chunks
        of one multi-row INSERT each, as :meth:`put`; inside the caller's transaction."""
        nonce = _nonce()
        available = now + delay
        inserted: list[tuple[int, str | None]] = []
        columns = (values, keys) if groups is None else (values, keys, groups)
        done = 0
        for size in sql.chunks(len(values)):
            flat = [
                x
                for row in zip(*(c[done : done + size] for c in columns), strict=True)
                for x in row
            ]
            params = (nonce, queue, available, now, priority, *flat)
            statement = sql.insert_keyed_many(size, groups is not None)
            inserted += conn.execute(statement, params).fetchall()
            done += size
        # Inserted rows got ascending rowids in the order of the values: the first value
        # of each key not held before, and every keyless one.
        inserted.sort()
        suffix = f"-{nonce:012x}"
        state = "delayed" if delay > 0 else "ready"
        grouped = groups or [None] * len(values)
        if len(inserted) == len(values):  # no key was held: every value is new
            head = (state, 0, now, available, *_NEW)
            return [
                _new_row(Row, (f"{seq}{suffix}", queue, value, *head, key, priority, group))
                for (seq, key), value, group in zip(inserted, values, grouped, strict=True)
            ], [False] * len(values)
        fresh = {key for _, key in inserted}
        news = iter(inserted)
        rows: list[Row] = []
        duplicates: list[bool] = []
        holders: dict[str, Row] = {}
        for value, key, group in zip(values, keys, grouped, strict=True):
            if key is None or (key in fresh and key not in holders):
                seq, _ = next(news)
                fields = (f"{seq}{suffix}", queue, value, state, 0, now, available, *_NEW)
                row = _new_row(Row, (*fields, key, priority, group))
                if key is not None:
                    holders[key] = row
                rows.append(row)
                duplicates.append(False)
                continue
            holder = holders.get(key)
            if holder is None:
                found = conn.execute(sql.KEY_HOLDER, {"queue": queue, "key": key}).fetchone()
                holder = holders[key] = self._row(found, now)
            if error:  # rolls the whole put back
                raise key_held(queue, key, holder.id)
            rows.append(holder)
            duplicates.append(True)
        return rows, duplicates

    def _put_replacing(
        self,
        conn: sqlite3.Connection,
        queue: str,
        values: Sequence[bytes],
        keys: Sequence[str | None],
        groups: Sequence[str | None] | None,
        now: float,
        delay: float,
        priority: int,
    ) -> tuple[list[Row], list[bool]]:
        """A keyed put that replaces waiting holders, one value at a time (a value may
        replace one given earlier in the same put), inside the caller's transaction."""
        params: dict[str, Any] = {
            "queue": queue,
            "now": now,
            "available": now + delay,
            "priority": priority,
        }
        rows: list[Row] = []
        duplicates: list[bool] = []
        for value, key, group in zip(values, keys, groups or [None] * len(values), strict=True):
            params["value"], params["key"], params["nonce"] = value, key, _nonce()
            params["grp"] = group
            found = conn.execute(sql.INSERT_REPLACING, params).fetchone()
            duplicate = found is None
            if duplicate:  # a leased holder: left as it is
                found = conn.execute(sql.KEY_HOLDER, params).fetchone()
            rows.append(self._row(found, now))
            duplicates.append(duplicate)
        return rows, duplicates

    @staticmethod
    def _insert(
        conn: sqlite3.Connection,
        nonce: int,
        queue: str,
        values: Sequence[bytes],
        now: float,
        available: float,
        priority: int = 0,
    ) -> int:
        """Insert ``values`` (inside a transaction); returns the last one's rowid."""
        constants = (nonce, queue, available, now, priority)
        done = 0
        for size in sql.chunks(len(values)):
            chunk = values[done : done + size]
            conn.execute(sql.insert_many(size), (*constants, *chunk))
            done += size
        # rowids are max(rowid) + 1 each, and we hold the write lock: consecutive
        (last,) = conn.execute("SELECT last_insert_rowid()").fetchone()
        return int(last)

    def lease(self, queue: str, *, lease_timeout: float, leased_by: str | None) -> Row | None:
        with self._file.session as conn:
            now = self.clock()
            params = self._lease_params(conn, queue, now, lease_timeout, leased_by)
            if self._found_none and conn.execute(sql.PEEK, params).fetchone() is None:
                return None  # still nothing, seen without taking the write lock
            # A lease need not reach the disk before the handler runs: lost in a power
            # cut, the message is simply still ready (at-least-once holds).
            with self._file.relaxed(conn), self._file.atomic(conn, "lease"):
                found = conn.execute(sql.LEASE, params).fetchone()
            self._found_none = found is None
        return None if found is None else self._row(found, now)

    def _lease_params(
        self,
        conn: sqlite3.Connection,
        queue: str,
        now: float,
        lease_timeout: float,
        leased_by: str | None,
    ) -> dict[str, Any]:
        """The parameters of sql.LEASE, after the checks a busy worker makes once a second:
        is the file still the one we opened, and did the wall clock jump?"""
        if now - self._checked_at > 1.0:  # a busy worker notices a replaced file too
            self._file.check_identity()
            self._checked_at = now
        skew = now - time.monotonic()
        if abs(skew - self._skew) > 1.0:  # the wall clock jumped
            self._rebase_leases(conn, queue, now)
            self._skew = skew
        return {
            "now": now,
            "timeout": lease_timeout,
            "expires": now + lease_timeout,
            "by": leased_by,
            "token": os.urandom(16).hex(),
            "queue": queue,
        }

    def _rebase_leases(self, conn: sqlite3.Connection, queue: str, now: float) -> None:
        """After the wall clock stepped back, a lease granted before the step ends far
        beyond ``now + lease_timeout``; pull it in so no message stays stuck longer than
        its lease timeout. (A forward step needs nothing: leases just expire early and
        fencing turns away the old holder.)"""
        params = {"queue": queue, "now": now}
        # Looked for with a read first: idle workers call this every ten seconds, and an
        # UPDATE would take the write lock even when it matches nothing.
        if conn.execute(sql.ANY_STRETCHED, params).fetchone() is not None:
            conn.execute(sql.REBASE, params)

    def ack(self, queue: str, message_id: str, lease_token: str | None) -> None:
        key = self._key(queue, message_id)
        with self._file.session as conn:
            if key is not None:
                key["token"], key["now"] = lease_token, self.clock()
                with self._file.atomic(conn, "ack"):  # one statement (see _ack)
                    done = self._ack(conn, queue, key)
                if done:
                    if self._recorded >= _PRUNE_EVERY:  # a step of its own, unsynced
                        with self._file.relaxed(conn), self._file.transaction(conn, "prune"):
                            self._prune_due(conn, queue, key["now"])
                    return
            raise self._lease_lost(conn, queue, message_id, key, lease_token)

    def settle_many(
        self,
        queue: str,
        settlements: Sequence[Settlement],
        *,
        lease: int = 0,
        lease_timeout: float = 30.0,
        leased_by: str | None = None,
    ) -> tuple[list[bool], list[Row]]:
        """One transaction, fsync'd at ``full`` as an ack needs: a worker pays one commit
        for every message it settles and leases at once."""
        if not settlements:
            return [], self.lease_many(
                queue, lease, lease_timeout=lease_timeout, leased_by=leased_by
            )
        applied: list[bool] = []
        leased: list[Row] = []
        with self._file.session as conn:
            now = self.clock()
            params = self._lease_params(conn, queue, now, lease_timeout, leased_by)
            with self._file.transaction(conn, "settle"):
                for settlement in settlements:
                    done = self._settle_one(conn, queue, settlement, now)
                    if done and settlement.then_put:
                        self._insert(
                            conn, _nonce(), settlement.to or queue, settlement.then_put, now, now
                        )
                    applied.append(done)
                self._prune_due(conn, queue, now)
                leased = self._lease_in(conn, params, lease, now)
        return applied, leased

    @staticmethod
    def _retention(conn: sqlite3.Connection, queue: str) -> Retention | None:
        """``queue``'s retention, None when it keeps no history (one primary-key read)."""
        found = conn.execute(sql.RETENTION, (queue,)).fetchone()
        if found is None or found == (None, None):
            return None
        return found[0], found[1]

    def _settle_one(
        self,
        conn: sqlite3.Connection,
        queue: str,
        settlement: Settlement,
        now: float,
    ) -> bool:
        """Apply one settlement inside the caller's transaction (see :meth:`_end`)."""
        s = settlement
        return self._end(
            conn, queue, s.message_id, s.lease_token, s.action, now, s.error, s.delay,
            s.duration, s.exit_code, s.output,
        )  # fmt: skip

    def _end(
        self,
        conn: sqlite3.Connection,
        queue: str,
        message_id: str,
        token: str | None,
        action: str,
        now: float,
        error: bytes | None = None,
        delay: float = 0.0,
        duration: float | None = None,
        exit_code: int | None = None,
        output: Any = None,
    ) -> bool:
        """End a held message's lease by ``action`` inside the caller's transaction;
        False when it is not held. An ack is :meth:`_ack`'s. A dead-letter of a queue
        that keeps a history first writes its record (one statement that reads the
        setting and is fenced as the settle is: it writes nothing otherwise)."""
        key = self._key(queue, message_id)
        if key is None:
            return False
        params: dict[str, Any] = {**key, "token": token, "now": now}
        if action == "acked":
            return self._ack(conn, queue, params, duration, exit_code, output)
        if action == "dead":
            params.update(
                id=message_id, status=action, duration=duration, exit_code=exit_code,
                error=error, output=encode_output(output),
            )  # fmt: skip
            if conn.execute(sql.RECORD, params).rowcount == 1:
                self._kept.add(queue)
                self._recorded += 1
            else:
                self._kept.discard(queue)
        params["error"] = error
        if action == "released":
            params["available"] = now + delay
            return conn.execute(sql.RELEASE, params).fetchone() is not None
        if action == "dead":
            return conn.execute(sql.DEAD_LETTER, params).fetchone() is not None
        raise ValueError(f"unknown settle action {action!r}")

    def _ack(
        self,
        conn: sqlite3.Connection,
        queue: str,
        params: dict[str, Any],
        duration: float | None = None,
        exit_code: int | None = None,
        output: Any = None,
    ) -> bool:
        """Ack the held message of ``params`` (its key, token and now); False when it is
        not held. One statement does it: ACK_UNKEPT deletes it while its queue keeps no
        history, ACK_KEPT finishes it (its own record) while the queue keeps one;
        the one that matches this store's last look at the queue is tried first, and the
        other only when it matches nothing. An output is encoded only for a record."""
        kept = queue in self._kept
        if not kept and conn.execute(sql.ACK_UNKEPT, params).rowcount == 1:
            return True
        params.update(duration=duration, exit_code=exit_code, output=encode_output(output))
        if conn.execute(sql.ACK_KEPT, params).rowcount == 1:
            self._kept.add(queue)
            self._recorded += 1
            return True
        if kept and conn.execute(sql.ACK_UNKEPT, params).rowcount == 1:
            self._kept.discard(queue)  # the queue keeps no history any more
            return True
        return False

    def _prune_due(self, conn: sqlite3.Connection, queue: str, now: float) -> int:
        """Once this store has written _PRUNE_EVERY records: prune a batch of
        ``queue``'s (see :meth:`_prune`), in the caller's transaction. Nothing is pruned
        while the queue keeps no history (``store vacuum`` deletes what it kept)."""
        if self._recorded < _PRUNE_EVERY:
            return 0
        self._recorded = 0
        retention = self._retention(conn, queue)
        return 0 if retention is None else self._prune(conn, queue, retention, now)

    def _prune(self, conn: sqlite3.Connection, queue: str, retention: Retention, now: float) -> int:
        """Delete at most a batch of each table's records of ``queue`` past its age, and
        past its count (inside the caller's transaction)."""
        seconds, count = retention
        params: dict[str, Any] = {"queue": queue, "batch": PRUNE_BATCH}
        deleted = 0
        if seconds is not None:
            params["cutoff"] = now - seconds
            deleted += sum(conn.execute(s, params).rowcount for s in sql.PRUNE_AGE)
        if count is not None:
            params["count"] = count
            boundary = conn.execute(sql.COUNT_BOUNDARY, params).fetchone()
            if boundary is not None:
                params["finished"], params["message_seq"] = boundary
                deleted += sum(conn.execute(s, params).rowcount for s in sql.PRUNE_COUNT)
        return deleted

    def _lease_in(
        self, conn: sqlite3.Connection, params: dict[str, Any], n: int, now: float
    ) -> list[Row]:
        """Lease up to ``n`` messages inside the caller's transaction."""
        rows: list[Row] = []
        while len(rows) < n:
            params["token"] = os.urandom(16).hex()
            found = conn.execute(sql.LEASE, params).fetchone()
            if found is None:
                break
            rows.append(self._row(found, now))
        self._found_none = len(rows) < n
        return rows

    def lease_many(
        self, queue: str, n: int, *, lease_timeout: float, leased_by: str | None
    ) -> list[Row]:
        if n <= 0:
            return []
        with self._file.session as conn:
            now = self.clock()
            params = self._lease_params(conn, queue, now, lease_timeout, leased_by)
            if self._found_none and conn.execute(sql.PEEK, params).fetchone() is None:
                return []  # still nothing, seen without taking the write lock
            # Leases need not reach the disk before the handlers run (see lease).
            with self._file.relaxed(conn), self._file.transaction(conn, "lease"):
                return self._lease_in(conn, params, n, now)

    def extend_leases(
        self,
        queue: str,
        leases: Sequence[tuple[str, str | None]],
        seconds: float,
        *,
        wait: float | None = None,
    ) -> list[float | None]:
        expires: list[float | None] = []
        with self._file.session as conn:
            now = self.clock()
            # A heartbeat: lost in a power cut, a lease just ends sooner (see relaxed).
            with (
                self._file.waiting_at_most(conn, wait),
                self._file.relaxed(conn),
                self._file.transaction(conn, "extend"),
            ):
                for message_id, token in leases:
                    key = self._key(queue, message_id)
                    found = None
                    if key is not None:
                        params = {**key, "token": token, "now": now}
                        params.update(expires=now + seconds, timeout=seconds)
                        found = conn.execute(sql.EXTEND, params).fetchone()
                    expires.append(
                        None if found is None else self._row(found, now).lease_expires_at
                    )
        return expires

    def release(
        self,
        queue: str,
        message_id: str,
        lease_token: str | None,
        *,
        delay: float = 0.0,
        error: bytes | None = None,
    ) -> Row:
        now = self.clock()
        params = {"now": now, "available": now + delay, "error": error, "token": lease_token}
        return self._held("release", sql.RELEASE, queue, message_id, params)

    def dead_letter(
        self, queue: str, message_id: str, lease_token: str | None, *, error: bytes | None = None
    ) -> Row:
        key = self._key(queue, message_id)
        with self._file.session as conn:
            if key is not None:
                with self._file.transaction(conn, "dead_letter"):
                    now = self.clock()
                    if self._end(conn, queue, message_id, lease_token, "dead", now, error):
                        self._prune_due(conn, queue, now)
                        return self._row(conn.execute(sql.GET, key).fetchone(), now)
            raise self._lease_lost(conn, queue, message_id, key, lease_token)

    def extend_lease(
        self, queue: str, message_id: str, lease_token: str | None, seconds: float
    ) -> Row:
        now = self.clock()
        params = {"now": now, "expires": now + seconds, "timeout": seconds, "token": lease_token}
        return self._held("extend", sql.EXTEND, queue, message_id, params)

    def requeue_dead(self, queue: str, message_id: str, *, delay: float = 0.0) -> Row:
        key = self._key(queue, message_id)
        found = None
        with self._file.session as conn:
            now = self.clock()
            if key is not None:
                key["available"] = now + delay
                try:
                    with self._file.atomic(conn, "requeue"):
                        found = conn.execute(sql.REVIVE_ONE, key).fetchone()
                except sqlite3.IntegrityError:  # its key is held again
                    dead = self._row(conn.execute(sql.GET, key).fetchone(), now)
                    params = {"queue": queue, "key": dead.key}
                    holder = self._row(conn.execute(sql.KEY_HOLDER, params).fetchone(), now)
                    raise key_held(queue, dead.key, holder.id) from None
        if found is None:
            raise MessageNotFoundError(f"no dead letter {message_id!r} in queue {queue!r}")
        return self._row(found, now)

    def requeue_all_dead(self, queue: str, *, delay: float = 0.0) -> int:
        with self._file.session as conn:
            now = self.clock()
            params = {"available": now + delay, "queue": queue}
            try:
                with self._file.atomic(conn, "requeue"):
                    return conn.execute(sql.REVIVE, params).rowcount
            except sqlite3.IntegrityError:  # nothing was requeued: say which key clashed
                held = conn.execute(sql.DEAD_KEY_HELD, params).fetchone()
                if held is not None:
                    raise key_held(queue, held[0], f"{held[1]}-{held[2]:012x}") from None
                (twice,) = conn.execute(sql.DEAD_KEY_TWICE, params).fetchone()
                raise key_held(queue, twice, None) from None

    def delete(self, queue: str, message_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(message_ids))
        with self._file.session as conn, self._file.transaction(conn, "delete"):
            missing = []
            for message_id in ids:
                key = self._key(queue, message_id)
                if key is None or conn.execute(sql.DELETE_ONE, key).rowcount != 1:
                    missing.append(message_id)
            if missing:  # rolls the transaction back: nothing is deleted
                raise MessageNotFoundError(
                    f"no message {', '.join(map(repr, missing))} in queue {queue!r}"
                )
        return len(ids)

    def purge(self, queue: str, *, dead_only: bool = False) -> int:
        with self._file.session as conn:
            with self._file.transaction(conn, "purge"):
                purged = conn.execute(sql.PURGE_DEAD, (queue,)).rowcount
                if not dead_only:
                    purged += conn.execute(sql.PURGE_LIVE, (queue,)).rowcount
            return purged

    # -- reading ----------------------------------------------------------------------

    def get(self, queue: str, message_id: str) -> Row | None:
        key = self._key(queue, message_id)
        if key is None:
            return None
        with self._file.session as conn:
            found = conn.execute(sql.GET, key).fetchone()
            now = self.clock()
        return None if found is None else self._row(found, now)

    def peek(self, queue: str, *, state: str | None = None, limit: int | None = None) -> list[Row]:
        statement = sql.PEEK_ROWS.get(state)
        if statement is None:
            raise ValueError(f"state must be one of {', '.join(PEEK_STATES)}, got {state!r}")
        with self._file.session as conn:
            now = self.clock()
            params = {"queue": queue, "now": now, "limit": -1 if limit is None else limit}
            rows = conn.execute(statement, params).fetchall()
        return [self._row(r, now) for r in rows]

    def dead_letters(self, queue: str, limit: int | None = None) -> list[Row]:
        with self._file.session as conn:
            rows = conn.execute(
                sql.DEAD_LETTERS, (queue, -1 if limit is None else limit)
            ).fetchall()
            now = self.clock()
        return [self._row(r, now) for r in rows]

    def _stats(self, conn: sqlite3.Connection, queue: str, now: float) -> QueueStats:
        params = {"queue": queue, "now": now}
        live, visible, leased = conn.execute(sql.STATS, params).fetchone()
        (expired,) = conn.execute(sql.STATS_EXPIRED, params).fetchone()
        (dead,) = conn.execute(sql.DEAD_COUNT, (queue,)).fetchone()
        inflight = leased - expired
        return QueueStats(
            ready=visible, delayed=live - visible - inflight, inflight=inflight, dead=dead
        )

    def stats(self, queue: str) -> QueueStats:
        with self._file.session as conn, self._file.read_transaction(conn):
            return self._stats(conn, queue, self.clock())

    def queues(self) -> dict[str, QueueStats]:
        with self._file.session as conn, self._file.read_transaction(conn):
            now = self.clock()
            names = [name for (name,) in conn.execute(sql.QUEUE_NAMES, {"prefix": ""})]
            return {name: self._stats(conn, name, now) for name in names}

    def known_queues(self) -> list[str]:
        with self._file.session as conn:
            try:
                return [name for (name,) in conn.execute(sql.KNOWN_QUEUES)]
            except sqlite3.OperationalError:  # a version 1 file opened read-only: no table
                return [name for (name,) in conn.execute(sql.QUEUE_NAMES, {"prefix": ""})]

    def settings(self, queue: str) -> QueueSettings:
        with self._file.session as conn:
            return self._settings(conn, queue)

    @staticmethod
    def _settings(conn: sqlite3.Connection, queue: str) -> QueueSettings:
        found = conn.execute(sql.SETTINGS, (queue,)).fetchone()
        if found is None:
            return QueueSettings()
        return QueueSettings(bool(found[0]), *found[1:])

    def set_paused(self, queue: str, paused: bool) -> QueueSettings:
        with self._file.session as conn, self._file.atomic(conn, "settings"):
            conn.execute(sql.SET_PAUSED, {"queue": queue, "paused": int(paused)}).fetchone()
        return self.settings(queue)

    def set_limits(self, queue: str, limits: Mapping[str, int | float | None]) -> QueueSettings:
        with self._file.session as conn:
            with self._file.transaction(conn, "settings"):
                settings = merged_limits(self._settings(conn, queue), limits)
                # A rate set anew starts its pacing afresh (reset_rate).
                params = {"queue": queue, "reset_rate": "rate" in limits, **settings._asdict()}
                conn.execute(sql.SET_LIMITS, params)
                rated = conn.execute(sql.ANY_RATE).fetchone() is not None
                conn.execute(sql.CREATE_RATE_TRIGGER if rated else sql.DROP_RATE_TRIGGER)
            return settings

    def held_back(self, queue: str) -> tuple[str | None, int]:
        with self._file.session as conn, self._file.read_transaction(conn):
            now = self.clock()
            settings = self._settings(conn, queue)
            if settings == QueueSettings():
                return None, 0
            stats = self._stats(conn, queue, now)
            if not stats.ready:
                return None, 0
            params = {"queue": queue, "now": now, "per_group": settings.per_group or 0}
            live, in_full_groups = conn.execute(sql.HELD_COUNTS, params).fetchone()
            rate_opens = self._rate_opens(conn, queue, settings, now)
        return hold(
            settings,
            ready=stats.ready,
            inflight=live or 0,
            rate_full=rate_opens > now,
            in_full_groups=in_full_groups if settings.per_group else 0,
        )

    @staticmethod
    def _rate_opens(
        conn: sqlite3.Connection, queue: str, settings: QueueSettings, now: float
    ) -> float:
        """When ``queue``'s rate next lets a lease start (``now`` or before: at once)."""
        if settings.rate is None:
            return now
        (due,) = conn.execute(sql.RATE_NEXT, (queue,)).fetchone()
        return now if due is None else float(due)

    def next_visible_in(self, queue: str) -> float | None:
        self._file.check_identity()  # idle workers call this between polls
        with self._file.session as conn:
            now = self.clock()
            if now - self._rebased_at > 10.0 or now < self._rebased_at:
                # also catches a step back that happened while no process of ours ran
                self._rebase_leases(conn, queue, now)
                self._rebased_at = now
            (earliest,) = conn.execute(sql.NEXT_VISIBLE, {"queue": queue}).fetchone()
            if earliest is None or earliest > now:
                return None if earliest is None else earliest - now
            params = {"queue": queue, "now": now}
            if conn.execute(sql.PEEK, params).fetchone() is not None:
                return 0.0
            # Ready messages held back by a limit: until a start leaves the rate window,
            # or the earliest live lease ends (a settle frees a slot sooner).
            opens = self._rate_opens(conn, queue, self._settings(conn, queue), now)
            if opens > now:
                return opens - now
            (ends,) = conn.execute(sql.LEASE_ENDS, params).fetchone()
        return None if ends is None else max(0.0, ends - now)

    # -- history ----------------------------------------------------------------------

    def keep(self, queue: str, *, seconds: float | None, count: int | None) -> None:
        with self._file.session as conn, self._file.atomic(conn, "keep"):
            conn.execute(sql.KEEP, (queue, seconds, count))

    def retention(self, queue: str) -> tuple[float | None, int | None]:
        with self._file.session as conn:
            return self._retention(conn, queue) or (None, None)

    def history(
        self,
        queue: str,
        *,
        status: str | None = None,
        since: float | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[HistoryRow]:
        params: dict[str, Any] = {"queue": queue, "status": status, "key": key}
        params.update(since=-math.inf if since is None else since, limit=limit or -1)
        with self._file.session as conn:
            rows = conn.execute(sql.HISTORY, params).fetchall()
        return [_history_row(r) for r in rows]

    def history_record(self, queue: str, message_id: str) -> HistoryRow | None:
        key = self._key(queue, message_id) or {"seq": None, "nonce": None, "queue": queue}
        with self._file.session as conn:
            found = conn.execute(sql.HISTORY_RECORD, {**key, "id": message_id}).fetchone()
        return None if found is None else _history_row(found)

    def prune_history(self, queue: str) -> int:
        # Lost in a power cut, a pruning step is simply done again: no fsync of its own
        # at full (see relaxed), so it holds the write lock for its deletes alone.
        with (
            self._file.session as conn,
            self._file.relaxed(conn),
            self._file.transaction(conn, "prune"),
        ):
            # Off: what was kept goes too, a batch at a time.
            retention = self._retention(conn, queue) or (None, 0)
            return self._prune(conn, queue, retention, self.clock())

    def history_queues(self) -> list[str]:
        with self._file.session as conn:
            return [name for (name,) in conn.execute(sql.KEEPING_QUEUES)]

    # -- maintenance ------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Integrity check, schema version and counts: what ``store check`` prints.
        ``ok`` is False when SQLite finds any damage."""
        with self._file.session as conn:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            (messages,) = conn.execute(sql.MESSAGE_COUNT).fetchone()
        ok = problems == ["ok"]
        return {
            "path": self._file.path,
            "ok": ok,
            "integrity": "ok" if ok else problems[:20],
            "schema_version": version,
            "durability": self.durability,
            "messages": messages,
            "queues": {name: stats.to_dict() for name, stats in self.queues().items()},
        }

    def backup(self, destination: str | os.PathLike[str]) -> dict[str, Any]:
        """Copy the store to ``destination`` with SQLite's online backup API (consistent
        while workers run), then verify the copy. Refuses to overwrite an existing file."""
        target = os.fspath(destination)
        messages = self._file.backup_to(
            target, lambda copy: copy.execute(sql.MESSAGE_COUNT).fetchone()[0]
        )
        return {"path": self._file.path, "backup": str(target), "ok": True, "messages": messages}

    def vacuum(self) -> dict[str, Any]:
        """Prune every queue's history past its retention (a batch per transaction, so
        workers go on meanwhile), then rebuild the file to give back free pages; returns
        the size before and after and how many history records were pruned."""
        pruned = self.prune_expired()
        before = self._size()
        with self._file.session as conn:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {
            "path": self._file.path,
            "bytes_before": before,
            "bytes_after": self._size(),
            "history_pruned": pruned,
        }

    def prune_expired(self) -> int:
        """Delete every queue's history records past its retention, a batch per
        transaction, pausing after each as long as it took (the write lock is held at
        most half the time) and, while other processes write (one did during the last
        pause), at least ``_PRUNE_YIELD``. A writer that found the lock taken sleeps in
        SQLite's busy handler before each try (1, 2, 5, 10, 15, 20, 25, 25, ... ms), so
        having waited W ms its next try is less than max(10, W) ms away. One that began
        waiting during a step of S ms has waited at most S when the step ends: a pause
        of max(S, 10 ms) always holds one of its tries, and a put waits for about one
        step, never for several. Returns how many were deleted."""
        pruned = 0
        others_write = False
        for queue in self.history_queues():
            while True:
                started = time.monotonic()
                deleted = self.prune_history(queue)
                if not deleted:
                    break
                pruned += deleted
                took = time.monotonic() - started
                seen = self._data_version()
                time.sleep(max(took, _PRUNE_YIELD) if others_write else took)
                others_write = self._data_version() != seen
        return pruned

    def _data_version(self) -> int:
        """SQLite's count of commits by other connections (it changes with each one)."""
        with self._file.session as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def _size(self) -> int:
        return sum(
            os.stat(f"{self._file.path}{suffix}").st_size
            for suffix in ("", "-wal")
            if os.path.exists(f"{self._file.path}{suffix}")
        )

    # -- lifetime ---------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Copy the WAL back into the database file and truncate it."""
        with self._file.session as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._file.lock:
            self._file.close()
