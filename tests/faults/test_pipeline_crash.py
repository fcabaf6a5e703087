"""`--to` hands a stage's output on in the same transaction as the ack of its input: a
stage worker SIGKILLed at any moment neither loses an output nor hands it on twice."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.helpers import LOCALQUEUE, clean_env, run, stats


def _stores(tmp_path: Path) -> tuple[str, ...]:
    return (
        "--store-path", str(tmp_path / "q.sqlite3"),
        "--retry-store-path", str(tmp_path / "r.sqlite3"),
    )  # fmt: skip


def _drain_values(tmp_path: Path, queue: str) -> list[object]:
    """Every value of ``queue``, taken off it (acked)."""
    done = run(
        tmp_path, "queue", "exec", queue, "--output", "json", "-j", "4",
        *_stores(tmp_path), "--", "cat",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["output"] for line in done.stdout.splitlines()]


def test_sigkill_between_the_job_and_its_ack_neither_loses_nor_doubles_the_output(
    tmp_path: Path,
) -> None:
    values = list(range(20))
    lines = "".join(f"{v}\n" for v in values)
    assert run(tmp_path, "queue", "add", "in", *_stores(tmp_path)[:2], stdin=lines).returncode == 0
    # Each job prints its output, then has its worker killed 0-3 ms after it ends: before,
    # during or after the ack of its input (an fsync), as the scheduler has it.
    job = (
        'read v; echo "{\\"out\\": $v}"; set -- 0 0.0005 0.001 0.003; shift $((v % 4));'
        " (sleep $1; kill -KILL $PPID) >/dev/null 2>&1 & exit 0"
    )
    deadline = time.monotonic() + 120
    # (A worker killed before its ack spends an attempt: a budget large enough that
    # none of them ends in the dead letters.)
    while stats(tmp_path, tmp_path / "q.sqlite3", "in")["total"]:
        assert time.monotonic() < deadline
        run(
            tmp_path, "queue", "exec", "in", "--to", "out", "--block", "--max-jobs", "1",
            "--lease-timeout", "1", "--max-tries", "1000", *_stores(tmp_path),
            "--", "sh", "-c", job,
        )  # fmt: skip
    outputs = _drain_values(tmp_path, "out")
    assert sorted(o["out"] for o in outputs) == values  # each exactly once


PIPELINE = """
def fetch(value):
    return {"id": value["id"], "page": "<html/>"}

def parse(value):
    return {"id": value["id"], "parsed": True}

def store(value):
    return {"id": value["id"], "stored": True}
"""


@pytest.mark.slow
def test_a_three_stage_pipeline_of_10000_messages_survives_a_killed_stage_worker(
    tmp_path: Path,
) -> None:
    (tmp_path / "stages.py").write_text(PIPELINE)
    n = 10_000
    stores = (*_stores(tmp_path), "--durability", "normal")
    lines = "".join(json.dumps({"id": i}) + "\n" for i in range(n))
    assert run(tmp_path, "queue", "add", "fetch", *stores[:2], stdin=lines).returncode == 0
    first = run(
        tmp_path, "queue", "process", "fetch", "stages:fetch", "--to", "parse", "-j", "4",
        *stores, timeout=120,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    # Stage 2 is SIGKILLed mid-drain, then started again once its leases have expired.
    second = subprocess.Popen(
        [
            LOCALQUEUE, "queue", "process", "parse", "stages:parse", "--to", "store",
            "-j", "4", "--lease-timeout", "1", *stores,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while stats(tmp_path, tmp_path / "q.sqlite3", "store")["total"] < n // 3:
        assert time.monotonic() < deadline and second.poll() is None
        time.sleep(0.05)
    second.send_signal(signal.SIGKILL)
    second.wait(10)
    assert 0 < stats(tmp_path, tmp_path / "q.sqlite3", "parse")["total"] < n
    again = run(
        tmp_path, "queue", "process", "parse", "stages:parse", "--to", "store", "-j", "4",
        "--block", "--max-jobs", str(stats(tmp_path, tmp_path / "q.sqlite3", "parse")["total"]),
        *stores, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    third = run(
        tmp_path, "queue", "process", "store", "stages:store", "--to", "done", "-j", "4",
        *stores, timeout=120,
    )  # fmt: skip
    assert third.returncode == 0, third.stderr
    for queue in ("fetch", "parse", "store"):
        assert stats(tmp_path, tmp_path / "q.sqlite3", queue)["total"] == 0, queue
    done = _drain_values(tmp_path, "done")
    assert len(done) == n
    assert sorted(v["id"] for v in done) == list(range(n))  # every input once, none twice
    assert all(v["stored"] for v in done)
