"""A worker tracks deliveries, not message ids: a worker stopped past its lease, an idle
worker's next lease, a closed stdout, a failing commit, a second signal, a busy attempt
store and a store that does not exist yet never run a job twice at once, drop a finished
result, or end with work undone. Real worker processes, real jobs, real signals."""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.faults.helpers import clean_env, popen, run, stats, wait_for


def _stores(tmp_path: Path) -> tuple[str, ...]:
    return (
        "--store-path", str(tmp_path / "q.sqlite3"),
        "--retry-store-path", str(tmp_path / "r.sqlite3"),
    )  # fmt: skip


def _add(tmp_path: Path, values: list[object]) -> list[str]:
    lines = "".join(json.dumps(v) + "\n" for v in values)
    done = run(tmp_path, "queue", "add", "q", *_stores(tmp_path)[:2], stdin=lines)
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["id"] for line in done.stdout.splitlines()]


def _outcomes(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def _wait_until(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.02)


def _job_logging(log: Path, seconds: float | str) -> str:
    """A job that logs its start and its end (also when stopped by SIGTERM) and sleeps
    ``seconds`` between (``"$value"``: as many as its message's value says)."""
    stamp = f'"$LOCALQUEUE_MESSAGE_ID $LOCALQUEUE_ATTEMPT $(date +%s.%N)" >> {log}'
    return (
        f"read value; echo start {stamp}; trap 'echo end {stamp}; exit 143' TERM;"
        f" sleep {seconds} & wait $!; echo end {stamp}"
    )


def _intervals(log: Path) -> dict[str, list[tuple[float, float]]]:
    """Each message's job runs as (start, end) pairs, from the jobs' own log."""
    open_runs: dict[tuple[str, str], float] = {}
    runs: dict[str, list[tuple[float, float]]] = {}
    for line in log.read_text().splitlines():
        kind, message, attempt, at = line.split()
        if kind == "start":
            open_runs[message, attempt] = float(at)
        else:
            runs.setdefault(message, []).append((open_runs.pop((message, attempt)), float(at)))
    assert not open_runs, f"jobs that never ended: {open_runs}"
    return runs


# Ten rounds: -j 2 (a free slot, where the worker can lease its own message again while
# the old job runs: 6 of 10 rounds failed on the previous release) more often than -j 1.
ROUNDS = [(1, r) for r in range(4)] + [(2, r) for r in range(6)]


@pytest.mark.slow
@pytest.mark.parametrize(("concurrency", "round_"), ROUNDS)
def test_a_worker_stopped_past_its_lease_never_runs_one_message_twice_at_once(
    tmp_path: Path, concurrency: int, round_: int
) -> None:
    [message] = _add(tmp_path, [round_])
    log = tmp_path / "log"
    worker = popen(
        tmp_path, "queue", "exec", "q", "-j", str(concurrency), "--lease-timeout", "1",
        "--release-delay", "0", *_stores(tmp_path), "--", "sh", "-c", _job_logging(log, 2),
    )  # fmt: skip
    try:
        _wait_until(lambda: log.exists() and "start" in log.read_text(), "job start")
        worker.send_signal(signal.SIGSTOP)  # a laptop lid, a debugger: past the lease
        time.sleep(1.5 + 0.1 * (round_ % 5))
        worker.send_signal(signal.SIGCONT)
        out, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
    runs = sorted(_intervals(log)[message])
    for (_, end), (start, _) in itertools.pairwise(runs):
        assert end <= start, f"two deliveries of {message} ran at once: {runs}"
    lines = _outcomes(out)
    # The truth: acked once, after however many deliveries it took; nothing left over.
    assert worker.returncode == 0, err
    assert [(line["id"], line["status"]) for line in lines] == [(message, "acked")], err
    assert lines[0]["attempts"] == len(runs)
    assert stats(tmp_path, tmp_path / "q.sqlite3")["total"] == 0


@pytest.mark.slow
def test_a_block_worker_idle_for_a_while_keeps_the_lease_of_its_next_long_job(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    _add(tmp_path, [0])  # quick
    worker = popen(
        tmp_path, "queue", "exec", "q", "--block", "--lease-timeout", "1",
        *_stores(tmp_path), "--", "sh", "-c", _job_logging(log, "$value"),
    )  # fmt: skip
    assert worker.stdout is not None
    try:
        quick = json.loads(worker.stdout.readline())
        time.sleep(2)  # idle: the heartbeat has nothing to extend
        [slow] = _add(tmp_path, [2.5])  # outlasts its 1 s lease twice over
        settled = json.loads(worker.stdout.readline())
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert len(_intervals(log)[slow]) == 1, log.read_text()  # ran once, never again
    assert (quick["status"], quick["attempts"]) == ("acked", 1)
    assert (settled["id"], settled["status"], settled["attempts"]) == (slow, "acked", 1)
    assert out == ""


HANDLER = """
import time
def handle(value):
    time.sleep(0.3)
"""


@pytest.mark.parametrize("kind", ["exec", "process"])
def test_a_closed_stdout_ends_the_worker_once_its_running_jobs_are_settled(
    tmp_path: Path, kind: str
) -> None:
    ids = _add(tmp_path, list(range(12)))
    (tmp_path / "slow.py").write_text(HANDLER)
    if kind == "exec":
        argv = ("queue", "exec", "q", "-j", "3", *_stores(tmp_path), "--", "sleep", "0.3")
    else:
        argv = ("queue", "process", "q", "slow:handle", "-j", "3", *_stores(tmp_path))
    worker = popen(tmp_path, *argv)
    assert worker.stdout is not None
    first = json.loads(worker.stdout.readline())  # `| head -1`
    worker.stdout.close()
    try:
        worker.wait(60)
    finally:
        worker.kill()
    assert worker.returncode == 0, worker.stderr.read() if worker.stderr else ""
    assert first["status"] == "acked"
    left = stats(tmp_path, tmp_path / "q.sqlite3")
    assert left["inflight"] == 0  # nothing of its own left in flight
    assert 0 < left["ready"] < len(ids)  # it stopped leasing, and settled what ran


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", ["settle-error:2", "settle-busy:2"])
def test_a_failed_commit_is_tried_again_and_every_job_is_acked_once(
    tmp_path: Path, failpoint: str
) -> None:
    ids = _add(tmp_path, list(range(6)))
    log = tmp_path / "log"
    env = clean_env(tmp_path, LOCALQUEUE_TESTING="1", LOCALQUEUE_FAILPOINT=failpoint)
    done = run(
        tmp_path, "queue", "exec", "q", "-j", "2", *_stores(tmp_path), "--", "sh", "-c",
        f'echo "$LOCALQUEUE_MESSAGE_ID" >> {log}', env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "still trying to settle" in done.stderr
    assert sorted(line["id"] for line in _outcomes(done.stdout)) == sorted(ids)
    assert {line["status"] for line in _outcomes(done.stdout)} == {"acked"}
    assert sorted(log.read_text().split()) == sorted(ids)  # each ran once
    assert stats(tmp_path, tmp_path / "q.sqlite3")["total"] == 0


@pytest.mark.slow
def test_a_commit_failing_past_the_lease_exits_1_naming_the_message(tmp_path: Path) -> None:
    [message] = _add(tmp_path, [1])
    # Every commit fails, the heartbeat's too: the lease runs out while the worker
    # still holds the finished job's outcome.
    env = clean_env(tmp_path, LOCALQUEUE_TESTING="1", LOCALQUEUE_FAILPOINT="store-error:always")
    done = run(
        tmp_path, "queue", "exec", "q", "--lease-timeout", "1", *_stores(tmp_path), "--",
        "true", env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"could not settle {message}" in done.stderr
    assert "it will be delivered again" in done.stderr
    assert done.stdout == ""


SLOW_PY = """
import os, time
def handle(value):
    open(os.path.join({dir!r}, f"started-{{value}}"), "w").close()
    while not os.path.exists(os.path.join({dir!r}, "go")):
        time.sleep(0.02)
"""


@pytest.mark.slow
def test_python_handlers_that_finish_within_the_grace_of_a_second_signal_are_acked(
    tmp_path: Path,
) -> None:
    ids = _add(tmp_path, [1, 2, 3])
    (tmp_path / "slow.py").write_text(SLOW_PY.format(dir=str(tmp_path)))
    worker = popen(tmp_path, "queue", "process", "q", "slow:handle", "-j", "3", *_stores(tmp_path))
    try:
        _wait_until(lambda: len(list(tmp_path.glob("started-*"))) == 3, "three handlers")
        worker.send_signal(signal.SIGINT)
        wait_for(worker.stderr, "finishing 3 running job(s)")  # (two at once may merge)
        worker.send_signal(signal.SIGINT)
        (tmp_path / "go").touch()  # they finish within the grace
        out, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert worker.returncode == 130, err  # interrupted...
    lines = _outcomes(out)
    assert sorted(line["id"] for line in lines) == sorted(ids)
    assert {line["status"] for line in lines} == {"acked"}  # ...but their work was done
    assert stats(tmp_path, tmp_path / "q.sqlite3")["total"] == 0


@pytest.mark.slow
def test_a_forever_worker_outlives_a_busy_attempt_store_and_drains(tmp_path: Path) -> None:
    retries = tmp_path / "r.sqlite3"
    ids = _add(tmp_path, [1])
    # Create the attempt store, then hold its write lock for longer than its busy timeout.
    assert run(tmp_path, "queue", "exec", "q", "--max-jobs", "0", *_stores(tmp_path), "--", "true")
    holder = sqlite3.connect(retries, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    worker = popen(
        tmp_path, "queue", "exec", "q", "--forever", "--idle-sleep", "0.1",
        *_stores(tmp_path), "--", "true",
    )  # fmt: skip
    try:
        wait_for(worker.stderr, "looking for work again", timeout=60)
        holder.execute("ROLLBACK")  # the store is free again
        holder.close()
        assert worker.stdout is not None
        line = json.loads(worker.stdout.readline())
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0
    assert (line["id"], line["status"]) == (ids[0], "acked")


def test_a_block_worker_started_before_its_store_exists_handles_the_first_message(
    tmp_path: Path,
) -> None:
    store = tmp_path / "later" / "q.sqlite3"
    store.parent.mkdir()
    argv = ("--store-path", str(store), "--retry-store-path", str(tmp_path / "r.sqlite3"))
    worker = popen(tmp_path, "queue", "exec", "q", "--block", "--max-jobs", "1", *argv, "--", "cat")
    try:
        wait_for(worker.stderr, f"waiting for {store} (only queue add creates a store)")
        added = run(tmp_path, "queue", "add", "q", "--value", '"first"', *argv[:2])
        assert added.returncode == 0, added.stderr
        out, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    [line] = _outcomes(out)
    assert (line["id"], line["status"]) == (json.loads(added.stdout)["id"], "acked")


def test_a_drain_of_a_store_that_does_not_exist_still_exits_1(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    done = run(tmp_path, "queue", "exec", "q", "--store-path", str(missing), "--", "true")
    assert done.returncode == 1
    assert f"no such store: {missing}" in done.stderr
    assert not missing.exists()
