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

With ``concurrency`` N, N handlers run at once (:mod:`localqueue.worker.loop`): threads
for a function, tasks on one event loop (in a thread of its own) for a coroutine
function. The main thread only leases, settles and writes outcomes: finished messages
are settled and free slots refilled in as few store transactions as possible (one
commit covers several acks).

Signals (when :meth:`Worker.run` runs in the main thread): the first SIGINT/SIGTERM
leases nothing more and lets the running handlers finish; the second cancels them
(``handler.cancel(message, force)`` when the handler has it: ``queue exec`` kills its
jobs; an async handler's task is cancelled) and releases every message still held
without spending its attempt. Signal handlers only count signals.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import tenacity

from localqueue.message import QueueMessage
from localqueue.outcome import Outcome
from localqueue.queue import PersistentQueue, settle_while_leased
from localqueue.retry.base import AttemptRecord, AttemptStore
from localqueue.retry.errors import PersistentRetryExhausted
from localqueue.worker.config import PersistentWorkerConfig
from localqueue.worker.heartbeat import Heartbeat

__all__ = ["Cancelled", "Finished", "JobFailed", "RunSummary", "Settled", "Worker"]

_LEASE_CHECK = 0.25  # a handler waiting to retry in-process looks at its lease this often


class JobFailed(Exception):
    """A failure that comes with its own ``last_error`` record (``queue exec`` describes
    a failed command with its exit code and output)."""

    def __init__(self, last_error: dict[str, Any]) -> None:
        super().__init__(last_error.get("message", ""))
        self.last_error = last_error


class Cancelled(Exception):
    """Raised by a handler whose delivery was stopped from outside (its lease was lost,
    or a second signal came): not the handler's verdict on the message."""


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


def timed(finished: Finished, started_at: float, finished_at: float) -> Finished:
    """``finished`` with its outcome's ``duration`` (how long the job ran, kept in the
    history record of an acked or dead-lettered message)."""
    if finished.outcome is None:
        return finished
    duration = max(finished_at - started_at, 0.0)
    return finished._replace(outcome=finished.outcome._replace(duration=duration))


class Settled(NamedTuple):
    """What ``on_outcome`` is told once a settlement is committed: the message (as this
    delivery leased it), ``status`` ("acked", "released", "dead"), ``error`` (the
    ``last_error`` record), ``result`` (what the handler returned; None when it failed),
    and when the delivery's job started and finished (epoch seconds)."""

    message: QueueMessage
    status: str
    error: dict[str, Any] | None
    result: Any
    started_at: float
    finished_at: float

    @property
    def duration(self) -> float:
        return max(self.finished_at - self.started_at, 0.0)


@dataclass(frozen=True, slots=True)
class Wait:
    """A request of :meth:`Worker._steps`: wait ``seconds`` holding the lease (answer:
    whether the lease was lost meanwhile)."""

    seconds: float


CALL = "call"  # run the handler once (answer: (result, values) or the exception)
COUNT = "count"  # count the next attempt (answer: its AttemptRecord)
Steps = Generator["str | Wait", Any, "Finished"]


@dataclass
class RunSummary:
    """What :meth:`Worker.run` did: messages by outcome, and how it ended."""

    acked: int = 0
    released: int = 0
    dead: int = 0
    lost: int = 0  # leases lost while handling (the message is delivered again)
    interrupted: bool = False  # a second signal stopped running handlers
    abandoned: int = 0  # handlers still running after it (Python code cannot be stopped)
    released_ids: list[str] = field(default_factory=list)  # given back by the second signal
    paused: bool = False  # a paused queue ended or held up the run
    #: Why outcome lines stopped (``on_outcome`` raised: stdout's reader left, say); the
    #: run then leased nothing more and settled what ran.
    report_error: BaseException | None = None

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
    ``on_outcome(settled)`` is told of every settlement once it is committed, with a
    :class:`Settled` record (message, status, ``last_error``, result, start and finish
    times); should it raise, the worker leases nothing more, settles what runs and
    returns with the error in :attr:`RunSummary.report_error`. ``log`` gets what a
    person should know (stop requests, busy stores, lost leases).
    """

    def __init__(
        self,
        queue: PersistentQueue,
        handler: Callable[..., Any],
        config: PersistentWorkerConfig | None = None,
        *,
        takes_message: bool = False,
        retry_in_process: bool = False,
        on_outcome: Callable[[Settled], object] | None = None,
        log: Callable[[str], object] | None = None,
        **overrides: Any,
    ) -> None:
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
        self.heartbeat = Heartbeat(queue, self.lease_timeout)
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
            code = described.get("exit_code") if isinstance(described, dict) else None
            outcome = Outcome(message, "dead", error=described, exit_code=code)
            return Finished(message, outcome, error=error)
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
        """Ack, with ``values`` put on ``config.to`` in the same transaction. The
        history record (if the queue keeps one) gets the handler's exit code and output
        when it reports them (``job_report``: ``queue exec``), else its return value."""
        exit_code, output = None, result
        report = self._job_report(message)
        if report is not None:
            exit_code, output = report
        outcome = Outcome(
            message, "acked", then_put=values, to=self.config.to, exit_code=exit_code,
            output=output,
        )  # fmt: skip
        return Finished(message, outcome, result)

    def _job_report(self, message: QueueMessage) -> tuple[int | None, Any] | None:
        """The exit code and output the handler kept of this delivery's job (``queue
        exec``'s ``job_report``, which forgets them), None when it keeps none."""
        job_report = getattr(self.handler, "job_report", None)
        return None if job_report is None else job_report(message)

    def _call(self, message: QueueMessage, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.handler(message if self.takes_message else message.value, *args, **kwargs)

    # -- one delivery: the decision path both drivers follow ------------------------------

    def _steps(self, message: QueueMessage, record: AttemptRecord) -> Steps:
        """What handling one delivery does, in order. Each ``yield`` is a request the
        driver performs (:data:`CALL` the handler, :class:`Wait` before trying again in
        process, :data:`COUNT` the next attempt) and answers, so that :meth:`execute` and
        :meth:`execute_async` cannot drift apart."""
        while True:
            spent = self.spent_error(message, record)
            if spent is not None:
                return self.give_up(message, spent)
            answer = yield CALL
            if isinstance(answer, Cancelled):  # its delivery was stopped (lost, signal)
                return Finished(message, None, error=answer)
            if isinstance(answer, Exception):
                verdict = self._failed(message, record, answer)
                if isinstance(verdict, Finished):
                    return verdict
                if (yield Wait(verdict)):  # the lease was lost meanwhile
                    return Finished(message, None, error=answer)
                record = yield COUNT
                continue
            result, values = answer
            if self.heartbeat.is_lost(message):
                self._job_report(message)  # nothing to record: the handler forgets it
                return Finished(message, None, result)
            return self.succeed(message, result, values)

    def execute(
        self,
        message: QueueMessage,
        record: AttemptRecord,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Finished:
        """Run a sync handler on a held message whose attempt is counted (``record``)."""
        kwargs = kwargs or {}
        steps = self._steps(message, record)
        answer: Any = None
        while True:
            try:
                request = steps.send(answer)
            except StopIteration as stop:
                finished: Finished = stop.value
                return finished
            if request is CALL:
                try:
                    result = self._call(message, args, kwargs)
                    answer = (result, self.hand_on(result))
                except Exception as exc:
                    answer = exc
            elif isinstance(request, Wait):
                answer = self._lost_while_waiting(message, request.seconds)
            else:
                [answer] = self.count([message])

    async def execute_async(
        self,
        message: QueueMessage,
        record: AttemptRecord,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Finished:
        """:meth:`execute` for a coroutine function, on the running event loop."""
        import asyncio  # only where coroutines run (28 ms of a worker's start-up)

        kwargs = kwargs or {}
        steps = self._steps(message, record)
        answer: Any = None
        while True:
            try:
                request = steps.send(answer)
            except StopIteration as stop:
                finished: Finished = stop.value
                return finished
            if request is CALL:
                try:
                    result = self._call(message, args, kwargs)
                    if inspect.isawaitable(result):
                        result = await result
                    answer = (result, self.hand_on(result))
                except Exception as exc:
                    answer = exc
            elif isinstance(request, Wait):
                answer = await self._lost_while_waiting_async(message, request.seconds)
            else:
                [answer] = await asyncio.to_thread(self.count, [message])

    def _failed(
        self, message: QueueMessage, record: AttemptRecord, exc: Exception
    ) -> Finished | float:
        """After the handler raised ``exc``: how the message ends, or (retrying in
        process) the seconds to wait before the next attempt."""
        if self.heartbeat.is_lost(message):
            return Finished(message, None, error=exc)
        wait = self.after_failure(record, exc)
        if isinstance(wait, BaseException):
            return self.give_up(message, wait)
        if not self.retry_in_process:
            outcome = Outcome(message, "released", wait, _last_error(exc))
            return Finished(message, outcome, error=exc)
        return wait

    def _lost_while_waiting(self, message: QueueMessage, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.heartbeat.is_lost(message):
                return True
            time.sleep(min(left, _LEASE_CHECK))
        return self.heartbeat.is_lost(message)

    async def _lost_while_waiting_async(self, message: QueueMessage, seconds: float) -> bool:
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            if self.heartbeat.is_lost(message):
                return True
            await asyncio.sleep(min(left, _LEASE_CHECK))
        return self.heartbeat.is_lost(message)

    # -- settling ----------------------------------------------------------------------

    def commit(
        self, finished: Sequence[Finished], lease: int = 0
    ) -> tuple[list[bool], list[QueueMessage]]:
        """One try at settling ``finished`` (each with an outcome) and leasing up to
        ``lease`` new messages, in one transaction. Returns whether each settlement was
        applied (False: its lease was lost first) and what was leased; a store error
        changes nothing (the caller keeps the outcomes and tries again)."""
        outcomes = [item.outcome for item in finished if item.outcome is not None]
        if len(outcomes) != len(finished):
            raise ValueError("only finished messages with an outcome are committed")
        if not outcomes and not lease:
            return [], []
        return self.queue.settle_many(outcomes, lease=lease, leased_by=self.config.worker_id)

    def report(self, finished: Finished, started_at: float, finished_at: float) -> None:
        """Tell ``on_outcome`` of a committed settlement (its exceptions propagate: the
        caller decides what a failed report means; the settlement stands)."""
        if self.on_outcome is None or finished.outcome is None:
            return
        error = finished.outcome.error
        record = error if isinstance(error, dict) or error is None else _described(error)
        self.on_outcome(
            Settled(
                finished.message, finished.outcome.status, record, finished.result,
                started_at, finished_at,
            )
        )  # fmt: skip

    def settle_one(self, finished: Finished, started_at: float) -> bool:
        """Settle one message now (the decorators), retrying a busy or failing store
        until its lease ends; report it. False when the lease was lost."""
        finished_at = time.time()
        finished = timed(finished, started_at, finished_at)
        applied: list[bool] = []

        def commit() -> None:
            nonlocal applied
            applied, _ = self.commit([finished])

        try:
            settle_while_leased(finished.message, commit, self._busy(finished.message))
        finally:
            self.heartbeat.drop(finished.message)
        if applied[0]:
            self.report(finished, started_at, finished_at)
        return applied[0]

    def _busy(self, message: QueueMessage) -> Callable[[float, BaseException], None]:
        def busy(left: float, error: BaseException) -> None:
            self.log(f"{error}; still trying to settle {message.id} (lease ends in {left:.0f}s)")

        return busy

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
        from localqueue.worker.loop import Loop

        loop = Loop(self, forever=forever, block=block, max_jobs=max_jobs, idle_sleep=idle_sleep)
        return loop.run()

    def close(self) -> None:
        self.heartbeat.close()


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
    from localqueue.retry.stores import attempt_store_beside, open_attempt_store

    path = config.retry_store_path
    return attempt_store_beside(queue.store) if path is None else open_attempt_store(path)


def _default_log(text: str) -> None:
    import logging

    logging.getLogger("localqueue.worker").warning("%s", text)
