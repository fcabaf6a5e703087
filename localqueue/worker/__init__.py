"""Queue workers: one engine (:class:`Worker`), run N handlers at a time, and the
decorators that run it one message per call (:func:`persistent_worker`,
:func:`persistent_async_worker`). ``queue process`` and ``queue exec`` are its clients."""

from localqueue.worker.config import PersistentWorkerConfig
from localqueue.worker.decorators import (
    WorkerDecorated,
    persistent_async_worker,
    persistent_worker,
)
from localqueue.worker.engine import Cancelled, Finished, JobFailed, RunSummary, Settled, Worker

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
