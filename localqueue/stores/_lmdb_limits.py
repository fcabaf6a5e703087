"""Queue limits on the LMDB store (issue 27, schema version 5): how a queue's settings
are packed, and the two sub-databases that let a lease count against its limits inside
its own write transaction.

* ``settings``: queue -> :func:`pack_settings` (its pause and its limits).
* ``live``: ``queue NUL lease_expires_at seq`` -> ``NUL group`` (empty: no group), one
  entry per inflight message of a queue with ``max_inflight`` or ``per_group``
  (:func:`counts_leases`), and only of those. A lease of such a queue flags its record
  ``counted`` (a bit of the record) and writes the entry; every later change of that
  record (settle, extend, delete, a new lease after it expired) removes or moves the
  entry by the flag alone (``_Tx.unindex`` and ``_Tx.save``), so settling a lease of a
  queue without those limits reads nothing more than before. ``set_limits`` flags and
  indexes the inflight messages of a queue when such a limit is first set, and unflags
  them and drops their entries when the last one is lifted. The live leases are the
  entries past ``now`` (one seek, then counted forward), so an expired lease never
  counts and nothing has to happen when one runs out. A lease transaction counts them
  once: O(live leases), and nothing for a queue without those limits.
* ``starts``: ``queue NUL started_at`` -> how many leases of a queue with a ``rate``
  started then, and ``queue`` -> how many its entries hold. A lease transaction first
  deletes the entries that left the window (oldest first, taking them off the sum), so
  the sum is the window's count: no scan of the window however large the rate. Lifting
  the rate drops the queue's entries.
"""

from __future__ import annotations

import struct
from typing import Any

from localqueue.message import QueueSettings
from localqueue.stores._lmdb_format import key_time, queue_prefix, time_key

__all__ = [
    "NO_SETTINGS",
    "Gate",
    "add_starts",
    "counts_leases",
    "drop_entries",
    "first_live_end",
    "limited",
    "pack_settings",
    "unpack_settings",
    "upgrade_settings",
]

#: paused, max_inflight, rate, rate_period, per_group (0: no such limit).
_SETTINGS = struct.Struct(">?qqdq")
_COUNT = struct.Struct(">Q")
_PAST = b"\xff" * 9  # after a time key: past every index key of that time
NO_SETTINGS = QueueSettings()


def pack_settings(settings: QueueSettings) -> bytes:
    return _SETTINGS.pack(
        settings.paused,
        settings.max_inflight or 0,
        settings.rate or 0,
        settings.rate_period or 0.0,
        settings.per_group or 0,
    )


def unpack_settings(data: bytes | None) -> QueueSettings:
    if data is None:
        return NO_SETTINGS
    paused, max_inflight, rate, period, per_group = _SETTINGS.unpack(data)
    return QueueSettings(
        paused, max_inflight or None, rate or None, period if rate else None, per_group or None
    )


def upgrade_settings(data: bytes) -> bytes:
    """A ``settings`` value of versions 3 and 4 (one byte: paused) as version 5 packs it."""
    return pack_settings(QueueSettings(paused=bool(data[0])))


def limited(settings: QueueSettings) -> bool:
    """Whether ``settings`` hold any limit (a lease then counts)."""
    return counts_leases(settings) or settings.rate is not None


def counts_leases(settings: QueueSettings) -> bool:
    """Whether the queue's inflight messages are kept in ``live``."""
    return settings.max_inflight is not None or settings.per_group is not None


def _past(queue: str, now: float) -> bytes:
    return time_key(queue, now) + _PAST


def live_leases(txn: Any, live: Any, queue: str, now: float) -> tuple[int, dict[bytes, int]]:
    """How many messages of ``queue`` are under a live lease at ``now``, and how many of
    each group."""
    prefix = queue_prefix(queue)
    cursor = txn.cursor(db=live)
    count = 0
    groups: dict[bytes, int] = {}
    if cursor.set_range(_past(queue, now)):
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            count += 1
            if value:
                group = bytes(value[1:])
                groups[group] = groups.get(group, 0) + 1
    return count, groups


def first_live_end(txn: Any, live: Any, queue: str, now: float) -> float | None:
    """When the earliest live lease of ``queue`` ends (None: none is live)."""
    prefix = queue_prefix(queue)
    cursor = txn.cursor(db=live)
    if cursor.set_range(_past(queue, now)) and cursor.key().startswith(prefix):
        return key_time(cursor.key(), len(prefix))
    return None


def drop_entries(txn: Any, db: Any, queue: str) -> None:
    """Delete every entry of ``queue`` from ``starts`` (and its sum)."""
    prefix = queue_prefix(queue)
    cursor = txn.cursor(db=db)
    if cursor.set_range(prefix):
        while cursor.key().startswith(prefix):
            cursor.delete()  # and on to the next one
    txn.delete(queue.encode(), db=db)


def _window(
    txn: Any, starts: Any, queue: str, now: float, period: float, *, prune: bool
) -> tuple[int, float | None]:
    """(how many leases of ``queue`` started in the window ``(now - period, now]``, the
    oldest start in it). ``prune`` (a write transaction): delete the older entries."""
    raw = txn.get(queue.encode(), db=starts)
    total = 0 if raw is None else _COUNT.unpack(raw)[0]
    prefix = queue_prefix(queue)
    cutoff = now - period
    cursor = txn.cursor(db=starts)
    stale = 0
    oldest = None
    if cursor.set_range(prefix):
        while (key := cursor.key()).startswith(prefix):
            when = key_time(key, len(prefix))
            if when > cutoff:
                oldest = when
                break
            stale += _COUNT.unpack(cursor.value())[0]
            if prune:
                cursor.delete()  # and on to the next one
            elif not cursor.next():
                break
    if prune and stale:
        txn.put(queue.encode(), _COUNT.pack(total - stale), db=starts)
    return total - stale, oldest


def add_starts(txn: Any, starts: Any, queue: str, now: float, started: int, total: int) -> None:
    """Log ``started`` leases of ``queue`` started at ``now``; ``total`` is the window's
    count with them (after :class:`Gate` pruned it in this transaction)."""
    key = time_key(queue, now)
    raw = txn.get(key, db=starts)
    before = 0 if raw is None else _COUNT.unpack(raw)[0]
    txn.put(key, _COUNT.pack(before + started), db=starts)
    txn.put(queue.encode(), _COUNT.pack(total), db=starts)


class Gate:
    """What a queue's limits let a transaction lease at ``now``: counted once (the live
    leases and the rate window), then kept up by :meth:`took` as it leases."""

    __slots__ = ("full", "groups", "inflight", "oldest", "settings", "started")

    def __init__(
        self,
        txn: Any,
        dbs: tuple[Any, Any],
        queue: str,
        settings: QueueSettings,
        now: float,
        *,
        prune: bool,
    ) -> None:
        live, starts = dbs
        self.settings = settings
        self.inflight = self.started = 0
        self.groups: dict[bytes, int] = {}
        self.oldest: float | None = None
        if counts_leases(settings):
            self.inflight, self.groups = live_leases(txn, live, queue, now)
        per_group = settings.per_group
        self.full = {g for g, n in self.groups.items() if per_group is not None and n >= per_group}
        if settings.rate is not None:
            assert settings.rate_period is not None
            self.started, self.oldest = _window(
                txn, starts, queue, now, settings.rate_period, prune=prune
            )

    def open(self) -> bool:
        """Whether ``max_inflight`` and ``rate`` let one more lease start."""
        settings = self.settings
        return (settings.max_inflight is None or self.inflight < settings.max_inflight) and (
            settings.rate is None or self.started < settings.rate
        )

    def took(self, group: str | None) -> None:
        """Count one more lease, of a message of ``group``."""
        self.inflight += 1
        self.started += 1
        per_group = self.settings.per_group
        if group is not None and per_group is not None:
            name = group.encode()
            count = self.groups[name] = self.groups.get(name, 0) + 1
            if count >= per_group:
                self.full.add(name)
