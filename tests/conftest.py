"""Shared fixtures: one ``store`` fixture parametrised over every queue backend.

Backends register a factory in ``STORE_FACTORIES``. A backend whose dependency or server
is missing skips with the reason, except in CI (``CI=true``), where a skip would hide a
broken backend and therefore fails instead. ``clock`` makes time pass for that store
without a test ever sleeping where the store takes a fake clock.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localqueue.stores.base import QueueStore

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip a test whose backend is missing here; in CI, fail instead."""
    if IN_CI:
        pytest.fail(f"backend unavailable in CI: {reason}")
    pytest.skip(reason)


def postgres_url() -> str:
    """The test server's URL; skips (fails in CI) when it is not configured."""
    url = os.environ.get("LOCALQUEUE_TEST_POSTGRES_URL")
    if not url:
        unavailable("LOCALQUEUE_TEST_POSTGRES_URL is not set (a PostgreSQL server to test against)")
    return str(url)


def fresh_schema() -> str:
    """A schema name no other test uses, so runs never collide."""
    return f"lq_test_{uuid.uuid4().hex[:12]}"


def dispose(store: object) -> None:
    """Close a store made by a factory; a PostgreSQL one also drops its test schema."""
    drop = getattr(store, "drop_schema", None)
    if callable(drop):
        drop()
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _sqlite(tmp_path: Path) -> QueueStore:
    from localqueue.stores.sqlite import SQLiteQueueStore

    return SQLiteQueueStore(tmp_path / "queue.sqlite3")


def _memory(tmp_path: Path) -> QueueStore:
    from localqueue.stores.memory import MemoryQueueStore

    return MemoryQueueStore()


def _lmdb(tmp_path: Path) -> QueueStore:
    try:
        from localqueue.stores.lmdb import LMDBQueueStore
    except ImportError as exc:
        unavailable(f"LMDB backend not importable: {exc}")
    return LMDBQueueStore(tmp_path / "queue.lmdb")


def _postgres(tmp_path: Path) -> QueueStore:
    url = postgres_url()
    try:
        from localqueue.stores.postgres import PostgresQueueStore
    except ImportError as exc:
        unavailable(f"PostgreSQL backend not importable: {exc}")
    return PostgresQueueStore(url, schema=fresh_schema())  # type: ignore[call-arg]


STORE_FACTORIES: dict[str, Callable[[Path], QueueStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "lmdb": _lmdb,
    "postgres": _postgres,
}


@pytest.fixture(params=list(STORE_FACTORIES))
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(store_kind: str, tmp_path: Path) -> Iterator[QueueStore]:
    created = STORE_FACTORIES[store_kind](tmp_path)
    try:
        yield created
    finally:
        dispose(created)


class FakeClock:
    """A store clock that stands still until a test moves it. It starts far from the
    real time (2033), so a store reading ``time.time()`` instead of its ``clock`` would
    give itself away."""

    def __init__(self, start: float = 2_000_000_000.0) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


class ServerClock:
    """The clock of a store that reads its server's time (PostgreSQL's ``now()``), which
    no test can move: ``advance`` waits until the store's own clock has moved on that
    far, within a deadline."""

    def __init__(self, store: QueueStore) -> None:
        self.store = store

    def now(self) -> float:
        return self.store.clock()

    def advance(self, seconds: float) -> None:
        target = self.now() + seconds
        deadline = time.monotonic() + seconds + 30
        while (left := target - self.now()) > 0:
            if time.monotonic() > deadline:
                pytest.fail(f"{self.store!r}: its clock did not move {seconds} s on in time")
            time.sleep(min(left, 1.0))


Clock = FakeClock | ServerClock

#: Stores that read every time through ``QueueStore.clock``, so a test can set a fake
#: one. The others (PostgreSQL: the server's ``now()``) are waited on in real time.
FAKE_CLOCK_STORES = {"sqlite", "memory", "lmdb"}


@pytest.fixture
def clock(store_kind: str, store: QueueStore) -> Clock:
    """Time passing for ``store``, written the same for every store: ``clock.advance(s)``
    moves a FakeClock set on the store, or waits ``s`` on the server's clock."""
    if store_kind not in FAKE_CLOCK_STORES:
        return ServerClock(store)
    fake = FakeClock()
    store.clock = fake
    return fake
