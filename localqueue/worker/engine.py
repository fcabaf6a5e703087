"""The worker engine: lease, count the attempt, run the handler, settle; N at a time.

One loop serves every worker of the package: :class:`Worker` (``Worker.run()``), the
decorators of :mod:`localqueue.worker.decorators` (one message per call) and the CLI's
``queue process`` / ``queue exec``. For each message:

* its attempt is counted in the attempt store *before* the handler runs, so a handler
  that kills its process every time still ends in the dead letters after ``max_tries``
  deliveries (poison-message protection);
* one :class:`~localqueue.worker.heartbeat.Heartbeat` keeps every held lease alive;
* the handler's verdict settles it: success acks it (putting the handler's return value
  on ``config.to`` in the same transaction), a failure that Tenacity's ``retry`` and
  ``stop`` strategies allow again releases it for a later attempt after the ``wait``
  strategy's delay (or, for the decorators, waits and tries again while holding the
  lease), and a final failure dead-letters it with the handler's own error.

With ``concurrency`` N, N handlers run at once: threads for a function, tasks on one
event loop (in a thread of its own) for a coroutine function. The main thread only
leases, settles and writes outcomes: finished messages are settled and free slots
refilled in as few store transactions as possible (one commit covers several acks).
Where a commit waits on the disk (durability ``full``) or on a server, new jobs are
leased and started first and the finished ones settled while they run.

Signals (when :meth:`Worker.run` runs in the main thread): the first SIGINT/SIGTERM
leases nothing more and lets the running handlers finish; the second cancels them
(``handler.cancel(message, force)`` when the handler has it: ``queue exec`` kills its
jobs; an async handler's task is cancelled) and releases every message still held
without spending its attempt. Signal handlers only count signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue as stdlib_queue
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, NamedTuple

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
from localqueue.queue import PersistentQueue, settle_while_leased
from localqueue.retry.base import AttemptRecord, AttemptStore
from localqueue.retry.errors import PersistentRetryExhausted
from localqueue.worker.config import PersistentWorkerConfig
from localqueue.worker.heartbeat import Heartbeat

__all__ = ["Finished", "JobFailed", "RunSummary", "Worker"]

IDLE_SLICE = 0.25  # an idle worker looks at its stop flag at least this often
COLD_GRACE = 2.0  # after a second signal, seconds a cancelled job gets before it is forced
_POLL_MIN, _POLL_MAX = 0.002, 0.1  # a blocking worker with free slots looks for work so often
# A worker whose store keeps failing while it looks for work pauses this long (0.25 s,
# doubling up to 30 s) before looking again.
_STORE_BACKOFF = tenacity.wait_exponential(multiplier=IDLE_SLICE, max=30.0)


class JobFailed(Exception):
    """A failure that comes with its own ``last_error`` record (``queue exec`` describes
    a failed command with its exit code and output)."""

    def __init__(self, last_error: dict[str, Any]) -> None:
        super().__init__(last_error.get("message", ""))
        self.last_error = last_error


class Finished(NamedTuple):
    """A message whose handling is over. ``outcome`` is what to do with it (None when the
    lease was lost: nothing to settle); ``result`` the handler's return value; ``error``
    what it raised last (the decorators raise it); ``spent``: its budget was spent and
    it is released with a fresh one (``dead_letter_on_failure=False``)."""

    message: QueueMessage
    outcome: Outcome | None
    result: Any = None
    error: BaseException | None = None
    spent: bool = False


@dataclass
class RunSummary:
    """What :meth:`Worker.run` did: messages by outcome, and how it ended."""

    acked: int = 0
    released: int = 0
    dead: int = 0
    lost: int = 0  # leases lost while handling (another worker has those messages)
    interrupted: bool = False  # a second signal stopped running handlers
    abandoned: int = 0  # handlers still running after it (Python code cannot be stopped)
    released_ids: list[str] = field(default_factory=list)  # given back by the second signal

    @property
    def handled(self) -> int:
        return self.acked + self.released + self.dead + self.lost


class Worker:
    """Run ``handler`` on the messages of ``queue``, ``config.concurrency`` at a time.

    ``handler(value)`` (or ``handler(message)`` with ``takes_message``) returns to ack
    and raises to fail; a coroutine function runs on an event loop. ``overrides``
    replace fields of ``config`` (``Worker(queue, fn, concurrency=4)``).

    ``retry_in_process``: a failure that may be retried waits (holding the lease) and
    runs again in the same delivery, as the decorators do; otherwise (the default) the
    message is released for a later delivery after the wait, freeing its slot.
    ``on_outcome(message, status, error, result)`` is told of every settled message in
    order (``status`` "acked" / "released" / "dead"; ``error`` the ``last_error``
    record; ``result`` what the handler returned, None when it failed);
    ``log`` gets what a person should know (stop requests, busy stores, lost leases).
    """

    def __init__(
        self,
        queue: PersistentQueue,
        handler: Callable[..., Any],
        config: PersistentWorkerConfig | None = None,
        *,
        takes_message: bool = False,
        retry_in_process: bool = False,
        on_outcome: Callable[[QueueMessage, str, dict[str, Any] | None, Any], object] | None = None,
        log: Callable[[str], object] | None = None,
        **overrides: Any,
    ) -> None:
        from dataclasses import replace

        self.queue = queue
        self.config = replace(config or PersistentWorkerConfig(), **overrides)
        self.handler = handler
        self.takes_message = takes_message
        self.is_async = _is_coroutine_function(handler)
        self.retry_in_process = retry_in_process
        self.on_outcome = on_outcome
        self.log = log or _default_log
        self.lease_timeout = self.config.lease_timeout or queue.lease_timeout
        self.stop_when = self.config.stop_strategy()
        self.wait_for = self.config.wait_strategy()
        self.retry_when = self.config.retry_strategy()
        self.heartbeat = Heartbeat(queue, self.lease_timeout, self._lease_lost)
        self._attempts = self.config.retry_store
        self._attempts_lock = threading.Lock()
        self._retrying = tenacity.Retrying()  # what the rebuilt retry states point to
        self.signals = 0

    # -- the attempt store -------------------------------------------------------------

    @property
    def attempt_store(self) -> AttemptStore:
        """The attempt store, opened on first use."""
        with self._attempts_lock:
            if self._attempts is None:
                self._attempts = _open_attempt_store(self.queue, self.config)
            return self._attempts

    # -- one message: the part every worker shares ----------------------------------------

    def count(self, messages: list[QueueMessage], clear: Iterable[str] = ()) -> list[AttemptRecord]:
        """Count one attempt for each message (and forget the keys of ``clear``, messages
        acked since), in one commit of the attempt store."""
        return self.attempt_store.record_attempts(
            [message.id for message in messages], time.time(), clear=list(clear)
        )

    def spent_error(self, message: QueueMessage, record: AttemptRecord) -> BaseException | None:
        """When earlier deliveries spent the budget without finishing (their worker
        died), the error to give up with before running the handler; else None."""
        if record.attempts <= 1:
            return None
        last = message.last_error or {
            "type": "RetryBudgetExhausted",
            "module": None,
            "message": f"{record.attempts - 1} attempts started and none finished",
        }
        previous = JobFailed(last)
        state = self._state(record.attempts - 1, record, previous)
        if not self.stop_when(state):
            return None
        exhausted = PersistentRetryExhausted(message.id, record.attempts - 1, last)
        exhausted.__cause__ = previous
        return exhausted

    def after_failure(self, record: AttemptRecord, error: Exception) -> float | BaseException:
        """Seconds to wait before the next attempt; or, when the failure is final, the
        error to give up with: ``error`` itself when Tenacity's ``retry`` declines it,
        :class:`PersistentRetryExhausted` (caused by it) when ``stop`` says the budget
        is spent."""
        state = self._state(record.attempts, record, error)
        if not self.retry_when(state):
            return error
        state.upcoming_sleep = wait = float(self.wait_for(state) or 0.0)
        if self.stop_when(state):
            last = _last_error(error)
            described = last if isinstance(last, dict) else _described(last)
            exhausted = PersistentRetryExhausted(record.key, record.attempts, described)
            exhausted.__cause__ = error
            return exhausted
        return max(wait, 0.0)

    def _state(
        self, attempt: int, record: AttemptRecord, error: BaseException
    ) -> tenacity.RetryCallState:
        """Tenacity's view of the key's attempts so far: their number, and a start time
        such that ``seconds_since_start`` is wall-clock time since the first one."""
        state = tenacity.RetryCallState(self._retrying, None, (), {})
        state.start_time = time.monotonic() - max(0.0, time.time() - record.first_attempt_at)
        state.attempt_number = attempt
        state.set_exception((type(error), error, error.__traceback__))
        return state

    def give_up(self, message: QueueMessage, error: BaseException) -> Finished:
        """A final failure: dead-letter (or release with a fresh budget)."""
        described = _last_error(error)
        if self.config.dead_letter_on_failure:
            return Finished(message, Outcome(message, "dead", error=described), error=error)
        outcome = Outcome(message, "released", self.config.release_delay, described)
        return Finished(message, outcome, error=error, spent=True)

    def hand_on(self, result: Any) -> list[Any]:
        """What a handler's result puts on ``config.to``: None nothing, a list or an
        iterator each of its values, anything else one value. Checked here (a value that
        is not JSON fails the attempt like an exception of the handler's)."""
        if self.config.to is None or result is None:
            return []
        if isinstance(result, list | tuple) or inspect.isgenerator(result):
            values = list(result)
        else:
            values = [result]
        from localqueue.codec import encode_batch

        encode_batch(values)
        return values

    def succeed(self, message: QueueMessage, result: Any, values: list[Any]) -> Finished:
        """Ack, with ``values`` put on ``config.to`` in the same transaction."""
        outcome = Outcome(message, "acked", then_put=values, to=self.config.to)
        return Finished(message, outcome, result)

    def _call(self, message: QueueMessage, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.handler(message if self.takes_message else message.value, *args, **kwargs)

    def execute(
        self,
        message: QueueMessage,
        record: AttemptRecord,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Finished:
        """Run a sync handler on a held message whose attempt is counted (``record``)."""
        kwargs = kwargs or {}
        while True:
            spent = self.spent_error(message, record)
            if spent is not None:
                return self.give_up(message, spent)
            try:
                result = self._call(message, args, kwargs)
                values = self.hand_on(result)
            except Exception as exc:
                if self.heartbeat.is_lost(message):
                    return Finished(message, None, error=exc)
                wait = self.after_failure(record, exc)
                if isinstance(wait, BaseException):
                    return self.give_up(message, wait)
                if not self.retry_in_process:
                    outcome = Outcome(message, "released", wait, _last_error(exc))
                    return Finished(message, outcome, error=exc)
                if self._lost_while_waiting(message, wait):
                    return Finished(message, None, error=exc)
                [record] = self.count([message])
                continue
            if self.heartbeat.is_lost(message):
                return Finished(message, None, result)
            return self.succeed(message, result, values)

    async def execute_async(
        self,
        message: QueueMessage,
        record: AttemptRecord,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Finished:
        """:meth:`execute` for a coroutine function, on the running event loop."""
        kwargs = kwargs or {}
        while True:
            spent = self.spent_error(message, record)
            if spent is not None:
                return self.give_up(message, spent)
            try:
                result = self._call(message, args, kwargs)
                if inspect.isawaitable(result):
                    result = await result
                values = self.hand_on(result)
            except Exception as exc:
                if self.heartbeat.is_lost(message):
                    return Finished(message, None, error=exc)
                wait = self.after_failure(record, exc)
                if isinstance(wait, BaseException):
                    return self.give_up(message, wait)
                if not self.retry_in_process:
                    outcome = Outcome(message, "released", wait, _last_error(exc))
                    return Finished(message, outcome, error=exc)
                await asyncio.sleep(wait)
                if self.heartbeat.is_lost(message):
                    return Finished(message, None, error=exc)
                [record] = await asyncio.to_thread(self.count, [message])
                continue
            if self.heartbeat.is_lost(message):
                return Finished(message, None, result)
            return self.succeed(message, result, values)

    def _lost_while_waiting(self, message: QueueMessage, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.heartbeat.is_lost(message):
                return True
            time.sleep(min(left, IDLE_SLICE))
        return self.heartbeat.is_lost(message)

    def settle(
        self, finished: list[Finished], lease: int = 0
    ) -> tuple[list[bool], list[QueueMessage]]:
        """Settle finished messages and lease up to ``lease`` new ones in one transaction;
        report each outcome; forget the budgets of messages whose fate is final. While
        another process holds the store past its busy timeout, keep trying until the
        earliest lease ends (a finished handler's outcome is not dropped lightly)."""
        settling = [item for item in finished if item.outcome is not None]
        for item in finished:
            if item.outcome is None:
                self.log(
                    f"lost the lease of {item.message.id} while handling it;"
                    " another worker has it now"
                )
        if not settling and not lease:
            return [], []
        outcomes = [item.outcome for item in settling if item.outcome is not None]
        result: tuple[list[bool], list[QueueMessage]] = ([], [])

        def commit() -> None:
            nonlocal result
            result = self.queue.settle_many(outcomes, lease=lease, leased_by=self.config.worker_id)

        if settling:
            earliest = min(settling, key=lambda item: item.message.lease_expires_at or 0.0)
            settle_while_leased(earliest.message, commit, self._busy(earliest.message))
        else:
            commit()
        applied, leased = result
        for item, done in zip(settling, applied, strict=True):
            outcome = item.outcome
            assert outcome is not None
            self.heartbeat.drop(item.message)
            if not done:
                self.log(f"lease of {item.message.id} expired before it was settled")
                continue
            if self.on_outcome is not None:
                error = outcome.error
                record = error if isinstance(error, dict) or error is None else _described(error)
                self.on_outcome(item.message, outcome.status, record, item.result)
        return applied, leased

    def _busy(self, message: QueueMessage) -> Callable[[float], None]:
        def busy(left: float) -> None:
            self.log(
                f"store is busy; still trying to settle {message.id} (lease ends in {left:.0f}s)"
            )

        return busy

    def _lease_lost(self, message: QueueMessage) -> None:
        cancel = getattr(self.handler, "cancel", None)
        if cancel is not None:
            cancel(message, False)

    # -- the loop ------------------------------------------------------------------------

    def run(
        self,
        *,
        forever: bool = False,
        block: bool = False,
        max_jobs: int | None = None,
        idle_sleep: float = 1.0,
    ) -> RunSummary:
        """Handle messages until the queue is drained (the default: what is ready now
        and whatever becomes ready while it runs), ``max_jobs`` messages were started,
        or a signal stops it. ``block`` waits for work instead of returning on an empty
        queue; ``forever`` keeps looking, every ``idle_sleep`` seconds, instead."""
        loop = _Loop(self, forever=forever, block=block, max_jobs=max_jobs, idle_sleep=idle_sleep)
        return loop.run()

    def close(self) -> None:
        self.heartbeat.close()


class _ColdStop(BaseException):
    """A second signal while a handler runs in the main thread: raised into it."""


class _Slots:
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


class _Loop:
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
        self.queue = worker.queue
        self.forever, self.block, self.max_jobs = forever, block, max_jobs
        self.idle_sleep = idle_sleep
        self.draining = not (forever or block)
        self.summary = RunSummary()
        self.done: stdlib_queue.SimpleQueue[Finished | None] = stdlib_queue.SimpleQueue()
        self.slots = _Slots(worker, worker.config.concurrency, self.done)
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

    # signals: the handler only counts (and wakes the loop)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.worker.signals += 1
        self.done.put(None)
        if self.worker.signals >= 2 and self.slots.inline_running:
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
        state = tenacity.RetryCallState(self.worker._retrying, None, (), {})
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


def _is_coroutine_function(handler: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _last_error(error: BaseException) -> BaseException | dict[str, Any]:
    """What becomes ``last_error``: the handler's own last error (a command's record for
    ``queue exec``), never the "budget exhausted" error wrapped around it."""
    if isinstance(error, PersistentRetryExhausted):
        if error.last_error is not None:
            return error.last_error
        if error.__cause__ is not None:
            return _last_error(error.__cause__)
    if isinstance(error, JobFailed):
        return error.last_error
    return error


def _described(error: BaseException | str) -> dict[str, Any] | None:
    from localqueue.codec import error_to_dict

    return error_to_dict(error)


def _open_attempt_store(queue: PersistentQueue, config: PersistentWorkerConfig) -> AttemptStore:
    path = config.retry_store_path
    if path is not None:
        from localqueue.retry.stores import open_attempt_store

        return open_attempt_store(path)
    from localqueue.stores.memory import MemoryQueueStore

    if isinstance(queue.store, MemoryQueueStore):
        from localqueue.retry.memory import MemoryAttemptStore

        return MemoryAttemptStore()
    from localqueue.retry.sqlite import SQLiteAttemptStore

    return SQLiteAttemptStore()


def _default_log(text: str) -> None:
    import logging

    logging.getLogger("localqueue.worker").warning("%s", text)
