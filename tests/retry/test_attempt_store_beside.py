"""A worker given a queue but no attempt store counts attempts with the queue's store
(``attempt_store_beside``): every worker of the store spends one budget per message,
whatever directory it runs in, and none writes to its working directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localqueue import PersistentQueue, Worker
from localqueue.backends import StoreAddress
from localqueue.retry import attempt_store_beside
from localqueue.stores import open_store
from tests.conftest import dispose, fresh_schema, postgres_url, unavailable


@pytest.fixture(params=["sqlite", "lmdb", "postgres"])
def address(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreAddress]:
    """A store that exists, in a directory no worker runs in."""
    if request.param == "sqlite":
        (tmp_path / "app").mkdir()
        where = str(tmp_path / "app" / "q.sqlite3")
    elif request.param == "lmdb":
        try:
            import lmdb  # noqa: F401
        except ImportError as exc:
            unavailable(f"lmdb is missing: {exc}")
        where = f"lmdb://{tmp_path / 'app.lmdb'}"
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            unavailable(f"psycopg is missing: {exc}")
        where = f"{postgres_url()}?schema={fresh_schema()}"
    store = open_store(where)
    yield StoreAddress.parse(where)
    dispose(store)


def fail(value: Any) -> None:
    raise RuntimeError(f"poison {value}")


def one_delivery(address: StoreAddress, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """One worker, as a new program started in ``cwd`` would make it, handles one message."""
    monkeypatch.chdir(cwd)
    queue = PersistentQueue("jobs", store=open_store(address))
    worker = Worker(queue, fail, max_tries=2)
    try:
        return worker.run(max_jobs=1)
    finally:
        worker.attempt_store.close()
        queue.close()


def test_workers_in_two_directories_spend_one_budget(
    address: StoreAddress, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    with PersistentQueue("jobs", store=open_store(address)) as queue:
        message = queue.put("m")
    first = one_delivery(address, a, monkeypatch)
    assert (first.released, first.dead) == (1, 0)
    second = one_delivery(address, b, monkeypatch)
    assert (second.released, second.dead) == (0, 1)  # attempt 2 of 2: the same budget
    with PersistentQueue("jobs", store=open_store(address)) as queue:
        dead = queue.inspect(message.id)
        assert dead is not None and dead.state == "dead" and dead.attempts == 2
    assert os.listdir(a) == [] and os.listdir(b) == []


def test_the_attempt_store_is_the_queue_stores_own(address: StoreAddress) -> None:
    store = open_store(address)
    attempts = attempt_store_beside(store)
    try:
        attempts.record_attempt("k", 1.0)
        if address.kind == "sqlite":
            assert Path(address.where).with_name("localqueue_retries.sqlite3").is_file()
        else:  # the LMDB environment, the PostgreSQL schema: reopened by the same address
            reopened = open_store(address)
            again = attempt_store_beside(reopened)
            record = again.get("k")
            again.close()
            reopened.close()
            assert record is not None and record.attempts == 1
    finally:
        attempts.close()
        store.close()
