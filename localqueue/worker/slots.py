"""Where handlers run: the slots of a :class:`~localqueue.worker.loop.Loop`.

``n`` threads for a function, one event loop (in a thread of its own) for a coroutine
function. A delivery handed to :meth:`Slots.submit` comes back on ``events`` once its
handler returned, with ``verdict`` and ``finished_at`` set; the loop owns every state
change.

One function at a time (concurrency 1) runs in the thread that called ``run()``, as in a
program of its own: it may install signal handlers or use thread-local state, and a
second signal interrupts it. That costs no thread switch per job: ``queue exec -j 1``
runs this way too (its job runs in a process of its own, and the handler's ``started``
hook lets the loop settle while it runs; see :class:`~localqueue.worker.loop.Loop`).
"""

from __future__ import annotations

import queue as stdlib_queue
import threading
import time
from typing import TYPE_CHECKING, Any

from localqueue._signals import start_quietly
from localqueue.worker.delivery import Delivery, DeliveryKey, key_of
from localqueue.worker.engine import Finished

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop
    from concurrent.futures import Future

    from localqueue.message import QueueMessage
    from localqueue.worker.engine import Worker

__all__ = ["ColdStop", "Slots"]


class ColdStop(BaseException):
    """A second signal while a handler runs in the main thread: raised into it."""


class Slots:
    """Run deliveries' handlers, ``n`` at a time; report each on ``events``."""

    def __init__(self, worker: Worker, n: int, events: stdlib_queue.SimpleQueue[Any]) -> None:
        self.worker, self.n, self.events = worker, n, events
        self._inbox: stdlib_queue.SimpleQueue[Delivery | None] = stdlib_queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: AbstractEventLoop | None = None
        self._tasks: dict[DeliveryKey, Future[Finished]] = {}  # async deliveries
        self.inline = n == 1 and not worker.is_async
        self.inline_running = False
        # A handler that can stop its own job (queue exec's ``cancel``) is asked to, even
        # in the main thread: an exception raised into it could land between its spawn
        # and its bookkeeping, and leave the job running.
        self.stoppable = hasattr(worker.handler, "cancel")

    def submit(self, delivery: Delivery) -> None:
        if self.worker.is_async:
            self._submit_async(delivery)
        elif self.inline:
            self.inline_running = True
            try:
                self._execute(delivery)
            finally:
                self.inline_running = False
        else:
            if len(self._threads) < self.n:
                # Not a daemon: threads a handler starts inherit that, and a program
                # waits for its threads (a handler's late writes are not cut off at exit).
                thread = threading.Thread(target=self._serve, name="localqueue-slot")
                self._threads.append(thread)
                start_quietly(thread)
            self._inbox.put(delivery)

    def _execute(self, delivery: Delivery) -> None:
        assert delivery.record is not None
        try:
            verdict = self.worker.execute(delivery.message, delivery.record)
        except ColdStop:
            raise
        except BaseException as exc:  # the attempt store failed, or an exit
            verdict = Finished(delivery.message, None, error=exc)
        self._done(delivery, verdict)

    def _done(self, delivery: Delivery, verdict: Finished) -> None:
        delivery.verdict = verdict
        delivery.finished_at = time.time()
        self.events.put(delivery)

    def _serve(self) -> None:
        while (delivery := self._inbox.get()) is not None:
            self._execute(delivery)

    def _submit_async(self, delivery: Delivery) -> None:
        import asyncio  # only where coroutines run (28 ms of a worker's start-up)

        if self._loop is None:
            ready = threading.Event()

            def serve() -> None:
                self._loop = asyncio.new_event_loop()
                ready.set()
                self._loop.run_forever()

            start_quietly(threading.Thread(target=serve, name="localqueue-loop", daemon=True))
            ready.wait()
        assert self._loop is not None and delivery.record is not None
        future = asyncio.run_coroutine_threadsafe(
            self.worker.execute_async(delivery.message, delivery.record), self._loop
        )
        self._tasks[delivery.key] = future

        def report(f: Future[Finished]) -> None:
            self._tasks.pop(delivery.key, None)
            try:
                verdict = f.result()
            except BaseException as exc:  # cancelled (a lost lease, a signal), a crash
                verdict = Finished(delivery.message, None, error=exc)
            self._done(delivery, verdict)

        future.add_done_callback(report)

    def cancel(self, message: QueueMessage, force: bool) -> None:
        """Ask the job of this delivery of ``message`` to stop (safe from any thread):
        an async task is cancelled; ``handler.cancel(message, force)`` stops a
        ``queue exec`` job. A Python function in a thread cannot be stopped."""
        future = self._tasks.get(key_of(message))
        if future is not None:
            future.cancel()
            return
        cancel = getattr(self.worker.handler, "cancel", None)
        if cancel is not None:
            cancel(message, force)

    def close(self) -> None:
        for _ in self._threads:
            self._inbox.put(None)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
