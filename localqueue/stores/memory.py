"""MemoryQueueStore: the whole store contract in one process's memory.

Meant for tests and throwaway work. It keeps real state (leases, tokens, dead letters),
so code tested against it behaves the same on SQLite; nothing survives the process.
"""

from __future__ import annotations

import collections
import itertools
import secrets
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from localqueue.errors import Full, MessageNotFoundError
from localqueue.history import PRUNE_BATCH, HistoryRow
from localqueue.limits import next_due
from localqueue.message import QueueSettings, QueueStats
from localqueue.stores.base import (
    DEAD,
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
from localqueue.stores.record import StoredMessage, held

if TYPE_CHECKING:
    from localqueue.outcome import Settlement
    from localqueue.stores.base import OnConflict

__all__ = ["MemoryQueueStore"]


class MemoryQueueStore(QueueStore):
    """All queues in a dict, guarded by one lock (reentrant: a batch holds it across the
    steps it is made of, so other threads see all of it or none)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, StoredMessage] = {}
        self._known: set[str] = set()  # every queue name put to, also once drained
        self._holders: dict[tuple[str, str], StoredMessage] = {}  # (queue, key): holder
        self._settings: dict[str, QueueSettings] = {}  # queues given settings
        self._seq = itertools.count(1)
        self._tag = secrets.token_hex(4)
        self._retention: dict[str, tuple[float | None, int | None]] = {}
        self._history: dict[str, list[HistoryRow]] = {}  # by queue, oldest finish first
        # When the queues with a rate may start their next lease (limits.next_due).
        self._rate_due: dict[str, float] = {}

    def __repr__(self) -> str:
        return "MemoryQueueStore()"

    def _find(self, queue: str, message_id: str) -> StoredMessage | None:
        record = self._records.get(message_id)
        return record if record is not None and record.queue == queue else None

    def _held(self, queue: str, message_id: str, token: str | None) -> StoredMessage:
        return held(self._find(queue, message_id), queue, message_id, token)

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
        with self._lock:
            now = self.clock()
            self._check_room(queue, len(values), maxsize)
            return [
                self._add(queue, value, now, delay, priority, None, group).row(now)
                for value, group in zip(values, groups or [None] * len(values), strict=True)
            ]

    def _check_room(self, queue: str, count: int, maxsize: int) -> None:
        if maxsize > 0:
            pending = sum(
                1 for r in self._records.values() if r.queue == queue and r.state == WAITING
            )
            if pending + count > maxsize:
                raise Full

    def _add(
        self,
        queue: str,
        value: bytes,
        now: float,
        delay: float,
        priority: int,
        key: str | None,
        group: str | None,
    ) -> StoredMessage:
        seq = next(self._seq)
        record = StoredMessage(
            f"{self._tag}-{seq}", queue, bytes(value), WAITING, 0, seq, now, now + delay
        )
        record.key, record.priority, record.group = key, priority, group
        self._records[record.id] = record
        self._known.add(queue)
        if key is not None:
            self._holders[queue, key] = record
        return record

    def _let_go(self, record: StoredMessage) -> None:
        """``record`` no longer holds its key (acked, dead-lettered, deleted, purged)."""
        if record.key is not None and self._holders.get((record.queue, record.key)) is record:
            del self._holders[record.queue, record.key]

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
        with self._lock:
            now = self.clock()
            self._check_room(queue, len(values), maxsize)
            rows: list[Row] = []
            duplicates: list[bool] = []
            added: list[StoredMessage] = []
            known = queue in self._known
            each = zip(values, keys, groups or [None] * len(values), strict=True)
            for value, key, group in each:
                holder = None if key is None else self._holders.get((queue, key))
                duplicate = holder is not None
                if holder is None:
                    holder = self._add(queue, value, now, delay, priority, key, group)
                    added.append(holder)
                elif on_conflict == "error":
                    for record in added:  # the whole put is undone
                        self._let_go(self._records.pop(record.id))
                    if not known:
                        self._known.discard(queue)
                    raise key_held(queue, key, holder.id)
                elif on_conflict == "replace" and holder.state == WAITING:
                    holder.replace(bytes(value), priority, now + delay, group)
                    duplicate = False
                rows.append(holder.row(now))
                duplicates.append(duplicate)
            return rows, duplicates

    def settle_many(
        self,
        queue: str,
        settlements: Sequence[Settlement],
        *,
        lease: int = 0,
        lease_timeout: float = 30.0,
        leased_by: str | None = None,
    ) -> tuple[list[bool], list[Row]]:
        with self._lock:
            self._settling = {s.message_id: s for s in settlements}
            try:
                return super().settle_many(
                    queue,
                    settlements,
                    lease=lease,
                    lease_timeout=lease_timeout,
                    leased_by=leased_by,
                )
            finally:
                self._settling = {}

    _settling: dict[str, Settlement] = {}  # replaced per batch, never changed

    def _finish(self, record: StoredMessage, status: str, error: bytes | None, now: float) -> None:
        """The history record of ``record``, acked or dead-lettered now (while its queue
        keeps a history), with what the settlement being applied says of the attempt."""
        if self.retention(record.queue) == (None, None):
            return
        row = record.history_row(status, now, self._settling.get(record.id), error)
        self._history.setdefault(record.queue, []).append(row)
        self.prune_history(record.queue)  # as a settling worker does, a batch at most

    def lease_many(
        self, queue: str, n: int, *, lease_timeout: float, leased_by: str | None
    ) -> list[Row]:
        with self._lock:
            return super().lease_many(queue, n, lease_timeout=lease_timeout, leased_by=leased_by)

    def extend_leases(
        self,
        queue: str,
        leases: Sequence[tuple[str, str | None]],
        seconds: float,
        *,
        wait: float | None = None,
    ) -> list[float | None]:
        with self._lock:
            return super().extend_leases(queue, leases, seconds)

    def lease(self, queue: str, *, lease_timeout: float, leased_by: str | None) -> Row | None:
        with self._lock:
            now = self.clock()
            visible = self._leasable(queue, now)
            if not visible:
                return None
            record = min(visible, key=StoredMessage.lease_order)
            record.lease(now, lease_timeout, leased_by, secrets.token_hex(16))
            settings = self._settings.get(queue)
            if settings is not None and settings.rate is not None:
                assert settings.rate_period is not None
                due = self._rate_due.get(queue)
                self._rate_due[queue] = next_due(settings.rate, settings.rate_period, due, now)
            return record.row(now)

    def _leasable(self, queue: str, now: float) -> list[StoredMessage]:
        """The messages ``lease`` may hand out now: the visible ones, unless the queue's
        settings hold them back (see the contract)."""
        settings = self._settings.get(queue)
        if settings is not None and settings.paused:
            return []
        visible = [
            r
            for r in self._records.values()
            if r.queue == queue and r.state != DEAD and r.visible_at() <= now
        ]
        if not visible or settings is None:
            return visible
        live = [r for r in self._records.values() if r.queue == queue and r.live_lease(now)]
        if settings.max_inflight is not None and len(live) >= settings.max_inflight:
            return []
        if self._rate_opens(queue, settings, now) > now:
            return []
        if settings.per_group is None:
            return visible
        full = self._full_groups(live, settings.per_group)
        return [r for r in visible if r.group is None or r.group not in full]

    @staticmethod
    def _full_groups(live: list[StoredMessage], per_group: int) -> set[str]:
        counts = collections.Counter(r.group for r in live if r.group is not None)
        return {group for group, n in counts.items() if n >= per_group}

    def _rate_opens(self, queue: str, settings: QueueSettings, now: float) -> float:
        """When the rate next lets a lease start (``now`` or before: at once)."""
        if settings.rate is None:
            return now
        return self._rate_due.get(queue, now)

    def ack(self, queue: str, message_id: str, lease_token: str | None) -> None:
        with self._lock:
            record = self._held(queue, message_id, lease_token)
            self._finish(record, "acked", None, self.clock())
            self._let_go(record)
            del self._records[message_id]

    def release(
        self,
        queue: str,
        message_id: str,
        lease_token: str | None,
        *,
        delay: float = 0.0,
        error: bytes | None = None,
    ) -> Row:
        with self._lock:
            record = self._held(queue, message_id, lease_token)
            now = self.clock()
            self._keep_error(record, error)
            record.release(now, delay, error)
            return record.row(now)

    def _keep_error(self, record: StoredMessage, error: bytes | None) -> None:
        if error is not None and self.retention(record.queue) != (None, None):
            record.errors = [*(record.errors or []), error]

    def dead_letter(
        self, queue: str, message_id: str, lease_token: str | None, *, error: bytes | None = None
    ) -> Row:
        with self._lock:
            record = self._held(queue, message_id, lease_token)
            now = self.clock()
            self._finish(record, "dead", error, now)
            self._keep_error(record, error)
            record.bury(now, error)
            self._let_go(record)
            return record.row(now)

    def extend_lease(
        self, queue: str, message_id: str, lease_token: str | None, seconds: float
    ) -> Row:
        with self._lock:
            record = self._held(queue, message_id, lease_token)
            now = self.clock()
            record.lease_expires_at = now + seconds
            return record.row(now)

    def requeue_dead(self, queue: str, message_id: str, *, delay: float = 0.0) -> Row:
        with self._lock:
            record = self._find(queue, message_id)
            if record is None or record.state != DEAD:
                raise MessageNotFoundError(f"no dead letter {message_id!r} in queue {queue!r}")
            self._check_free([record])
            now = self.clock()
            self._revive(record, now, delay)
            return record.row(now)

    def _check_free(self, dead: list[StoredMessage]) -> None:
        """Raise KeyHeldError when reviving ``dead`` would hold a key twice."""
        keys: set[str] = set()
        for record in dead:
            if record.key is None:
                continue
            holder = self._holders.get((record.queue, record.key))
            if holder is not None or record.key in keys:
                raise key_held(record.queue, record.key, None if holder is None else holder.id)
            keys.add(record.key)

    def _revive(self, record: StoredMessage, now: float, delay: float) -> None:
        record.revive(now, delay)
        if record.key is not None:
            self._holders[record.queue, record.key] = record

    def requeue_all_dead(self, queue: str, *, delay: float = 0.0) -> int:
        with self._lock:
            now = self.clock()
            dead = [r for r in self._records.values() if r.queue == queue and r.state == DEAD]
            self._check_free(dead)
            for record in dead:
                self._revive(record, now, delay)
            return len(dead)

    def purge(self, queue: str, *, dead_only: bool = False) -> int:
        with self._lock:
            doomed = [
                r.id
                for r in self._records.values()
                if r.queue == queue and (r.state == DEAD or not dead_only)
            ]
            for message_id in doomed:
                self._let_go(self._records.pop(message_id))
            return len(doomed)

    def get(self, queue: str, message_id: str) -> Row | None:
        with self._lock:
            record = self._find(queue, message_id)
            return None if record is None else record.row(self.clock())

    def dead_letters(self, queue: str, limit: int | None = None) -> list[Row]:
        with self._lock:
            now = self.clock()
            dead = sorted(
                (r for r in self._records.values() if r.queue == queue and r.state == DEAD),
                key=lambda r: (r.dead_at, r.seq),
            )
            return [r.row(now) for r in dead[:limit]]

    def _count(self, records: list[StoredMessage], now: float) -> QueueStats:
        counts = {"ready": 0, "delayed": 0, "inflight": 0, "dead": 0}
        for record in records:
            counts[record.effective_state(now)] += 1
        return QueueStats(**counts)

    def stats(self, queue: str) -> QueueStats:
        with self._lock:
            mine = [r for r in self._records.values() if r.queue == queue]
            return self._count(mine, self.clock())

    def queues(self) -> dict[str, QueueStats]:
        with self._lock:
            now = self.clock()
            by_queue: dict[str, list[StoredMessage]] = {}
            for record in self._records.values():
                by_queue.setdefault(record.queue, []).append(record)
            return {name: self._count(by_queue[name], now) for name in sorted(by_queue)}

    def peek(self, queue: str, *, state: str | None = None, limit: int | None = None) -> list[Row]:
        if state is not None and state not in PEEK_STATES:
            raise ValueError(f"state must be one of {', '.join(PEEK_STATES)}, got {state!r}")
        with self._lock:
            now = self.clock()
            found = sorted(
                (r for r in self._records.values() if r.queue == queue),
                key=lambda r: (-r.priority, r.seq),
            )
            rows = [r.row(now) for r in found if state is None or r.effective_state(now) == state]
        return rows if limit is None else rows[:limit]

    def delete(self, queue: str, message_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(message_ids))
        with self._lock:
            missing = [i for i in ids if i not in self._records or self._records[i].queue != queue]
            if missing:
                raise MessageNotFoundError(
                    f"no message {', '.join(map(repr, missing))} in queue {queue!r}"
                )
            for message_id in ids:
                self._let_go(self._records.pop(message_id))
        return len(ids)

    def known_queues(self) -> list[str]:
        with self._lock:
            return sorted(self._known)

    def settings(self, queue: str) -> QueueSettings:
        with self._lock:
            return self._settings.get(queue, QueueSettings())

    def set_paused(self, queue: str, paused: bool) -> QueueSettings:
        with self._lock:
            settings = self._settings[queue] = self.settings(queue)._replace(paused=paused)
            return settings

    def set_limits(self, queue: str, limits: Mapping[str, int | float | None]) -> QueueSettings:
        with self._lock:
            settings = self._settings[queue] = merged_limits(self.settings(queue), limits)
            if "rate" in limits:  # a rate set anew starts its pacing afresh
                self._rate_due.pop(queue, None)
            return settings

    def held_back(self, queue: str) -> tuple[str | None, int]:
        with self._lock:
            now = self.clock()
            settings = self.settings(queue)
            mine = [r for r in self._records.values() if r.queue == queue]
            ready = [r for r in mine if r.effective_state(now) == "ready"]
            live = [r for r in mine if r.live_lease(now)]
            full = (
                set() if settings.per_group is None else self._full_groups(live, settings.per_group)
            )
            return hold(
                settings,
                ready=len(ready),
                inflight=len(live),
                rate_full=self._rate_opens(queue, settings, now) > now,
                in_full_groups=sum(1 for r in ready if r.group in full),
            )

    def next_visible_in(self, queue: str) -> float | None:
        with self._lock:
            settings = self.settings(queue)
            if settings.paused:
                return None
            now = self.clock()
            mine = [r for r in self._records.values() if r.queue == queue and r.state != DEAD]
            if not mine:
                return None
            earliest = min(r.visible_at() for r in mine)
            if earliest > now or self._leasable(queue, now):
                return max(0.0, earliest - now)
            # Ready messages held back by a limit: until a start leaves the rate window,
            # or the earliest live lease ends.
            opens = self._rate_opens(queue, settings, now)
            if opens > now:
                return opens - now
            ends = [r.visible_at() for r in mine if r.live_lease(now)]
            return max(0.0, min(ends) - now) if ends else None

    # -- history ----------------------------------------------------------------------

    def keep(self, queue: str, *, seconds: float | None, count: int | None) -> None:
        with self._lock:
            self._retention[queue] = (seconds, count)

    def retention(self, queue: str) -> tuple[float | None, int | None]:
        return self._retention.get(queue, (None, None))

    def history(
        self,
        queue: str,
        *,
        status: str | None = None,
        since: float | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[HistoryRow]:
        with self._lock:
            found = [
                r
                for r in reversed(self._history.get(queue, []))
                if (status is None or r.status == status)
                and (since is None or r.finished_at >= since)
                and (key is None or r.key == key)
            ]
        return found[:limit] if limit else found

    def history_record(self, queue: str, message_id: str) -> HistoryRow | None:
        with self._lock:
            return next((r for r in self._history.get(queue, []) if r.id == message_id), None)

    def prune_history(self, queue: str) -> int:
        with self._lock:
            seconds, count = self.retention(queue)
            kept = self._history.get(queue, [])
            doomed = 0
            if seconds is not None:
                cutoff = self.clock() - seconds
                doomed = sum(1 for r in kept if r.finished_at < cutoff)
            if seconds is None and count is None:
                doomed = len(kept)
            if count is not None:
                doomed = max(doomed, len(kept) - count)
            doomed = min(doomed, PRUNE_BATCH)
            del kept[:doomed]
            return doomed

    def history_queues(self) -> list[str]:
        with self._lock:
            return sorted(self._retention)
