"""The LMDB store (``lmdb://DIR``) under crashes, damage and file permissions."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.faults.helpers import popen, python, read_fifo, read_line, run, stats

pytest.importorskip("lmdb", reason="the lmdb extra")


def _url(tmp_path: Path) -> str:
    return f"lmdb://{tmp_path / 'env'}"


def _total(tmp_path: Path) -> int:
    return stats(tmp_path, _url(tmp_path))["total"]


@pytest.mark.slow
def test_lmdb_sigkill_queue_add_is_all_or_nothing(tmp_path: Path) -> None:
    url = _url(tmp_path)
    payload = "".join(f'{{"n": {i}}}\n' for i in range(50_000))
    adder = popen(tmp_path, "queue", "add", "q", "--store-path", url, stdin=subprocess.PIPE)
    assert adder.stdin is not None
    adder.stdin.write(payload[: len(payload) // 2])
    adder.stdin.flush()
    adder.kill()
    adder.wait(10)
    assert not Path(url[7:]).exists() or _total(tmp_path) == 0
    lines = tmp_path / "lines"
    lines.write_text(payload)
    with open(lines) as stdin:
        adder = popen(tmp_path, "queue", "add", "q", "--store-path", url, stdin=stdin)
    read_line(adder.stdout)  # committed: printing has begun
    adder.kill()
    adder.wait(10)
    assert _total(tmp_path) == 50_000


PUT_THEN_WAIT = textwrap.dedent(
    """
    import sys
    from localqueue import PersistentQueue
    from localqueue.stores import open_store
    q = PersistentQueue("q", store=open_store(sys.argv[1]))
    print(q.put({"n": 1}).id, flush=True)
    sys.stdin.readline()
    """
)


def test_lmdb_sigkill_right_after_put_returned(tmp_path: Path) -> None:
    child = python(PUT_THEN_WAIT, _url(tmp_path))
    message_id = read_line(child.stdout).strip()
    child.kill()
    child.wait(10)
    inspected = run(tmp_path, "queue", "inspect", "q", message_id, "--store-path", _url(tmp_path))
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["state"] == "ready"


def test_lmdb_sigkill_worker_mid_handler_redelivers(tmp_path: Path) -> None:
    url, ready = _url(tmp_path), tmp_path / "ready"
    os.mkfifo(ready)
    assert run(tmp_path, "queue", "add", "q", "--value", "1", "--store-path", url).returncode == 0
    worker = popen(
        tmp_path, "queue", "exec", "q", "--lease-timeout", "1", "--store-path", url,
        "--retry-store-path", f"lmdb://{tmp_path / 'retries'}",
        "--", "sh", "-c", f"echo started > {ready}; exec sleep 30",
    )  # fmt: skip
    read_fifo(ready)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    popped = run(tmp_path, "queue", "pop", "q", "--block", "--timeout", "10", "--store-path", url)
    assert popped.returncode == 0, popped.stderr
    assert json.loads(popped.stdout)["attempts"] == 2


def _garbage(env: Path) -> None:
    env.mkdir()
    (env / "data.mdb").write_bytes(os.urandom(20_000))


def _foreign(env: Path) -> None:
    import lmdb

    handle = lmdb.open(str(env), max_dbs=2)
    handle.open_db(b"theirs")
    handle.close()


def _other_files(env: Path) -> None:
    env.mkdir()
    (env / "notes.txt").write_text("mine\n")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_garbage, "File is not an LMDB file"),
        (_foreign, "not a localqueue store (foreign LMDB databases)"),
        (_other_files, "not a localqueue store (the directory holds other files)"),
    ],
)
def test_lmdb_foreign_or_damaged_environment(tmp_path, damage, expected) -> None:  # type: ignore[no-untyped-def]
    env = tmp_path / "env"
    damage(env)
    before = {p.name: p.read_bytes() for p in env.iterdir() if p.name != "lock.mdb"}
    for argv in (("queue", "add", "q", "--value", "1"), ("queue", "pop", "q")):
        done = run(tmp_path, *argv, "--store-path", f"lmdb://{env}")
        assert done.returncode == 1
        assert f"LMDB store {env}: " in done.stderr and expected in done.stderr
    after = {p.name: p.read_bytes() for p in env.iterdir() if p.name != "lock.mdb"}
    assert after == before


def test_lmdb_files_are_private_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        run(tmp_path, "queue", "add", "q", "--value", "1", "--store-path", _url(tmp_path))
    finally:
        os.umask(old)
    env = tmp_path / "env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in env.iterdir()} == {
        "data.mdb": 0o600,
        "lock.mdb": 0o600,
    }
