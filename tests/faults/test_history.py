"""The history of finished jobs under crashes and concurrency (issue 28), with real
worker processes: a worker SIGKILLed between a job's end and its ack leaves no record,
and the redelivery's ack leaves exactly one; workers prune a bounded history while
they run, and so do drains of a few jobs each. SQLite, LMDB and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localqueue import PersistentQueue
from localqueue.stores import open_store
from tests.conftest import dispose, fresh_schema, postgres_url, unavailable
from tests.faults.helpers import clean_env, popen, read_line, run

FAILPOINT = "settle-before-commit"


@pytest.fixture(params=["sqlite", "lmdb", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = str(request.param)
    if kind == "sqlite":
        where = str(tmp_path / "q.sqlite3")
    elif kind == "lmdb":
        pytest.importorskip("lmdb", reason="lmdb (localqueue[lmdb]) is not installed")
        where = "lmdb://" + str(tmp_path / "q.lmdb")
    else:
        url = postgres_url()
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            unavailable(f"PostgreSQL backend not importable: {exc}")
        where = f"{url}{'&' if '?' in url else '?'}schema={fresh_schema()}"
    yield where
    dispose(open_store(where))


def _queue(location: str) -> PersistentQueue:
    return PersistentQueue("q", store=open_store(location))


@pytest.mark.slow
def test_sigkill_between_the_end_of_a_job_and_its_ack_leaves_one_record(
    tmp_path: Path, location: str
) -> None:
    q = _queue(location)
    q.keep(7 * 86400)
    message_id = q.put({"order": 812}).id
    q.close()
    worker_args = ("queue", "exec", "q", "--store-path", location, "--lease-timeout", "1")
    env = clean_env(tmp_path, LOCALQUEUE_TESTING="1", LOCALQUEUE_FAILPOINT=FAILPOINT)
    worker = popen(tmp_path, *worker_args, "--", "true", env=env)
    try:
        while FAILPOINT not in (line := read_line(worker.stderr)):
            assert line, "the worker ended before its ack"
        os.kill(worker.pid, signal.SIGKILL)  # the job ran; its ack is not committed
        worker.wait(timeout=30)
    finally:
        worker.kill()
    q = _queue(location)
    try:
        assert q.history() == []
        # The lease runs out (1 s) and the message is delivered again, then acked.
        deadline = time.monotonic() + 60
        while not q.history():
            assert time.monotonic() < deadline, "the message was never delivered again"
            done = run(tmp_path, *worker_args, "--", "true")
            assert done.returncode == 0, done.stderr
            time.sleep(0.2)
        (record,) = q.history()
        assert (record["id"], record["status"], record["attempts"]) == (message_id, "acked", 2)
        assert q.stats().total == 0
    finally:
        q.close()


@pytest.mark.slow
def test_workers_running_together_keep_the_history_within_a_batch_of_its_count(
    tmp_path: Path, location: str
) -> None:
    from localqueue.history import PRUNE_BATCH

    q = _queue(location)
    q.keep(count=50)
    q.put_many(list(range(1200)))
    q.close()
    args = ("queue", "exec", "q", "--store-path", location, "-j", "4", "--", "true")
    workers = [popen(tmp_path, *args) for _ in range(2)]
    outcomes = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        outcomes += [json.loads(line) for line in out.splitlines()]
    assert len(outcomes) == 1200 and {o["status"] for o in outcomes} == {"acked"}
    q = _queue(location)
    try:
        kept = len(q.history())
        # every worker prunes a batch past the count as it settles: never far over it
        assert 50 <= kept <= 50 + 2 * PRUNE_BATCH
        while q.store.prune_history("q"):
            pass
        assert len(q.history()) == 50
    finally:
        q.close()


@pytest.mark.slow
def test_drains_of_a_few_jobs_each_keep_the_history_within_its_count(
    tmp_path: Path, location: str
) -> None:
    """A cron job drains a few messages a run, each run a new process that writes fewer
    records than a settling worker writes between two pruning steps: each run's first
    record prunes, so the history stays within a run's records of its count."""
    q = _queue(location)
    q.keep(count=5)
    q.close()
    for run_number in range(4):
        q = _queue(location)
        q.put_many([f"run {run_number} job {n}" for n in range(10)])
        q.close()
        done = run(tmp_path, "queue", "exec", "q", "--store-path", location, "--", "true")
        assert done.returncode == 0, done.stderr
    q = _queue(location)
    try:
        kept = q.history()
        assert 5 <= len(kept) <= 5 + 10, len(kept)  # 40 records written in all
        assert kept[0]["value"] == "run 3 job 9"
    finally:
        q.close()
