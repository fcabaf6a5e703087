"""What the SQLite store promises beyond the contract: safe opening, pragmas, indexes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from localqueue import Empty, MessageNotFoundError, PersistentQueue, QueueStats, StoreError
from localqueue.stores import _sqlite_sql as sql
from localqueue.stores._sqlite_sql import APPLICATION_ID
from localqueue.stores.sqlite import SQLiteQueueStore
from tests.stores.test_migration import RELEASE_0_3


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def test_garbage_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not a database\n" * 100)
    before = _bytes(path)
    with pytest.raises(StoreError, match=r"garbage\.sqlite3.*not a localqueue"):
        SQLiteQueueStore(path)
    assert _bytes(path) == before
    assert not Path(f"{path}-wal").exists()


def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.close()
    before = _bytes(path)
    with pytest.raises(StoreError, match="not a localqueue queue store"):
        SQLiteQueueStore(path)
    assert _bytes(path) == before


def test_newer_schema_version_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    SQLiteQueueStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = _bytes(path)
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        SQLiteQueueStore(path)
    assert _bytes(path) == before


def test_a_version_1_file_is_migrated_and_remembers_its_queues(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    shutil.copyfile(RELEASE_0_3 / "queue.sqlite3", path)  # a version 2 file
    conn = sqlite3.connect(path)  # what a version 1 file was: no table of queue names
    conn.executescript("DROP TABLE queues; DROP TRIGGER messages_queue_known")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    store = SQLiteQueueStore(path)
    assert store.known_queues() == ["jobs", "other"]
    PersistentQueue("other", store=store).purge()
    PersistentQueue("new", store=store).put(3)
    assert store.known_queues() == ["jobs", "new", "other"]
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (sql.SCHEMA_VERSION,)
    conn.close()


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.sqlite3"
    q = PersistentQueue("jobs", path)
    q.put(1)
    q.close()
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(StoreError, match="malformed"):
        SQLiteQueueStore(path)


def test_missing_directory_and_directory_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="directory does not exist"):
        SQLiteQueueStore(tmp_path / "nope" / "q.sqlite3")
    with pytest.raises(StoreError, match="is a directory"):
        SQLiteQueueStore(tmp_path)


def test_store_files_are_private_even_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "q.sqlite3"
        q = PersistentQueue("jobs", path)
        q.put("secret")
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
        q.close()
    finally:
        os.umask(old)


@pytest.mark.parametrize(("durability", "level"), [("full", 2), ("normal", 1)])
def test_pragmas(tmp_path: Path, durability: str, level: int) -> None:
    store = SQLiteQueueStore(tmp_path / "q.sqlite3", durability=durability, busy_timeout=2.5)  # type: ignore[arg-type]
    conn = store._file.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == level
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2500
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    q = PersistentQueue("jobs", store=store)
    q.put(1)
    q.get_message(block=False)  # leasing relaxes sync for itself only
    with pytest.raises(Empty):
        q.get_message(block=False)
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == level
    with pytest.raises(ValueError):
        SQLiteQueueStore(tmp_path / "x.sqlite3", durability="fast")  # type: ignore[arg-type]


def test_default_queue_uses_full_durability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    q = PersistentQueue("jobs")
    assert isinstance(q.store, SQLiteQueueStore)
    assert q.store.path == Path("localqueue_queue.sqlite3")
    assert q.store._file.connection().execute("PRAGMA synchronous").fetchone()[0] == 2
    assert (tmp_path / "localqueue_queue.sqlite3").exists()


def test_leasing_uses_an_index_not_a_scan(tmp_path: Path) -> None:
    from localqueue.stores import _sqlite_sql as sql

    store = SQLiteQueueStore(tmp_path / "q.sqlite3")
    conn = store._file.connection()
    params = {"now": 0.0, "expires": 1.0, "timeout": 1.0, "by": None, "token": "t", "queue": "q"}
    plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql.LEASE, params))
    assert "USING INDEX messages_visible" in plan or "USING COVERING INDEX messages_visible" in plan
    assert "SCAN messages" not in plan.replace("SCAN messages USING", "")
    assert "TEMP B-TREE" not in plan  # ordered by the index, no sort


@pytest.mark.parametrize(
    ("statement", "indexes"),
    [
        (sql.HISTORY, {"history_finished", "messages_finished"}),
        (sql.HISTORY_RECORD, {"history_id"}),
        (sql.COUNT_BOUNDARY, {"history_finished", "messages_finished"}),
        *((prune, {"history_finished"}) for prune in (sql.PRUNE_AGE[0], sql.PRUNE_COUNT[0])),
        *((prune, {"messages_finished"}) for prune in (sql.PRUNE_AGE[1], sql.PRUNE_COUNT[1])),
    ],
    ids=[
        "newest-page", "one-record", "count-boundary", "prune-age-copies",
        "prune-count-copies", "prune-age-finished", "prune-count-finished",
    ],
)  # fmt: skip
def test_history_reads_and_pruning_go_down_indexes_not_scans(
    tmp_path: Path, statement: str, indexes: set[str]
) -> None:
    """A history of a million records answers a page, a record or a pruning step from
    an index each; a scan of either table would take a second."""
    store = SQLiteQueueStore(tmp_path / "q.sqlite3")
    conn = store._file.connection()
    params = dict.fromkeys(
        ("queue", "since", "status", "key", "limit", "id", "seq", "nonce", "count", "batch",
         "cutoff", "finished", "message_seq"),
        1,
    )  # fmt: skip
    plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params))
    store.close()
    used = {word for word in plan.replace("|", " ").split() if word in _INDEXES}
    assert used == indexes, plan
    assert "SCAN history" not in plan and "SCAN messages" not in plan, plan


_INDEXES = {
    "history_finished", "history_id", "messages_finished", "messages_visible",
    "messages_dead", "messages_key",
}  # fmt: skip


def test_acked_rows_are_deleted(tmp_path: Path) -> None:
    q = PersistentQueue("jobs", tmp_path / "q.sqlite3")
    q.put_many(range(50))
    for _ in range(50):
        q.ack(q.get_message(block=False))
    conn = q.store._file.connection()  # type: ignore[attr-defined]
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_messages_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    with PersistentQueue("jobs", path) as q:
        put = q.put({"keep": True}, delay=0)
    with PersistentQueue("jobs", path) as q:
        assert q.get_message(block=False).id == put.id


def test_ids_differ_between_store_files(tmp_path: Path) -> None:
    a = PersistentQueue("jobs", tmp_path / "a.sqlite3").put(1)
    b = PersistentQueue("jobs", tmp_path / "b.sqlite3").put(1)
    assert a.id != b.id


def test_a_forked_child_never_reuses_the_parent_connection(tmp_path: Path) -> None:
    q = PersistentQueue("jobs", tmp_path / "q.sqlite3")
    q.put("from parent")
    parent_conn = q.store._file.connection()  # type: ignore[attr-defined]
    pid = os.fork()
    if pid == 0:  # child: must open its own connection
        code = 1
        try:
            if q.store._file.connection() is not parent_conn:  # type: ignore[attr-defined]
                q.put("from child")
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [q.get_message(block=False).value for _ in range(2)] == ["from parent", "from child"]


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_deleted_or_replaced_store_file_is_noticed(tmp_path: Path, how: str) -> None:
    path = tmp_path / "q.sqlite3"
    q = PersistentQueue("jobs", path)
    q.put(1)
    q.ack(q.get_message(block=False))  # now idle, as a --forever --block worker would be
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how == "replaced":
        PersistentQueue("jobs", path).put("new file")
    with pytest.raises(StoreError, match="deleted or replaced"):
        q.get_message(timeout=10)  # raised at the first poll; 10 s only bound a failure


def test_check_backup_and_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    q = PersistentQueue("jobs", path)
    q.put_many(range(500))
    q.dead_letter(q.get_message(block=False), error="x")
    store = q.store
    assert isinstance(store, SQLiteQueueStore)
    report = store.check()
    assert report["ok"] is True and report["integrity"] == "ok"
    assert report["schema_version"] == sql.SCHEMA_VERSION and report["messages"] == 500
    assert report["queues"]["jobs"]["dead"] == 1

    backup = store.backup(tmp_path / "copy.sqlite3")
    assert backup["ok"] is True and backup["messages"] == 500
    copy = PersistentQueue("jobs", tmp_path / "copy.sqlite3")
    assert copy.stats() == q.stats()
    with pytest.raises(StoreError, match="already exists"):
        store.backup(tmp_path / "copy.sqlite3")

    q.purge()
    sizes = store.vacuum()
    assert sizes["bytes_after"] < sizes["bytes_before"]
    assert store.check()["ok"] is True


def test_check_reports_damage(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    q = PersistentQueue("jobs", path)
    q.put_many(["x" * 2000 for _ in range(200)])  # enough pages to damage one
    q.store.checkpoint()  # type: ignore[attr-defined]
    q.close()
    data = bytearray(path.read_bytes())
    page = 4096 * 5
    data[page : page + 12] = b"\x0d\xff\xff\xff\xff" + bytes(7)  # a b-tree page header gone bad
    path.write_bytes(bytes(data))
    try:
        report = SQLiteQueueStore(path).check()
    except StoreError as exc:  # damage found while opening is fine too
        assert "malformed" in str(exc)
    else:
        assert report["ok"] is False and report["integrity"] != "ok"


@pytest.mark.parametrize("count", [2, 511, 512, 513, 1337])
def test_batches_of_any_size_keep_ids_and_order(tmp_path: Path, count: int) -> None:
    q = PersistentQueue("jobs", tmp_path / "q.sqlite3")
    messages = q.put_many([{"i": i} for i in range(count)])
    assert len({m.id for m in messages}) == count
    for message in (messages[0], messages[count // 2], messages[-1]):
        assert q.inspect(message.id).value == message.value  # type: ignore[union-attr]
    assert [q.get_message(block=False).value["i"] for _ in range(count)] == list(range(count))


def test_polling_an_empty_queue_does_not_need_the_write_lock(tmp_path: Path) -> None:
    """A lease looks with a read first (when it is the first, or the last one found
    nothing), and so does a blocking wait: a consumer polling an empty queue neither waits
    for nor holds up a writer of another process."""
    import subprocess
    import sys

    path = tmp_path / "q.sqlite3"
    store = SQLiteQueueStore(path, busy_timeout=0.2)
    assert store.lease("q", lease_timeout=30.0, leased_by=None) is None
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "conn.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        for _ in range(3):  # no StoreLockedError: the write lock is never asked for
            assert store.lease("q", lease_timeout=30.0, leased_by=None) is None
        with pytest.raises(Empty):  # a blocking wait too (it also checks for clock steps)
            PersistentQueue("q", store=store).get_message(timeout=0.3)
    finally:
        holder.communicate("")
    assert store.lease("q", lease_timeout=30.0, leased_by=None) is None
    [row] = store.put("q", [b"1"])
    leased = store.lease("q", lease_timeout=30.0, leased_by=None)  # the read sees it
    assert leased is not None and leased.id == row.id


OPEN_AND_WRITE = """
import sys
from localqueue.retry.sqlite import SQLiteAttemptStore
from localqueue.stores.sqlite import SQLiteQueueStore

print("ready", flush=True)
sys.stdin.readline()
try:
    SQLiteQueueStore(sys.argv[1]).put("jobs", [b"1"])
    SQLiteAttemptStore(sys.argv[2]).record_attempt("key-" + sys.argv[3], 1.0)
except Exception as exc:
    print(type(exc).__name__, exc, flush=True)
else:
    print("ok", flush=True)
"""


def test_processes_creating_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Eight processes released together on one new queue file and one new attempt file:
    none sees a half-made schema as foreign, none fails on a lock (a new file starts in
    rollback-journal mode, where SQLite answers some lock conflicts with SQLITE_BUSY at
    once instead of waiting)."""
    import subprocess
    import sys

    for round_ in range(5):
        queue_path, attempts_path = tmp_path / f"q{round_}.sqlite3", tmp_path / f"r{round_}.sqlite3"
        children = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AND_WRITE, str(queue_path), str(attempts_path), str(i)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(8)
        ]
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:  # release them together
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outcomes = [child.communicate(timeout=60)[0].strip() for child in children]
        assert outcomes == ["ok"] * 8, outcomes
        assert SQLiteQueueStore(queue_path).stats("jobs").ready == 8


SHARED_LOCK_PROBE = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
# Would a write lock on SQLite's SHARED range of the file be refused by another process?
probe = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0x40000002, 510, 0)
held = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, probe))[0] != fcntl.F_UNLCK
print("held" if held else "free")
"""


def test_opening_a_second_store_on_a_file_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    """Two queues on one file in one process (PersistentQueue("a", p), ("b", p)): opening
    the second must not read the file through a descriptor of its own, whose close would
    drop every POSIX lock this process holds on it, SQLite's SHARED lock of a running
    transaction included (another process could then delete the WAL under it)."""
    import subprocess
    import sys

    path = tmp_path / "q.sqlite3"
    first = SQLiteQueueStore(path)
    first.put("a", [b"1"])
    conn = first._file.connection()
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM messages").fetchone()  # holds SHARED now

    def probe() -> str:
        argv = [sys.executable, "-c", SHARED_LOCK_PROBE, str(path)]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

    assert probe() == "held"
    second = SQLiteQueueStore(path)
    assert probe() == "held"
    conn.execute("COMMIT")
    assert second.put("b", [b"2"]) and first.stats("b").ready == 1
    second.close()
    first.close()
    third = SQLiteQueueStore(path)  # nothing open here now: the header is read again
    assert third.stats("a").ready == 1


def test_an_acked_message_kept_as_its_record_is_in_no_listing_of_messages(
    tmp_path: Path,
) -> None:
    """While its queue keeps a history, an acked message stays in ``messages`` as its own
    record (state 3): it is history only, never a message that any read, count,
    delete, purge or completion finds."""
    path = tmp_path / "q.sqlite3"
    store = SQLiteQueueStore(path)
    q = PersistentQueue("jobs", store=store)
    q.keep(3600)
    done, dead, waiting = q.put_many([1, 2, 3], keys=["a", "b", "c"])
    q.ack(q.get_message(block=False))
    q.dead_letter(q.get_message(block=False), error="no")
    assert [m.id for m in q.peek()] == [dead.id, waiting.id]
    assert q.inspect(done.id) is None and q.finished(done.id)["status"] == "acked"
    assert q.stats() == QueueStats(ready=1, dead=1)
    assert store.check()["messages"] == 2 and store.queues().keys() == {"jobs"}
    with pytest.raises(MessageNotFoundError):
        q.delete(done.id)
    assert q.put(4, key="a").duplicate is False  # an acked message holds no key

    def rows(statement: str, params: object) -> list[object]:
        with sqlite3.connect(path) as conn:
            found = conn.execute(statement, params).fetchall()
        conn.close()
        return found

    ids = sql.completion_ids(rows, "jobs", None)
    assert done.id not in ids and {dead.id, waiting.id} <= set(ids)
    assert done.id not in sql.completion_ids(rows, "jobs", None, done.id.split("-")[0])
    assert q.purge() == 3  # the dead letter, the waiting one and key "a"'s
    assert [r["id"] for r in q.history()] == [dead.id, done.id]
    store.close()
