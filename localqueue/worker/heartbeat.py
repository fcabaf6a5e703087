"""One heartbeat for every lease a worker holds.

A worker running N handlers holds N leases (and, briefly, those of finished deliveries
waiting for their commit). One thread keeps them all alive: every third of the lease
timeout it extends, in one store call (one transaction), every held lease that is due,
so N jobs cost one commit per beat rather than N.

Leases are held per delivery (message id and lease token, see
:mod:`localqueue.worker.delivery`): a lease found lost (it expired and the message was
leased again, by another worker or by this one) is reported once through ``on_lost`` and
is no longer extended, and nothing about it touches a later delivery of the message.

An extension never waits on a busy store for longer than the earliest lease it extends
has left: a stuck beat cannot outlive the lease it was meant to keep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from localqueue._signals import start_quietly
from localqueue.errors import LocalQueueError
from localqueue.message import QueueMessage
from localqueue.queue import PersistentQueue
from localqueue.worker.delivery import DeliveryKey, key_of

__all__ = ["MIN_LEASE", "Heartbeat"]

MIN_LEASE = 1.0  # seconds: below this a beat (a third of it) races its own commit
_RETRY_BUSY = 0.5  # seconds before a beat that met a busy store is tried again
_MIN_WAIT = 0.05  # the least a beat waits on a busy store


class Heartbeat:
    """Extends held leases to ``lease_timeout`` from one thread (started on first use)."""

    def __init__(
        self,
        queue: PersistentQueue,
        lease_timeout: float,
        on_lost: Callable[[QueueMessage], object] | None = None,
    ) -> None:
        self.queue = queue
        self.lease_timeout = lease_timeout
        self.interval = max(lease_timeout / 3, 0.05)
        self.on_lost = on_lost
        self._cond = threading.Condition()
        self._held: dict[DeliveryKey, tuple[QueueMessage, float]] = {}  # -> (message, due)
        self._lost: set[DeliveryKey] = set()
        self._thread: threading.Thread | None = None
        self._generation = 0  # a thread whose generation is past stops
        self._wakes_at = float("inf")  # when the thread looks next (inf: when told)

    def hold(self, message: QueueMessage) -> None:
        """Keep ``message``'s lease (this delivery of it) alive until :meth:`drop`. Its
        first beat is due one interval from now, or at once when the queue leased it for
        a different time."""
        now = time.monotonic()
        due = now if self.lease_timeout != self.queue.lease_timeout else now + self.interval
        key = key_of(message)
        with self._cond:
            self._held[key] = (message, due)
            self._lost.discard(key)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(self._generation,), name="localqueue-heartbeat",
                    daemon=True,
                )  # fmt: skip
                start_quietly(self._thread)
            elif due < self._wakes_at:
                # The thread sleeps on an empty table (it was idle), or until a later
                # beat: wake it for this one. (Otherwise it is left alone: a job a
                # millisecond long costs no thread switch.)
                self._cond.notify()

    def drop(self, message: QueueMessage) -> bool:
        """Stop extending this delivery's lease; True when it was still held (not lost)."""
        key = key_of(message)
        with self._cond:
            self._held.pop(key, None)
            lost = key in self._lost
            self._lost.discard(key)
            return not lost

    def is_lost(self, message: QueueMessage) -> bool:
        with self._cond:
            return key_of(message) in self._lost

    def close(self) -> None:
        """Stop the thread and wait for it (a later :meth:`hold` starts a new one). A
        beat in progress ends within the lease it extends, so the wait is bounded."""
        with self._cond:
            self._generation += 1
            self._held.clear()
            self._lost.clear()
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _due(self, generation: int) -> list[QueueMessage]:
        """Wait (holding the condition) until a lease is due; then every lease due within
        half an interval, so that neighbours share one store call. [] once closed."""
        while generation == self._generation:
            now = time.monotonic()
            if not self._held:
                self._wakes_at = float("inf")
                self._cond.wait()
                continue
            first = min(due for _, due in self._held.values())
            if first > now:
                self._wakes_at = first
                self._cond.wait(first - now)
                continue
            self._wakes_at = now  # busy: it looks again before it sleeps
            horizon = now + self.interval / 2
            return [message for message, due in self._held.values() if due <= horizon]
        return []

    def _run(self, generation: int) -> None:
        with self._cond:
            while batch := self._due(generation):
                # Wait for a busy store no longer than the earliest of these leases has
                # left (on this host's clock; a skew only shortens or lengthens it).
                left = min((m.lease_expires_at or 0.0) for m in batch) - time.time()
                self._cond.release()
                try:
                    alive: list[bool] | None = self.queue.extend_leases(
                        batch, self.lease_timeout, wait=max(left, _MIN_WAIT)
                    )
                except LocalQueueError:  # a busy store: try again soon
                    alive = None
                finally:
                    self._cond.acquire()
                if generation != self._generation:
                    return
                self._note(batch, alive)

    def _note(self, batch: list[QueueMessage], alive: list[bool] | None) -> None:
        now = time.monotonic()
        lost: list[QueueMessage] = []
        for index, message in enumerate(batch):
            key = key_of(message)
            if key not in self._held:
                continue  # dropped meanwhile
            if alive is None:
                self._held[key] = (message, now + _RETRY_BUSY)
            elif alive[index]:
                self._held[key] = (message, now + self.interval)
            else:
                del self._held[key]
                self._lost.add(key)
                lost.append(message)
        if lost and self.on_lost is not None:
            self._cond.release()
            try:
                for message in lost:
                    self.on_lost(message)
            finally:
                self._cond.acquire()
