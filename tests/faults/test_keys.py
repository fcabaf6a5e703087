"""Deduplication keys under real concurrency and crashes (issue 26): producers racing on
the same keys never enqueue one twice, and a producer SIGKILLed inside a keyed batch
leaves either the whole batch or none of it, and no key held without its message."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from localqueue import PersistentQueue
from localqueue.stores import open_store
from tests.conftest import fresh_schema, postgres_url, unavailable
from tests.faults.helpers import clean_env, popen, python, read_line, run

# A producer: "ready", then on a line from stdin 1,000 separate puts of 100 keys (each
# its own transaction), then how many of them it wrote (the others were duplicates).
RACER = textwrap.dedent(
    """
    import sys
    from localqueue import PersistentQueue
    q = PersistentQueue("race", sys.argv[1])
    q.put("warm-up", key="warm-up")  # schema and connection ready before the race
    print("ready", flush=True)
    sys.stdin.readline()
    wrote = sum(not q.put(i, key=f"k{i % 100}").duplicate for i in range(1000))
    print(wrote, flush=True)
    """
)


def _address(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return str(tmp_path / "q.sqlite3")
    if kind == "lmdb":
        pytest.importorskip("lmdb", reason="the LMDB backend (localqueue[lmdb]) is missing")
        return f"lmdb://{tmp_path / 'q.lmdb'}"
    url = postgres_url()
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        unavailable(f"psycopg (localqueue[postgres]) is missing: {exc}")
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}schema={fresh_schema()}"


def _drop(address: str) -> None:
    if address.startswith("postgresql://"):
        store = open_store(address)
        store.drop_schema()  # type: ignore[attr-defined]
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "lmdb"])
def test_two_processes_racing_1000_adds_of_100_keys_enqueue_exactly_100(
    kind: str, tmp_path: Path
) -> None:
    address = _address(kind, tmp_path)
    try:
        PersistentQueue("race", address).put("warm-up", key="warm-up")  # created once
        racers = [python(RACER, address) for _ in range(2)]
        for racer in racers:
            assert read_line(racer.stdout, 60) == "ready\n"
        for racer in racers:  # both start at once, each on its own connection
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        wrote = [int(read_line(racer.stdout, 120)) for racer in racers]
        for racer in racers:
            assert racer.wait(30) == 0, racer.stderr.read() if racer.stderr else ""
        assert sum(wrote) == 100
        q = PersistentQueue("race", address)
        messages = [m for m in q.peek() if m.key != "warm-up"]
        assert len(messages) == 100
        assert sorted(m.key for m in messages) == sorted(f"k{i}" for i in range(100))
        q.close()
    finally:
        _drop(address)


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "lmdb"])
def test_a_producer_killed_inside_a_keyed_batch_leaves_no_key_held_and_nothing_written(
    kind: str, tmp_path: Path
) -> None:
    address = _address(kind, tmp_path)
    try:
        q = PersistentQueue("q", address)
        held = q.put({"k": "k7", "n": -1}, key="k7")
        batch = "".join(json.dumps({"k": f"k{i}", "n": i}) + "\n" for i in range(500))
        env = clean_env(tmp_path, LOCALQUEUE_TESTING="1", LOCALQUEUE_FAILPOINT="put-before-commit")
        args = ("queue", "add", "q", "--key-field", "k", "--store-path", address)
        adder = popen(tmp_path, *args, stdin=subprocess.PIPE, env=env)
        assert adder.stdin is not None
        adder.stdin.write(batch)
        adder.stdin.close()
        assert "failpoint put-before-commit reached" in read_line(adder.stderr, 60)
        adder.kill()
        adder.wait(10)
        assert [m.id for m in q.peek()] == [held.id]  # none of the batch
        # Every key of the killed batch is free: the same batch now enqueues all but k7.
        done = run(tmp_path, *args, stdin=batch)
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert [m["id"] for m in lines if m.get("duplicate")] == [held.id]
        assert q.stats().ready == 500
        q.close()
    finally:
        _drop(address)
