"""The ``attempt_store`` fixture, parametrised over every attempt-store backend.

Like ``tests/conftest.py``: backends register a factory in ``ATTEMPT_STORE_FACTORIES``;
a backend whose dependency or server is missing skips with the reason, except in CI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localqueue.retry.base import AttemptStore
from tests.conftest import dispose, fresh_schema, postgres_url, unavailable


def _sqlite(tmp_path: Path) -> AttemptStore:
    from localqueue.retry.sqlite import SQLiteAttemptStore

    return SQLiteAttemptStore(tmp_path / "retries.sqlite3")


def _memory(tmp_path: Path) -> AttemptStore:
    from localqueue.retry.memory import MemoryAttemptStore

    return MemoryAttemptStore()


def _lmdb(tmp_path: Path) -> AttemptStore:
    try:
        from localqueue.retry.lmdb import LMDBAttemptStore
    except ImportError as exc:
        unavailable(f"LMDB attempt store not importable: {exc}")
    return LMDBAttemptStore(tmp_path / "retries.lmdb")


def _lmdb_beside_queues(tmp_path: Path) -> AttemptStore:
    """In a queue store's environment, where workers keep their budgets by default."""
    try:
        from localqueue.retry.lmdb import LMDBAttemptStore
        from localqueue.stores.lmdb import LMDBQueueStore
    except ImportError as exc:
        unavailable(f"LMDB attempt store not importable: {exc}")
    LMDBQueueStore(tmp_path / "queue.lmdb").close()
    return LMDBAttemptStore(tmp_path / "queue.lmdb")


def _postgres(tmp_path: Path) -> AttemptStore:
    url = postgres_url()
    try:
        from localqueue.retry.postgres import (  # type: ignore[import-not-found,unused-ignore]
            PostgresAttemptStore,
        )
    except ImportError as exc:
        unavailable(f"PostgreSQL attempt store not importable: {exc}")
    store: AttemptStore = PostgresAttemptStore(url, schema=fresh_schema())
    return store


ATTEMPT_STORE_FACTORIES: dict[str, Callable[[Path], AttemptStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "lmdb": _lmdb,
    "lmdb-beside-queues": _lmdb_beside_queues,
    "postgres": _postgres,
}

#: Backends whose records outlive the process (and are shared between processes).
PERSISTENT_KINDS = ("sqlite", "lmdb", "lmdb-beside-queues", "postgres")


@pytest.fixture(params=list(ATTEMPT_STORE_FACTORIES))
def attempt_store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def attempt_store(attempt_store_kind: str, tmp_path: Path) -> Iterator[AttemptStore]:
    created = ATTEMPT_STORE_FACTORIES[attempt_store_kind](tmp_path)
    try:
        yield created
    finally:
        dispose(created)
