"""Queue workers: one engine (:class:`Worker`), run N handlers at a time, and the
decorators that run it one message per call (:func:`persistent_worker`,
:func:`persistent_async_worker`). ``queue process`` and ``queue exec`` are its clients.

Names load on first use: a ``queue exec`` worker never imports the decorators (and
asyncio with them: 28 ms of its start-up)."""

from typing import TYPE_CHECKING

from localqueue._lazy import lazy_exports

if TYPE_CHECKING:
    from localqueue.worker.config import PersistentWorkerConfig
    from localqueue.worker.decorators import (
        WorkerDecorated,
        persistent_async_worker,
        persistent_worker,
    )
    from localqueue.worker.engine import (
        Cancelled,
        Finished,
        JobFailed,
        RunSummary,
        Settled,
        Worker,
    )

__all__ = [
    "Cancelled",
    "Finished",
    "JobFailed",
    "PersistentWorkerConfig",
    "RunSummary",
    "Settled",
    "Worker",
    "WorkerDecorated",
    "persistent_async_worker",
    "persistent_worker",
]

_LAZY = {
    "PersistentWorkerConfig": "localqueue.worker.config",
    "WorkerDecorated": "localqueue.worker.decorators",
    "persistent_async_worker": "localqueue.worker.decorators",
    "persistent_worker": "localqueue.worker.decorators",
    **dict.fromkeys(
        ("Cancelled", "Finished", "JobFailed", "RunSummary", "Settled", "Worker"),
        "localqueue.worker.engine",
    ),
}

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
