"""LMDBQueueStore: the queue store contract over one LMDB environment directory.

Optional backend (``pip install "localqueue[lmdb]"``); the CLI reaches it with
``--store-path lmdb://DIR``. Every queue lives in the one environment at ``DIR``; the
layout is in :mod:`localqueue.stores._lmdb_format`. Each operation is ONE LMDB
transaction, and a message's record, its index entry and its queue's counts change in
the same write transaction, so a crash can never leave them disagreeing. LMDB serialises
writers across processes on a robust mutex: a writer killed mid-transaction leaves
nothing behind and does not block the others. There is no busy timeout (a writer waits
its turn), so this store never raises StoreLockedError.

Durability (LMDB's own guarantees):

* ``"full"`` (default): ``sync=True, metasync=True``; data and meta pages are flushed
  on every commit, so a committed put survives power loss.
* ``"normal"``: ``sync=True, metasync=False``; data pages are flushed on commit, the
  meta page later (next commit or OS flush). A power loss or OS crash may undo the last
  committed transaction, never corrupt the store; a process crash loses nothing.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from localqueue import _failpoints
from localqueue.backends import StoreAddress, lmdb_env
from localqueue.backends.lmdb_env import Durability, Schema
from localqueue.errors import Full, LeaseLostError, MessageNotFoundError, StoreError
from localqueue.history import PRUNE_BATCH, HistoryRow
from localqueue.message import QueueSettings, QueueStats
from localqueue.stores._lmdb_format import (
    KIND,
    Counts,
    Record,
    Retention,
    entry_id,
    group_suffix,
    history_key,
    key_entry,
    key_time,
    level_after,
    pack_history,
    queue_prefix,
    unpack_history,
)
from localqueue.stores._lmdb_limits import (
    NO_SETTINGS,
    Gate,
    counts_leases,
    first_live_end,
    limited,
    pack_settings,
    unpack_settings,
    upgrade_settings,
)
from localqueue.stores.base import (
    DEAD,
    INFLIGHT,
    PEEK_STATES,
    WAITING,
    QueueStore,
    Row,
    check_groups,
    check_keyed,
    hold,
    key_held,
    merged_limits,
)
from localqueue.stores.record import held

if TYPE_CHECKING:
    from collections.abc import Iterator

    from localqueue.outcome import Settlement
    from localqueue.stores.base import OnConflict

__all__ = ["DEFAULT_MAP_SIZE", "DEFAULT_MAX_MAP_SIZE", "LMDBQueueStore"]

DEFAULT_MAP_SIZE = 64 * 1024**2
DEFAULT_MAX_MAP_SIZE = 16 * 1024**3
_RECORDS, _VISIBLE, _DEAD, _COUNTS = b"records", b"visible", b"dead", b"counts"
#: The retry budgets of this store's workers (:mod:`localqueue.retry.lmdb`), kept with
#: the queues so that every worker of the environment spends one budget per message.
ATTEMPTS = b"attempts"
_KEYS = b"keys"
#: Format 3 (issue 27): queue name -> the settings of a queue that was given any
#: (:func:`pack_settings`), read by every lease in its own transaction.
_SETTINGS = b"settings"
#: Format 4 (issue 28): queue name -> its retention (:class:`Retention`), and the history.
_RETENTION, _HISTORY, _HISTORY_IDS = b"retention", b"history", b"history_ids"
#: Format 5 (issue 27, limits): the live leases of queues with ``max_inflight`` or
#: ``per_group`` (:mod:`._lmdb_limits`).
_LIVE = b"live"
_LEVEL = 8  # bytes of the priority level after a queue's prefix in ``visible``


def _migrate_1(txn: Any, dbs: Mapping[bytes, Any]) -> None:
    """Format 1 -> 2: index every live message under its priority level (0: the records
    of version 1 have none) and give it an empty ``keys`` (they have no keys)."""
    txn.drop(dbs[_VISIBLE], delete=False)
    for raw_id, data in txn.cursor(db=dbs[_RECORDS]):
        record = Record.unpack(raw_id.decode(), data)
        dead, key = record.index_entry()
        if not dead:
            txn.put(key, KIND[record.state] + raw_id, db=dbs[_VISIBLE])


def _migrate_2(txn: Any, dbs: Mapping[bytes, Any]) -> None:
    """Format 2 -> 3: the ``settings`` sub-database (opened, empty, by the step's
    transaction): no queue of an older environment has settings."""


def _migrate_3(txn: Any, dbs: Mapping[bytes, Any]) -> None:
    """Format 3 -> 4: the ``retention``, ``history`` and ``history_ids`` sub-databases,
    opened empty (no queue keeps a history yet); records of format 2 are read as they
    are (no first start, no errors) and written in record format 3 when they next change."""


def _migrate_4(txn: Any, dbs: Mapping[bytes, Any]) -> None:
    """Format 4 -> 5: ``settings`` values gain the limits (none) and ``rate_next``; the
    ``live`` sub-database is opened empty (no queue has a limit). Records of formats
    2 and 3 are read as they are (no group); record format 4 (with the group) is written
    for a message of a group, and the ``visible`` values of messages without a group
    are as before."""
    for queue, data in list(txn.cursor(db=dbs[_SETTINGS])):
        txn.put(queue, upgrade_settings(data), db=dbs[_SETTINGS])


SCHEMA = Schema(
    b"localqueue-queue",
    5,
    (
        _RECORDS,
        _VISIBLE,
        _DEAD,
        _COUNTS,
        ATTEMPTS,
        _KEYS,
        _SETTINGS,
        _RETENTION,
        _HISTORY,
        _HISTORY_IDS,
        _LIVE,
    ),
    {1: _migrate_1, 2: _migrate_2, 3: _migrate_3, 4: _migrate_4},
)


class _Tx:
    """One transaction's view of the store: records, indexes and counts kept in step."""

    __slots__ = (
        "counts",
        "dead",
        "history",
        "history_ids",
        "keys",
        "known",
        "live",
        "meta",
        "records",
        "retentions",
        "settings",
        "txn",
        "visible",
    )

    def __init__(self, txn: Any, dbs: Mapping[bytes, Any]) -> None:
        self.txn = txn
        self.records = dbs[_RECORDS]
        self.visible = dbs[_VISIBLE]
        self.dead = dbs[_DEAD]
        self.counts = dbs[_COUNTS]
        self.keys = dbs[_KEYS]
        self.settings = dbs[_SETTINGS]
        self.retentions = dbs[_RETENTION]
        self.history = dbs[_HISTORY]
        self.history_ids = dbs[_HISTORY_IDS]
        self.live = dbs[_LIVE]
        self.meta = dbs[lmdb_env.META_DB]
        # The settings (and rate_next) of each queue, read once per transaction.
        self.known: dict[str, tuple[QueueSettings, float | None]] = {}

    # -- records --------------------------------------------------------------------

    def find(self, queue: str, message_id: str) -> Record | None:
        data = self.txn.get(message_id.encode(), db=self.records)
        if data is None:
            return None
        record = Record.unpack(message_id, data)
        return record if record.queue == queue else None

    def held(self, queue: str, message_id: str, token: str | None) -> Record:
        """The inflight record the caller holds, or the contract's error."""
        return held(self.find(queue, message_id), queue, message_id, token)

    def unindex(self, record: Record) -> int:
        """Take ``record`` out of its index (and ``live``); returns its stored state for
        :meth:`save`."""
        dead, key = record.index_entry()
        self.txn.delete(key, db=self.dead if dead else self.visible)
        if record.counted:
            self.txn.delete(record.live_entry(), db=self.live)
        return record.state

    def save(self, record: Record, old_state: int | None) -> None:
        """Write ``record``, index it under its current state (in ``live`` too while it
        is inflight and ``counted``), and move it between the queue's counts
        (``old_state`` None for a new record)."""
        if record.counted and record.state != INFLIGHT:
            record.counted = False  # settled: its lease counts no more
        dead, key = record.index_entry()
        raw_id = record.id.encode()
        if dead:
            self.txn.put(key, raw_id, db=self.dead)
            self.let_go(record)
        else:
            group = b"" if record.group is None else group_suffix(record.group)
            self.txn.put(key, KIND[record.state] + raw_id + group, db=self.visible)
            if record.key is not None and old_state in (None, DEAD):  # now holds its key
                self.txn.put(key_entry(record.queue, record.key), raw_id, db=self.keys)
            if record.counted:
                self.txn.put(record.live_entry(), group, db=self.live)
        self.txn.put(raw_id, record.pack(), db=self.records)
        if old_state != record.state:
            counts = self.load_counts(record.queue)
            if old_state is not None:
                counts.add(old_state, -1)
            counts.add(record.state, 1)
            self.store_counts(record.queue, counts)

    def holder(self, queue: str, key: str) -> Record | None:
        """The message holding ``key`` in ``queue``, or None when the key is free."""
        raw_id = self.txn.get(key_entry(queue, key), db=self.keys)
        return None if raw_id is None else self.find(queue, raw_id.decode())

    def let_go(self, record: Record) -> None:
        """``record`` holds its key no more (dead-lettered or deleted)."""
        if record.key is not None:
            entry = key_entry(record.queue, record.key)
            if self.txn.get(entry, db=self.keys) == record.id.encode():
                self.txn.delete(entry, db=self.keys)

    def delete(self, record: Record) -> None:
        self.let_go(record)
        state = self.unindex(record)
        self.txn.delete(record.id.encode(), db=self.records)
        counts = self.load_counts(record.queue)
        counts.add(state, -1)
        self.store_counts(record.queue, counts)

    # -- counts and indexes ---------------------------------------------------------

    def load_counts(self, queue: str) -> Counts:
        return Counts.unpack(self.txn.get(queue.encode(), db=self.counts))

    def store_counts(self, queue: str, counts: Counts) -> None:
        # Kept at zero too: the counts' keys are every queue the store has held.
        self.txn.put(queue.encode(), counts.pack(), db=self.counts)

    def levels(self, queue: str) -> Iterator[tuple[bytes, Any]]:
        """The first ``visible`` entry of each of the queue's priority levels, highest
        first: (its key, a cursor on it), one seek per level."""
        prefix = queue_prefix(queue)
        cursor = self.txn.cursor(db=self.visible)
        seek = prefix
        while cursor.set_range(seek) and cursor.key().startswith(prefix):
            key = cursor.key()
            yield key, cursor
            after = level_after(key[len(prefix) : len(prefix) + _LEVEL])
            if after is None:
                return
            seek = prefix + after

    def head(
        self, queue: str, now: float, full: set[bytes] | None = None
    ) -> tuple[float, str] | None:
        """(visible_at, id) of the first message visible at ``now`` in lease order (the
        first visible one of the highest level that has one), passing over those of the
        groups in ``full``; None when there is none. Settings are the caller's."""
        start = len(queue_prefix(queue)) + _LEVEL
        for key, cursor in self.levels(queue):
            when = key_time(key, start)
            if when > now:
                continue
            if not full:  # entry_id inline: this is every lease's path
                return when, cursor.value()[1:].partition(b"\x00")[0].decode()
            top = key[:start]
            for entry, value in cursor.iternext():  # this level, from its first entry
                when = key_time(entry, start)
                if not entry.startswith(top) or when > now:
                    break
                raw_id, sep, group = value[1:].partition(b"\x00")
                if not sep or group not in full:
                    return when, raw_id.decode()
        return None

    def ready_in(self, queue: str, now: float, groups: set[bytes]) -> int:
        """How many messages visible at ``now`` belong to ``groups``."""
        if not groups:
            return 0
        start = len(queue_prefix(queue)) + _LEVEL
        count = 0
        for key, cursor in self.levels(queue):
            top = key[:start]
            for entry, value in cursor.iternext():
                if not entry.startswith(top) or key_time(entry, start) > now:
                    break
                _, sep, group = value[1:].partition(b"\x00")
                count += bool(sep) and group in groups
        return count

    def lease_head(self, queue: str, now: float) -> tuple[float, str] | None:
        """:meth:`head` as the queue's settings let ``lease`` take it at ``now`` (None
        while paused or held back by a limit); reads only."""
        settings = self.queue_settings(queue)
        if settings.paused:
            return None
        if settings is NO_SETTINGS or not limited(settings):
            return self.head(queue, now)
        gate = self.gate(queue, now)
        return self.head(queue, now, gate.full) if gate.open() else None

    def gate(self, queue: str, now: float) -> Gate:
        """The limits of ``queue`` counted at ``now``."""
        settings, rate_next = self.read_settings(queue)
        return Gate(self.txn, self.live, queue, settings, rate_next, now)

    def queue_settings(self, queue: str) -> QueueSettings:
        """The queue's settings, read once per transaction."""
        return self.read_settings(queue)[0]

    def read_settings(self, queue: str) -> tuple[QueueSettings, float | None]:
        """(the queue's settings, ``rate_next``), read once per transaction."""
        known = self.known.get(queue)
        if known is None:
            data = self.txn.get(queue.encode(), db=self.settings)
            known = (NO_SETTINGS, None) if data is None else unpack_settings(data)
            self.known[queue] = known
        return known

    def write_settings(self, queue: str, settings: QueueSettings, rate_next: float | None) -> None:
        self.txn.put(queue.encode(), pack_settings(settings, rate_next), db=self.settings)
        self.known[queue] = (settings, rate_next)

    def count_leases(self, queue: str, on: bool) -> None:
        """Start (``on``) or stop keeping the inflight messages of ``queue`` in ``live``:
        each is flagged ``counted`` and has its entry there, or neither."""
        inflight = self.load_counts(queue).inflight
        prefix = queue_prefix(queue)
        cursor = self.txn.cursor(db=self.visible)
        ids: list[str] = []
        if inflight and cursor.set_range(prefix):
            for key, value in cursor:
                if not key.startswith(prefix) or len(ids) == inflight:
                    break
                if value[:1] == KIND[INFLIGHT]:
                    ids.append(entry_id(value).decode())
        for message_id in ids:
            record = self.find(queue, message_id)
            assert record is not None, "index entry without a record"
            if on:
                self.txn.put(record.live_entry(), group_suffix(record.group), db=self.live)
            else:
                self.txn.delete(record.live_entry(), db=self.live)
            record.counted = on
            self.txn.put(record.id.encode(), record.pack(), db=self.records)

    def earliest(self, queue: str) -> float | None:
        """The smallest visibility time of the queue's live messages (None: none)."""
        start = len(queue_prefix(queue)) + _LEVEL
        times = [key_time(key, start) for key, _ in self.levels(queue)]
        return min(times) if times else None

    def entries(self, db: Any, queue: str, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        """The first ``limit`` (all by default) (key, value) of ``queue`` in index ``db``."""
        prefix = queue_prefix(queue)
        cursor = self.txn.cursor(db=db)
        found: list[tuple[bytes, bytes]] = []
        if cursor.set_range(prefix):
            for key, value in cursor:
                if not key.startswith(prefix) or len(found) == limit:
                    break
                found.append((key, value))
        return found

    def stats(self, queue: str, now: float) -> QueueStats:
        """Stored counts, split by the clock: only entries not yet visible are read
        (delayed messages and live leases), walking each level back from its end."""
        counts = self.load_counts(queue)
        prefix = queue_prefix(queue)
        start = len(prefix) + _LEVEL
        delayed = live = 0
        tops = [key[: len(prefix) + _LEVEL] for key, _ in self.levels(queue)]
        cursor = self.txn.cursor(db=self.visible)
        for top in tops:
            after = level_after(top[len(prefix) :])
            positioned = after is not None and cursor.set_range(prefix + after)
            positioned = cursor.prev() if positioned else cursor.last()
            if not positioned:
                continue
            for key, value in cursor.iterprev():
                if not key.startswith(top) or key_time(key, start) <= now:
                    break
                if value[:1] == KIND[WAITING]:
                    delayed += 1
                else:
                    live += 1
        ready = counts.pending - delayed + counts.inflight - live
        return QueueStats(ready=ready, delayed=delayed, inflight=live, dead=counts.dead)

    # -- history ----------------------------------------------------------------------

    def retention(self, queue: str) -> Retention:
        return Retention.unpack(self.txn.get(queue.encode(), db=self.retentions))

    def record(
        self,
        retention: Retention,
        record: Record,
        status: str,
        now: float,
        settlement: Settlement | None = None,
        error: bytes | None = None,
    ) -> None:
        """Write the history record of ``record``, acked or dead-lettered now (with what
        ``settlement`` says of its last attempt); ``retention`` counts it."""
        row = record.history_row(status, now, settlement, error)
        _, seq = self.next_seq(1)
        key = history_key(record.queue, now, seq)
        self.txn.put(key, pack_history(row), db=self.history)
        self.txn.put(record.id.encode(), key, db=self.history_ids)
        retention.held += 1

    def prune(self, queue: str, retention: Retention, now: float) -> int:
        """Delete at most a batch of ``queue``'s oldest records past ``retention`` (off:
        any); the caller stores ``retention`` (its count) afterwards."""
        cutoff = -math.inf if retention.seconds is None else now - retention.seconds
        over = retention.held - (retention.count if retention.count is not None else 0)
        if retention.on and retention.count is None:
            over = 0
        prefix = queue_prefix(queue)
        cursor = self.txn.cursor(db=self.history)
        deleted = 0
        while deleted < PRUNE_BATCH and cursor.set_range(prefix):
            key = cursor.key()
            if not key.startswith(prefix):
                break
            if deleted >= over and key_time(key, len(prefix)) >= cutoff:
                break
            message_id = unpack_history(cursor.value()).id
            cursor.delete()
            self.txn.delete(message_id.encode(), db=self.history_ids)
            deleted += 1
        retention.held -= deleted
        return deleted

    def finish(self, queue: str, retention: Retention, now: float) -> None:
        """After a settle that recorded: prune a batch and store the queue's count."""
        self.prune(queue, retention, now)
        self.txn.put(queue.encode(), retention.pack(), db=self.retentions)

    def next_seq(self, how_many: int) -> tuple[str, int]:
        """The environment's id tag and the first of ``how_many`` fresh sequence numbers."""
        tag = self.txn.get(b"tag", db=self.meta).decode()
        last = int(self.txn.get(b"seq", b"0", db=self.meta))
        self.txn.put(b"seq", str(last + how_many).encode(), db=self.meta)
        return tag, last + 1


class LMDBQueueStore(QueueStore):
    """Queues in the LMDB environment directory ``path`` (created 0700, files 0600).

    ``map_size`` is the initial map (address space, not disk: the file grows as data
    does); when a write finds it full the map doubles, up to ``max_map_size``, beyond
    which writes fail with StoreError and change nothing. ``durability`` is explained
    in the module docstring. Stores on one directory in one process share the
    environment, and the first one's options apply.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = DEFAULT_MAX_MAP_SIZE,
        durability: Durability = "full",
    ) -> None:
        lmdb_env.check_options(durability, map_size, max_map_size)
        if not lmdb_env.HAVE_LMDB:
            raise StoreError(lmdb_env.INSTALL_HINT)
        self.path = os.fspath(path)
        self._options: dict[str, Any] = {
            "map_size": map_size,
            "max_map_size": max_map_size,
            "durability": durability,
        }
        self._shared: lmdb_env.SharedEnv | None = lmdb_env.acquire(
            self.path, SCHEMA, **self._options
        )
        #: Reader slots of dead processes cleared when the environment was opened.
        self.stale_readers_cleared = self._shared.stale_readers_cleared

    def __repr__(self) -> str:
        return f"LMDBQueueStore({self.path!r})"

    @property
    def address(self) -> StoreAddress:
        return StoreAddress("lmdb", self.path)

    def _env(self) -> lmdb_env.SharedEnv:
        shared = self._shared
        if shared is None:  # used again after close()
            shared = self._shared = lmdb_env.acquire(self.path, SCHEMA, **self._options)
        return shared

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            lmdb_env.release(shared)

    @property
    def map_size(self) -> int:
        """The environment's current map size in bytes."""
        return self._env().current_map_size()

    def reader_check(self) -> int:
        """Clear reader slots left by dead processes; returns how many were cleared."""
        return self._env().reader_check()

    # -- writing ---------------------------------------------------------------------

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
        check_groups(values, groups)
        if not values:
            return []

        def work(txn: Any, dbs: Mapping[bytes, Any]) -> list[Row]:
            tx = _Tx(txn, dbs)
            now = self.clock()
            self._check_room(tx, queue, len(values), maxsize)
            return self._insert(tx, queue, values, now, delay, priority, groups)

        return self._env().write(work)

    @staticmethod
    def _check_room(tx: _Tx, queue: str, count: int, maxsize: int) -> None:
        if maxsize > 0 and tx.load_counts(queue).pending + count > maxsize:
            raise Full

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

        def work(txn: Any, dbs: Mapping[bytes, Any]) -> tuple[list[Row], list[bool]]:
            tx = _Tx(txn, dbs)
            now = self.clock()
            self._check_room(tx, queue, len(values), maxsize)
            rows: list[Row] = []
            duplicates: list[bool] = []
            each = zip(values, keys, groups or [None] * len(values), strict=True)
            for value, key, group in each:
                holder = None if key is None else tx.holder(queue, key)
                if holder is None:
                    record = self._new(tx, queue, value, now, delay, priority)
                    record.key, record.group = key, group
                    tx.save(record, None)
                    rows.append(record.row(now))
                    duplicates.append(False)
                elif on_conflict == "error":  # aborts the transaction: nothing is written
                    raise key_held(queue, key, holder.id)
                elif on_conflict == "replace" and holder.state == WAITING:
                    old_state = tx.unindex(holder)
                    holder.replace(bytes(value), priority, now + delay, group)
                    tx.save(holder, old_state)
                    rows.append(holder.row(now))
                    duplicates.append(False)
                else:
                    rows.append(holder.row(now))
                    duplicates.append(True)
            if _failpoints.ACTIVE:
                _failpoints.reached("put-before-commit")
            return rows, duplicates

        return self._env().write(work)

    @staticmethod
    def _new(tx: _Tx, queue: str, value: bytes, now: float, delay: float, priority: int) -> Record:
        tag, number = tx.next_seq(1)
        record = Record(
            f"{tag}-{number}", queue, bytes(value), WAITING, 0, number, now, now + delay
        )
        record.priority = priority
        return record

    @staticmethod
    def _insert(
        tx: _Tx,
        queue: str,
        values: Sequence[bytes],
        now: float,
        delay: float,
        priority: int = 0,
        groups: Sequence[str | None] | None = None,
    ) -> list[Row]:
        """Append ``values`` (of ``groups``, one each; None: none) to ``queue`` inside the
        caller's write transaction."""
        tag, seq = tx.next_seq(len(values))
        rows = []
        for offset, value in enumerate(values):
            number = seq + offset
            record = Record(
                f"{tag}-{number}", queue, bytes(value), WAITING, 0, number, now, now + delay
            )
            record.priority = priority
            if groups is not None:
                record.group = groups[offset]
            tx.save(record, None)
            rows.append(record.row(now))
        return rows

    def lease(self, queue: str, *, lease_timeout: float, leased_by: str | None) -> Row | None:
        rows = self.lease_many(queue, 1, lease_timeout=lease_timeout, leased_by=leased_by)
        return rows[0] if rows else None

    def lease_many(
        self, queue: str, n: int, *, lease_timeout: float, leased_by: str | None
    ) -> list[Row]:
        if n <= 0:
            return []
        env = self._env()
        # Peek in a read transaction first: an idle poller never takes the write lock.
        if env.read(lambda txn, dbs: _Tx(txn, dbs).lease_head(queue, self.clock())) is None:
            return []

        def work(txn: Any, dbs: Mapping[bytes, Any]) -> list[Row]:
            return self._lease_in(_Tx(txn, dbs), queue, n, self.clock(), lease_timeout, leased_by)

        return env.write(work)

    @staticmethod
    def _lease_in(
        tx: _Tx, queue: str, n: int, now: float, lease_timeout: float, leased_by: str | None
    ) -> list[Row]:
        """Lease up to ``n`` messages inside the caller's write transaction, as far as
        the queue's settings let it (read and counted once, in this transaction)."""
        rows: list[Row] = []
        settings = tx.queue_settings(queue)
        if settings.paused:
            return rows
        limits = settings is not NO_SETTINGS and limited(settings)
        gate = tx.gate(queue, now) if limits else None
        counted = limits and counts_leases(settings)
        while len(rows) < n:
            if gate is None:
                head = tx.head(queue, now)
            elif gate.open():
                head = tx.head(queue, now, gate.full)
            else:
                break
            if head is None:
                break
            record = tx.find(queue, head[1])
            assert record is not None, "index entry without a record"
            old_state = tx.unindex(record)
            record.lease(now, lease_timeout, leased_by, secrets.token_hex(16))
            record.counted = counted
            tx.save(record, old_state)
            rows.append(record.row(now))
            if gate is not None:
                gate.took(record.group)
        if gate is not None and rows and settings.rate is not None:
            tx.write_settings(queue, settings, gate.rate_next)
        return rows

    def ack(self, queue: str, message_id: str, lease_token: str | None) -> None:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> None:
            tx = _Tx(txn, dbs)
            record = tx.held(queue, message_id, lease_token)
            retention = tx.retention(queue)
            if retention.on:
                now = self.clock()
                tx.record(retention, record, "acked", now)
                tx.finish(queue, retention, now)
            tx.delete(record)

        self._env().write(work)

    def _settle(
        self,
        queue: str,
        message_id: str,
        lease_token: str | None,
        *,
        dead: bool,
        delay: float,
        error: bytes | None,
    ) -> Row:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> Row:
            tx = _Tx(txn, dbs)
            record = tx.held(queue, message_id, lease_token)
            now = self.clock()
            retention = tx.retention(queue)
            if dead and retention.on:
                tx.record(retention, record, "dead", now, error=error)
                tx.finish(queue, retention, now)
            self._end_lease(tx, record, now, dead=dead, delay=delay, error=error, keep=retention.on)
            return record.row(now)

        return self._env().write(work)

    @staticmethod
    def _end_lease(
        tx: _Tx,
        record: Record,
        now: float,
        *,
        dead: bool,
        delay: float,
        error: bytes | None,
        keep: bool = False,
    ) -> None:
        if keep and error is not None:  # a record will hold every attempt's error
            record.errors = [*(record.errors or []), error]
        old_state = tx.unindex(record)
        if dead:
            record.bury(now, error)
        else:
            record.release(now, delay, error)
        tx.save(record, old_state)

    def settle_many(
        self,
        queue: str,
        settlements: Sequence[Settlement],
        *,
        lease: int = 0,
        lease_timeout: float = 30.0,
        leased_by: str | None = None,
    ) -> tuple[list[bool], list[Row]]:
        """One write transaction (one commit, one sync at ``full``) for every
        settlement, the values they put on the next queue and the next leases."""
        if not settlements:
            return [], self.lease_many(
                queue, lease, lease_timeout=lease_timeout, leased_by=leased_by
            )

        def work(txn: Any, dbs: Mapping[bytes, Any]) -> tuple[list[bool], list[Row]]:
            tx = _Tx(txn, dbs)
            now = self.clock()
            retention = tx.retention(queue)
            applied: list[bool] = []
            for settlement in settlements:
                done = self._settle_in(tx, queue, settlement, now, retention)
                if done and settlement.then_put:
                    self._insert(tx, settlement.to or queue, settlement.then_put, now, 0.0)
                applied.append(done)
            if retention.on:
                tx.finish(queue, retention, now)
            leased = self._lease_in(tx, queue, lease, now, lease_timeout, leased_by)
            if _failpoints.ACTIVE:
                _failpoints.reached("settle-before-commit")
            return applied, leased

        return self._env().write(work)

    def _settle_in(
        self, tx: _Tx, queue: str, settlement: Settlement, now: float, retention: Retention
    ) -> bool:
        """Apply one settlement inside the caller's transaction; False (nothing changed)
        when its lease was lost or the message is gone. While ``retention`` is on, an
        ack or a dead-letter writes its history record."""
        if settlement.action not in ("acked", "released", "dead"):
            raise ValueError(f"unknown settle action {settlement.action!r}")
        try:
            record = tx.held(queue, settlement.message_id, settlement.lease_token)
        except (LeaseLostError, MessageNotFoundError):
            return False
        if retention.on and settlement.action != "released":
            tx.record(retention, record, settlement.action, now, settlement, settlement.error)
        if settlement.action == "acked":
            tx.delete(record)
        else:
            dead = settlement.action == "dead"
            self._end_lease(
                tx,
                record,
                now,
                dead=dead,
                delay=settlement.delay,
                error=settlement.error,
                keep=retention.on,
            )
        return True

    def extend_leases(
        self,
        queue: str,
        leases: Sequence[tuple[str, str | None]],
        seconds: float,
        *,
        wait: float | None = None,
    ) -> list[float | None]:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> list[float | None]:
            tx = _Tx(txn, dbs)
            now = self.clock()
            expires: list[float | None] = []
            for message_id, token in leases:
                try:
                    record = tx.held(queue, message_id, token)
                except (LeaseLostError, MessageNotFoundError):
                    expires.append(None)
                    continue
                old_state = tx.unindex(record)
                record.lease_expires_at = now + seconds
                tx.save(record, old_state)
                expires.append(record.lease_expires_at)
            return expires

        if not leases:
            return []
        return self._env().write(work)

    def release(
        self,
        queue: str,
        message_id: str,
        lease_token: str | None,
        *,
        delay: float = 0.0,
        error: bytes | None = None,
    ) -> Row:
        return self._settle(queue, message_id, lease_token, dead=False, delay=delay, error=error)

    def dead_letter(
        self, queue: str, message_id: str, lease_token: str | None, *, error: bytes | None = None
    ) -> Row:
        return self._settle(queue, message_id, lease_token, dead=True, delay=0.0, error=error)

    def extend_lease(
        self, queue: str, message_id: str, lease_token: str | None, seconds: float
    ) -> Row:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> Row:
            tx = _Tx(txn, dbs)
            record = tx.held(queue, message_id, lease_token)
            now = self.clock()
            old_state = tx.unindex(record)
            record.lease_expires_at = now + seconds
            tx.save(record, old_state)
            return record.row(now)

        return self._env().write(work)

    @staticmethod
    def _revive(tx: _Tx, record: Record, now: float, delay: float) -> None:
        """A dead letter back to waiting; KeyHeldError (the caller's transaction then
        aborts) when another message holds its key meanwhile."""
        if record.key is not None:
            holder = tx.holder(record.queue, record.key)
            if holder is not None:
                raise key_held(record.queue, record.key, holder.id)
        old_state = tx.unindex(record)
        record.revive(now, delay)
        tx.save(record, old_state)

    def requeue_dead(self, queue: str, message_id: str, *, delay: float = 0.0) -> Row:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> Row:
            tx = _Tx(txn, dbs)
            record = tx.find(queue, message_id)
            if record is None or record.state != DEAD:
                raise MessageNotFoundError(f"no dead letter {message_id!r} in queue {queue!r}")
            now = self.clock()
            self._revive(tx, record, now, delay)
            return record.row(now)

        return self._env().write(work)

    def requeue_all_dead(self, queue: str, *, delay: float = 0.0) -> int:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> int:
            tx = _Tx(txn, dbs)
            now = self.clock()
            dead = tx.entries(tx.dead, queue)
            for _, raw_id in dead:
                record = tx.find(queue, raw_id.decode())
                assert record is not None, "index entry without a record"
                self._revive(tx, record, now, delay)
            return len(dead)

        return self._env().write(work)

    def purge(self, queue: str, *, dead_only: bool = False) -> int:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> int:
            tx = _Tx(txn, dbs)
            doomed = [raw_id for _, raw_id in tx.entries(tx.dead, queue)]
            if not dead_only:
                doomed += [entry_id(value) for _, value in tx.entries(tx.visible, queue)]
            for raw_id in doomed:
                record = tx.find(queue, raw_id.decode())
                assert record is not None, "index entry without a record"
                tx.delete(record)
            return len(doomed)

        return self._env().write(work)

    def delete(self, queue: str, message_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(message_ids))

        def work(txn: Any, dbs: Mapping[bytes, Any]) -> int:
            tx = _Tx(txn, dbs)
            records = {message_id: tx.find(queue, message_id) for message_id in ids}
            missing = [message_id for message_id, record in records.items() if record is None]
            if missing:  # aborts the transaction: nothing is deleted
                raise MessageNotFoundError(
                    f"no message {', '.join(map(repr, missing))} in queue {queue!r}"
                )
            for record in records.values():
                assert record is not None
                tx.delete(record)
            return len(ids)

        return self._env().write(work)

    # -- reading ---------------------------------------------------------------------

    def peek(self, queue: str, *, state: str | None = None, limit: int | None = None) -> list[Row]:
        if state is not None and state not in PEEK_STATES:
            raise ValueError(f"state must be one of {', '.join(PEEK_STATES)}, got {state!r}")

        def work(txn: Any, dbs: Mapping[bytes, Any]) -> list[Row]:
            tx = _Tx(txn, dbs)
            now = self.clock()
            raw_ids = [entry_id(value) for _, value in tx.entries(tx.visible, queue)]
            raw_ids += [raw_id for _, raw_id in tx.entries(tx.dead, queue)]
            records = [tx.find(queue, raw_id.decode()) for raw_id in raw_ids]
            found = sorted(
                (r for r in records if r is not None), key=lambda r: (-r.priority, r.seq)
            )
            rows = [r.row(now) for r in found]
            return [row for row in rows if state is None or row.state == state]

        rows = self._env().read(work)
        return rows if limit is None else rows[:limit]

    def get(self, queue: str, message_id: str) -> Row | None:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> Row | None:
            record = _Tx(txn, dbs).find(queue, message_id)
            return None if record is None else record.row(self.clock())

        return self._env().read(work)

    def dead_letters(self, queue: str, limit: int | None = None) -> list[Row]:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> list[Row]:
            tx = _Tx(txn, dbs)
            now = self.clock()
            rows = []
            for _, raw_id in tx.entries(tx.dead, queue, limit):
                record = tx.find(queue, raw_id.decode())
                assert record is not None, "index entry without a record"
                rows.append(record.row(now))
            return rows

        return self._env().read(work)

    def stats(self, queue: str) -> QueueStats:
        return self._env().read(lambda txn, dbs: _Tx(txn, dbs).stats(queue, self.clock()))

    def queues(self) -> dict[str, QueueStats]:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> dict[str, QueueStats]:
            tx = _Tx(txn, dbs)
            now = self.clock()
            names = [
                raw.decode()
                for raw, counts in txn.cursor(db=tx.counts)
                if Counts.unpack(counts).total  # a drained queue keeps a zero entry
            ]
            return {name: tx.stats(name, now) for name in names}  # LMDB keeps them sorted

        return self._env().read(work)

    def known_queues(self) -> list[str]:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> list[str]:
            cursor = txn.cursor(db=dbs[_COUNTS])
            return [raw.decode() for raw in cursor.iternext(values=False)]

        return self._env().read(work)

    def settings(self, queue: str) -> QueueSettings:
        return self._env().read(lambda txn, dbs: _Tx(txn, dbs).queue_settings(queue))

    def set_paused(self, queue: str, paused: bool) -> QueueSettings:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> QueueSettings:
            tx = _Tx(txn, dbs)
            settings, rate_next = tx.read_settings(queue)
            settings = settings._replace(paused=paused)
            tx.write_settings(queue, settings, rate_next)
            return settings

        return self._env().write(work)

    def set_limits(self, queue: str, limits: Mapping[str, int | float | None]) -> QueueSettings:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> QueueSettings:
            tx = _Tx(txn, dbs)
            old, rate_next = tx.read_settings(queue)
            settings = merged_limits(old, limits)
            # A rate set anew starts its pacing afresh (a rate_next left by a slower one
            # would hold the new rate back until then).
            tx.write_settings(queue, settings, None if "rate" in limits else rate_next)
            if counts_leases(settings) != counts_leases(old):
                tx.count_leases(queue, counts_leases(settings))
            return settings

        return self._env().write(work)

    def held_back(self, queue: str) -> tuple[str | None, int]:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> tuple[str | None, int]:
            tx = _Tx(txn, dbs)
            now = self.clock()
            settings = tx.queue_settings(queue)
            ready = tx.stats(queue, now).ready
            if not ready or not (settings.paused or limited(settings)):
                return None, 0
            gate = tx.gate(queue, now)
            return hold(
                settings,
                ready=ready,
                inflight=gate.inflight,
                rate_full=gate.rate_full,
                in_full_groups=tx.ready_in(queue, now, gate.full),
            )

        return self._env().read(work)

    def next_visible_in(self, queue: str) -> float | None:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> float | None:
            tx = _Tx(txn, dbs)
            settings = tx.queue_settings(queue)
            earliest = None if settings.paused else tx.earliest(queue)
            if earliest is None:
                return None
            now = self.clock()
            if earliest > now or not limited(settings):
                return max(0.0, earliest - now)
            gate = tx.gate(queue, now)
            if gate.open() and tx.head(queue, now, gate.full) is not None:
                return 0.0
            # Ready messages held back by a limit: until the rate lets a lease start, or
            # the earliest live lease ends (a settle frees a slot sooner).
            if gate.rate_full:
                assert gate.rate_next is not None
                return gate.rate_next - now
            end = first_live_end(txn, tx.live, queue, now) if counts_leases(settings) else None
            return None if end is None else max(0.0, end - now)

        return self._env().read(work)

    # -- history ---------------------------------------------------------------------

    def keep(self, queue: str, *, seconds: float | None, count: int | None) -> None:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> None:
            tx = _Tx(txn, dbs)
            retention = tx.retention(queue)
            retention.seconds, retention.count = seconds, count
            txn.put(queue.encode(), retention.pack(), db=tx.retentions)

        self._env().write(work)

    def retention(self, queue: str) -> tuple[float | None, int | None]:
        found = self._env().read(lambda txn, dbs: _Tx(txn, dbs).retention(queue))
        return found.seconds, found.count

    def history(
        self,
        queue: str,
        *,
        status: str | None = None,
        since: float | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[HistoryRow]:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> list[HistoryRow]:
            prefix = queue_prefix(queue)
            cursor = txn.cursor(db=dbs[_HISTORY])
            found: list[HistoryRow] = []
            # Newest first: from the queue's last entry backwards.
            after = queue.encode() + b"\x01"
            positioned = cursor.prev() if cursor.set_range(after) else cursor.last()
            if not positioned:
                return found
            for entry, data in cursor.iterprev():
                if not entry.startswith(prefix) or len(found) == limit:
                    break
                if since is not None and key_time(entry, len(prefix)) < since:
                    break
                row = unpack_history(data)
                if (status is None or row.status == status) and (key is None or row.key == key):
                    found.append(row)
            return found

        return self._env().read(work)

    def history_record(self, queue: str, message_id: str) -> HistoryRow | None:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> HistoryRow | None:
            entry = txn.get(message_id.encode(), db=dbs[_HISTORY_IDS])
            data = None if entry is None else txn.get(entry, db=dbs[_HISTORY])
            row = None if data is None else unpack_history(data)
            return row if row is not None and row.queue == queue else None

        return self._env().read(work)

    def prune_history(self, queue: str) -> int:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> int:
            tx = _Tx(txn, dbs)
            retention = tx.retention(queue)
            deleted = tx.prune(queue, retention, self.clock())
            if deleted:
                txn.put(queue.encode(), retention.pack(), db=tx.retentions)
            return deleted

        return self._env().write(work)

    def history_queues(self) -> list[str]:
        def work(txn: Any, dbs: Mapping[bytes, Any]) -> list[str]:
            cursor = txn.cursor(db=dbs[_RETENTION])
            return [raw.decode() for raw in cursor.iternext(values=False)]

        return self._env().read(work)
