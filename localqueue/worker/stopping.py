"""How a :class:`~localqueue.worker.loop.Loop` stops: signals and the second signal.

Signal handlers only count and wake the loop (they write nothing: a handler running in
the main thread is announced by a notice thread). The first signal stops leasing and the
loop settles each delivery as it finishes; the second stops the running jobs (a
``queue exec`` job is killed, an async task cancelled; a Python function in a thread
cannot be stopped and gets ``COLD_GRACE`` seconds) and gives only their messages back,
without spending their attempts. A job that finished before its stop took effect is
settled as it finished.
"""

from __future__ import annotations

import queue as stdlib_queue
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from localqueue._signals import start_quietly
from localqueue.outcome import Outcome
from localqueue.worker.delivery import Delivery, State
from localqueue.worker.engine import Cancelled, Finished, Settled
from localqueue.worker.slots import ColdStop

if TYPE_CHECKING:
    from localqueue.worker.loop import Loop

__all__ = ["COLD_GRACE", "Stopping"]

COLD_GRACE = 2.0  # after a second signal, seconds a cancelled job gets before it is forced


class Stopping:
    """The signal and second-signal steps of one :class:`~localqueue.worker.loop.Loop`
    (they work on its deliveries)."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self._previous: dict[int, Any] = {}
        self._notices: stdlib_queue.SimpleQueue[int | None] | None = None
        self.cancelled: list[Delivery] = []  # stopped before they finished: given back

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.loop.worker.signals += 1
        self.loop.events.put(None)  # SimpleQueue.put is reentrant: safe in a signal handler
        if not self.loop.slots.inline_running:
            return
        # A handler runs in this (the main) thread: the loop cannot act until it returns.
        # The second signal interrupts it (as documented); the first is announced by
        # the notice thread, since a signal handler must not write.
        if self.loop.worker.signals >= 2 and not self.loop.slots.stoppable:
            self.loop.slots.inline_running = False
            raise ColdStop
        if self._notices is not None:
            self._notices.put(self.loop.worker.signals)

    def _speak(self, notices: stdlib_queue.SimpleQueue[int | None]) -> None:
        """The notice thread: says what the first signal does, and stops a job that
        can be stopped (``queue exec``'s) on the second; the handler running in the
        main thread then returns, and the loop settles or gives back its delivery."""
        while (signals := notices.get()) is not None:
            if signals == 1:
                self.loop.worker.log("finishing 1 running job(s); press Ctrl-C again to stop them")
            else:
                self.loop.stop_running()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if self.loop.slots.inline:
            self._notices = stdlib_queue.SimpleQueue()
            thread = threading.Thread(
                target=self._speak, args=(self._notices,), name="localqueue-notices", daemon=True
            )
            start_quietly(thread)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self.on_signal)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self._notices is not None:
            self._notices.put(None)
            self._notices = None

    def cold_stop(self) -> None:
        """The second signal: stop the running jobs and give only their messages back,
        without spending their attempts; a job that finished before its stop took effect
        is settled as it finished."""
        self.loop.summary.interrupted = True
        self.loop._give_back_counted()
        waiting = list(self.loop.parked.values())
        self.loop.parked.clear()
        self.loop._give_back([d.message for d in waiting])  # never started: nothing counted
        stopping = list(self.loop.running.values())
        if self.loop.slots.inline:
            for delivery in stopping:  # its handler has returned, or was interrupted
                delivery.stop_requested = True
                self.ended_or_stopped(delivery)
            self.loop.running.clear()
        else:
            self.loop.summary.abandoned = self._stop_jobs(stopping)
        self._settle_before_exit()
        stopped = self.cancelled
        if not stopped:
            return
        for delivery in stopped:
            self.loop.worker.heartbeat.drop(delivery.message)
        self.loop.queue.settle_many([Outcome(d.message, "released") for d in stopped])
        for delivery in stopped:
            self.loop.worker.attempt_store.uncount_attempt(delivery.id)
        self.loop.summary.released_ids = [d.id for d in stopped]
        now = time.time()
        for delivery in stopped:
            if self.loop.summary.report_error is None and self.loop.worker.on_outcome is not None:
                try:
                    self.loop.worker.on_outcome(
                        Settled(delivery.message, "released", None, None, delivery.started_at, now)
                    )
                except Exception as exc:
                    self.loop.summary.report_error = exc

    def _stop_jobs(self, stopping: list[Delivery]) -> int:
        """Ask every running job to stop; wait ``COLD_GRACE`` for them, then force them
        and wait a little more. A job still running after that is abandoned (returns
        how many were)."""
        for delivery in stopping:
            delivery.stop_requested = True
            self.loop.slots.cancel(delivery.message, False)
        deadline = time.monotonic() + COLD_GRACE
        forced = False
        while self.loop.running:
            left = deadline - time.monotonic()
            if left <= 0:
                if forced:
                    break  # a Python handler that cannot be interrupted: leave it
                forced = True
                for delivery in self.loop.running.values():
                    self.loop.slots.cancel(delivery.message, True)
                deadline = time.monotonic() + 0.5
                continue
            try:
                event = self.loop.events.get(timeout=left)
            except stdlib_queue.Empty:
                continue
            if isinstance(event, Delivery) and event.stop_requested:
                if self.loop.running.get(event.id) is event:
                    del self.loop.running[event.id]
                self.ended_or_stopped(event)
            else:
                self.loop._apply(event)
        abandoned = len(self.loop.running)
        for delivery in self.loop.running.values():
            delivery.state = State.CANCELLED
            self.cancelled.append(delivery)
        self.loop.running.clear()
        return abandoned

    def ended_or_stopped(self, delivery: Delivery) -> None:
        """After a stop request: a verdict the handler reached on its own is settled as
        it is; a job stopped by the request is cancelled."""
        verdict = delivery.verdict
        if delivery.state is State.LOST:
            return
        if verdict is None or verdict.outcome is None or _stopped_by_request(verdict):
            delivery.state = State.CANCELLED
            self.cancelled.append(delivery)
            return
        delivery.state = State.FINISHED
        self.loop.unsettled.append(delivery)

    def _settle_before_exit(self) -> None:
        """Settle what finished, trying again while the store fails and the leases last."""
        while self.loop.unsettled:
            self.loop._settle()
            if not self.loop.unsettled:
                return
            time.sleep(max(self.loop.settle_at - time.monotonic(), 0.0))


def _stopped_by_request(verdict: Finished) -> bool:
    """A failure caused by the stop itself (a job killed by it), not the handler's."""
    return isinstance(verdict.error, Cancelled)
