"""Choosing an attempt store from a path or URL, with clear errors for missing extras."""

from __future__ import annotations

import os

from localqueue.errors import StoreError
from localqueue.retry.base import AttemptStore

__all__ = ["lmdb_attempt_store", "open_attempt_store"]


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


def open_attempt_store(path: str | os.PathLike[str], **options: object) -> AttemptStore:
    """Open the attempt store ``path`` names, the way the CLI's ``retry_store_path`` does.

    * ``postgresql://...`` (or ``postgres://``): PostgresAttemptStore (``localqueue[postgres]``);
    * ``lmdb://DIR``: LMDBAttemptStore on the environment directory DIR (``localqueue[lmdb]``);
    * anything else: a SQLite file (``options`` such as ``durability`` apply to it).
    """
    from localqueue.backends import backend_of

    kind, where = backend_of(path)
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
