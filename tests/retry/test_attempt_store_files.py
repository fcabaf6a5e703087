"""What the persistent attempt stores promise beyond the contract: safe files, refusals,
durability, fork safety, and a clear error without the lmdb extra."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from localqueue.errors import StoreError
from localqueue.retry import PersistentRetrying, SQLiteAttemptStore, open_attempt_store
from localqueue.retry.base import AttemptStore
from tests.conftest import unavailable


def lmdb_store(path: Path) -> AttemptStore:
    try:
        from localqueue.retry.lmdb import LMDBAttemptStore
    except ImportError as exc:
        unavailable(f"LMDB attempt store not importable: {exc}")
    return LMDBAttemptStore(path)


# -- SQLite -----------------------------------------------------------------------------


def test_new_sqlite_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "retries.sqlite3"
    old = os.umask(0o022)
    try:
        store = SQLiteAttemptStore(path)
        store.record_attempt("k", time.time())
    finally:
        os.umask(old)
    for name in (path, Path(f"{path}-wal")):
        assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    store.close()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    full = SQLiteAttemptStore(tmp_path / "full.sqlite3")
    normal = SQLiteAttemptStore(tmp_path / "normal.sqlite3", durability="normal", busy_timeout=2)
    full.record_attempt("k", 1.0)  # bookkeeping skips its own fsync...
    full.clear("k")
    with full._file.session as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # ...and FULL is back
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    with normal._file.session as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2000
    with pytest.raises(ValueError, match="durability"):
        SQLiteAttemptStore(tmp_path / "x.sqlite3", durability="fast")  # type: ignore[arg-type]
    full.close()
    normal.close()


def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE attempts (key TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"app\.db.*not a localqueue attempt store"):
        SQLiteAttemptStore(path)
    assert path.read_bytes() == before


def test_garbage_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 50)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"notes\.txt"):
        SQLiteAttemptStore(path)
    assert path.read_bytes() == before


def test_queue_store_file_is_not_an_attempt_store(tmp_path: Path) -> None:
    from localqueue.stores.sqlite import SQLiteQueueStore

    path = tmp_path / "queue.sqlite3"
    SQLiteQueueStore(path).close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a localqueue attempt store"):
        SQLiteAttemptStore(path)
    assert path.read_bytes() == before


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "retries.sqlite3"
    SQLiteAttemptStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StoreError, match="schema version 7 is newer"):
        SQLiteAttemptStore(path)


def test_records_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "retries.sqlite3"
    store = SQLiteAttemptStore(path)
    store.record_attempt("k", 100.0)
    store.record_failure("k", b'{"type":"E"}', exhausted=True)
    store.close()
    again = open_attempt_store(path)
    record = again.get("k")
    assert record is not None and record.exhausted and record.first_attempt_at == 100.0
    again.close()


# -- LMDB -------------------------------------------------------------------------------


def test_lmdb_refuses_a_directory_of_other_files(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(StoreError, match="photos"):
        lmdb_store(tmp_path / "photos")
    assert os.listdir(tmp_path / "photos") == ["cat.jpg"]


def test_lmdb_counts_beside_the_queues_of_a_queue_environment(tmp_path: Path) -> None:
    lmdb_store(tmp_path / "probe").close()  # skips without lmdb
    from localqueue import PersistentQueue
    from localqueue.stores.lmdb import LMDBQueueStore

    queue = PersistentQueue("jobs", store=LMDBQueueStore(tmp_path / "queue.lmdb"))
    queue.put(1)
    attempts = lmdb_store(tmp_path / "queue.lmdb")  # shares the open environment
    assert attempts.record_attempt("k", 5.0).attempts == 1
    assert queue.get_message(block=False).value == 1  # the queue still works beside it
    attempts.close()
    queue.close()
    again = open_attempt_store(f"lmdb://{tmp_path / 'queue.lmdb'}")  # opened first now
    record = again.get("k")
    assert record is not None and record.attempts == 1
    reopened = LMDBQueueStore(tmp_path / "queue.lmdb")  # and the queue store beside it
    assert reopened.stats("jobs").inflight == 1
    reopened.close()
    again.close()
    assert sorted(os.listdir(tmp_path / "queue.lmdb")) == ["data.mdb", "lock.mdb"]


def test_lmdb_attempt_environment_is_not_a_queue_store(tmp_path: Path) -> None:
    lmdb_store(tmp_path / "retries.lmdb").close()  # skips without lmdb
    from localqueue.stores.lmdb import LMDBQueueStore

    with pytest.raises(StoreError, match="localqueue-attempts"):
        LMDBQueueStore(tmp_path / "retries.lmdb")


def test_lmdb_directory_is_private_and_records_survive(tmp_path: Path) -> None:
    path = tmp_path / "retries.lmdb"
    store = lmdb_store(path)
    store.record_attempt("k", 5.0)
    store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE((path / "data.mdb").stat().st_mode) == 0o600
    again = open_attempt_store(f"lmdb://{path}")
    record = again.get("k")
    assert record is not None and record.attempts == 1
    again.close()


# -- fork -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "lmdb"])
def test_store_keeps_working_across_fork(tmp_path: Path, kind: str) -> None:
    if kind == "sqlite":
        store: AttemptStore = SQLiteAttemptStore(tmp_path / "r.sqlite3")
    else:
        store = lmdb_store(tmp_path / "r.lmdb")
    store.record_attempt("k", 1.0)  # the parent has an open connection / environment
    pid = os.fork()
    if pid == 0:  # child: must open its own handle, never reuse the parent's
        code = 1
        try:
            code = 0 if store.record_attempt("k", 2.0).attempts == 2 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    record = store.record_attempt("k", 3.0)
    assert record.attempts == 3 and record.first_attempt_at == 1.0
    store.close()


# -- without the lmdb extra ---------------------------------------------------------------

NO_LMDB = textwrap.dedent(
    """
    import sys
    sys.modules["lmdb"] = None  # as if localqueue[lmdb] were not installed
    import localqueue.retry
    from localqueue.errors import StoreError
    from localqueue.retry import PersistentRetrying
    try:
        PersistentRetrying(key="k", store_path=sys.argv[1])
    except StoreError as exc:
        print("store_path:", exc)
    try:
        from localqueue.retry import LMDBAttemptStore
    except ImportError as exc:
        print("import:", exc)
    """
)


def test_without_lmdb_the_error_names_the_extra(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_LMDB, str(tmp_path / "retries")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("store_path:") and "localqueue[lmdb]" in lines[0]
    assert lines[1].startswith("import:") and "localqueue[lmdb]" in lines[1]
    assert not (tmp_path / "retries").exists()


def test_store_path_with_lmdb_installed(tmp_path: Path) -> None:
    lmdb_store(tmp_path / "probe").close()
    retrying = PersistentRetrying(key="k", store_path=str(tmp_path / "retries"))
    assert retrying(lambda: 1) == 1
    assert (tmp_path / "retries" / "data.mdb").exists()
    retrying.store.close()
