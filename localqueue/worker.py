"""Queue workers: ``persistent_worker`` and ``persistent_async_worker``.

Calling a decorated handler with no arguments leases the next message and runs the
handler on ``message.value`` under a persistent retry budget keyed by the message id:

* success acks the message and returns the handler's result;
* a final failure (budget spent, or an exception ``retry`` does not retry) dead-letters
  the message (or releases it with ``dead_letter_on_failure=False``) with the handler's
  own last error as ``last_error``, forgets the key, and re-raises;
* attempts are counted in the attempt store *before* the handler runs, so a handler that
  kills its process every time still ends in the dead letters after ``max_tries``
  deliveries (poison-message protection);
* a heartbeat thread extends the lease every third of ``lease_timeout`` while the handler
  runs or waits between retries, so a long job is never handed to a second worker. If
  the lease is lost anyway, the worker neither acks nor settles the message; it raises
  LeaseLostError.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, Protocol, TypeVar

import tenacity

from localqueue._signals import start_quietly
from localqueue.errors import Empty, LeaseLostError, StoreError, StoreLockedError
from localqueue.message import QueueMessage
from localqueue.queue import PersistentQueue, settle_while_leased
from localqueue.retry.base import AttemptStore
from localqueue.retry.errors import PersistentRetryExhausted, RecordedAttemptError
from localqueue.retry.retrying import PersistentAsyncRetrying, PersistentRetrying

__all__ = [
    "PersistentWorkerConfig",
    "QueueWorker",
    "persistent_async_worker",
    "persistent_worker",
]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True, slots=True)
class PersistentWorkerConfig:
    """How a decorated worker retries and settles messages.

    ``max_tries`` attempts per message (counted across deliveries and restarts), combined
    with ``stop`` when both are given (whichever stops first). ``wait`` and ``retry`` are
    Tenacity strategies (default: retry any Exception, no wait). ``release_delay`` applies
    when ``dead_letter_on_failure`` is false. ``lease_timeout`` defaults to the queue's.
    The attempt store is ``retry_store``, else ``retry_store_path`` (a SQLite file,
    ``lmdb://DIR`` or ``postgresql://...``), else ``./localqueue_retries.sqlite3`` (a
    MemoryAttemptStore when the queue itself lives in memory). ``block`` / ``timeout``
    apply to leasing: with nothing to lease, ``queue.Empty`` is raised.
    """

    max_tries: int | None = 3
    wait: Any = None
    retry: Any = None
    stop: Any = None
    dead_letter_on_failure: bool = True
    release_delay: float = 0.0
    lease_timeout: float | None = None
    retry_store: AttemptStore | None = None
    retry_store_path: str | os.PathLike[str] | None = None
    worker_id: str | None = None
    block: bool = True
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.max_tries is not None and (
            isinstance(self.max_tries, bool) or not isinstance(self.max_tries, int)
        ):
            raise TypeError(f"max_tries must be an int, got {self.max_tries!r}")
        if self.max_tries is not None and self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {self.max_tries!r}")
        if self.max_tries is None and self.stop is None:
            raise ValueError("give max_tries or a stop strategy: a worker needs a retry budget")
        if self.release_delay < 0:
            raise ValueError(f"release_delay must be >= 0, got {self.release_delay!r}")
        if self.lease_timeout is not None and self.lease_timeout <= 0:
            raise ValueError(f"lease_timeout must be > 0, got {self.lease_timeout!r}")
        if self.timeout is not None and self.timeout < 0:
            raise ValueError(f"timeout must be >= 0, got {self.timeout!r}")
        if self.retry_store is not None and self.retry_store_path is not None:
            raise ValueError("pass either retry_store or retry_store_path, not both")

    def stop_strategy(self) -> Any:
        """``stop_after_attempt(max_tries)``, ``stop``, or either one of them."""
        if self.max_tries is None:
            return self.stop
        by_tries = tenacity.stop_after_attempt(self.max_tries)
        return by_tries if self.stop is None else tenacity.stop_any(by_tries, self.stop)


class _Heartbeat:
    """Extends a message's lease from a thread until stopped; notices a lost lease."""

    def __init__(self, queue: PersistentQueue, message: QueueMessage, lease_timeout: float):
        self.queue = queue
        self.message = message
        self.lease_timeout = lease_timeout
        self.interval = lease_timeout / 3
        self.lost = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"localqueue-heartbeat-{message.id}", daemon=True
        )

    def start(self) -> None:
        start_quietly(self._thread)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.queue.extend_lease(self.message, self.lease_timeout)
            except LeaseLostError:
                self.lost.set()
                return
            except Exception:  # noqa: S112 - a busy store: try again at the next beat
                continue

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def lease_lost(self) -> LeaseLostError:
        return LeaseLostError(
            f"message {self.message.id} of queue {self.queue.name!r}: the lease was lost"
            " while the handler ran; it was not acked"
        )

    def sleep(self, seconds: float) -> None:
        """Tenacity's sleep between attempts: stops early when the lease is lost."""
        if self.lost.wait(seconds):
            raise self.lease_lost()

    async def async_sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.lost.is_set():
            raise self.lease_lost()


def _last_error(exc: BaseException) -> BaseException | dict[str, Any]:
    """The handler's own last error behind a final failure."""
    if isinstance(exc, PersistentRetryExhausted):
        cause = exc.__cause__
        if isinstance(cause, RecordedAttemptError) and cause.error is not None:
            return cause.error
        if cause is not None:
            return cause
    return exc


class QueueWorker:
    """The work behind a decorated handler: leasing, heartbeat, settling. Shared by the
    sync and async decorators."""

    def __init__(self, queue: PersistentQueue, config: PersistentWorkerConfig) -> None:
        self.queue = queue
        self.config = config
        self.lease_timeout = config.lease_timeout or queue.lease_timeout
        self._store = config.retry_store
        self._store_lock = threading.Lock()

    @property
    def attempt_store(self) -> AttemptStore:
        """The attempt store, opened on first use."""
        store = self._store
        if store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = self._open_store()
                store = self._store
        return store

    def _open_store(self) -> AttemptStore:
        path = self.config.retry_store_path
        if path is not None:
            from localqueue.retry.stores import open_attempt_store

            return open_attempt_store(path)
        from localqueue.stores.memory import MemoryQueueStore

        if isinstance(self.queue.store, MemoryQueueStore):
            from localqueue.retry.memory import MemoryAttemptStore

            return MemoryAttemptStore()
        from localqueue.retry.sqlite import SQLiteAttemptStore

        return SQLiteAttemptStore()

    def retry_options(self, sleep: Callable[[float], Any]) -> dict[str, Any]:
        return {
            "store": self.attempt_store,
            "stop": self.config.stop_strategy(),
            "wait": self.config.wait,
            "retry": self.config.retry,
            "sleep": sleep,
        }

    def lease(self) -> QueueMessage:
        config = self.config
        return self.queue.get_message(config.block, config.timeout, leased_by=config.worker_id)

    def begin(self, message: QueueMessage) -> _Heartbeat:
        """Take the lease to ``lease_timeout`` and start the heartbeat."""
        if self.lease_timeout != self.queue.lease_timeout:
            self.queue.extend_lease(message, self.lease_timeout)
        heartbeat = _Heartbeat(self.queue, message, self.lease_timeout)
        heartbeat.start()
        return heartbeat

    def succeed(self, message: QueueMessage, heartbeat: _Heartbeat) -> None:
        heartbeat.stop()
        if heartbeat.lost.is_set():
            raise heartbeat.lease_lost()
        settle_while_leased(message, lambda: self.queue.ack(message))

    def fail(self, message: QueueMessage, heartbeat: _Heartbeat, exc: BaseException) -> None:
        """Settle after the handler's final failure ``exc`` (the caller re-raises it)."""
        heartbeat.stop()
        if isinstance(exc, LeaseLostError):
            return
        if heartbeat.lost.is_set():
            raise heartbeat.lease_lost() from exc
        if not isinstance(exc, Exception) or isinstance(exc, StoreError | StoreLockedError):
            # Interrupted (Ctrl-C, exit, cancel) or the attempt store failed: not the
            # handler's verdict on this message, so give it back (best effort: if that
            # fails too, the lease expires and the message is delivered again).
            with contextlib.suppress(Exception):
                self.queue.release(message)
            return
        error = _last_error(exc)
        if self.config.dead_letter_on_failure:
            settle_while_leased(message, lambda: self.queue.dead_letter(message, error=error))
        else:
            delay = self.config.release_delay
            settle_while_leased(
                message, lambda: self.queue.release(message, delay=delay, error=error)
            )
        # The message's fate is in the queue now: a requeued dead letter starts afresh.
        self.attempt_store.clear(message.id)


class WorkerDecorated(Protocol[P, R_co]):
    """A handler decorated as a worker. Call it (with any extra arguments for the
    handler) to lease and process one message; ``handle(message, ...)`` processes a
    message already leased."""

    worker: QueueWorker

    def __call__(self, *args: Any, **kwargs: Any) -> R_co: ...

    def handle(self, message: QueueMessage, *args: Any, **kwargs: Any) -> R_co: ...


def _configure(
    config: PersistentWorkerConfig | None, overrides: dict[str, Any]
) -> PersistentWorkerConfig:
    return replace(config or PersistentWorkerConfig(), **overrides)


def persistent_worker(
    queue: PersistentQueue, config: PersistentWorkerConfig | None = None, **overrides: Any
) -> Callable[[Callable[..., R]], WorkerDecorated[..., R]]:
    """Decorate ``handler(value, ...)`` as a worker of ``queue``.

    ``overrides`` replace fields of ``config`` (``dead_letter_on_failure=False``...).
    """
    worker = QueueWorker(queue, _configure(config, overrides))

    def decorate(handler: Callable[..., R]) -> WorkerDecorated[..., R]:
        if inspect.iscoroutinefunction(handler):
            raise TypeError(
                f"{handler.__qualname__} is a coroutine function: use persistent_async_worker"
            )

        def handle(message: QueueMessage, *args: Any, **kwargs: Any) -> R:
            heartbeat = worker.begin(message)
            try:
                options = worker.retry_options(heartbeat.sleep)
                retrying = PersistentRetrying(key=message.id, **options)
                result = retrying.run(message.id, handler, message.value, *args, **kwargs)
            except BaseException as exc:
                worker.fail(message, heartbeat, exc)
                raise
            worker.succeed(message, heartbeat)
            return result

        @functools.wraps(handler)
        def run_next(*args: Any, **kwargs: Any) -> R:
            worker.attempt_store  # noqa: B018 - open it first: a broken store leases nothing
            return handle(worker.lease(), *args, **kwargs)

        run_next.handle = handle  # type: ignore[attr-defined]
        run_next.worker = worker  # type: ignore[attr-defined]
        return run_next  # type: ignore[return-value]

    return decorate


def persistent_async_worker(
    queue: PersistentQueue, config: PersistentWorkerConfig | None = None, **overrides: Any
) -> Callable[[Callable[..., Awaitable[R]]], WorkerDecorated[..., Awaitable[R]]]:
    """Decorate the coroutine function ``handler(value, ...)`` as a worker of ``queue``.

    Store and queue I/O run in worker threads (``asyncio.to_thread``); the event loop is
    never blocked by them. The heartbeat is a thread, so it keeps the lease even while a
    handler hogs the loop.
    """
    worker = QueueWorker(queue, _configure(config, overrides))

    def decorate(handler: Callable[..., Awaitable[R]]) -> WorkerDecorated[..., Awaitable[R]]:
        async def handle(message: QueueMessage, *args: Any, **kwargs: Any) -> R:
            heartbeat = await asyncio.to_thread(worker.begin, message)
            try:
                options = await asyncio.to_thread(worker.retry_options, heartbeat.async_sleep)
                retrying = PersistentAsyncRetrying(key=message.id, **options)
                result = await retrying.run(message.id, handler, message.value, *args, **kwargs)
            except BaseException as exc:
                await asyncio.to_thread(worker.fail, message, heartbeat, exc)
                raise
            await asyncio.to_thread(worker.succeed, message, heartbeat)
            return result

        @functools.wraps(handler)
        async def run_next(*args: Any, **kwargs: Any) -> R:
            await asyncio.to_thread(lambda: worker.attempt_store)  # a broken store leases nothing
            return await handle(await _lease(worker), *args, **kwargs)

        run_next.handle = handle  # type: ignore[attr-defined]
        run_next.worker = worker  # type: ignore[attr-defined]
        return run_next  # type: ignore[return-value]

    return decorate


async def _lease(worker: QueueWorker) -> QueueMessage:
    """Lease without parking a thread forever: block in slices of at most a second, so a
    cancelled task stops waiting soon after."""
    config = worker.config
    if not config.block:
        return await asyncio.to_thread(worker.lease)
    loop = asyncio.get_running_loop()
    deadline = None if config.timeout is None else loop.time() + config.timeout
    while True:
        slice_ = 1.0 if deadline is None else max(0.0, min(1.0, deadline - loop.time()))
        try:
            return await asyncio.to_thread(
                worker.queue.get_message, True, slice_, leased_by=config.worker_id
            )
        except Empty:
            if deadline is not None and loop.time() >= deadline:
                raise
