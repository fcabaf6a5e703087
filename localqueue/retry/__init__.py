"""localqueue.retry: Tenacity retries whose budget survives process restarts.

Every persistent retry has an explicit key; the attempt count and the wall-clock time of
the key's first attempt live in an attempt store (SQLite by default, LMDB or memory), are
written *before* each attempt runs, and are read back into Tenacity's own ``stop`` /
``wait`` / ``retry`` strategies. The LMDB store loads on first use, so this package
imports without the ``lmdb`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from localqueue.retry.base import AttemptRecord, AttemptStore
from localqueue.retry.errors import PersistentRetryExhausted, RecordedAttemptError
from localqueue.retry.keys import idempotency_key_from_id, key_from_argument, key_from_attr
from localqueue.retry.memory import MemoryAttemptStore
from localqueue.retry.retrying import (
    PersistentAsyncRetrying,
    PersistentRetryDecorated,
    PersistentRetrying,
    persistent_async_retry,
    persistent_retry,
)
from localqueue.retry.sqlite import SQLiteAttemptStore
from localqueue.retry.stores import open_attempt_store

if TYPE_CHECKING:
    from localqueue.retry.lmdb import LMDBAttemptStore

__all__ = [
    # stores
    "AttemptRecord",
    "AttemptStore",
    "LMDBAttemptStore",
    "MemoryAttemptStore",
    # retryers
    "PersistentAsyncRetrying",
    "PersistentRetryDecorated",
    # errors
    "PersistentRetryExhausted",
    "PersistentRetrying",
    "RecordedAttemptError",
    "SQLiteAttemptStore",
    # keys
    "idempotency_key_from_id",
    "key_from_argument",
    "key_from_attr",
    "open_attempt_store",
    "persistent_async_retry",
    "persistent_retry",
]


def __getattr__(name: str) -> Any:
    if name != "LMDBAttemptStore":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from localqueue.retry.lmdb import LMDBAttemptStore

    globals()[name] = LMDBAttemptStore
    return LMDBAttemptStore
