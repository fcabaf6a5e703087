"""localqueue.retry: Tenacity retries whose budget survives process restarts.

Every persistent retry has an explicit key; the attempt count and the wall-clock time of
the key's first attempt live in an attempt store (SQLite by default, LMDB or memory), are
written *before* each attempt runs, and are read back into Tenacity's own ``stop`` /
``wait`` / ``retry`` strategies. The LMDB store loads on first use, so this package
imports without the ``lmdb`` extra.

Every name loads on first use (PEP 562): the CLI workers open an attempt store without
paying for Tenacity and asyncio (30 ms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from localqueue._lazy import lazy_exports

if TYPE_CHECKING:
    from localqueue.retry.base import AttemptRecord, AttemptStore
    from localqueue.retry.errors import (
        NestedRetryError,
        PersistentRetryExhausted,
        RecordedAttemptError,
    )
    from localqueue.retry.keys import idempotency_key_from_id, key_from_argument, key_from_attr
    from localqueue.retry.lmdb import LMDBAttemptStore
    from localqueue.retry.memory import MemoryAttemptStore
    from localqueue.retry.retrying import (
        PersistentAsyncRetrying,
        PersistentRetryDecorated,
        PersistentRetrying,
        persistent_async_retry,
        persistent_retry,
    )
    from localqueue.retry.sqlite import SQLiteAttemptStore
    from localqueue.retry.stores import attempt_store_beside, open_attempt_store

__all__ = [
    # stores
    "AttemptRecord",
    "AttemptStore",
    "LMDBAttemptStore",
    "MemoryAttemptStore",
    "NestedRetryError",
    # retryers
    "PersistentAsyncRetrying",
    "PersistentRetryDecorated",
    # errors
    "PersistentRetryExhausted",
    "PersistentRetrying",
    "RecordedAttemptError",
    "SQLiteAttemptStore",
    "attempt_store_beside",
    # keys
    "idempotency_key_from_id",
    "key_from_argument",
    "key_from_attr",
    "open_attempt_store",
    "persistent_async_retry",
    "persistent_retry",
]

_LAZY = {
    "AttemptRecord": "localqueue.retry.base",
    "AttemptStore": "localqueue.retry.base",
    "NestedRetryError": "localqueue.retry.errors",
    "PersistentRetryExhausted": "localqueue.retry.errors",
    "RecordedAttemptError": "localqueue.retry.errors",
    "idempotency_key_from_id": "localqueue.retry.keys",
    "key_from_argument": "localqueue.retry.keys",
    "key_from_attr": "localqueue.retry.keys",
    "LMDBAttemptStore": "localqueue.retry.lmdb",
    "MemoryAttemptStore": "localqueue.retry.memory",
    "PersistentAsyncRetrying": "localqueue.retry.retrying",
    "PersistentRetryDecorated": "localqueue.retry.retrying",
    "PersistentRetrying": "localqueue.retry.retrying",
    "persistent_async_retry": "localqueue.retry.retrying",
    "persistent_retry": "localqueue.retry.retrying",
    "SQLiteAttemptStore": "localqueue.retry.sqlite",
    "attempt_store_beside": "localqueue.retry.stores",
    "open_attempt_store": "localqueue.retry.stores",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
