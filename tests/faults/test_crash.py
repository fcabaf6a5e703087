"""Crashes (SIGKILL) never lose or half-write anything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.faults.conftest import snapshot
from tests.faults.helpers import clean_env, popen, python, read_fifo, read_line, run, stats

LINES = 50_000


def _count(path: Path) -> int:
    if not path.exists():
        return 0
    result = snapshot(path)
    assert result["integrity"] == ["ok"]
    return len(result["rows"])


@pytest.mark.slow
def test_sigkill_queue_add_mid_stdin(tmp_path: Path) -> None:
    store = tmp_path / "q.sqlite3"
    payload = "".join(f'{{"n": {i}}}\n' for i in range(LINES)).encode()
    # killed while stdin is still open (half the lines sent): nothing
    adder = popen(tmp_path, "queue", "add", "q", "--store-path", str(store), stdin=subprocess.PIPE)
    assert adder.stdin is not None
    adder.stdin.write(payload[: len(payload) // 2].decode())
    adder.stdin.flush()
    adder.kill()
    adder.wait(10)
    assert _count(store) == 0
    # killed at every stage after stdin closed (reading, parsing, committing, printing):
    # all or nothing, whatever the moment.
    env = clean_env(tmp_path, LOCALQUEUE_TESTING="1", LOCALQUEUE_FAILPOINT="put-before-commit")
    adder = popen(
        tmp_path, "queue", "add", "q", "--store-path", str(store), stdin=subprocess.PIPE, env=env
    )
    assert adder.stdin is not None
    adder.stdin.write(payload.decode())
    adder.stdin.close()
    assert "failpoint put-before-commit reached" in read_line(adder.stderr)
    adder.kill()
    adder.wait(10)
    assert _count(store) == 0
    for _ in range(2):
        adder = popen(
            tmp_path, "queue", "add", "q", "--store-path", str(store), stdin=subprocess.PIPE
        )
        assert adder.stdin is not None and adder.stdout is not None
        adder.stdin.write(payload.decode())
        adder.stdin.close()
        read_line(adder.stdout)  # committed: printing has begun
        adder.kill()
        adder.wait(10)
    assert _count(store) == 2 * LINES


PUT_THEN_WAIT = textwrap.dedent(
    """
    import sys
    from localqueue import PersistentQueue
    q = PersistentQueue("jobs", sys.argv[1])
    conn = q.store._file.connection()
    pragmas = [conn.execute(f"PRAGMA {p}").fetchone()[0]
               for p in ("journal_mode", "synchronous", "busy_timeout")]
    print(q.put({"n": 1}).id, *pragmas, flush=True)
    sys.stdin.readline()
    """
)


def test_sigkill_right_after_put_returned(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    child = python(PUT_THEN_WAIT, str(path))
    message_id, journal, synchronous, busy = read_line(child.stdout).split()
    child.kill()
    child.wait(10)
    assert (journal, synchronous) == ("wal", "2")  # 2 = FULL
    assert int(busy) > 0
    after = snapshot(path)
    assert after["integrity"] == ["ok"] and len(after["rows"]) == 1
    assert message_id.startswith(f"{after['rows'][0][0]}-")


def test_sigkill_worker_mid_handler_redelivers(tmp_path: Path) -> None:
    store = tmp_path / "q.sqlite3"
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    assert run(tmp_path, "queue", "add", "q", "--value", "1", "--store-path", str(store)).stdout
    worker = popen(
        tmp_path,
        "queue", "exec", "q", "--lease-timeout", "1", "--store-path", str(store),
        "--retry-store-path", str(tmp_path / "r.sqlite3"),
        "--", "sh", "-c", f"echo started > {ready}; exec sleep 30",
    )  # fmt: skip
    read_fifo(ready)
    first = snapshot(store)["rows"][0]
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    popped = run(
        tmp_path, "queue", "pop", "q", "--block", "--timeout", "10", "--store-path", str(store)
    )
    assert popped.returncode == 0, popped.stderr
    again = json.loads(popped.stdout)
    assert again["attempts"] == first[4] + 1 == 2
    assert again["lease_token"] and again["lease_token"] != first[6]


DIE = textwrap.dedent(
    """
    import os, signal

    def die(value):
        with open(value["log"], "a") as log:
            log.write("ran\\n")
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.slow
def test_handler_that_sigkills_itself_is_dead_after_max_tries(tmp_path: Path) -> None:
    (tmp_path / "suicide.py").write_text(DIE)
    log = tmp_path / "runs.log"
    store, retries = str(tmp_path / "q.sqlite3"), str(tmp_path / "r.sqlite3")
    stores = ("--store-path", store, "--retry-store-path", retries)
    value = json.dumps({"log": str(log)})
    assert run(tmp_path, "queue", "add", "q", "--value", value, "--store-path", store).stdout
    codes = []
    for _ in range(4):  # each run waits (--block) for the previous lease to expire
        done = run(
            tmp_path, "queue", "process", "q", "suicide:die", "--max-tries", "3",
            "--lease-timeout", "1", "--block", "--max-jobs", "1", *stores,
        )  # fmt: skip
        codes.append(done.returncode)
    assert codes[:3] == [-signal.SIGKILL] * 3 and codes[3] == 0
    assert log.read_text() == "ran\n" * 3
    assert json.loads(done.stdout)["status"] == "dead"
    later = run(tmp_path, "queue", "process", "q", "suicide:die", "--max-tries", "3", *stores)
    assert later.returncode == 0 and later.stdout == ""
    assert stats(tmp_path, store)["dead"] == 1
