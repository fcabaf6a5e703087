"""One heartbeat for every lease a worker holds.

A worker running N handlers holds N leases. One thread keeps them all alive: every third
of the lease timeout it extends, in one store call (one transaction), every held lease
that is due, so N jobs cost one commit per beat rather than N. A lease found lost (it
expired and another worker has the message) is reported once through ``on_lost`` and is
no longer extended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from localqueue._signals import start_quietly
from localqueue.errors import LocalQueueError
from localqueue.message import QueueMessage
from localqueue.queue import PersistentQueue

__all__ = ["Heartbeat"]

_RETRY_BUSY = 0.5  # seconds before a beat that met a busy store is tried again


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
        self._held: dict[str, tuple[QueueMessage, float]] = {}  # id -> (message, due at)
        self._lost: set[str] = set()
        self._closed = False
        self._thread: threading.Thread | None = None

    def hold(self, message: QueueMessage) -> None:
        """Keep ``message``'s lease alive until :meth:`drop`. Its first beat is due one
        interval from now, or at once when the queue leased it for a different time."""
        now = time.monotonic()
        due = now if self.lease_timeout != self.queue.lease_timeout else now + self.interval
        with self._cond:
            self._held[message.id] = (message, due)
            self._lost.discard(message.id)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="localqueue-heartbeat", daemon=True
                )
                start_quietly(self._thread)
            elif due <= now:
                self._cond.notify()

    def drop(self, message: QueueMessage) -> bool:
        """Stop extending ``message``'s lease; True when it was still held (not lost)."""
        with self._cond:
            self._held.pop(message.id, None)
            lost = message.id in self._lost
            self._lost.discard(message.id)
            return not lost

    def is_lost(self, message: QueueMessage) -> bool:
        with self._cond:
            return message.id in self._lost

    def close(self) -> None:
        """Stop the thread (a later :meth:`hold` starts a new one)."""
        with self._cond:
            self._closed = True
            self._held.clear()
            self._cond.notify()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._cond:
            self._closed = False

    def _due(self) -> list[QueueMessage]:
        """Wait (holding the condition) until a lease is due; then every lease due within
        half an interval, so that neighbours share one store call. [] once closed."""
        while not self._closed:
            now = time.monotonic()
            if not self._held:
                self._cond.wait()
                continue
            first = min(due for _, due in self._held.values())
            if first > now:
                self._cond.wait(first - now)
                continue
            horizon = now + self.interval / 2
            return [message for message, due in self._held.values() if due <= horizon]
        return []

    def _run(self) -> None:
        with self._cond:
            while batch := self._due():
                self._cond.release()
                try:
                    alive: list[bool] | None = self.queue.extend_leases(batch, self.lease_timeout)
                except LocalQueueError:  # a busy store: try again soon
                    alive = None
                finally:
                    self._cond.acquire()
                self._note(batch, alive)

    def _note(self, batch: list[QueueMessage], alive: list[bool] | None) -> None:
        now = time.monotonic()
        lost: list[QueueMessage] = []
        for index, message in enumerate(batch):
            if message.id not in self._held:
                continue  # dropped meanwhile
            if alive is None:
                self._held[message.id] = (message, now + _RETRY_BUSY)
            elif alive[index]:
                self._held[message.id] = (message, now + self.interval)
            else:
                del self._held[message.id]
                self._lost.add(message.id)
                lost.append(message)
        if lost and self.on_lost is not None:
            self._cond.release()
            try:
                for message in lost:
                    self.on_lost(message)
            finally:
                self._cond.acquire()
