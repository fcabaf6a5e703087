"""The loop of :meth:`Worker.run <localqueue.worker.engine.Worker.run>`: the main
thread leases, counts attempts, hands messages to the slots where handlers run, settles
what finished and writes outcomes; see :mod:`localqueue.worker.engine` for what happens
to one message.

Where a commit waits on the disk or a server, new jobs are leased and started first and
the finished ones settled while they run; finished messages are collected together, so
one commit settles several. Signals only count (and wake the loop): the first stops
leasing, the second cancels the running handlers and gives their messages back.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue as stdlib_queue
import signal
import threading
import time
from types import FrameType
from typing import Any

import tenacity

from localqueue._signals import start_quietly
from localqueue.errors import (
    Empty,
    LocalQueueError,
    StoreError,
    StoreLockedError,
    StoreReplacedError,
)
from localqueue.message import QueueMessage
from localqueue.outcome import Outcome
from localqueue.retry.base import AttemptRecord
from localqueue.worker.engine import Finished, RunSummary, Worker

__all__ = ["Loop", "Slots"]

IDLE_SLICE = 0.25  # an idle worker looks at its stop flag at least this often
COLD_GRACE = 2.0  # after a second signal, seconds a cancelled job gets before it is forced
_POLL_MIN, _POLL_MAX = 0.002, 0.1  # a blocking worker with free slots looks for work so often
# A worker whose store keeps failing while it looks for work pauses this long (0.25 s,
# doubling up to 30 s) before looking again.
_STORE_BACKOFF = tenacity.wait_exponential(multiplier=IDLE_SLICE, max=30.0)


class _ColdStop(BaseException):
    """A second signal while a handler runs in the main thread: raised into it."""


class Slots:
    """Where handlers run: ``n`` threads for a function, one event loop (in a thread of
    its own) for a coroutine function. Finished work goes to ``done``.

    One function at a time (concurrency 1) runs in the thread that called ``run()``, as
    in a program of its own: it may install signal handlers or use thread-local state,
    and a second signal interrupts it. A handler that can be cancelled (``queue exec``'s,
    which has ``cancel``) still gets a thread, so that settling overlaps its run."""

    def __init__(self, worker: Worker, n: int, done: stdlib_queue.SimpleQueue[Any]) -> None:
        self.worker, self.n, self.done = worker, n, done
        self._inbox: stdlib_queue.SimpleQueue[tuple[QueueMessage, AttemptRecord] | None] = (
            stdlib_queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: dict[str, Any] = {}  # message id -> concurrent future (async)
        handler = worker.handler
        self.inline = n == 1 and not worker.is_async and not hasattr(handler, "cancel")
        self.inline_running = False

    def submit(self, message: QueueMessage, record: AttemptRecord) -> None:
        if self.worker.is_async:
            self._submit_async(message, record)
            return
        if self.inline:
            self.inline_running = True
            try:
                finished = self.worker.execute(message, record)
            except _ColdStop:
                raise
            except BaseException as exc:  # the attempt store failed, or an exit
                finished = Finished(message, None, error=exc)
            finally:
                self.inline_running = False
            self.done.put(finished)
            return
        if len(self._threads) < self.n:
            # Not a daemon: threads a handler starts inherit that, and a program waits
            # for its threads (a handler's late writes are not cut off at exit).
            thread = threading.Thread(target=self._serve, name="localqueue-slot")
            self._threads.append(thread)
            start_quietly(thread)
        self._inbox.put((message, record))

    def _serve(self) -> None:
        while (item := self._inbox.get()) is not None:
            message, record = item
            try:
                finished = self.worker.execute(message, record)
            except BaseException as exc:  # the attempt store failed, or an interrupt
                finished = Finished(message, None, error=exc)
            self.done.put(finished)

    def _submit_async(self, message: QueueMessage, record: AttemptRecord) -> None:
        if self._loop is None:
            ready = threading.Event()

            def serve() -> None:
                self._loop = asyncio.new_event_loop()
                ready.set()
                self._loop.run_forever()

            start_quietly(threading.Thread(target=serve, name="localqueue-loop", daemon=True))
            ready.wait()
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(
            self.worker.execute_async(message, record), self._loop
        )
        self._tasks[message.id] = future

        def report(f: Any) -> None:
            self._tasks.pop(message.id, None)
            try:
                self.done.put(f.result())
            except BaseException as exc:  # cancelled by a second signal, or a crash
                self.done.put(Finished(message, None, error=exc))

        future.add_done_callback(report)

    def cancel(self, message: QueueMessage, force: bool) -> None:
        future = self._tasks.get(message.id)
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


class Loop:
    """One :meth:`Worker.run`: the main thread's lease / start / settle cycle."""

    def __init__(
        self,
        worker: Worker,
        *,
        forever: bool,
        block: bool,
        max_jobs: int | None,
        idle_sleep: float,
    ) -> None:
        if max_jobs is not None and max_jobs < 0:
            raise ValueError(f"max_jobs must be >= 0, got {max_jobs!r}")
        if idle_sleep < 0:
            raise ValueError(f"idle_sleep must be >= 0, got {idle_sleep!r}")
        self.worker = worker
        worker.signals = 0  # a run stopped by a signal does not stop the next one
        self.queue = worker.queue
        self.forever, self.block, self.max_jobs = forever, block, max_jobs
        self.idle_sleep = idle_sleep
        self.draining = not (forever or block)
        self.summary = RunSummary()
        self.done: stdlib_queue.SimpleQueue[Finished | None] = stdlib_queue.SimpleQueue()
        self.slots = Slots(worker, worker.config.concurrency, self.done)
        self.running: dict[str, QueueMessage] = {}
        self.started = 0  # messages started (max_jobs counts these)
        self.to_clear: list[str] = []  # settled for good since the last count: forget them
        self.spent: set[str] = set()  # released with a fresh budget: a drain stops at them
        self.stop_leasing = False
        self.failure: BaseException | None = None  # raised once the running jobs are settled
        self.store_failures = 0
        self.pause = _POLL_MIN
        # Where a commit waits on the disk or a server, new jobs start before the
        # finished ones are settled (their commit overlaps the jobs); where it does not
        # (durability "normal"), one commit for both is faster: on two cores the jobs
        # and the worker share the CPU (measured: queue exec -- true, 0.82 ms a job).
        # (A handler running in the main thread leaves nothing to overlap.)
        self.overlap = (
            getattr(self.queue.store, "durability", None) != "normal" and not self.slots.inline
        )
        self._previous: dict[int, Any] = {}
        self._retrying = tenacity.Retrying()  # what the store back-off's states point to

    # signals: the handler only counts (and wakes the loop)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.worker.signals += 1
        self.done.put(None)
        if not self.slots.inline_running:
            return
        # A handler runs in this (the main) thread: the loop cannot speak or act until it
        # returns, so the handler of the signal does (Python runs it between bytecodes).
        if self.worker.signals == 1:
            self.worker.log("finishing 1 running job(s); press Ctrl-C again to stop them")
            return
        self.slots.inline_running = False
        raise _ColdStop

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    # the cycle

    def want(self) -> int:
        """How many messages to lease now."""
        if self.worker.signals or self.stop_leasing or self.failure is not None:
            return 0
        free = self.worker.config.concurrency - len(self.running)
        if self.max_jobs is not None:
            free = min(free, self.max_jobs - self.started)
        return max(free, 0)

    def run(self) -> RunSummary:
        worker = self.worker
        worker.attempt_store  # noqa: B018 - open it first: a broken store leases nothing
        self._install()
        try:
            finished: list[Finished] = []
            warned = False
            while True:
                if worker.signals >= 2:
                    self._cold_stop(finished)
                    break
                if worker.signals and not warned:
                    warned = True
                    if self.running and not self.slots.inline:  # (inline: it is done)
                        worker.log(
                            f"finishing {len(self.running)} running job(s);"
                            " press Ctrl-C again to stop them"
                        )
                try:
                    leased = self._cycle(finished)
                except _ColdStop:  # raised into a handler running in this thread
                    self._cold_stop([])
                    break
                if not self.running:
                    if self.draining or not self.want():
                        break
                    finished = self._idle()
                    continue
                finished = self._wait(leased)
        finally:
            self._restore()
            self.slots.close()
            worker.heartbeat.close()
            self._forget_settled()
        if self.failure is not None:
            raise self.failure
        return self.summary

    def _cycle(self, finished: list[Finished]) -> list[QueueMessage]:
        """Settle ``finished`` and start new jobs in their place; returns what it leased."""
        for item in finished:
            self.running.pop(item.message.id, None)  # their slots are free
        want = self.want()
        try:
            if self.overlap and finished and want:
                leased = self._lease_if_free(want)
                self._start(leased)
                self._settle(finished)
                released = any(i.outcome and i.outcome.status == "released" for i in finished)
                if released and len(leased) < want:  # due again at once, maybe
                    more = self._lease_if_free(want - len(leased))
                    self._start(more)
                    leased += more
                return leased
            leased = self._settle(finished, want) if finished else self._lease(want)
        except StoreReplacedError:
            raise  # its file is gone: only a fresh start sees the new one
        except (StoreLockedError, StoreError) as exc:
            if self.draining or finished:
                raise
            self._back_off(exc)  # a long-running worker outlives a held lock
            return []
        self.store_failures = 0
        self._start(leased)
        return leased

    def _lease_if_free(self, n: int) -> list[QueueMessage]:
        """Lease before settling: a busy store leases nothing then (the settle that
        follows keeps trying on its own, and new work can wait)."""
        try:
            return self._lease(n)
        except StoreReplacedError:
            raise
        except (StoreLockedError, StoreError):
            return []

    def _lease(self, n: int) -> list[QueueMessage]:
        return self.queue.get_messages(n, leased_by=self.worker.config.worker_id) if n else []

    def _settle(self, finished: list[Finished], lease: int = 0) -> list[QueueMessage]:
        _, leased = self.worker.settle(finished, lease)
        for item in finished:
            self.running.pop(item.message.id, None)
            outcome = item.outcome
            if outcome is None:
                self.summary.lost += 1
            elif outcome.status == "acked":
                self.summary.acked += 1
                self.to_clear.append(item.message.id)
            elif outcome.status == "dead":
                self.summary.dead += 1
                self.to_clear.append(item.message.id)  # a requeued dead letter starts afresh
            else:
                self.summary.released += 1
                if item.spent:
                    self.spent.add(item.message.id)
                    self.to_clear.append(item.message.id)
        return leased

    def _start(self, leased: list[QueueMessage]) -> None:
        """Count the leased messages' attempts and hand them to the slots."""
        if self.draining and any(m.id in self.spent for m in leased):
            # Released with a fresh budget by this drain: it must not loop on them.
            self._give_back([m for m in leased if m.id in self.spent])
            leased = [m for m in leased if m.id not in self.spent]
            self.stop_leasing = True
        if not leased:
            return
        clear, self.to_clear = self.to_clear, []
        try:
            records = self.worker.count(leased, clear)
        except BaseException:
            self._give_back(leased)
            raise
        for message, record in zip(leased, records, strict=True):
            self.running[message.id] = message
            self.started += 1
            self.worker.heartbeat.hold(message)
            self.slots.submit(message, record)
        self.pause = _POLL_MIN

    def _give_back(self, messages: list[QueueMessage]) -> None:
        with contextlib.suppress(LocalQueueError):
            self.queue.settle_many([Outcome(m, "released") for m in messages])

    def _wait(self, leased: list[QueueMessage]) -> list[Finished]:
        """Wait until a running job finishes (or a signal comes) and take every job
        finished by then. With free slots, look for new work again after a while:
        soon for a blocking worker, each ``idle_sleep`` for a ``forever`` one."""
        timeout = IDLE_SLICE
        if self.want():
            if self.block:
                timeout = self.pause
                self.pause = min(self.pause * 2, _POLL_MAX)
            elif self.forever and not leased:
                timeout = max(self.idle_sleep, _POLL_MIN)
        finished: list[Finished] = []
        try:
            item = self.done.get(timeout=timeout)
        except stdlib_queue.Empty:
            return finished
        while True:
            if item is not None:
                finished.extend(self._checked(item))
            try:
                item = self.done.get_nowait()
            except stdlib_queue.Empty:
                return finished

    def _checked(self, item: Finished) -> list[Finished]:
        """A slot that failed outside the handler (its attempt store, say) gives its
        message back; the error ends the run once the other jobs are settled."""
        error = item.error
        failed_outside = item.outcome is None and error is not None
        if not failed_outside or self.worker.heartbeat.is_lost(item.message):
            return [item]
        if self.failure is None:
            self.failure = error
        self.worker.heartbeat.drop(item.message)
        self.running.pop(item.message.id, None)
        self._give_back([item.message])
        return []

    def _idle(self) -> list[Finished]:
        """Nothing running and nothing to lease: wait for work (``block``) or a while
        (``forever``), watching for signals."""
        if self.block:
            try:
                message = self.queue.get_message(
                    True, IDLE_SLICE, leased_by=self.worker.config.worker_id
                )
            except Empty:
                return []
            except StoreReplacedError:
                raise
            except (StoreLockedError, StoreError) as exc:
                self._back_off(exc)
                return []
            self.store_failures = 0
            self._start([message])
            return []
        self._sleep(self.idle_sleep)
        return []

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.worker.signals and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(stdlib_queue.Empty):
                self.done.get(timeout=min(IDLE_SLICE, left))

    def _back_off(self, exc: LocalQueueError) -> None:
        """The store stayed locked past its busy timeout (or failed: damage, disk
        trouble) while looking for work: say so, then wait before looking again."""
        self.store_failures += 1
        state = tenacity.RetryCallState(self._retrying, None, (), {})
        state.attempt_number = self.store_failures
        pause = float(_STORE_BACKOFF(state))
        self.worker.log(f"{exc}; looking for work again in {pause:g}s")
        self._sleep(pause)

    def _cold_stop(self, finished: list[Finished]) -> None:
        """The second signal: settle what had finished, cancel the running handlers and
        give their messages back without spending their attempts."""
        self.summary.interrupted = True
        self._settle(finished)
        held = list(self.running.values())
        for message in held:
            self.slots.cancel(message, False)
        stopped = len(held) if self.slots.inline else 0  # interrupted already
        deadline = time.monotonic() + COLD_GRACE
        forced = False
        while stopped < len(held):
            left = deadline - time.monotonic()
            if left <= 0:
                if forced:
                    break  # a Python handler that cannot be interrupted: leave it
                forced = True
                for message in held:
                    self.slots.cancel(message, True)
                deadline = time.monotonic() + 0.5
                continue
            with contextlib.suppress(stdlib_queue.Empty):
                if self.done.get(timeout=left) is not None:
                    stopped += 1
        self.summary.abandoned = len(held) - stopped
        if not held:
            return
        for message in held:
            self.worker.heartbeat.drop(message)
        self.queue.settle_many([Outcome(m, "released") for m in held])
        for message in held:
            self.worker.attempt_store.uncount_attempt(message.id)
        self.summary.released_ids = [m.id for m in held]
        if self.worker.on_outcome is not None:
            for message in held:
                self.worker.on_outcome(message, "released", None, None)
        self.running.clear()

    def _forget_settled(self) -> None:
        clear, self.to_clear = self.to_clear, []
        if clear:
            with contextlib.suppress(LocalQueueError):
                self.worker.attempt_store.record_attempts([], time.time(), clear=clear)
