"""Queue limits on the LMDB store (issue 27, schema version 5): how a queue's settings
are packed, and what lets a lease count against its limits inside its own write
transaction.

* ``settings``: queue -> :func:`pack_settings`: its pause, its limits and, for a queue
  with a ``rate``, ``rate_next``: when its next lease may start
  (:func:`localqueue.limits.next_due`, one start each period / rate at most), moved on
  by the lease transaction, which reads the value anyway.
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
"""

from __future__ import annotations

import math
import struct
from typing import Any

from localqueue.limits import next_due
from localqueue.message import QueueSettings
from localqueue.stores._lmdb_format import key_time, queue_prefix, time_key

__all__ = [
    "NO_SETTINGS",
    "Gate",
    "counts_leases",
    "first_live_end",
    "limited",
    "pack_settings",
    "unpack_settings",
    "upgrade_settings",
]

#: paused, max_inflight, rate, rate_period, per_group (0: no such limit), rate_next
#: (NaN: none).
_SETTINGS = struct.Struct(">?qqdqd")
_PAST = b"\xff" * 9  # after a time key: past every index key of that time
NO_SETTINGS = QueueSettings()


def pack_settings(settings: QueueSettings, rate_next: float | None) -> bytes:
    return _SETTINGS.pack(
        settings.paused,
        settings.max_inflight or 0,
        settings.rate or 0,
        settings.rate_period or 0.0,
        settings.per_group or 0,
        math.nan if rate_next is None else rate_next,
    )


def unpack_settings(data: bytes) -> tuple[QueueSettings, float | None]:
    """(the settings, ``rate_next``) of a ``settings`` value."""
    paused, max_inflight, rate, period, per_group, rate_next = _SETTINGS.unpack(data)
    settings = QueueSettings(
        paused, max_inflight or None, rate or None, period if rate else None, per_group or None
    )
    return settings, None if math.isnan(rate_next) else rate_next


def upgrade_settings(data: bytes) -> bytes:
    """A ``settings`` value of versions 3 and 4 (one byte: paused) as version 5 packs it."""
    return pack_settings(QueueSettings(paused=bool(data[0])), None)


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


class Gate:
    """What a queue's limits let a transaction lease at ``now``: the live leases counted
    once, then kept up by :meth:`took` as it leases, with when the rate lets the next
    one start."""

    __slots__ = ("full", "groups", "inflight", "now", "rate_next", "settings")

    def __init__(
        self,
        txn: Any,
        live: Any,
        queue: str,
        settings: QueueSettings,
        rate_next: float | None,
        now: float,
    ) -> None:
        self.settings, self.rate_next, self.now = settings, rate_next, now
        self.inflight = 0
        self.groups: dict[bytes, int] = {}
        if counts_leases(settings):
            self.inflight, self.groups = live_leases(txn, live, queue, now)
        per_group = settings.per_group
        self.full = {g for g, n in self.groups.items() if per_group is not None and n >= per_group}

    @property
    def rate_full(self) -> bool:
        """Whether the rate lets no lease start now."""
        due = self.rate_next
        return self.settings.rate is not None and due is not None and due > self.now

    def open(self) -> bool:
        """Whether ``max_inflight`` and ``rate`` let one more lease start."""
        limit = self.settings.max_inflight
        return (limit is None or self.inflight < limit) and not self.rate_full

    def took(self, group: str | None) -> None:
        """Count one more lease, of a message of ``group``."""
        settings = self.settings
        self.inflight += 1
        if settings.rate is not None:
            self.rate_next = next_due(settings.rate, settings.rate_period, self.rate_next, self.now)
        if group is not None and settings.per_group is not None:
            name = group.encode()
            count = self.groups[name] = self.groups.get(name, 0) + 1
            if count >= settings.per_group:
                self.full.add(name)
