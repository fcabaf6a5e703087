"""localqueue: a durable local job queue with persistent retries and dead letters.

The queue API is imported eagerly (it is small); the worker decorators and the optional
store backends load on first use, so ``import localqueue`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from localqueue.errors import (
    Empty,
    Full,
    InvalidQueueNameError,
    LeaseLostError,
    LocalQueueError,
    MessageNotFoundError,
    StoreError,
    StoreLockedError,
)
from localqueue.message import QueueMessage, QueueStats
from localqueue.queue import PersistentQueue

if TYPE_CHECKING:
    from localqueue.stores.lmdb import LMDBQueueStore
    from localqueue.stores.memory import MemoryQueueStore
    from localqueue.stores.postgres import PostgresQueueStore
    from localqueue.stores.sqlite import SQLiteQueueStore
    from localqueue.worker import (
        PersistentWorkerConfig,
        persistent_async_worker,
        persistent_worker,
    )

__version__ = "0.3.0"

__all__ = [
    # errors
    "Empty",
    "Full",
    "InvalidQueueNameError",
    # stores
    "LMDBQueueStore",
    "LeaseLostError",
    "LocalQueueError",
    "MemoryQueueStore",
    "MessageNotFoundError",
    # queue
    "PersistentQueue",
    # workers
    "PersistentWorkerConfig",
    "PostgresQueueStore",
    "QueueMessage",
    "QueueStats",
    "SQLiteQueueStore",
    "StoreError",
    "StoreLockedError",
    "__version__",
    "persistent_async_worker",
    "persistent_worker",
]

_LAZY = {
    "SQLiteQueueStore": "localqueue.stores.sqlite",
    "MemoryQueueStore": "localqueue.stores.memory",
    "LMDBQueueStore": "localqueue.stores.lmdb",
    "PostgresQueueStore": "localqueue.stores.postgres",
    "PersistentWorkerConfig": "localqueue.worker",
    "persistent_worker": "localqueue.worker",
    "persistent_async_worker": "localqueue.worker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
