"""Choosing an attempt store from a path or URL, or the one beside a queue store, with clear
errors for missing extras."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from localqueue.backends import StoreAddress
from localqueue.errors import StoreError
from localqueue.retry.base import AttemptStore

if TYPE_CHECKING:
    from localqueue.stores.base import QueueStore

__all__ = ["attempt_store_beside", "lmdb_attempt_store", "open_attempt_store"]


def lmdb_attempt_store(path: str | os.PathLike[str]) -> AttemptStore:
    """An LMDBAttemptStore on the directory ``path``; StoreError without ``localqueue[lmdb]``."""
    try:
        from localqueue.retry.lmdb import LMDBAttemptStore
    except ImportError as exc:
        raise StoreError(
            f"{os.fspath(path)}: the LMDB attempt store needs the lmdb package;"
            " install it with: pip install 'localqueue[lmdb]'"
        ) from exc
    return LMDBAttemptStore(path)


def open_attempt_store(
    path: str | os.PathLike[str] | StoreAddress, **options: object
) -> AttemptStore:
    """Open the attempt store ``path`` (or its parsed :class:`StoreAddress`) names, the
    way the CLI's ``retry_store_path`` does.

    * ``postgresql://...`` (or ``postgres://``): PostgresAttemptStore (``localqueue[postgres]``);
    * ``lmdb://DIR``: LMDBAttemptStore on the environment directory DIR (``localqueue[lmdb]``;
      a queue store's environment keeps the counts beside its queues);
    * anything else: a SQLite file (``options`` such as ``durability`` apply to it).
    """
    kind, where = StoreAddress.parse(path)
    if kind == "postgres":
        try:
            from localqueue.retry.postgres import PostgresAttemptStore  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise StoreError(
                "the PostgreSQL attempt store needs psycopg;"
                " install it with: pip install 'localqueue[postgres]'"
            ) from exc
        store: AttemptStore = PostgresAttemptStore(where)
        return store
    if kind == "lmdb":
        return lmdb_attempt_store(where)
    from localqueue.retry.sqlite import SQLiteAttemptStore

    return SQLiteAttemptStore(where, **options)  # type: ignore[arg-type]


def attempt_store_beside(store: QueueStore, **options: object) -> AttemptStore:
    """The attempt store where workers of the queue store ``store`` count attempts when
    they are given none: the one its address derives (:meth:`StoreAddress.attempts`:
    ``localqueue_retries.sqlite3`` beside a SQLite file, the LMDB environment itself, the
    PostgreSQL schema itself). A MemoryAttemptStore for a MemoryQueueStore; for a store
    of your own without an ``address``, ``./localqueue_retries.sqlite3``."""
    address = store.address
    if address is not None:
        return open_attempt_store(address.attempts(), **options)
    from localqueue.stores.memory import MemoryQueueStore

    if isinstance(store, MemoryQueueStore):
        from localqueue.retry.memory import MemoryAttemptStore

        return MemoryAttemptStore()
    from localqueue.retry.sqlite import SQLiteAttemptStore

    return SQLiteAttemptStore(**options)  # type: ignore[arg-type]
