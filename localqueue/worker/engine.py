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

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterable
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

__all__ = ["Finished", "JobFailed", "RunSummary", "Worker"]

_LEASE_CHECK = 0.25  # a handler waiting to retry in-process looks at its lease this often


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
                verdict = self._failed(message, record, exc)
                if isinstance(verdict, Finished):
                    return verdict
                if self._lost_while_waiting(message, verdict):
                    return Finished(message, None, error=exc)
                [record] = self.count([message])
                continue
            return self._succeeded(message, result, values)

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
                verdict = self._failed(message, record, exc)
                if isinstance(verdict, Finished):
                    return verdict
                await asyncio.sleep(verdict)
                if self.heartbeat.is_lost(message):
                    return Finished(message, None, error=exc)
                [record] = await asyncio.to_thread(self.count, [message])
                continue
            return self._succeeded(message, result, values)

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

    def _succeeded(self, message: QueueMessage, result: Any, values: list[Any]) -> Finished:
        if self.heartbeat.is_lost(message):
            return Finished(message, None, result)
        return self.succeed(message, result, values)

    def _lost_while_waiting(self, message: QueueMessage, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.heartbeat.is_lost(message):
                return True
            time.sleep(min(left, _LEASE_CHECK))
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
