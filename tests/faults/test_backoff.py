"""A long-running worker whose store starts failing while it runs (damage or disk trouble
found mid-run) backs off and tries again instead of spinning on the error; a store file
deleted or replaced under it still stops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from localqueue import PersistentQueue, StoreError
from localqueue.errors import StoreReplacedError
from localqueue.retry import SQLiteAttemptStore
from localqueue.stores.sqlite import SQLiteQueueStore
from localqueue.worker import Worker


class FailingStore(SQLiteQueueStore):
    """A real SQLite store whose next leases fail the way a damaged file does."""

    def __init__(self, path: Path, failures: list[Exception]) -> None:
        super().__init__(path)
        self.failures = failures
        self.leases = 0

    def lease_many(self, queue: str, n: int, *, lease_timeout: float, leased_by: str | None):  # type: ignore[no-untyped-def]
        self.leases += 1
        if self.failures:
            raise self.failures.pop(0)
        return super().lease_many(queue, n, lease_timeout=lease_timeout, leased_by=leased_by)


def _worker(tmp_path: Path, failures: list[Exception]) -> tuple[Worker, FailingStore, list[str]]:
    store = FailingStore(tmp_path / "q.sqlite3", failures)
    queue = PersistentQueue("jobs", store=store)
    queue.put("job")
    handled: list[str] = []

    def handle(value):  # type: ignore[no-untyped-def]
        handled.append(value)
        worker.signals = 1  # one job, then stop as a SIGTERM would

    worker = Worker(
        queue, handle, retry_store=SQLiteAttemptStore(tmp_path / "retries.sqlite3"), log=warn
    )
    return worker, store, handled


def warn(text: str) -> None:
    import sys

    print(f"localqueue: {text}", file=sys.stderr)


def test_a_forever_worker_backs_off_on_a_failing_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage = StoreError("q.sqlite3: database is malformed or not a localqueue store")
    worker, store, handled = _worker(tmp_path, [damage, damage])
    assert worker.run(forever=True).handled == 1
    assert handled == ["job"]  # it went on once the store answered again
    assert store.leases == 3  # two failures, then the lease that worked: no spinning
    warnings = capsys.readouterr().err
    assert warnings.count("looking for work again in") == 2
    assert "in 0.25s" in warnings and "in 0.5s" in warnings  # doubling pauses


def test_a_replaced_store_file_still_stops_the_worker(tmp_path: Path) -> None:
    gone = StoreReplacedError("q.sqlite3: the store file was deleted or replaced while in use")
    worker, store, handled = _worker(tmp_path, [gone])
    with pytest.raises(StoreReplacedError):
        worker.run(forever=True)
    assert handled == [] and store.leases == 1
