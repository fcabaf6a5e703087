"""settle_many is all or nothing with real processes: a worker SIGKILLed inside it (at
the ``settle-before-commit`` failpoint, after the settlements, their ``then_put`` values
and the next leases were written but before the commit) leaves the store exactly as it
was; one that gets past it leaves every part done. SQLite, LMDB and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from localqueue.outcome import Settlement
from localqueue.stores import open_store
from localqueue.stores.base import QueueStore
from tests.conftest import dispose, fresh_schema, postgres_url, unavailable

# Acks the held message with two values for "next", releases nothing, leases one more.
CHILD = textwrap.dedent(
    """
    import sys
    from localqueue.outcome import Settlement
    from localqueue.stores import open_store
    location, message_id, token = sys.argv[1:4]
    store = open_store(location)
    settlement = Settlement(
        message_id, token, "acked", then_put=(b'"a"', b'"b"'), to="next"
    )
    applied, leased = store.settle_many(
        "jobs", [settlement], lease=1, lease_timeout=600, leased_by="child"
    )
    print(applied, len(leased), flush=True)
    """
)
FAILPOINT = "settle-before-commit"


def _location(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return str(tmp_path / "queue.sqlite3")
    if kind == "lmdb":
        pytest.importorskip("lmdb", reason="lmdb (localqueue[lmdb]) is not installed")
        return "lmdb://" + str(tmp_path / "queue.lmdb")
    url = postgres_url()
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        unavailable(f"PostgreSQL backend not importable: {exc}")
    return f"{url}{'&' if '?' in url else '?'}schema={fresh_schema()}"


@pytest.fixture(params=["sqlite", "lmdb", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    where = _location(str(request.param), tmp_path)
    yield where
    dispose(open_store(where))


def _prepare(location: str) -> tuple[QueueStore, str, str]:
    """Two messages on "jobs", the first one leased; returns its id and token."""
    store = open_store(location)
    store.put("jobs", [b'"held"', b'"waiting"'])
    (held,) = store.lease_many("jobs", 1, lease_timeout=600, leased_by="parent")
    return store, held.id, held.lease_token


def _contents(store: QueueStore) -> dict[str, list[tuple[object, ...]]]:
    return {name: store.peek(name) for name in ("jobs", "next")}


def _run_child(
    location: str, message_id: str, token: str, env: dict[str, str]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, location, message_id, token],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_inside_settle_many_leaves_neither_the_ack_nor_its_then_put(
    location: str,
) -> None:
    store, message_id, token = _prepare(location)
    before = _contents(store)
    store.close()

    env = dict(os.environ, LOCALQUEUE_TESTING="1", LOCALQUEUE_FAILPOINT=FAILPOINT)
    child = _run_child(location, message_id, token, env)
    assert child.stderr is not None
    line = child.stderr.readline()  # blocks until the child stands at the failpoint
    assert line.strip() == f"localqueue: failpoint {FAILPOINT} reached"
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)

    store = open_store(location)
    try:
        assert _contents(store) == before  # the held message still held, "next" empty
        # and the lease still works: the parent can settle what it holds
        applied, _ = store.settle_many("jobs", [Settlement(message_id, token, "acked")])
        assert applied == [True]
    finally:
        store.close()


def test_settle_many_that_commits_acks_puts_and_leases_together(location: str) -> None:
    store, message_id, token = _prepare(location)
    store.close()

    child = _run_child(location, message_id, token, dict(os.environ))
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.split() == ["[True]", "1"]

    store = open_store(location)
    try:
        assert store.get("jobs", message_id) is None
        assert [row.value for row in store.peek("next")] == [b'"a"', b'"b"']
        (waiting,) = store.peek("jobs")
        assert (waiting[2], waiting[3], waiting[9]) == (b'"waiting"', "inflight", "child")
    finally:
        store.close()
