"""Stale holders, heartbeats, signals, timeouts."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.faults.helpers import gone, pid_alive, popen, read_fifo, read_line, run, stats


def _stores(tmp_path: Path) -> tuple[str, ...]:
    return (
        "--store-path", str(tmp_path / "q.sqlite3"),
        "--retry-store-path", str(tmp_path / "r.sqlite3"),
    )  # fmt: skip


def _add(tmp_path: Path, *values: object) -> None:
    lines = "".join(json.dumps(v) + "\n" for v in values)
    done = run(tmp_path, "queue", "add", "q", *_stores(tmp_path)[:2], stdin=lines)
    assert done.returncode == 0, done.stderr


def test_stale_ack_is_fenced_and_the_new_holder_is_unaffected(tmp_path: Path) -> None:
    sp = _stores(tmp_path)[:2]
    _add(tmp_path, "job")
    old = json.loads(run(tmp_path, "queue", "pop", "q", "--lease-timeout", "0.3", *sp).stdout)
    new = json.loads(run(tmp_path, "queue", "pop", "q", "--block", "--timeout", "10", *sp).stdout)
    assert new["id"] == old["id"] and new["lease_token"] != old["lease_token"]
    for verb in ("ack", "release"):
        stale = run(
            tmp_path, "queue", verb, "q", old["id"], "--lease-token", old["lease_token"], *sp
        )
        assert stale.returncode == 4 and "lease" in stale.stderr
    assert stats(tmp_path, tmp_path / "q.sqlite3")["inflight"] == 1
    ok = run(tmp_path, "queue", "ack", "q", new["id"], "--lease-token", new["lease_token"], *sp)
    assert ok.returncode == 0, ok.stderr
    assert stats(tmp_path, tmp_path / "q.sqlite3")["total"] == 0


@pytest.mark.slow
def test_heartbeat_keeps_a_4s_job_on_a_1s_lease(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    _add(tmp_path, "job")
    worker = popen(
        tmp_path, "queue", "exec", "q", "--lease-timeout", "1", *_stores(tmp_path),
        "--", "sh", "-c", f"echo started > {ready}; sleep 4",
    )  # fmt: skip
    read_fifo(ready)
    other = run(
        tmp_path, "queue", "pop", "q", "--block", "--timeout", "3.5", *_stores(tmp_path)[:2]
    )
    assert other.returncode == 3 and other.stdout == ""  # never handed out meanwhile
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert json.loads(out)["status"] == "acked" and json.loads(out)["attempts"] == 1


def _start_worker(tmp_path: Path, *extra: str, **kwargs: object) -> tuple[object, int]:
    """An exec worker whose job reports its pid on a FIFO, then waits for 'go'."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    for fifo in (ready, go):
        if not fifo.exists():
            os.mkfifo(fifo)
    script = f"echo $$ > {ready}; read line < {go}"
    worker = popen(
        tmp_path, "queue", "exec", "q", *extra, *_stores(tmp_path), "--", "sh", "-c", script,
        **kwargs,
    )  # fmt: skip
    return worker, int(read_fifo(ready))


def _go(tmp_path: Path) -> None:
    with open(tmp_path / "go", "w") as handle:
        handle.write("go\n")


def test_sigterm_during_exec_finishes_the_message(tmp_path: Path) -> None:
    _add(tmp_path, 1, 2)
    worker, _ = _start_worker(tmp_path, "--forever")
    worker.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    _go(tmp_path)
    out, err = worker.communicate(timeout=30)  # type: ignore[attr-defined]
    assert worker.returncode == 0, err  # type: ignore[attr-defined]
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["acked"]
    assert stats(tmp_path, tmp_path / "q.sqlite3")["ready"] == 1  # the second one untouched


def test_sigterm_to_an_idle_worker(tmp_path: Path) -> None:
    _add(tmp_path, 1)
    worker = popen(tmp_path, "queue", "exec", "q", "--forever", *_stores(tmp_path), "--", "true")
    assert json.loads(read_line(worker.stdout))["status"] == "acked"  # now idle
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(2) == 0  # an idle worker looks at its stop flag within 0.25 s


def test_sigint_to_the_whole_process_group(tmp_path: Path) -> None:
    _add(tmp_path, 1)
    worker, job = _start_worker(tmp_path, "--forever", start_new_session=True)
    os.killpg(worker.pid, signal.SIGINT)  # type: ignore[attr-defined]  # like Ctrl-C
    assert pid_alive(job)  # the job is in its own session: Ctrl-C is the worker's business
    _go(tmp_path)
    out, err = worker.communicate(timeout=30)  # type: ignore[attr-defined]
    assert worker.returncode == 0, err  # type: ignore[attr-defined]
    assert json.loads(out)["status"] == "acked"


def test_a_second_signal_stops_now_and_releases(tmp_path: Path) -> None:
    _add(tmp_path, 1)
    worker, job = _start_worker(tmp_path, "--forever")
    worker.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    worker.send_signal(signal.SIGINT)  # type: ignore[attr-defined]
    out, err = worker.communicate(timeout=30)  # type: ignore[attr-defined]
    assert worker.returncode == 130, err  # type: ignore[attr-defined]
    assert json.loads(out)["status"] == "released"
    assert gone(job)
    counts = stats(tmp_path, tmp_path / "q.sqlite3")
    assert counts["ready"] == 1 and counts["inflight"] == 0


def test_sigkill_of_the_worker_leaves_no_orphaned_job(tmp_path: Path) -> None:
    _add(tmp_path, 1)
    grandchild = tmp_path / "grandchild"
    ready, go = tmp_path / "ready", tmp_path / "go"
    os.mkfifo(ready)
    os.mkfifo(go)
    # (sleep 0.2: the worker records the job's group just after the spawn returns; a kill
    # within those microseconds is the one window cli/reaper.py leaves open)
    script = f"sleep 60 & echo $! > {grandchild}; sleep 0.2; echo $$ > {ready}; read line < {go}"
    worker = popen(tmp_path, "queue", "exec", "q", *_stores(tmp_path), "--", "sh", "-c", script)
    job = int(read_fifo(ready))
    sleeper = int(grandchild.read_text())
    worker.kill()
    worker.wait(10)
    assert gone(job) and gone(sleeper)


@pytest.mark.slow
def test_exec_timeout_kills_a_term_trapping_job_and_its_children(tmp_path: Path) -> None:
    _add(tmp_path, 1)
    pids, ready = tmp_path / "pids", tmp_path / "ready"
    os.mkfifo(ready)
    script = (
        f"trap '' TERM; sleep 60 & echo $! >> {pids}; sleep 60 & echo $! >> {pids};"
        f" echo $$ >> {pids}; echo started > {ready}; wait; wait"
    )
    worker = popen(
        tmp_path, "queue", "exec", "q", "--timeout", "0.5", "--max-tries", "2",
        *_stores(tmp_path), "--", "sh", "-c", script,
    )  # fmt: skip
    read_fifo(ready)
    line = json.loads(read_line(worker.stdout, timeout=15))
    assert line["status"] == "released"
    assert line["error"]["type"] == "CommandTimedOut" and line["error"]["exit_code"] == 124
    for pid in map(int, pids.read_text().split()):
        assert gone(pid, timeout=2), pid
    worker.kill()
    worker.wait(10)
