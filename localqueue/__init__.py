"""localqueue: a durable local job queue with persistent retries and dead letters.

Every public name loads on first use (PEP 562): ``import localqueue`` costs almost
nothing, and each ``localqueue`` command imports only the modules it runs. The names and
where they live are listed once, in ``_LAZY``.
"""

from __future__ import annotations

from localqueue._lazy import lazy_exports

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from localqueue.errors import (
        Empty,
        Full,
        InvalidQueueNameError,
        KeyHeldError,
        LeaseLostError,
        LocalQueueError,
        MessageNotFoundError,
        StoreError,
        StoreLockedError,
    )
    from localqueue.message import QueueMessage, QueueSettings, QueueStats
    from localqueue.outcome import Outcome
    from localqueue.queue import PersistentQueue
    from localqueue.stores.lmdb import LMDBQueueStore
    from localqueue.stores.memory import MemoryQueueStore
    from localqueue.stores.postgres import PostgresQueueStore
    from localqueue.stores.sqlite import SQLiteQueueStore
    from localqueue.worker import (
        JobFailed,
        PersistentWorkerConfig,
        RunSummary,
        Worker,
        persistent_async_worker,
        persistent_worker,
    )

__version__ = "0.3.0"

__all__ = [
    "Empty",
    "Full",
    "InvalidQueueNameError",
    "JobFailed",
    "KeyHeldError",
    "LMDBQueueStore",
    "LeaseLostError",
    "LocalQueueError",
    "MemoryQueueStore",
    "MessageNotFoundError",
    "Outcome",
    "PersistentQueue",
    "PersistentWorkerConfig",
    "PostgresQueueStore",
    "QueueMessage",
    "QueueSettings",
    "QueueStats",
    "RunSummary",
    "SQLiteQueueStore",
    "StoreError",
    "StoreLockedError",
    "Worker",
    "__version__",
    "persistent_async_worker",
    "persistent_worker",
]

_LAZY = {
    # the queue and its messages
    "PersistentQueue": "localqueue.queue",
    "Outcome": "localqueue.outcome",
    "QueueMessage": "localqueue.message",
    "QueueSettings": "localqueue.message",
    "QueueStats": "localqueue.message",
    # errors
    "Empty": "localqueue.errors",
    "Full": "localqueue.errors",
    "InvalidQueueNameError": "localqueue.errors",
    "KeyHeldError": "localqueue.errors",
    "LeaseLostError": "localqueue.errors",
    "LocalQueueError": "localqueue.errors",
    "MessageNotFoundError": "localqueue.errors",
    "StoreError": "localqueue.errors",
    "StoreLockedError": "localqueue.errors",
    # stores
    "SQLiteQueueStore": "localqueue.stores.sqlite",
    "MemoryQueueStore": "localqueue.stores.memory",
    "LMDBQueueStore": "localqueue.stores.lmdb",
    "PostgresQueueStore": "localqueue.stores.postgres",
    # workers
    "PersistentWorkerConfig": "localqueue.worker",
    "Worker": "localqueue.worker",
    "RunSummary": "localqueue.worker",
    "JobFailed": "localqueue.worker",
    "persistent_worker": "localqueue.worker",
    "persistent_async_worker": "localqueue.worker",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
