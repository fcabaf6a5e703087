"""Workers running N jobs at once (``-j N``) keep every durability promise: real worker
processes, real jobs, SIGKILL, second signals and expired leases."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import fresh_schema, postgres_url
from tests.faults.helpers import gone, popen, run, stats


def _stores(tmp_path: Path) -> tuple[str, ...]:
    return (
        "--store-path", str(tmp_path / "q.sqlite3"),
        "--retry-store-path", str(tmp_path / "r.sqlite3"),
    )  # fmt: skip


def _add(tmp_path: Path, values: list[object], *store: str) -> list[str]:
    lines = "".join(json.dumps(v) + "\n" for v in values)
    done = run(tmp_path, "queue", "add", "q", *(store or _stores(tmp_path)[:2]), stdin=lines)
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["id"] for line in done.stdout.splitlines()]


def _wait_lines(path: Path, count: int, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, f"{path}: {len(lines)} of {count} lines"
        time.sleep(0.02)


def _outcomes(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.slow
def test_sigkill_with_8_jobs_in_flight_redelivers_all_8_and_leaves_no_orphan(
    tmp_path: Path,
) -> None:
    ids = _add(tmp_path, list(range(8)))
    pids = tmp_path / "pids"
    # 70,000 bytes are more than a pipe holds: the job gets past them only once the worker
    # drains its stderr, which it starts after recording the job's process group.
    job = f"head -c 70000 /dev/zero >&2; sleep 60 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    worker = popen(
        tmp_path, "queue", "exec", "q", "-j", "8", "--lease-timeout", "4",
        *_stores(tmp_path), "--", "sh", "-c", job,
    )  # fmt: skip
    try:
        running = [int(pid) for pid in _wait_lines(pids, 16)]
        worker.kill()
        worker.wait(10)
    finally:
        worker.kill()
    assert stats(tmp_path, tmp_path / "q.sqlite3")["inflight"] == 8  # until the leases end
    assert all(gone(pid) for pid in running)  # the watchdog took every job down
    # Once the leases expire, every message comes back, its attempt counted once more.
    drain = run(
        tmp_path, "queue", "exec", "q", "--block", "--max-jobs", "8", "-j", "8",
        *_stores(tmp_path), "--", "true",
    )  # fmt: skip
    assert drain.returncode == 0, drain.stderr
    lines = _outcomes(drain.stdout)
    assert sorted(str(line["id"]) for line in lines) == sorted(ids)
    assert {line["status"] for line in lines} == {"acked"}
    assert {line["attempts"] for line in lines} == {2}


@pytest.mark.slow
def test_a_job_outliving_its_lease_is_never_run_twice_at_once(tmp_path: Path) -> None:
    """Jobs three times as long as the lease, 8 at a time, two workers on one store: the
    heartbeat keeps every lease, so each message runs once and never alongside itself."""
    ids = _add(tmp_path, list(range(12)))
    log = tmp_path / "log"
    job = (
        f'echo "start $LOCALQUEUE_MESSAGE_ID $(date +%s.%N)" >> {log}; sleep 3; '
        f'echo "end $LOCALQUEUE_MESSAGE_ID $(date +%s.%N)" >> {log}'
    )
    argv = ("queue", "exec", "q", "-j", "8", "--lease-timeout", "1", *_stores(tmp_path))
    workers = [popen(tmp_path, *argv, "--", "sh", "-c", job) for _ in range(2)]
    outputs = [worker.communicate(timeout=60) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    acked = [line["id"] for out, _ in outputs for line in _outcomes(out)]
    assert sorted(map(str, acked)) == sorted(ids)
    starts = [line.split()[1] for line in log.read_text().splitlines() if line[0] == "s"]
    assert sorted(starts) == sorted(ids)  # each ran exactly once


def _many_workers_ack_each_message_once(tmp_path: Path, store: tuple[str, ...]) -> None:
    ids = _add(tmp_path, list(range(200)), *store[:2])
    log = tmp_path / "log"
    job = f'echo "$LOCALQUEUE_MESSAGE_ID" >> {log}'
    argv = ("queue", "exec", "q", "-j", "4", *store, "--", "sh", "-c", job)
    workers = [popen(tmp_path, *argv) for _ in range(4)]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, outputs
    acked = [str(line["id"]) for out, _ in outputs for line in _outcomes(out)]
    assert sorted(acked) == sorted(ids)  # every message acked, none twice
    assert sorted(log.read_text().split()) == sorted(ids)  # and run exactly once


@pytest.mark.slow
def test_four_workers_with_4_jobs_each_ack_every_message_once_on_sqlite(tmp_path: Path) -> None:
    _many_workers_ack_each_message_once(tmp_path, _stores(tmp_path))


@pytest.mark.slow
def test_four_workers_with_4_jobs_each_ack_every_message_once_on_postgres(
    tmp_path: Path,
) -> None:
    url = postgres_url()
    schema = fresh_schema()
    store = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    try:
        _many_workers_ack_each_message_once(
            tmp_path, ("--store-path", store, "--retry-store-path", store)
        )
    finally:
        import psycopg

        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_second_signal_releases_every_running_job_without_spending_an_attempt(
    tmp_path: Path,
) -> None:
    ids = _add(tmp_path, list(range(4)))
    pids = tmp_path / "pids"
    job = f"echo $$ >> {pids}; exec sleep 60"
    worker = popen(
        tmp_path, "queue", "exec", "q", "-j", "4", "--max-tries", "1",
        *_stores(tmp_path), "--", "sh", "-c", job,
    )  # fmt: skip
    try:
        running = [int(pid) for pid in _wait_lines(pids, 4)]
        worker.send_signal(signal.SIGTERM)
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 130, err
    lines = _outcomes(out)
    assert sorted(str(line["id"]) for line in lines) == sorted(ids)
    assert {line["status"] for line in lines} == {"released"}
    assert "released 4 message(s); their retry budget was not spent" in err
    assert all(gone(pid) for pid in running)
    assert stats(tmp_path, tmp_path / "q.sqlite3")["ready"] == 4
    # --max-tries 1 and the attempt was given back: each one runs (and succeeds) now.
    again = run(
        tmp_path, "queue", "exec", "q", "--max-tries", "1", *_stores(tmp_path), "--", "true"
    )
    assert again.returncode == 0, again.stderr
    assert [line["status"] for line in _outcomes(again.stdout)] == ["acked"] * 4


def test_a_first_signal_lets_every_running_job_finish(tmp_path: Path) -> None:
    _add(tmp_path, list(range(6)))
    started, go = tmp_path / "started", tmp_path / "go"
    job = f"echo x >> {started}; while [ ! -e {go} ]; do sleep 0.02; done"
    worker = popen(
        tmp_path, "queue", "exec", "q", "-j", "3", *_stores(tmp_path), "--", "sh", "-c", job
    )
    try:
        _wait_lines(started, 3)
        worker.send_signal(signal.SIGTERM)
        assert worker.stderr is not None
        line = worker.stderr.readline()
        assert line == "localqueue: finishing 3 running job(s); press Ctrl-C again to stop them\n"
        go.touch()
        out, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert [line["status"] for line in _outcomes(out)] == ["acked"] * 3
    assert stats(tmp_path, tmp_path / "q.sqlite3")["ready"] == 3  # nothing more was started


def test_max_jobs_counts_across_slots_and_leaves_nothing_leased(tmp_path: Path) -> None:
    _add(tmp_path, list(range(10)))
    done = run(
        tmp_path, "queue", "exec", "q", "-j", "4", "--max-jobs", "6", *_stores(tmp_path),
        "--", "true",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(_outcomes(done.stdout)) == 6
    counts = stats(tmp_path, tmp_path / "q.sqlite3")
    assert (counts["ready"], counts["inflight"]) == (4, 0)


def test_a_job_has_its_whole_value_even_when_its_worker_dies_before_it_reads(
    tmp_path: Path,
) -> None:
    """The job kills its worker and only then reads stdin: it must still read all of it,
    small (a pipe filled before the spawn) or large (a file)."""
    values = ["x" * 10, "y" * 300_000, "z" * 3_000_000]
    ids = _add(tmp_path, values)
    job = (
        f'trap "" TERM; kill -KILL $PPID; sleep 0.2; wc -c > {tmp_path}/size.$LOCALQUEUE_MESSAGE_ID'
    )
    for message_id, value in zip(ids, values, strict=True):
        worker = popen(
            tmp_path, "queue", "exec", "q", "--max-jobs", "1", "--lease-timeout", "1",
            *_stores(tmp_path), "--", "sh", "-c", job,
        )  # fmt: skip
        worker.communicate(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        size = _wait_lines(tmp_path / f"size.{message_id}", 1)[0]
        assert int(size) == len(json.dumps(value)) + 1  # the JSON line and its newline


THREADS = """
import asyncio, sys, threading, time
lock = threading.Lock()
running = peak = started = 0

def _wave():
    # The first four wait (up to 10 s) until all four run at once: a loaded machine
    # may start them slowly, but never more than -j of them.
    deadline = time.monotonic() + 10
    while started <= 4 and running < 4 and time.monotonic() < deadline:
        time.sleep(0.01)

def handle(value):
    global running, peak, started
    with lock:
        running += 1
        started += 1
        peak = max(peak, running)
    _wave()
    time.sleep(0.05)
    with lock:
        peak = max(peak, running)
        running -= 1
    sys.stdout.write(f"peak {peak}\\n")  # one write: threads never split a line
    sys.stdout.flush()

async def handle_async(value):
    global running, peak, started
    running += 1
    started += 1
    peak = max(peak, running)
    deadline = time.monotonic() + 10
    while started <= 4 and running < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    peak = max(peak, running)
    running -= 1
    sys.stdout.write(f"peak {peak}\\n")  # one write: threads never split a line
    sys.stdout.flush()
"""


@pytest.mark.parametrize("handler", ["handle", "handle_async"])
def test_process_runs_n_handlers_at_once(tmp_path: Path, handler: str) -> None:
    (tmp_path / "jobs.py").write_text(THREADS)
    _add(tmp_path, list(range(8)))
    done = run(tmp_path, "queue", "process", "q", f"jobs:{handler}", "-j", "4", *_stores(tmp_path))
    assert done.returncode == 0, done.stderr
    assert [line["status"] for line in _outcomes(done.stdout)] == ["acked"] * 8
    peaks = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("peak")]
    assert max(peaks) == 4  # what a handler prints goes to stderr; stdout stays JSON


def test_a_python_handler_may_install_signal_handlers_at_concurrency_1(tmp_path: Path) -> None:
    (tmp_path / "alarm.py").write_text(
        "import signal\n"
        "def handle(value):\n"
        "    signal.signal(signal.SIGALRM, signal.SIG_IGN)  # main thread only\n"
    )
    _add(tmp_path, [1])
    done = run(tmp_path, "queue", "process", "q", "alarm:handle", *_stores(tmp_path))
    assert done.returncode == 0, done.stderr
    assert [line["status"] for line in _outcomes(done.stdout)] == ["acked"]


def test_drain_exit_codes_say_whether_jobs_failed(tmp_path: Path) -> None:
    stores = _stores(tmp_path)
    _add(tmp_path, [1, 2])
    ok = run(tmp_path, "queue", "exec", "q", *stores, "--", "true")
    assert ok.returncode == 0
    _add(tmp_path, [3])
    retrying = run(tmp_path, "queue", "exec", "q", *stores, "--", "false")
    assert retrying.returncode == 6  # released for a later attempt (in a second or so)
    assert [line["status"] for line in _outcomes(retrying.stdout)] == ["released"]
    dead = run(
        tmp_path, "queue", "exec", "q", "--block", "--max-jobs", "1", "--max-tries", "2",
        *stores, "--", "false",
    )  # fmt: skip
    assert dead.returncode == 0  # --block: a long-running worker, no verdict by exit code
    _add(tmp_path, [4])
    last = run(
        tmp_path, "queue", "exec", "q", "--max-tries", "1", *stores, "--", sys.executable,
        "-c", "raise SystemExit(1)",
    )  # fmt: skip
    assert last.returncode == 5  # dead-lettered
    assert os.path.exists(tmp_path / "q.sqlite3")


def test_a_first_signal_during_a_python_handler_says_it_finishes_it(tmp_path: Path) -> None:
    started, go = tmp_path / "started", tmp_path / "go"
    (tmp_path / "slow.py").write_text(
        "import os, time\n"
        "def handle(value):\n"
        f"    open({str(started)!r}, 'w').close()\n"
        f"    while not os.path.exists({str(go)!r}):\n"
        "        time.sleep(0.02)\n"
    )
    _add(tmp_path, [1, 2])
    worker = popen(tmp_path, "queue", "process", "q", "slow:handle", *_stores(tmp_path))
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        worker.send_signal(signal.SIGINT)
        assert worker.stderr is not None
        line = worker.stderr.readline()
        assert line == "localqueue: finishing 1 running job(s); press Ctrl-C again to stop them\n"
        go.touch()
        out, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert [line["status"] for line in _outcomes(out)] == ["acked"]  # the second not started
