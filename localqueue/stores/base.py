"""The queue store contract.

A store keeps messages for any number of named queues and moves *bytes and timestamps*:
values and errors arrive already encoded as JSON bytes (``localqueue.codec``) and leave
the same way. Lifecycle rules live here, in the docstrings, so that every backend
(SQLite, Memory, LMDB, PostgreSQL) can be checked against one contract test suite
(``tests/stores/test_contract.py``).

Rows
----
Every method that returns a message returns a :data:`Row`, a named tuple of
:data:`ROW_FIELDS`. ``state`` in a row is the *effective* state at the store's clock:

* ``"ready"``: leasable now (``available_at <= now``), including an inflight message
  whose lease has expired;
* ``"delayed"``: waiting for ``available_at``;
* ``"inflight"``: under a live lease;
* ``"dead"``: a dead letter.

Stores that keep a state code on disk (SQLite, LMDB) use :data:`WAITING`,
:data:`INFLIGHT` and :data:`DEAD`, and :func:`effective_state` turns one into the above.

Time
----
The store reads its own clock (:attr:`QueueStore.clock`, ``time.time`` by default; a
server's ``now()`` for PostgreSQL) and callers pass *durations* (delays, lease
timeouts), never absolute times, so hosts with skewed clocks agree.

Keys and priorities
-------------------
A message may carry a deduplication ``key`` (given at enqueue, never changed). A key is
*held* while a message with that key is **ready, delayed or inflight** (stored state
waiting or leased, an expired lease included) in that queue, and by at most one such
message; it is free again once that message is acked, dead-lettered, deleted or purged.
A dead letter keeps its key for inspection but holds nothing: requeueing it raises
:class:`~localqueue.errors.KeyHeldError` while another message holds the key. Every
store enforces this inside the enqueue's own transaction (a unique index, or the LMDB
key sub-database written in the same write transaction), so racing producers cannot
both enqueue one key and a crash cannot leave a key held without its message.

A message's ``priority`` is an integer (0 by default, and for every message of a store
migrated from before priorities existed); it is kept across leases and releases.

Leasing and fencing
-------------------
``lease`` hands out, among the visible messages, one of the highest ``priority``; among
those, the one with the smallest visibility time (``available_at`` for a ready message,
``lease_expires_at`` for an expired lease), ties broken by enqueue order. It
increments ``attempts`` and gives it a brand-new ``lease_token``. ``ack``,
``release``, ``dead_letter`` and ``extend_lease`` take the token the caller holds: when
it is not the message's current token (the message was leased again, or already
acked/released/dead-lettered) they raise :class:`~localqueue.errors.LeaseLostError` and
change nothing. A ``None`` token skips fencing (the CLI without ``--lease-token``) but
the message must still be inflight.

Queue settings
--------------
Each queue has :class:`~localqueue.message.QueueSettings`, kept in the store (so every
worker on every host obeys the same ones, across restarts) and read by every lease
inside its own statement or transaction. A **paused** queue leases nothing to anyone:
:meth:`QueueStore.lease` returns None and the batch methods lease nothing (their
settlements still apply); ``put`` and everything else work as usual. A queue never
given settings has the defaults and costs the lease nothing more.

Its **limits** (:meth:`QueueStore.set_limits`) hold leases back the same way, counted
by the store at each lease, in the lease's own statement or transaction, over every
worker and ``pop`` of every host:

* ``max_inflight`` N: a lease is handed out only while fewer than N messages of the
  queue are under a *live* lease (an expired lease holds nothing: a killed worker's
  messages free their slots when their lease ends);
* ``rate`` N per ``rate_period`` P seconds: leases start at most one each P / N
  seconds (the store keeps when the next may start, :func:`localqueue.limits.next_due`;
  a released message's next lease is a new start), so no window of P seconds holds more
  than N starts, and starts are spread over the period rather than bunched at its start;
* ``per_group`` N: a message of group G is handed out only while fewer than N messages
  of G are under a live lease; a message without a group is not limited by it, and a
  ready message of a group that is not full is handed out past the held ones (in lease
  order otherwise). A delayed or released message holds nothing of its group.

A message's ``group`` is given at enqueue (None: none) and never changes, except by a
``"replace"`` put, which gives the waiting holder the new value's group too.
:meth:`QueueStore.held_back` says which setting holds ready messages back, and how many.

Batches
-------
A worker with N jobs in flight settles finished messages and leases new ones together:
:meth:`QueueStore.settle_many` applies any number of settlements (ack, release,
dead-letter, each optionally with values to put on another queue) and leases up to N
messages in ONE transaction, so one commit (one fsync, one round trip) covers them all;
:meth:`QueueStore.extend_leases` is the heartbeat of all held leases in one call. A
settlement whose lease was lost changes nothing and does not stop the others.

History
-------
A queue may keep a history of its finished messages: :meth:`QueueStore.keep` sets its
retention (a duration, a count, both, or neither: off, the default). While it is on,
every message of the queue that is acked or dead-lettered leaves ONE
:data:`~localqueue.history.HistoryRow` written in the same transaction as its
settlement (so a crash before the commit leaves the message held, and its redelivery's
settlement writes the one record), and every release with an error also appends that
error to the message's kept errors, so the record holds every attempt's error. Records
past the retention are deleted in batches of at most
:data:`~localqueue.history.PRUNE_BATCH` by the settling workers (and by
:meth:`QueueStore.prune_history`): the history grows past its bound by at most a batch
or so per worker. A store that keeps no history says so from :meth:`keep`.

Processes
---------
A store object may be used by threads, and a process may fork while it is open. The fork
rule (:mod:`localqueue.backends.process`, where every backend's per-process resources
are registered): a child never uses, and never closes, the files, environments and
connections its parent opened; it opens its own on first use, so a store object
inherited across ``fork()`` just works in the child and leaves the parent undisturbed.

Schemas
-------
Each persistent store versions its schema and migrates an older store in place, one
versioned step at a time (SQLite ``PRAGMA user_version``, LMDB ``meta`` ``version``,
PostgreSQL ``meta`` ``queue_version``); ``docs/schema.md`` lists the steps, the plan for
the ones to come, and what each store keeps.

Errors
------
Every write is all or nothing. A store raises :class:`~localqueue.errors.StoreLockedError`
when another process keeps it locked past the busy timeout and
:class:`~localqueue.errors.StoreError` when it cannot be used at all.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from localqueue.errors import KeyHeldError, LeaseLostError, MessageNotFoundError
from localqueue.message import FIELDS, QueueSettings, QueueStats, Row

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Literal, TypeAlias

    from localqueue.backends import StoreAddress
    from localqueue.history import HistoryRow
    from localqueue.outcome import Settlement

    OnConflict: TypeAlias = Literal["skip", "error", "replace"]

__all__ = [
    "DEAD",
    "INFLIGHT",
    "ON_CONFLICT",
    "PEEK_STATES",
    "ROW_FIELDS",
    "WAITING",
    "OnConflict",
    "QueueStore",
    "Row",
    "check_groups",
    "check_keyed",
    "effective_state",
    "hold",
    "key_held",
    "merged_limits",
]

#: The effective states :meth:`QueueStore.peek` can select.
PEEK_STATES = ("ready", "delayed", "inflight", "dead")

#: The fields of a :data:`Row`, in order (documented in :mod:`localqueue.message`).
ROW_FIELDS = FIELDS

#: Stored state codes: waiting (ready or delayed), leased (live or expired), dead.
WAITING, INFLIGHT, DEAD = 0, 1, 2


#: What a keyed put does with a value whose key is held (:meth:`QueueStore.put_keyed`).
ON_CONFLICT = ("skip", "error", "replace")


def check_keyed(values: Sequence[bytes], keys: Sequence[str | None], on_conflict: str) -> None:
    """The argument checks every store's :meth:`QueueStore.put_keyed` starts with."""
    if on_conflict not in ON_CONFLICT:
        raise ValueError(
            f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}"
        )
    if len(keys) != len(values):
        raise ValueError(f"{len(keys)} keys for {len(values)} values: give one key per value")


def check_groups(values: Sequence[bytes], groups: Sequence[str | None] | None) -> None:
    """The check of ``groups`` every store's ``put`` and ``put_keyed`` make."""
    if groups is not None and len(groups) != len(values):
        raise ValueError(f"{len(groups)} groups for {len(values)} values: give one group per value")


def merged_limits(
    settings: QueueSettings, limits: Mapping[str, int | float | None]
) -> QueueSettings:
    """``settings`` with ``limits`` set (see :meth:`QueueStore.set_limits`): what every
    store writes; ValueError for a limit that is not one, changing nothing."""
    unknown = set(limits) - {"max_inflight", "rate", "rate_period", "per_group"}
    if unknown:
        raise ValueError(f"unknown limits: {', '.join(sorted(unknown))}")
    for name in ("max_inflight", "rate", "per_group"):
        value = limits.get(name)
        if value is not None and (type(value) is not int or value < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    if ("rate" in limits) != ("rate_period" in limits):
        raise ValueError("rate and rate_period are set together")
    period = limits.get("rate_period")
    if (limits.get("rate") is None) != (period is None):
        raise ValueError("a rate needs its period, and only a rate has one")
    if period is not None and not (isinstance(period, int | float) and 0 < period < 1e9):
        raise ValueError(f"rate_period must be a positive number of seconds, got {period!r}")
    if period is not None:
        limits = {**limits, "rate_period": float(period)}
    return settings._replace(**limits)


def hold(
    settings: QueueSettings, *, ready: int, inflight: int, rate_full: bool, in_full_groups: int
) -> tuple[str | None, int]:
    """:meth:`QueueStore.held_back` from a store's counts at one instant: ``ready``
    messages, ``inflight`` under a live lease, whether the rate lets no lease start now
    (``rate_full``: its window is full, or its pacing says wait), ``in_full_groups``
    ready messages whose group is full."""
    if not ready:
        return None, 0
    if settings.paused:
        return "paused", ready
    if settings.max_inflight is not None and inflight >= settings.max_inflight:
        return "max_inflight", ready
    if settings.rate is not None and rate_full:
        return "rate", ready
    if settings.per_group is not None and in_full_groups:
        return "per_group", in_full_groups
    return None, 0


def key_held(queue: str, key: str | None, holder: str | None) -> KeyHeldError:
    """The error of a put (``on_conflict="error"``) or a requeue that met a held key."""
    if holder is None:
        text = f"two dead letters of queue {queue!r} have the key {key!r}"
    else:
        text = f"key {key!r} of queue {queue!r} is held by message {holder}"
    return KeyHeldError(text, key or "", holder)


def effective_state(stored: int, visible_at: float, now: float) -> str:
    """The effective state (see module doc) of a message stored as ``stored`` that
    ``lease`` may hand out from ``visible_at`` (its ``available_at``, or its
    ``lease_expires_at`` while inflight)."""
    if stored == DEAD:
        return "dead"
    if visible_at <= now:
        return "ready"
    return "inflight" if stored == INFLIGHT else "delayed"


class QueueStore(ABC):
    """What every queue backend provides. Thread-safe within a process; the persistent
    ones are safe across processes on one host (PostgreSQL: across hosts)."""

    #: Seconds since the epoch, as this store sees them.
    clock: Callable[[], float] = staticmethod(time.time)

    @property
    def address(self) -> StoreAddress | None:
        """The address that opens this store again (``stores.open_store``), from which
        its workers' attempt store is derived (``StoreAddress.attempts``); None for a
        store that has none (in memory)."""
        return None

    # -- writing ---------------------------------------------------------------------

    @abstractmethod
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
        """Append ``values`` to ``queue`` in ONE transaction and return their rows, in order.

        Each message gets a new unique id (never reused, even after it is acked),
        ``attempts`` 0, ``enqueued_at`` now, ``available_at`` now + ``delay`` (state
        ``delayed`` when ``delay`` > 0), ``priority``, no key, and its group from
        ``groups`` (one per value; None: no groups). With ``maxsize`` > 0,
        raises ``queue.Full`` and writes nothing when pending messages (ready + delayed)
        plus ``len(values)`` would exceed it. An empty ``values`` writes nothing and
        returns ``[]``.
        """

    @abstractmethod
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
        """:meth:`put` of ``values`` with one deduplication key each (None: no key), in
        ONE transaction, taken in order (so a key given twice meets its own first
        message). Returns one row per value and whether each is a *duplicate*: a value
        that was not written because its key is held (see the module doc), its row
        being the message holding the key. For a held key, ``on_conflict``:

        * ``"skip"``: write nothing for that value; its row is the holder's;
        * ``"error"``: raise :class:`~localqueue.errors.KeyHeldError` naming the key and
          write nothing of the whole call;
        * ``"replace"``: a holder that waits (ready or delayed) keeps its id, attempts
          and enqueue time and takes the new value, ``priority`` and ``available_at``
          (not a duplicate); a leased holder is left as it is (a duplicate).

        ``maxsize`` counts every value, duplicates included. ValueError when ``keys`` (or
        ``groups``) and ``values`` differ in length or ``on_conflict`` is none of
        :data:`ON_CONFLICT`.
        """

    @abstractmethod
    def lease(self, queue: str, *, lease_timeout: float, leased_by: str | None) -> Row | None:
        """Lease the next visible message (see module doc) and return its row, now
        ``inflight`` with ``attempts`` + 1, ``leased_at`` now, ``lease_expires_at`` now +
        ``lease_timeout``, ``leased_by`` and a fresh ``lease_token``. Returns None when no
        message is visible (the queue is empty, or everything is delayed or leased)."""

    @abstractmethod
    def ack(self, queue: str, message_id: str, lease_token: str | None) -> None:
        """Delete an inflight message for good. Raises MessageNotFoundError when no
        such message exists (with ``lease_token`` None) and LeaseLostError when the token
        is stale or the message is not inflight."""

    @abstractmethod
    def release(
        self,
        queue: str,
        message_id: str,
        lease_token: str | None,
        *,
        delay: float = 0.0,
        error: bytes | None = None,
    ) -> Row:
        """Return an inflight message to the queue, visible after ``delay`` seconds, the
        lease cleared. With ``error``, ``last_error`` is set to it and ``failed_at`` to
        now. Fencing and errors as :meth:`ack`."""

    def settle_many(
        self,
        queue: str,
        settlements: Sequence[Settlement],
        *,
        lease: int = 0,
        lease_timeout: float = 30.0,
        leased_by: str | None = None,
    ) -> tuple[list[bool], list[Row]]:
        """Apply ``settlements`` (messages of ``queue`` the caller holds), then lease up
        to ``lease`` messages as :meth:`lease` does, all in ONE transaction where the
        store can. Returns whether each settlement was applied (False: its lease was
        lost or the message is gone, and nothing changed for it) and the leased rows in
        lease order (fewer than ``lease`` when fewer are visible).

        The default performs the steps one by one (not atomic); every store of this
        package overrides it with one transaction.
        """
        applied: list[bool] = []
        for s in settlements:
            try:
                if s.action == "acked":
                    self.ack(queue, s.message_id, s.lease_token)
                elif s.action == "released":
                    self.release(queue, s.message_id, s.lease_token, delay=s.delay, error=s.error)
                elif s.action == "dead":
                    self.dead_letter(queue, s.message_id, s.lease_token, error=s.error)
                else:
                    raise ValueError(f"unknown settle action {s.action!r}")
            except (LeaseLostError, MessageNotFoundError):
                applied.append(False)
                continue
            if s.then_put:
                self.put(s.to or queue, s.then_put)
            applied.append(True)
        if not lease:
            return applied, []
        return applied, self.lease_many(
            queue, lease, lease_timeout=lease_timeout, leased_by=leased_by
        )

    def lease_many(
        self, queue: str, n: int, *, lease_timeout: float, leased_by: str | None
    ) -> list[Row]:
        """Lease up to ``n`` messages in one transaction where the store can, in the
        order :meth:`lease` would hand them out; ``[]`` when none is visible (or n is 0).
        The default calls :meth:`lease` until it finds nothing."""
        rows: list[Row] = []
        while len(rows) < n:
            row = self.lease(queue, lease_timeout=lease_timeout, leased_by=leased_by)
            if row is None:
                break
            rows.append(row)
        return rows

    def extend_leases(
        self,
        queue: str,
        leases: Sequence[tuple[str, str | None]],
        seconds: float,
        *,
        wait: float | None = None,
    ) -> list[float | None]:
        """:meth:`extend_lease` for many ``(message_id, lease_token)`` pairs at once (a
        heartbeat of every held message), in one transaction where the store can.
        Returns each message's new ``lease_expires_at``, or None where the lease was
        lost (that message is left alone; the others are extended). ``wait``: wait at
        most this many seconds for another process's lock (StoreLockedError after),
        where it is shorter than the store's busy timeout (SQLite, PostgreSQL; an LMDB
        writer holds its lock only for one short transaction)."""
        expires: list[float | None] = []
        for message_id, token in leases:
            try:
                row = self.extend_lease(queue, message_id, token, seconds)
            except (LeaseLostError, MessageNotFoundError):
                expires.append(None)
            else:
                expires.append(row.lease_expires_at)
        return expires

    def raise_not_held(self, queue: str, message_id: str, lease_token: str | None) -> None:
        """The error :meth:`ack` gives for a settlement that was not applied."""
        if lease_token is None and self.get(queue, message_id) is None:
            raise MessageNotFoundError(f"no message {message_id!r} in queue {queue!r}")
        raise LeaseLostError(f"message {message_id!r} of queue {queue!r} is not held")

    @abstractmethod
    def dead_letter(
        self, queue: str, message_id: str, lease_token: str | None, *, error: bytes | None = None
    ) -> Row:
        """Move an inflight message to the dead letters (``dead_at`` now, lease cleared,
        ``last_error``/``failed_at`` set when ``error`` is given). Fencing as :meth:`ack`."""

    @abstractmethod
    def extend_lease(
        self, queue: str, message_id: str, lease_token: str | None, seconds: float
    ) -> Row:
        """Set ``lease_expires_at`` to now + ``seconds`` for a message the caller still
        holds. Fencing as :meth:`ack`."""

    @abstractmethod
    def requeue_dead(self, queue: str, message_id: str, *, delay: float = 0.0) -> Row:
        """Make one dead letter deliverable again after ``delay`` (``dead_at`` cleared;
        ``attempts``, ``last_error``, key and priority kept). Raises MessageNotFoundError
        when there is no dead letter with that id, and KeyHeldError (changing nothing)
        when another message holds its key."""

    @abstractmethod
    def requeue_all_dead(self, queue: str, *, delay: float = 0.0) -> int:
        """:meth:`requeue_dead` every dead letter of ``queue`` in one transaction;
        returns how many (0 when there were none). Raises KeyHeldError and requeues
        nothing when that would hold a key twice (a live message holds one of their
        keys, or two of them share one)."""

    @abstractmethod
    def delete(self, queue: str, message_ids: Sequence[str]) -> int:
        """Delete the messages ``message_ids`` of ``queue``, in any state (a lease
        holder's later settle is then lease-lost), in ONE transaction; returns how many
        (repeated ids count once). When any id names no message of ``queue``, raises
        MessageNotFoundError naming those ids and deletes nothing."""

    @abstractmethod
    def purge(self, queue: str, *, dead_only: bool = False) -> int:
        """Delete every message of ``queue`` (only the dead letters with ``dead_only``),
        inflight ones included; returns how many were deleted (0 when none)."""

    # -- reading ---------------------------------------------------------------------

    @abstractmethod
    def get(self, queue: str, message_id: str) -> Row | None:
        """The row of one message in any state, or None when it does not exist
        (never existed, acked, purged, or belongs to another queue)."""

    @abstractmethod
    def peek(self, queue: str, *, state: str | None = None, limit: int | None = None) -> list[Row]:
        """Messages of ``queue`` whose effective state is ``state`` (one of
        :data:`PEEK_STATES`; None: every state), highest ``priority`` first and in
        enqueue order within one priority, at most ``limit``,
        read without leasing or changing them; ``[]`` when none. An unknown ``state``
        is a ValueError."""

    @abstractmethod
    def dead_letters(self, queue: str, limit: int | None = None) -> list[Row]:
        """Dead letters of ``queue``, oldest death first, at most ``limit``; ``[]`` when none."""

    @abstractmethod
    def stats(self, queue: str) -> QueueStats:
        """Counts by effective state. An unknown queue has all zeros."""

    @abstractmethod
    def queues(self) -> dict[str, QueueStats]:
        """Every queue that holds at least one message, by name, sorted by name."""

    def known_queues(self) -> list[str]:
        """Every queue name this store has ever held a message for, sorted: the queues
        of :meth:`queues` and also those whose last message is gone (acked, purged).
        ``[]`` for a store nothing was ever put to. The default knows only the queues
        that hold messages now; every store of this package remembers them all."""
        return list(self.queues())

    @abstractmethod
    def settings(self, queue: str) -> QueueSettings:
        """The settings of ``queue`` (the defaults for a queue never given any)."""

    @abstractmethod
    def set_paused(self, queue: str, paused: bool) -> QueueSettings:
        """Pause (``paused`` True) or resume ``queue`` for every worker, committed before
        returning, keeping its other settings; returns its settings. Resuming wakes the
        waiters of :meth:`wait` where the store notifies them."""

    @abstractmethod
    def set_limits(self, queue: str, limits: Mapping[str, int | float | None]) -> QueueSettings:
        """Set the limits named in ``limits`` (``max_inflight``, ``rate`` with
        ``rate_period``, ``per_group``; None lifts one) for every worker, keeping the
        queue's other settings, committed before returning; returns its settings. Each
        limit is a positive int (``rate_period`` a positive number of seconds, given
        with ``rate`` and only with it); anything else is a ValueError and changes
        nothing."""

    @abstractmethod
    def held_back(self, queue: str) -> tuple[str | None, int]:
        """Why ready messages of ``queue`` are not handed out now, and how many: the
        first of ``"paused"``, ``"max_inflight"``, ``"rate"`` (every ready message) and
        ``"per_group"`` (the ready messages of full groups) that holds any back, or
        ``(None, 0)`` when nothing does (no ready message, or no setting in the way)."""

    @abstractmethod
    def next_visible_in(self, queue: str) -> float | None:
        """Seconds until :meth:`lease` could next succeed: 0.0 when a message is visible
        now, the wait for the earliest delayed message or expiring lease otherwise, and
        None when the queue holds nothing but dead letters (or nothing at all), or is
        paused (a waiting consumer then polls at its slowest, or waits for the
        notification of a resume). While ready messages are held back by ``rate``: the
        wait until the next lease may start; by ``max_inflight`` or
        ``per_group``: the wait until the earliest live lease of the queue expires (a
        settle frees a slot sooner: callers poll at most so long)."""

    # -- history (see module doc) ----------------------------------------------------

    def keep(self, queue: str, *, seconds: float | None, count: int | None) -> None:
        """Set ``queue``'s retention: keep a finished message's record for ``seconds``
        after it finished and/or only the newest ``count`` records (both None: keep
        none, today's records are pruned away). Every worker reads it when it settles.
        StoreError for a store that keeps no history."""
        from localqueue.errors import StoreError

        raise StoreError(f"{type(self).__name__} keeps no history of finished messages")

    def retention(self, queue: str) -> tuple[float | None, int | None]:
        """``queue``'s retention as :meth:`keep` set it: ``(None, None)`` when off."""
        return None, None

    def history(
        self,
        queue: str,
        *,
        status: str | None = None,
        since: float | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[HistoryRow]:
        """``queue``'s kept records, newest finish first, at most ``limit``: only those of
        ``status`` (``"acked"`` or ``"dead"``), finished at or after ``since`` (seconds
        since the epoch), of ``key``, when given. ``[]`` when none."""
        return []

    def history_record(self, queue: str, message_id: str) -> HistoryRow | None:
        """The kept record of message ``message_id`` of ``queue``, or None."""
        return None

    def prune_history(self, queue: str) -> int:
        """Delete one batch (at most ``PRUNE_BATCH``) of ``queue``'s records past its
        retention, in one short transaction; returns how many (0: nothing is past it)."""
        return 0

    def history_queues(self) -> list[str]:
        """The queues that may hold history records to prune (any with a settings row on
        SQLite and PostgreSQL: a retention on, turned off, or only a pause), sorted."""
        return []

    # -- waiting and lifetime --------------------------------------------------------

    def wait(self, queue: str, timeout: float) -> None:
        """Block for up to ``timeout`` seconds or until something may have been put to
        ``queue``, whichever is first. Spurious wake-ups are fine; the default just
        sleeps (backends with notifications override it)."""
        if timeout > 0:
            time.sleep(timeout)

    def close(self) -> None:  # noqa: B027 - optional hook, stores without resources skip it
        """Release connections and file handles. Further use may reopen them."""

    def __enter__(self) -> QueueStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
