"""``persistent_worker`` and ``persistent_async_worker``: one message per call.

Calling a decorated handler with no arguments leases the next message and runs the
handler on ``message.value`` with the engine of :mod:`localqueue.worker.engine`, retrying
in-process (Tenacity's waits sleep while the heartbeat keeps the lease):

* success acks the message and returns the handler's result;
* a final failure (budget spent: :class:`~localqueue.retry.PersistentRetryExhausted`, or
  an exception ``retry`` does not retry: that exception) dead-letters the message (or
  releases it with ``dead_letter_on_failure=False``) with the handler's own last error
  as ``last_error``, forgets the key, and re-raises;
* an interrupt (Ctrl-C, ``SystemExit``, a cancelled task) or a failing attempt store
  gives the message back (it was not the handler's verdict) and propagates;
* if the lease is lost anyway, the message is neither acked nor settled: LeaseLostError.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, ParamSpec, Protocol, TypeVar

from localqueue._signals import start_quietly
from localqueue.errors import Empty, LeaseLostError
from localqueue.message import QueueMessage
from localqueue.queue import PersistentQueue
from localqueue.worker.config import PersistentWorkerConfig
from localqueue.worker.engine import Finished, Worker

__all__ = ["WorkerDecorated", "persistent_async_worker", "persistent_worker"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class WorkerDecorated(Protocol[P, R_co]):
    """A handler decorated as a worker. Call it (with any extra arguments for the
    handler) to lease and process one message; ``handle(message, ...)`` processes a
    message already leased; ``worker`` is its :class:`~localqueue.Worker`."""

    worker: Worker

    def __call__(self, *args: Any, **kwargs: Any) -> R_co: ...

    def handle(self, message: QueueMessage, *args: Any, **kwargs: Any) -> R_co: ...


def _conclude(worker: Worker, finished: Finished, started_at: float) -> Any:
    """Settle a message the decorated handler is done with; return or raise as the
    handler did."""
    message = finished.message
    lost = LeaseLostError(
        f"message {message.id} of queue {worker.queue.name!r}: the lease was lost"
        " while the handler ran; it was not acked"
    )
    if finished.outcome is None:
        worker.heartbeat.drop(message)
        raise lost from finished.error
    if not worker.settle_one(finished, started_at):
        raise lost from finished.error
    worker.attempt_store.clear(message.id)  # done with, or its fate is the queue's now
    if finished.error is not None:
        raise finished.error
    return finished.result


def _give_back(worker: Worker, message: QueueMessage) -> None:
    """An interrupt or a failing attempt store: not the handler's verdict on this
    message, so release it (best effort: else its lease expires and it comes back)."""
    worker.heartbeat.drop(message)
    with contextlib.suppress(Exception):
        worker.queue.release(message)


def persistent_worker(
    queue: PersistentQueue, config: PersistentWorkerConfig | None = None, **overrides: Any
) -> Callable[[Callable[..., R]], WorkerDecorated[..., R]]:
    """Decorate ``handler(value, ...)`` as a worker of ``queue``.

    ``overrides`` replace fields of ``config`` (``dead_letter_on_failure=False``...).
    """
    config = replace(config or PersistentWorkerConfig(), **overrides)

    def decorate(handler: Callable[..., R]) -> WorkerDecorated[..., R]:
        if inspect.iscoroutinefunction(handler):
            raise TypeError(
                f"{handler.__qualname__} is a coroutine function: use persistent_async_worker"
            )
        worker = Worker(queue, handler, config, retry_in_process=True)

        def handle(message: QueueMessage, *args: Any, **kwargs: Any) -> R:
            started_at = time.time()
            try:
                [record] = worker.count([message])
                worker.heartbeat.hold(message)
                finished = worker.execute(message, record, args, kwargs)
            except BaseException:
                _give_back(worker, message)
                raise
            result: R = _conclude(worker, finished, started_at)
            return result

        @functools.wraps(handler)
        def run_next(*args: Any, **kwargs: Any) -> R:
            worker.attempt_store  # noqa: B018 - open it first: a broken store leases nothing
            config = worker.config
            message = queue.get_message(config.block, config.timeout, leased_by=config.worker_id)
            return handle(message, *args, **kwargs)

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
    config = replace(config or PersistentWorkerConfig(), **overrides)

    def decorate(handler: Callable[..., Awaitable[R]]) -> WorkerDecorated[..., Awaitable[R]]:
        worker = Worker(queue, handler, config, retry_in_process=True)

        async def handle(message: QueueMessage, *args: Any, **kwargs: Any) -> R:
            started_at = time.time()
            try:
                [record] = await asyncio.to_thread(worker.count, [message])
                worker.heartbeat.hold(message)
                finished = await worker.execute_async(message, record, args, kwargs)
            except BaseException:
                # Shielded: a cancelled task still gives its message back.
                await asyncio.shield(asyncio.to_thread(_give_back, worker, message))
                raise
            result: R = await asyncio.to_thread(_conclude, worker, finished, started_at)
            return result

        @functools.wraps(handler)
        async def run_next(*args: Any, **kwargs: Any) -> R:
            await asyncio.to_thread(lambda: worker.attempt_store)  # a broken store leases nothing
            return await handle(await _lease(worker), *args, **kwargs)

        run_next.handle = handle  # type: ignore[attr-defined]
        run_next.worker = worker  # type: ignore[attr-defined]
        return run_next  # type: ignore[return-value]

    return decorate


async def _lease(worker: Worker) -> QueueMessage:
    """Lease without parking a thread forever: block in slices of at most a second, so a
    cancelled task stops waiting soon after."""
    config = worker.config
    if not config.block:
        return await _lease_once(worker, False, None)
    loop = asyncio.get_running_loop()
    deadline = None if config.timeout is None else loop.time() + config.timeout
    while True:
        slice_ = 1.0 if deadline is None else max(0.0, min(1.0, deadline - loop.time()))
        try:
            return await _lease_once(worker, True, slice_)
        except Empty:
            if deadline is not None and loop.time() >= deadline:
                raise


async def _lease_once(worker: Worker, block: bool, timeout: float | None) -> QueueMessage:
    """One ``get_message`` in a thread. A task cancelled meanwhile cannot stop that
    thread: whatever it leases is released, not left to wait out its lease (by the
    thread, when it sees the cancel; else once its result arrives)."""
    cancelled = threading.Event()

    def lease() -> QueueMessage:
        message = worker.queue.get_message(block, timeout, leased_by=worker.config.worker_id)
        if cancelled.is_set():
            _give_back(worker, message)
            raise Empty
        return message

    # A future, not a task: asyncio.run's end cancels tasks, not what a thread computes.
    future = asyncio.get_running_loop().run_in_executor(None, lease)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        cancelled.set()
        future.add_done_callback(functools.partial(_release_leased, worker))
        raise


def _release_leased(worker: Worker, lease: asyncio.Future[QueueMessage]) -> None:
    if lease.cancelled() or lease.exception() is not None:
        return  # nothing leased, or the thread gave it back itself
    # A thread of its own: the loop's executor may be shutting down (asyncio.run ends).
    start_quietly(threading.Thread(target=_give_back, args=(worker, lease.result())))
