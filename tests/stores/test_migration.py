"""Stores written by the previous release (0.3.0, commit 1c6803a) migrate in place: the
schema version goes up, every message keeps its state, value, attempts and error, and
gets priority 0 and no key; then keys and priorities work on them.

``data/release-0.3.0/`` holds a SQLite file, an LMDB environment and the SQL of a
PostgreSQL schema that ``make.py`` there wrote with that release (see its docstring):
queue ``jobs`` holds two ready messages (one released once with an error), one delayed
for ten years, one leased for ten years and one dead letter; queue ``other`` one ready."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from localqueue import Empty, KeyHeldError, PersistentQueue, QueueSettings, QueueStats
from localqueue.outcome import Outcome
from localqueue.stores import _sqlite_sql
from localqueue.stores.base import QueueStore
from localqueue.stores.sqlite import SQLiteQueueStore
from tests.conftest import fresh_schema, postgres_url

RELEASE_0_3 = Path(__file__).parent / "data" / "release-0.3.0"


def _check_migrated(store: QueueStore) -> None:
    q = PersistentQueue("jobs", store=store)
    assert q.stats() == QueueStats(ready=2, delayed=1, inflight=1, dead=1)
    assert store.known_queues() == ["jobs", "other"]
    messages = {m.value["n"]: m for m in q.peek()}
    assert sorted(messages) == [1, 2, 3, 4, 5]
    assert all(m.priority == m.key == m.group is None or m.priority == 0 for m in messages.values())
    assert all(m.key is None and m.group is None for m in messages.values())
    assert messages[1].attempts == 1 and messages[1].last_error is not None
    assert messages[1].last_error["message"] == "first try failed"
    assert (messages[2].state, messages[2].last_error["message"]) == ("dead", "poison")
    assert messages[3].state == "inflight" and messages[3].lease_token
    assert messages[4].state == "delayed"
    # The old messages lease as before (oldest visible first), after a new urgent one.
    urgent = q.put({"n": 6}, priority=1, key="urgent")
    assert q.put({"n": 7}, key="urgent").duplicate
    assert [q.get_message(block=False).value["n"] for _ in range(3)] == [6, 5, 1]
    # The old inflight message is still fenced by its token, and can be acked with it.
    q.ack(messages[3])
    # An old dead letter (no key) requeues; a keyed one is refused while its key is held.
    assert q.requeue_dead(messages[2]).state == "ready"
    q.dead_letter(q.get_message(block=False))
    assert q.dead_letters()[0].key is None
    assert urgent.key == "urgent"
    q.put({"n": 8}, key="k")
    with pytest.raises(KeyHeldError):
        q.put({"n": 9}, key="k", on_conflict="error")
    # Queue settings (issue 27): none on a migrated queue; pausing one holds its leases.
    assert q.settings() == QueueSettings(paused=False)
    q.pause()
    with pytest.raises(Empty):
        q.get_message(block=False)
    q.resume()
    held = q.get_message(block=False)
    assert held.value["n"] == 8
    q.release(held)  # ready again, for the history check
    # Limits and groups (issue 27): a migrated queue takes them and obeys them.
    grouped = q.put_many([{"n": 10}, {"n": 11}], groups=["g", "g"], priority=9)
    q.set_limits(per_group=1)
    leased = q.get_messages(2)
    assert [m.value["n"] for m in leased] == [10, 8]
    assert q.store.held_back("jobs") == ("per_group", 1)
    q.set_limits(per_group=None, max_inflight=2)
    assert q.get_messages(1) == []
    q.set_limits(max_inflight=None)
    q.release(leased[1])
    q.delete(*[m.id for m in grouped])  # gone again, for the history check


def _check_history_after_migration(store: QueueStore) -> None:
    """A migrated store keeps a history once asked to, also of a message leased before
    it was migrated (its first start unknown) and of one released after."""
    q = PersistentQueue("jobs", store=store)
    q.keep(3600)
    old = q.peek("ready")[0]
    q.release(q.get_message(block=False), error="again")
    while messages := q.get_messages(10):
        q.settle_many([Outcome(m, "acked") for m in messages])
    records = {r["id"]: r for r in q.history()}
    assert old.id in records and records[old.id]["status"] == "acked"
    assert records[old.id]["errors"][-1]["message"] == "again"


def test_a_sqlite_file_of_the_previous_release_migrates_in_place(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    shutil.copyfile(RELEASE_0_3 / "queue.sqlite3", path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    conn.close()
    store = SQLiteQueueStore(path)
    try:
        assert store.check()["schema_version"] == _sqlite_sql.SCHEMA_VERSION == 7
        _check_migrated(store)
        _check_history_after_migration(store)
        assert store.check()["ok"]
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert {"messages_visible", "messages_key", "history_finished"} <= indexes
    conn.close()


def create_release_0_3_schema(conn: Any, schema: str) -> None:
    """Create ``schema`` as release 0.3.0 made it (version 2), holding its test messages,
    over the psycopg connection ``conn`` (autocommit)."""
    text = (RELEASE_0_3 / "postgres.sql").read_text()
    for statement in text.replace('"lq_release_0_3"', f'"{schema}"').split(";\n"):
        if statement.strip():
            conn.execute(statement)


def test_a_postgres_schema_of_the_previous_release_migrates_in_place() -> None:
    psycopg = pytest.importorskip("psycopg", reason="psycopg (localqueue[postgres]) is missing")
    from localqueue.stores import _pg_sql
    from localqueue.stores.postgres import PostgresQueueStore

    url = postgres_url()
    schema = fresh_schema()
    with psycopg.connect(url, autocommit=True) as admin:
        create_release_0_3_schema(admin, schema)
        store = PostgresQueueStore(url, schema=schema)
        try:
            _check_migrated(store)
            _check_history_after_migration(store)
            version = admin.execute(
                f"SELECT value FROM \"{schema}\".meta WHERE key = 'queue_version'"
            ).fetchone()
            assert version == (str(_pg_sql.SCHEMA_VERSION),) == ("6",)
            found = admin.execute("SELECT to_regclass(%s)", (f'"{schema}".messages_leased_idx',))
            assert found.fetchone() != (None,)  # version 6
        finally:
            store.drop_schema()
            store.close()


def test_version_names_the_schema_versions_it_writes() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "localqueue"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    from localqueue.stores.lmdb import SCHEMA

    assert f"SQLite {_sqlite_sql.SCHEMA_VERSION}, LMDB {SCHEMA.version}, PostgreSQL 6)" in out


def test_an_lmdb_environment_of_the_previous_release_migrates_in_place(tmp_path: Path) -> None:
    from localqueue.stores.lmdb import SCHEMA, LMDBQueueStore

    path = tmp_path / "queue.lmdb"
    shutil.copytree(RELEASE_0_3 / "queue.lmdb", path)
    store = LMDBQueueStore(path)
    try:
        _check_migrated(store)
        _check_history_after_migration(store)
    finally:
        store.close()
    import lmdb

    env = lmdb.open(str(path), max_dbs=12, readonly=True, lock=False)
    with env.begin() as txn:
        meta = env.open_db(b"meta", txn=txn, create=False)
        assert txn.get(b"version", db=meta) == str(SCHEMA.version).encode() == b"5"
        names = set(txn.cursor().iternext(values=False))
    env.close()
    assert {b"settings", b"live"} <= names


def test_a_sqlite_file_of_schema_5_gains_groups_limits_and_keeps_its_history(
    tmp_path: Path,
) -> None:
    """Schema 5 was main's before issue 27's limits (unreleased, but stores of it exist):
    step 5 -> 6 adds the group column and the limit columns, and 6 -> 7 what an ack
    records in place."""
    with _migrated_copy(tmp_path, "schema-5") as store:
        q = PersistentQueue("jobs", store=store)
        # kept across the step: the retention, and the record of the keyed message
        assert q.retention() == (3600, None)
        assert [(r["key"], r["status"]) for r in q.history()] == [("k", "acked")]
        # the file's records are past its hour by now: a settle would prune them
        q.keep(count=10)
        (waiting,) = q.peek()
        assert (waiting.value, waiting.priority, waiting.group) == ({"n": 1}, 0, None)
        q.put({"n": 3}, group="g")
        q.set_limits(per_group=1, max_inflight=2)
        leased = q.get_messages(3)
        assert [m.value["n"] for m in leased] == [1, 3]
        q.ack(leased[0])  # recorded in place, read back with the older record
        assert [r["value"]["n"] for r in q.history()] == [1, 2]


@contextmanager
def _migrated_copy(tmp_path: Path, data: str) -> Iterator[SQLiteQueueStore]:
    """A copy of ``data/<data>/queue.sqlite3`` in ``tmp_path``, opened: migrated."""
    path = tmp_path / "queue.sqlite3"
    shutil.copyfile(Path(__file__).parent / "data" / data / "queue.sqlite3", path)
    store = SQLiteQueueStore(path)
    try:
        assert store.check()["schema_version"] == _sqlite_sql.SCHEMA_VERSION == 7
        yield store
    finally:
        store.close()


def test_a_sqlite_file_of_schema_6_moves_its_unmoved_records_into_history(tmp_path: Path) -> None:
    """Schema 6 (unreleased) recorded into ``history_new``: step 6 -> 7 moves those
    records into ``history`` in their order and drops the table; acks then record in
    place, and the history reads both, newest first."""
    with _migrated_copy(tmp_path, "schema-6") as store:
        q = PersistentQueue("jobs", store=store)
        assert q.retention() == (3600, None)
        old = q.history()
        assert [(r["value"]["n"], r["status"]) for r in old] == [
            (4, "dead"), (3, "acked"), (2, "acked"), (1, "acked"),
        ]  # fmt: skip
        assert (old[0]["error"]["message"], old[2]["key"], old[3]["output"]) == (
            "poison", "k", "one",
        )  # fmt: skip
        assert q.finished(old[3]["id"]) == old[3]
        (waiting,) = q.peek("ready")
        assert (waiting.value, waiting.group) == ({"n": 5}, "g")
        # the file's records are past its hour by now: a settle would prune them
        q.keep(count=10)
        q.settle_many([Outcome(q.get_message(block=False), "acked", output="five")])
        newest = q.history(limit=2)
        assert [r["value"]["n"] for r in newest] == [5, 4]
        assert newest[0]["output"] == "five" and q.finished(waiting.id) == newest[0]
        assert q.stats() == QueueStats(dead=1) and store.check()["messages"] == 1
    with sqlite3.connect(tmp_path / "queue.sqlite3") as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "history_new" not in tables and "messages_finished" in tables


def _schema(path: Path) -> tuple[set[tuple[str, str]], list[tuple[Any, ...]]]:
    """A SQLite store's tables, indexes and triggers, and its messages' columns in order."""
    with sqlite3.connect(path) as conn:
        names = set(conn.execute("SELECT type, name FROM sqlite_master"))
        columns = conn.execute("PRAGMA table_info(messages)").fetchall()
    conn.close()
    return names, columns


def test_a_migrated_sqlite_file_has_the_schema_of_a_new_one(tmp_path: Path) -> None:
    migrated = tmp_path / "migrated.sqlite3"
    shutil.copyfile(RELEASE_0_3 / "queue.sqlite3", migrated)
    for path in (migrated, tmp_path / "new.sqlite3"):
        SQLiteQueueStore(path).close()
    assert _schema(migrated) == _schema(tmp_path / "new.sqlite3")
