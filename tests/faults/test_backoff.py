"""Matrix row 11, second half: a long-running worker whose store starts failing while it
runs (damage or disk trouble found mid-run) backs off and tries again instead of spinning
on the error; a store file deleted or replaced under it (row 12) still stops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from localqueue import PersistentQueue, StoreError
from localqueue.cli.worker import Worker, WorkerOptions
from localqueue.errors import StoreReplacedError
from localqueue.retry import SQLiteAttemptStore
from localqueue.stores.sqlite import SQLiteQueueStore


class FailingStore(SQLiteQueueStore):
    """A real SQLite store whose next ``lease`` calls fail the way a damaged file does."""

    def __init__(self, path: Path, failures: list[Exception]) -> None:
        super().__init__(path)
        self.failures = failures
        self.leases = 0

    def lease(self, queue: str, *, lease_timeout: float, leased_by: str | None):  # type: ignore[no-untyped-def]
        self.leases += 1
        if self.failures:
            raise self.failures.pop(0)
        return super().lease(queue, lease_timeout=lease_timeout, leased_by=leased_by)


def _worker(tmp_path: Path, failures: list[Exception]) -> tuple[Worker, FailingStore, list[str]]:
    store = FailingStore(tmp_path / "q.sqlite3", failures)
    queue = PersistentQueue("jobs", store=store)
    queue.put("job")
    handled: list[str] = []

    def handle(message):  # type: ignore[no-untyped-def]
        handled.append(message.value)
        worker.flags.signals = 1  # one job, then stop as a SIGTERM would
        return None

    options = WorkerOptions(forever=True, block=True)
    worker = Worker(queue, SQLiteAttemptStore(tmp_path / "retries.sqlite3"), handle, options)
    return worker, store, handled


def test_a_forever_worker_backs_off_on_a_failing_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage = StoreError("q.sqlite3: database is malformed or not a localqueue store")
    worker, store, handled = _worker(tmp_path, [damage, damage])
    assert worker.run() == 0
    assert handled == ["job"]  # it went on once the store answered again
    assert store.leases == 3  # two failures, then the lease that worked: no spinning
    warnings = capsys.readouterr().err
    assert warnings.count("looking for work again in") == 2
    assert "in 0.25s" in warnings and "in 0.5s" in warnings  # doubling pauses


def test_a_replaced_store_file_still_stops_the_worker(tmp_path: Path) -> None:
    gone = StoreReplacedError("q.sqlite3: the store file was deleted or replaced while in use")
    worker, store, handled = _worker(tmp_path, [gone])
    with pytest.raises(StoreReplacedError):
        worker.run()
    assert handled == [] and store.leases == 1
