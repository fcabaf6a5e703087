"""How a worker retries and settles messages: :class:`PersistentWorkerConfig`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import tenacity

from localqueue.retry.base import AttemptStore

__all__ = ["PersistentWorkerConfig"]


@dataclass(frozen=True, slots=True)
class PersistentWorkerConfig:
    """How a worker retries and settles messages.

    ``max_tries`` attempts per message (counted across deliveries and restarts), combined
    with ``stop`` when both are given (whichever stops first). ``wait`` and ``retry`` are
    Tenacity strategies: ``retry`` says which failures may be tried again (default: any
    Exception), ``wait`` how long before the next attempt (default: none). When a
    message's budget is spent it is dead-lettered with the handler's own last error, or,
    with ``dead_letter_on_failure=False``, released after ``release_delay`` seconds with
    a fresh budget. ``lease_timeout`` defaults to the queue's; the worker's heartbeat
    extends every held lease each third of it.

    The attempt store is ``retry_store``, else ``retry_store_path`` (a SQLite file,
    ``lmdb://DIR`` or ``postgresql://...``), else the one kept with the queue's store
    (``localqueue.retry.attempt_store_beside``): ``localqueue_retries.sqlite3`` in a
    SQLite store's directory, the LMDB environment, the PostgreSQL schema; a
    MemoryAttemptStore when the queue itself lives in memory.

    ``concurrency`` handlers run at once in :class:`~localqueue.Worker` (threads for a
    function, tasks on one event loop for a coroutine function). ``block`` and
    ``timeout`` apply to the decorators' leasing: with nothing to lease, ``queue.Empty``
    is raised. ``to`` names the queue a handler's return value is put on, in the same
    transaction as the ack (a value, or a list of values; None puts nothing).
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
    concurrency: int = 1
    to: str | None = None

    def __post_init__(self) -> None:
        _positive_int("max_tries", self.max_tries, optional=True)
        _positive_int("concurrency", self.concurrency)
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
        if self.to is not None:
            from localqueue.codec import validate_queue_name

            validate_queue_name(self.to)

    def stop_strategy(self) -> Any:
        """``stop_after_attempt(max_tries)``, ``stop``, or either one of them."""
        if self.max_tries is None:
            return self.stop
        by_tries = tenacity.stop_after_attempt(self.max_tries)
        return by_tries if self.stop is None else tenacity.stop_any(by_tries, self.stop)

    def wait_strategy(self) -> Any:
        return tenacity.wait_none() if self.wait is None else self.wait

    def retry_strategy(self) -> Any:
        return tenacity.retry_if_exception_type() if self.retry is None else self.retry


def _positive_int(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
