"""PersistentQueue: the message lifecycle over any store.

``put`` -> ``get_message`` (lease) -> ``ack`` | ``release`` | ``dead_letter``, with the
``queue.Queue`` vocabulary (``get``/``put_nowait``/``task_done``/``qsize``...) on top.
"""

from __future__ import annotations

import collections
import os
import time

from localqueue import _failpoints, codec, errors
from localqueue.errors import Empty
from localqueue.limits import KEEP, Keep, parse_rate
from localqueue.message import AFTER_VALUE, QueueMessage, QueueSettings, QueueStats

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from datetime import datetime
    from typing import Any, Literal, TypeAlias

    from localqueue.outcome import Outcome, Settlement
    from localqueue.stores.base import OnConflict, QueueStore, Row

    Durability: TypeAlias = Literal["full", "normal"]

__all__ = ["DEFAULT_STORE_PATH", "PersistentQueue"]

DEFAULT_STORE_PATH = "localqueue_queue.sqlite3"

# Blocking waits poll the store (another process may put at any time); the pause grows
# from the first to the last value while nothing arrives.
_POLL_MIN, _POLL_MAX = 0.002, 0.1


def _non_negative(name: str, seconds: float | None) -> None:
    if seconds is not None and seconds < 0:
        raise ValueError(f"{name} must be >= 0, got {seconds!r}")


def message_from_row(row: Row) -> QueueMessage:
    """The QueueMessage of a store row, its value and last error decoded."""
    message = QueueMessage(*row)
    message.value = codec.decode(row.value)
    if row.last_error is not None:
        message.last_error = codec.decode(row.last_error)
    return message


def _messages_holding(rows: Sequence[Row], values: Sequence[Any]) -> list[QueueMessage]:
    """The messages of rows just written from ``values``: the caller's own values, not
    decoded copies of what was just encoded (one comprehension: this is most of what
    put_many spends outside SQLite, bench put_many)."""
    return [
        QueueMessage(row.id, row.queue, value, *row[AFTER_VALUE])
        for row, value in zip(rows, values, strict=True)
    ]


def _keyed_messages(
    rows: Sequence[Row], duplicates: Sequence[bool], values: Sequence[Any]
) -> list[QueueMessage]:
    """The messages of a keyed put: a written one holds the caller's value; a duplicate
    is the message holding the key, as stored, marked ``duplicate``."""
    messages = []
    for row, duplicate, value in zip(rows, duplicates, values, strict=True):
        if duplicate:
            message = message_from_row(row)
            message.duplicate = True
        else:
            message = QueueMessage(row.id, row.queue, value, *row[AFTER_VALUE])
        messages.append(message)
    return messages


class _Batch:
    """What one put call enqueues: values (and their JSON), keys and their rule."""

    __slots__ = ("encoded", "groups", "keys", "on_conflict", "priority", "values")

    def __init__(
        self,
        values: list[Any],
        encoded: list[bytes],
        keys: Sequence[str | None] | None,
        on_conflict: OnConflict,
        priority: int,
        groups: Sequence[str | None] | None = None,
    ) -> None:
        self.values, self.encoded, self.priority = values, encoded, priority
        self.keys, self.on_conflict, self.groups = keys, on_conflict, groups


_PRIORITY_RANGE = range(-(2**63), 2**63)  # what every store keeps exactly


def _check_enqueue(
    priority: int,
    keys: Sequence[str | None] | None,
    groups: Sequence[str | None] | None = None,
) -> None:
    """TypeError or ValueError for a priority that is not a 64-bit integer, or a key or
    group that is not a string (None: none)."""
    if type(priority) is not int:  # bool too: True is no priority
        raise TypeError(f"priority must be an int, got {priority!r}")
    if priority not in _PRIORITY_RANGE:
        raise ValueError(f"priority must fit in 64 bits (signed), got {priority}")
    for what, names in (("key", keys), ("group", groups)):
        for name in names or ():
            if name is not None and type(name) is not str:
                raise TypeError(f"a {what} must be a str (or None), got {name!r}")


def _delay_until(delay: float, at: datetime | None, clock: Callable[[], float]) -> float:
    """The delay of a put: ``delay`` seconds, or until ``at`` (aware; a past time: 0) by
    the store's ``clock``, the one its messages' times are kept on."""
    _non_negative("delay", delay)
    if at is None:
        return delay
    if delay:
        raise ValueError("give delay or at, not both")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at must be a timezone-aware datetime, got the naive {at!r}")
    return max(0.0, at.timestamp() - clock())


def settle_while_leased(
    message: QueueMessage,
    settle: Callable[[], object],
    on_busy: Callable[[float, BaseException], object] | None = None,
) -> None:
    """Run ``settle`` (an ack, release or dead-letter of ``message``); while the store
    fails (another process holds its lock past the busy timeout, a dropped connection, a
    transient I/O error), try again with backoff until the lease ends rather than drop a
    finished handler's outcome (after that, the last error: the message will be
    delivered again anyway). ``on_busy(seconds_left, error)`` is told of each retry. A
    store whose file was replaced is not retried.

    The lease's end is read on the store's clock (a PostgreSQL server's) and compared with
    this host's: a skew between the two only makes the retries stop that much earlier or
    later. Neither loses or doubles an outcome: a settlement after the lease has ended is
    refused by the store, and the message is delivered again."""
    pause = 0.05
    while True:
        try:
            settle()
            return
        except errors.StoreReplacedError:
            raise
        except (errors.StoreLockedError, errors.StoreError) as exc:
            left = (message.lease_expires_at or 0.0) - time.time()
            if left <= 0:
                raise
            if on_busy is not None:
                on_busy(left, exc)
            time.sleep(min(pause, left))
            pause = min(pause * 2, 1.0)


def _encode_error(error: BaseException | dict[str, Any] | str | None) -> bytes | None:
    described = codec.error_to_dict(error)
    return None if described is None else codec.encode(described)


class PersistentQueue:
    """A durable named queue with at-least-once delivery.

    ``store_path`` names the store (a SQLite file by default, ``./localqueue_queue.sqlite3``
    when neither it nor ``store`` is given; ``postgresql://...`` and ``lmdb://...`` select
    those backends). ``durability`` applies to a SQLite store this queue opens: ``"full"``
    fsyncs every commit, ``"normal"`` trades the last commits before a power loss (never
    a process crash) for speed.
    """

    def __init__(
        self,
        name: str,
        store_path: str | os.PathLike[str] | None = None,
        *,
        store: QueueStore | None = None,
        lease_timeout: float = 30.0,
        maxsize: int = 0,
        durability: Durability = "full",
    ) -> None:
        self.name = codec.validate_queue_name(name)
        if lease_timeout <= 0:
            raise ValueError(f"lease_timeout must be > 0, got {lease_timeout!r}")
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize!r}")
        if store is not None and store_path is not None:
            raise ValueError("pass either store_path or store, not both")
        if store is None:
            from localqueue.stores import open_store

            store = open_store(
                DEFAULT_STORE_PATH if store_path is None else store_path, durability=durability
            )
        self.store = store
        self.lease_timeout = float(lease_timeout)
        self.maxsize = maxsize
        self._unfinished: collections.deque[QueueMessage] = collections.deque()

    def __repr__(self) -> str:
        return f"PersistentQueue({self.name!r}, store={self.store!r})"

    # -- producing -------------------------------------------------------------------

    def put(
        self,
        value: Any,
        block: bool = True,
        timeout: float | None = None,
        *,
        delay: float = 0,
        at: datetime | None = None,
        key: str | None = None,
        on_conflict: OnConflict = "skip",
        priority: int = 0,
        group: str | None = None,
    ) -> QueueMessage:
        """Persist ``value`` (committed before this returns) and return its message.

        ``at`` (a timezone-aware datetime, instead of ``delay``) delivers it no sooner
        than then; a time past is now. ``priority``: higher is leased first. ``group``:
        the group that the queue's ``per_group`` limit counts it in. With a
        ``key`` that another message of the queue holds (see :meth:`put_many`), the
        message returned holds that key and has ``duplicate`` set. With ``maxsize`` and
        a full queue, waits for room like ``queue.Queue.put`` (``block=False`` or an
        elapsed ``timeout`` raises ``queue.Full``).
        """
        _non_negative("timeout", timeout)
        if at is None:  # the common case, kept lean
            _non_negative("delay", delay)
        else:
            delay = _delay_until(delay, at, self.store.clock)
        groups = None if group is None else [group]
        if priority or key is not None or groups:
            _check_enqueue(priority, None if key is None else [key], groups)
        data = codec.encode(value)
        if self.maxsize <= 0 and key is None and groups is None:  # the common case, kept lean
            row = self.store.put(self.name, [data], delay=delay, priority=priority)[0]
            # _messages_holding inline: its list and zip were 600 ns of a 24 us put
            return QueueMessage(row.id, row.queue, value, *row[AFTER_VALUE])
        if self.maxsize <= 0 and groups is None:  # a keyed put, as lean
            rows, duplicates = self.store.put_keyed(
                self.name, [data], [key], on_conflict=on_conflict, delay=delay, priority=priority
            )
            return _keyed_messages(rows, duplicates, [value])[0]
        keys = None if key is None else [key]
        batch = _Batch([value], [data], keys, on_conflict, priority, groups)
        return self._put_rows(batch, delay, block, timeout)[0]

    def put_nowait(self, value: Any, *, delay: float = 0) -> QueueMessage:
        return self.put(value, block=False, delay=delay)

    def put_many(
        self,
        values: Iterable[Any],
        *,
        delay: float = 0,
        at: datetime | None = None,
        keys: Sequence[str | None] | None = None,
        on_conflict: OnConflict = "skip",
        priority: int = 0,
        groups: Sequence[str | None] | None = None,
    ) -> list[QueueMessage]:
        """Persist every value in ONE transaction: all of them or, on any bad value or
        error, none. Values are checked before anything is written. ``groups``: one
        group per value (None: none), as :meth:`put`'s ``group``.

        ``keys`` (one per value; None for no key) deduplicates: a key is held while a
        message with it is ready, delayed or inflight. For a value whose key is held,
        ``on_conflict`` ``"skip"`` writes nothing and returns the holder marked
        ``duplicate``; ``"error"`` raises KeyHeldError and writes nothing of the call;
        ``"replace"`` gives a waiting holder this value, priority and availability
        (keeping its id), and leaves a leased one as it is (returned as a duplicate).
        A key given twice in one call meets its own first message."""
        delay = _delay_until(delay, at, self.store.clock)
        _check_enqueue(priority, keys, groups)
        values = list(values)
        encoded = codec.encode_batch(values)
        if not encoded:
            return []
        batch = _Batch(values, encoded, keys, on_conflict, priority, groups)
        return self._put_rows(batch, delay, block=False, timeout=None)

    def put_encoded(
        self,
        data: Sequence[bytes],
        *,
        delay: float = 0,
        at: datetime | None = None,
        priority: int = 0,
        keys: Sequence[str | None] | None = None,
        on_conflict: OnConflict = "skip",
        groups: Sequence[str | None] | None = None,
    ) -> tuple[list[Row], list[bool]]:
        """Persist values given as their JSON, as :func:`localqueue.codec.encode` wrote
        them, in ONE transaction; return the store's rows (values still JSON) and which
        are duplicates (as :meth:`put_many`). For a producer that holds JSON already and
        prints what it stored without decoding it (``localqueue queue add``). With
        ``maxsize`` and no room, raises ``queue.Full`` at once and writes nothing."""
        if at is not None:
            delay = _delay_until(delay, at, self.store.clock)
        _non_negative("delay", delay)
        _check_enqueue(priority, keys, groups)
        if keys is None:
            rows = self.store.put(
                self.name,
                data,
                delay=delay,
                maxsize=self.maxsize,
                priority=priority,
                groups=groups,
            )
            return rows, [False] * len(rows)
        return self.store.put_keyed(
            self.name,
            data,
            keys,
            on_conflict=on_conflict,
            delay=delay,
            maxsize=self.maxsize,
            priority=priority,
            groups=groups,
        )

    def _put_rows(
        self, batch: _Batch, delay: float, block: bool, timeout: float | None
    ) -> list[QueueMessage]:
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _POLL_MIN
        while True:
            try:
                rows, duplicates = self.put_encoded(
                    batch.encoded,
                    delay=delay,
                    priority=batch.priority,
                    keys=batch.keys,
                    on_conflict=batch.on_conflict,
                    groups=batch.groups,
                )
            except errors.Full:  # looked up only when something is raised
                if not block or (deadline is not None and time.monotonic() >= deadline):
                    raise
                time.sleep(pause)
                pause = min(pause * 2, _POLL_MAX)
                continue
            if batch.keys is None:
                return _messages_holding(rows, batch.values)
            return _keyed_messages(rows, duplicates, batch.values)

    # -- consuming -------------------------------------------------------------------

    def get_message(
        self, block: bool = True, timeout: float | None = None, *, leased_by: str | None = None
    ) -> QueueMessage:
        """Lease the next available message (expired leases are reclaimed first).

        Raises ``queue.Empty`` when nothing is available and ``block`` is false, or when
        ``timeout`` seconds pass without a message.
        """
        _non_negative("timeout", timeout)
        store, name = self.store, self.name
        row = store.lease(name, lease_timeout=self.lease_timeout, leased_by=leased_by)
        if row is not None:
            return message_from_row(row)
        if not block:
            raise Empty
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _POLL_MIN
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise Empty
            due = store.next_visible_in(name)
            # At least _POLL_MIN: "visible now" right after a failed lease means another
            # consumer holds it for a moment (a row lock), and spinning would not help.
            nap = pause if due is None else min(max(due, _POLL_MIN), pause)
            if remaining is not None:
                nap = min(nap, remaining)
            store.wait(name, nap)
            pause = min(pause * 2, _POLL_MAX)
            row = store.lease(name, lease_timeout=self.lease_timeout, leased_by=leased_by)
            if row is not None:
                return message_from_row(row)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """``queue.Queue.get``: lease a message and return its value; ``task_done`` acks it."""
        message = self.get_message(block, timeout)
        self._unfinished.append(message)
        return message.value

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def task_done(self) -> None:
        """Ack the oldest message returned by :meth:`get` and not yet done."""
        if not self._unfinished:
            raise ValueError("task_done() called more times than get()")
        self.ack(self._unfinished[0])
        self._unfinished.popleft()

    # -- settling a lease -------------------------------------------------------------

    @staticmethod
    def _target(message: QueueMessage | str, lease_token: str | None) -> tuple[str, str | None]:
        if isinstance(message, QueueMessage):
            return message.id, message.lease_token if lease_token is None else lease_token
        return message, lease_token

    def ack(
        self,
        message: QueueMessage | str,
        *,
        lease_token: str | None = None,
        then_put: Iterable[Any] = (),
        to: str | None = None,
    ) -> None:
        """Delete a message the caller holds. Raises LeaseLostError (nothing changed) when
        its lease was lost. Passing an id instead of a message skips fencing unless
        ``lease_token`` is given.

        ``then_put`` values are put on queue ``to`` (this queue when None) in the same
        transaction as the ack: both happen or neither (a stage of a pipeline hands its
        results on without losing them or passing them twice)."""
        message_id, token = self._target(message, lease_token)
        then_put = list(then_put)
        if not then_put:
            self.store.ack(self.name, message_id, token)
            return
        from localqueue.outcome import Outcome

        settlement = self._settlement(Outcome(message_id, "acked", then_put=then_put, to=to))
        settlement = settlement._replace(lease_token=token)
        applied, _ = self.store.settle_many(self.name, [settlement])
        if not applied[0]:
            self.store.raise_not_held(self.name, message_id, token)

    def settle_many(
        self, outcomes: Iterable[Outcome], *, lease: int = 0, leased_by: str | None = None
    ) -> tuple[list[bool], list[QueueMessage]]:
        """Settle held messages and lease up to ``lease`` new ones in one transaction
        (one commit) where the store can: a worker's step with several jobs in flight.
        Returns whether each outcome was applied (False: that lease was lost, nothing
        changed for it; the others are applied) and the newly leased messages."""
        settlements = [self._settlement(outcome) for outcome in outcomes]
        if _failpoints.ACTIVE:
            _failpoints.fail("settle")
        applied, rows = self.store.settle_many(
            self.name,
            settlements,
            lease=lease,
            lease_timeout=self.lease_timeout,
            leased_by=leased_by,
        )
        return applied, [message_from_row(row) for row in rows]

    def _settlement(self, outcome: Outcome) -> Settlement:
        from localqueue.outcome import SETTLE_ACTIONS, Settlement

        status = outcome.status
        if status not in SETTLE_ACTIONS:
            raise ValueError(f"status must be one of {SETTLE_ACTIONS}, got {status!r}")
        _non_negative("delay", outcome.delay)
        message_id, token = self._target(outcome.message, None)
        then_put = tuple(codec.encode_batch(list(outcome.then_put)))
        to = None if outcome.to is None else codec.validate_queue_name(outcome.to)
        error = _encode_error(outcome.error)
        return Settlement(
            message_id,
            token,
            status,
            outcome.delay,
            error,
            then_put,
            to,
            outcome.duration,
            outcome.exit_code,
            outcome.output,  # encoded by the store, only if it writes a history record
        )

    def get_messages(self, n: int, *, leased_by: str | None = None) -> list[QueueMessage]:
        """Lease up to ``n`` available messages at once (one transaction where the store
        can), without waiting: ``[]`` when none is available."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        rows = self.store.lease_many(
            self.name, n, lease_timeout=self.lease_timeout, leased_by=leased_by
        )
        return [message_from_row(row) for row in rows]

    def extend_leases(
        self, messages: Sequence[QueueMessage], seconds: float, *, wait: float | None = None
    ) -> list[bool]:
        """:meth:`extend_lease` for many held messages in one call (a heartbeat); each
        message's ``lease_expires_at`` is updated. Returns which leases are still held
        (False: lost, that message was left alone). ``wait`` bounds the wait for a busy
        store (StoreLockedError after it), so that it cannot outlast the leases."""
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds!r}")
        pairs = [(message.id, message.lease_token) for message in messages]
        if _failpoints.ACTIVE:
            _failpoints.fail("extend")
        expires = self.store.extend_leases(self.name, pairs, seconds, wait=wait)
        for message, expires_at in zip(messages, expires, strict=True):
            if expires_at is not None:
                message.lease_expires_at = expires_at
        return [expires_at is not None for expires_at in expires]

    def release(
        self,
        message: QueueMessage | str,
        delay: float = 0,
        error: BaseException | dict[str, Any] | str | None = None,
        *,
        lease_token: str | None = None,
    ) -> QueueMessage:
        """Give a held message back, deliverable again after ``delay`` seconds, recording
        ``error`` as ``last_error``. Fenced like :meth:`ack`."""
        _non_negative("delay", delay)
        message_id, token = self._target(message, lease_token)
        row = self.store.release(
            self.name, message_id, token, delay=delay, error=_encode_error(error)
        )
        return message_from_row(row)

    def dead_letter(
        self,
        message: QueueMessage | str,
        error: BaseException | dict[str, Any] | str | None = None,
        *,
        lease_token: str | None = None,
    ) -> QueueMessage:
        """Move a held message to the dead letters with ``error`` as ``last_error``."""
        message_id, token = self._target(message, lease_token)
        row = self.store.dead_letter(self.name, message_id, token, error=_encode_error(error))
        return message_from_row(row)

    def extend_lease(
        self, message: QueueMessage | str, seconds: float, *, lease_token: str | None = None
    ) -> QueueMessage:
        """Push a held message's lease to ``seconds`` from now (a heartbeat)."""
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds!r}")
        message_id, token = self._target(message, lease_token)
        row = self.store.extend_lease(self.name, message_id, token, seconds)
        if isinstance(message, QueueMessage):
            message.lease_expires_at = row.lease_expires_at
        return message_from_row(row)

    # -- dead letters and housekeeping -------------------------------------------------

    def requeue_dead(self, message: QueueMessage | str, delay: float = 0) -> QueueMessage:
        """Make a dead letter deliverable again. MessageNotFoundError if it is not dead."""
        _non_negative("delay", delay)
        message_id = message.id if isinstance(message, QueueMessage) else message
        return message_from_row(self.store.requeue_dead(self.name, message_id, delay=delay))

    def requeue_all_dead(self, delay: float = 0) -> int:
        _non_negative("delay", delay)
        return self.store.requeue_all_dead(self.name, delay=delay)

    def inspect(self, message_id: str) -> QueueMessage | None:
        row = self.store.get(self.name, message_id)
        return None if row is None else message_from_row(row)

    # -- history of finished messages ---------------------------------------------------

    def keep(self, duration: float | None = None, count: int | None = None) -> None:
        """Keep a history of this queue's finished (acked or dead-lettered) messages: each
        record for ``duration`` seconds after its finish and/or only the newest ``count``
        records. Neither: off (the default; what was kept is pruned away). Every worker
        of the queue's store follows it from its next settlement."""
        if duration is not None and not duration > 0:
            raise ValueError(f"duration must be > 0, got {duration!r}")
        if count is not None and (isinstance(count, bool) or count < 1):
            raise ValueError(f"count must be >= 1, got {count!r}")
        self.store.keep(self.name, seconds=duration, count=count)

    def retention(self) -> tuple[float | None, int | None]:
        """``(duration, count)`` as :meth:`keep` set them; ``(None, None)``: off."""
        return self.store.retention(self.name)

    def history(
        self,
        *,
        status: str | None = None,
        since: float | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Kept records of finished messages, newest first (see ``keep``): dicts of the
        ``queue history`` shape, only of ``status`` ("acked" or "dead"), finished at or
        after ``since`` (seconds since the epoch), of ``key``, at most ``limit``."""
        from localqueue.history import HISTORY_STATUSES, history_dict

        if status is not None and status not in HISTORY_STATUSES:
            raise ValueError(f"status must be one of {HISTORY_STATUSES}, got {status!r}")
        rows = self.store.history(self.name, status=status, since=since, key=key, limit=limit)
        return [history_dict(row) for row in rows]

    def finished(self, message_id: str) -> dict[str, Any] | None:
        """The kept record of a finished message (``"state": "finished"``), or None."""
        from localqueue.history import history_dict

        row = self.store.history_record(self.name, message_id)
        return None if row is None else history_dict(row)

    def dead_letters(self, limit: int | None = None) -> list[QueueMessage]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit!r}")
        return [message_from_row(row) for row in self.store.dead_letters(self.name, limit)]

    def peek(self, state: str | None = None, limit: int | None = None) -> list[QueueMessage]:
        """Messages in ``state`` (``"ready"``, ``"delayed"``, ``"inflight"``, ``"dead"``;
        None: all), highest priority first and in enqueue order within one priority, at
        most ``limit``, without leasing them."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit!r}")
        rows = self.store.peek(self.name, state=state, limit=limit)
        return [message_from_row(row) for row in rows]

    def delete(self, *message_ids: str) -> int:
        """Delete these messages, in any state, all or none: an id that names no message
        of this queue raises MessageNotFoundError and nothing is deleted. Returns how many."""
        return self.store.delete(self.name, message_ids)

    def purge(self, *, dead_only: bool = False) -> int:
        """Delete every message (only dead letters with ``dead_only``); returns how many."""
        return self.store.purge(self.name, dead_only=dead_only)

    def stats(self) -> QueueStats:
        return self.store.stats(self.name)

    def pause(self) -> QueueSettings:
        """Pause the queue for every worker and ``pop`` that uses its store: nothing is
        leased until :meth:`resume` (running jobs still settle; ``put`` still works).
        Kept in the store; returns the queue's settings."""
        return self.store.set_paused(self.name, True)

    def resume(self) -> QueueSettings:
        """Undo :meth:`pause`: leasing starts again (waiting workers wake where the store
        notifies them). Returns the queue's settings."""
        return self.store.set_paused(self.name, False)

    def settings(self) -> QueueSettings:
        """The queue's settings as the store keeps them (``paused`` and its limits)."""
        return self.store.settings(self.name)

    def set_limits(
        self,
        *,
        max_inflight: int | Keep | None = KEEP,
        rate: str | tuple[int, float] | Keep | None = KEEP,
        per_group: int | Keep | None = KEEP,
    ) -> QueueSettings:
        """Limit the queue for every worker and ``pop`` of its store (see
        :mod:`localqueue.stores.base`, "Queue settings"): at most ``max_inflight``
        messages under a live lease, at most ``rate`` lease starts in any window of its
        period (``"10/s"``, ``"600/m"``, ``"100/h"`` or ``(count, seconds)``), at most
        ``per_group`` messages of one group under a live lease. None lifts a limit; a
        limit not given is kept. Kept in the store; returns the queue's settings."""
        limits: dict[str, int | float | None] = {}
        if not isinstance(max_inflight, Keep):
            limits["max_inflight"] = max_inflight
        if not isinstance(per_group, Keep):
            limits["per_group"] = per_group
        if not isinstance(rate, Keep):
            count, period = (None, None) if rate is None else parse_rate(rate)
            limits.update(rate=count, rate_period=period)
        return self.store.set_limits(self.name, limits)

    def limits(self) -> dict[str, int | float | None]:
        """The queue's limits (:meth:`set_limits`): ``max_inflight``, ``rate`` (with
        ``rate_period``, in seconds) and ``per_group``, None where there is none."""
        settings = self.store.settings(self.name)._asdict()
        return {
            name: settings[name] for name in ("max_inflight", "rate", "rate_period", "per_group")
        }

    def qsize(self) -> int:
        """Messages that could be leased now (``QueueStats.ready``)."""
        return self.store.stats(self.name).ready

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        """True when ``maxsize`` > 0 and pending messages (ready + delayed) reach it."""
        if self.maxsize <= 0:
            return False
        stats = self.store.stats(self.name)
        return stats.ready + stats.delayed >= self.maxsize

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> PersistentQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
