"""What the LMDB store promises beyond the contract: its layout, safe opening, a full map,
one environment per process, fork, and the same answers as the reference store."""

from __future__ import annotations

import collections
import multiprocessing as mp
import os
import random
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

lmdb = pytest.importorskip("lmdb")  # the CI job installs the extra; conftest fails there

from localqueue import LeaseLostError, MessageNotFoundError, PersistentQueue, StoreError  # noqa: E402
from localqueue.stores import open_store  # noqa: E402
from localqueue.stores._lmdb_format import Record, index_key  # noqa: E402
from localqueue.stores.base import QueueStore, Row  # noqa: E402
from localqueue.stores.lmdb import LMDBQueueStore  # noqa: E402
from localqueue.stores.memory import MemoryQueueStore  # noqa: E402

KIB = 1024
Action = Callable[[str, QueueStore], object]


def _data(path: Path) -> bytes:
    """The environment's data file (the lock file is scratch space every opener writes)."""
    return (path / "data.mdb").read_bytes()


# -- the byte layout ---------------------------------------------------------------------


def test_records_round_trip_every_field() -> None:
    full = Record(
        "t-7", "jobs", b'{"a":1}', 1, 3, 7, 1.5, 2.5, 3.5, 4.5, "wörker", "tok", b"{}", 5.5, None
    )
    full.group = "customer-7"
    bare = Record("t-8", "q", b"", 0, 0, 8, -1.0, None)
    for record in (full, bare):
        assert Record.unpack(record.id, record.pack()) == record


def test_index_keys_sort_by_queue_then_time_then_sequence() -> None:
    times = [-1e9, -2.5, -0.0, 0.0, 1e-300, 1.0, 1.5, 1_700_000_000.25, 1e300]
    keys = [index_key("jobs", t, seq) for t in times for seq in (1, 2)]
    assert keys == sorted(keys)
    assert index_key("jobs", 9e9, 9) < index_key("jobs.x", -9e9, 0)
    assert index_key("a", 1.0, 1) < index_key("b", 0.0, 0)


# -- opening -----------------------------------------------------------------------------


def test_messages_and_ids_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "env"
    q = PersistentQueue("jobs", store=LMDBQueueStore(path))
    first = q.put("a")
    q.put("b", delay=60)
    q.dead_letter(q.get_message(block=False), error="boom")
    q.close()
    again = PersistentQueue("jobs", store=LMDBQueueStore(path))
    assert again.stats().to_dict() == {
        "ready": 0,
        "delayed": 1,
        "inflight": 0,
        "dead": 1,
        "total": 2,
    }
    assert again.dead_letters()[0].last_error["message"] == "boom"
    assert again.put("c").id not in {first.id} | {m.id for m in again.dead_letters()}
    again.close()


def test_ids_differ_between_environments(tmp_path: Path) -> None:
    a = LMDBQueueStore(tmp_path / "a")
    b = LMDBQueueStore(tmp_path / "b")
    assert a.put("jobs", [b"1"])[0][0] != b.put("jobs", [b"1"])[0][0]
    a.close()
    b.close()


def test_files_are_private_even_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = LMDBQueueStore(tmp_path / "env")
        store.put("jobs", [b'"secret"'])
        assert stat.S_IMODE((tmp_path / "env").stat().st_mode) == 0o700
        for name in ("data.mdb", "lock.mdb"):
            assert stat.S_IMODE((tmp_path / "env" / name).stat().st_mode) == 0o600, name
        store.close()
    finally:
        os.umask(old)


def test_foreign_lmdb_environment_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other"
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        txn.put(b"somebody", b"else's data")
    env.close()
    before = _data(path)
    with pytest.raises(StoreError, match="not a localqueue store"):
        LMDBQueueStore(path)
    assert _data(path) == before


def test_directory_of_other_files_and_plain_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(StoreError, match="holds other files"):
        LMDBQueueStore(tmp_path / "photos")
    assert os.listdir(tmp_path / "photos") == ["cat.jpg"]
    (tmp_path / "plain").write_text("hello")
    with pytest.raises(StoreError, match="not a directory"):
        LMDBQueueStore(tmp_path / "plain")
    assert (tmp_path / "plain").read_text() == "hello"


def test_a_store_another_process_is_creating_is_not_refused(tmp_path: Path) -> None:
    """LMDB creates lock.mdb before data.mdb: a directory caught in between is a store
    being created, not a directory of other files."""
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "lock.mdb").write_bytes(b"")
    store = LMDBQueueStore(tmp_path / "env")
    store.put("q", [b"1"])
    assert store.stats("q").ready == 1
    store.close()


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "env"
    LMDBQueueStore(path).close()
    env = lmdb.open(str(path), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put(b"version", b"99", db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(StoreError, match="newer"):
        LMDBQueueStore(path)


def test_a_corrupt_record_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "env"
    store = LMDBQueueStore(path)
    message_id = store.put("jobs", [b"1"])[0][0]
    store.close()
    env = lmdb.open(str(path), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put(message_id.encode(), b"\x01garbage", db=env.open_db(b"records", txn=txn))
    env.close()
    store = LMDBQueueStore(path)
    with pytest.raises(StoreError, match="corrupt record"):
        store.get("jobs", message_id)
    store.close()


@pytest.mark.parametrize(("durability", "metasync"), [("full", True), ("normal", False)])
def test_durability_sets_lmdb_sync_flags(tmp_path: Path, durability: str, metasync: bool) -> None:
    store = LMDBQueueStore(tmp_path / "env", durability=durability)  # type: ignore[arg-type]
    flags = store._shared._env.flags()  # type: ignore[union-attr]
    assert flags["sync"] is True and flags["metasync"] is metasync
    store.close()
    with pytest.raises(ValueError):
        LMDBQueueStore(tmp_path / "env", durability="fast")  # type: ignore[arg-type]


def test_open_store_routes_lmdb_urls(tmp_path: Path) -> None:
    store = open_store(f"lmdb://{tmp_path / 'env'}")
    assert isinstance(store, LMDBQueueStore)
    q = PersistentQueue("jobs", store=store)
    q.put({"via": "url"})
    assert q.get_message(block=False).value == {"via": "url"}
    assert store._shared._env.flags()["metasync"] is True  # type: ignore[attr-defined]
    store.close()
    relaxed = PersistentQueue("jobs", f"lmdb://{tmp_path / 'relaxed'}", durability="normal")
    assert relaxed.store._shared._env.flags()["metasync"] is False  # type: ignore[attr-defined]
    relaxed.close()


MISSING = textwrap.dedent(
    """
    import sys
    sys.modules["lmdb"] = None  # as if the extra were not installed
    import localqueue
    from localqueue import StoreError
    from localqueue.stores import open_store
    from localqueue.stores.lmdb import LMDBQueueStore
    for make in (lambda: LMDBQueueStore(sys.argv[1]), lambda: open_store("lmdb://" + sys.argv[1])):
        try:
            make()
        except StoreError as exc:
            print(exc)
    """
)


def test_without_the_lmdb_package_import_works_and_the_store_names_the_extra(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", MISSING, str(tmp_path / "env")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.count('pip install "localqueue[lmdb]"') == 2, result
    assert not (tmp_path / "env").exists()


# -- a full map ----------------------------------------------------------------------------


def test_map_full_grows_then_fails_cleanly_and_the_store_stays_usable(tmp_path: Path) -> None:
    store = LMDBQueueStore(tmp_path / "env", map_size=256 * KIB, max_map_size=2048 * KIB)
    q = PersistentQueue("jobs", store=store)
    first = q.put("first")
    q.put_many(["x" * 100_000] * 8)  # ~800 KB: the map doubles twice on the way
    assert store.map_size >= 1024 * KIB
    with pytest.raises(StoreError, match="max_map_size"):
        q.put_many(["y" * 100_000] * 30)  # ~3 MB never fits
    assert store.map_size == 2048 * KIB
    assert q.stats().to_dict()["total"] == 9  # nothing of the failed batch
    assert q.inspect(first.id).value == "first"  # reads work
    leased = q.get_message(block=False)
    assert leased.id == first.id
    q.ack(leased)  # writes work
    assert q.purge() == 8
    q.put("tick")  # LMDB reuses pages freed by a commit from the commit after next
    q.put_many(["z" * 100_000] * 12)
    assert q.stats().ready == 13
    store.close()


GROWER = textwrap.dedent(
    """
    import sys
    from localqueue import PersistentQueue
    from localqueue.stores.lmdb import LMDBQueueStore
    store = LMDBQueueStore(sys.argv[1], map_size=256 * 1024)
    PersistentQueue("jobs", store=store).put_many(["g" * 100_000] * 20)
    print(store.map_size, flush=True)
    """
)


def test_a_map_grown_by_another_process_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "env"
    store = LMDBQueueStore(path, map_size=256 * KIB)
    q = PersistentQueue("jobs", store=store)
    q.put("mine")
    grown = subprocess.run(
        [sys.executable, "-c", GROWER, str(path)], capture_output=True, text=True, check=True
    )
    assert int(grown.stdout) >= 2048 * KIB
    assert q.stats().ready == 21  # this process reads past its old map
    q.put("after")
    assert store.map_size >= int(grown.stdout)
    store.close()


# -- one process, many users ---------------------------------------------------------------


def test_stores_on_one_directory_share_the_environment(tmp_path: Path) -> None:
    a = LMDBQueueStore(tmp_path / "env")
    b = LMDBQueueStore(tmp_path / "env")  # py-lmdb refuses a second open: this one shares
    a.put("jobs", [b"1"])
    assert b.stats("jobs").ready == 1
    a.close()
    b.put("jobs", [b"2"])
    b.close()
    b.put("jobs", [b"3"])  # used after close: reopens
    assert b.stats("jobs").ready == 3
    b.close()


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = LMDBQueueStore(tmp_path / "env")
    q = PersistentQueue("jobs", store=store, lease_timeout=60)
    acked: list[str] = []
    lock = threading.Lock()

    def produce(n: int) -> None:
        for i in range(150):
            q.put(f"{n}-{i}")

    def consume() -> None:
        while True:
            message = q.get_message(timeout=2)
            if message.value == "stop":
                q.ack(message)
                return
            q.ack(message)
            with lock:
                acked.append(message.value)

    producers = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    consumers = [threading.Thread(target=consume) for _ in range(4)]
    for thread in producers + consumers:
        thread.start()
    for thread in producers:
        thread.join()
    q.put_many(["stop"] * 4)
    for thread in consumers:
        thread.join()
    assert sorted(acked) == sorted(f"{n}-{i}" for n in range(4) for i in range(150))
    assert q.stats().total == 0
    store.close()


# -- fork ------------------------------------------------------------------------------------


def test_a_forked_child_opens_its_own_environment(tmp_path: Path) -> None:
    store = LMDBQueueStore(tmp_path / "env")
    q = PersistentQueue("jobs", store=store)
    q.put("from parent")
    parent_env = store._shared._env  # type: ignore[union-attr]
    pid = os.fork()
    if pid == 0:  # child: must never touch the parent's handle
        code = 1
        try:
            q.put("from child")
            if store._shared._env is not parent_env:  # type: ignore[union-attr]
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [q.get_message(block=False).value for _ in range(2)] == ["from parent", "from child"]
    assert store.reader_check() == 0  # the child left no reader slot behind
    store.close()


def _forked_worker(store: LMDBQueueStore, n: int) -> None:
    q = PersistentQueue("jobs", store=store)
    q.put_many([f"{n}-{i}" for i in range(50)])
    message = q.get_message(block=False)
    q.ack(message)


def test_fork_start_method_workers_use_an_inherited_store(tmp_path: Path) -> None:
    store = LMDBQueueStore(tmp_path / "env")
    q = PersistentQueue("jobs", store=store)
    reader = threading.Thread(target=lambda: [q.stats() for _ in range(300)])
    reader.start()  # the parent keeps reading while it forks
    ctx = mp.get_context("fork")
    workers = [ctx.Process(target=_forked_worker, args=(store, n)) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    reader.join()
    assert q.stats().ready == 3 * 49
    store.close()


# -- the same answers as the reference store -----------------------------------------------

QUEUES = ("a", "b", "b.c")


def _shape(row: Row | None) -> tuple[object, ...] | None:
    """A row without its id and token, which differ between stores by design."""
    return None if row is None else row._replace(id=None, lease_token=None)


class Twins:
    """An LMDB and a Memory store on one fake clock (``now``), for a random script run on
    both: :meth:`answer` applies one action to each and checks that they agree.
    ``handles`` keeps, per store, each message's id and token by its unique value."""

    def __init__(self, path: Path) -> None:
        self.now = 1_000.0
        self.stores: dict[str, QueueStore] = {
            "lmdb": LMDBQueueStore(path),
            "memory": MemoryQueueStore(),
        }
        for store in self.stores.values():
            store.clock = lambda: self.now  # type: ignore[method-assign]
        self.handles: dict[str, dict[bytes, tuple[str, str | None]]] = {
            name: {} for name in self.stores
        }

    def answer(self, action: Callable[[str, QueueStore], object]) -> tuple[str, Any]:
        """``("ok", what the action returned)`` or ``("error", the lease error's name)``,
        the same from both stores."""
        results = {}
        for name, store in self.stores.items():
            try:
                results[name] = ("ok", action(name, store))
            except (LeaseLostError, MessageNotFoundError) as exc:
                results[name] = ("error", type(exc).__name__)
        assert results["lmdb"] == results["memory"]
        return results["lmdb"]


def test_random_operations_agree_with_the_memory_store(tmp_path: Path) -> None:
    """LMDB and Memory driven by one fake clock and one random script give the same
    answers to everything (messages are named by their unique values)."""
    twins = Twins(tmp_path / "env")
    stores, handles = twins.stores, twins.handles
    queue_of: dict[bytes, str] = {}
    rng = random.Random(20261128)
    seen: collections.Counter[str] = collections.Counter()

    def both(action: Callable[[str, QueueStore], object]) -> tuple[str, Any]:
        outcome = twins.answer(action)
        seen[outcome[1] if outcome[0] == "error" else type(outcome[1]).__name__] += 1
        return outcome

    def put(queue: str, values: list[bytes], delay: float) -> Action:
        def run(name: str, store: QueueStore) -> object:
            rows = store.put(queue, values, delay=delay)
            handles[name].update({row.value: (row.id, None) for row in rows})
            return [_shape(row) for row in rows]

        return run

    def lease(queue: str, timeout: float) -> Action:
        def run(name: str, store: QueueStore) -> object:
            row = store.lease(queue, lease_timeout=timeout, leased_by="w")
            if row is not None:
                handles[name][row.value] = (row.id, row.lease_token)
            return _shape(row)

        return run

    def settle(value: bytes, kind: str) -> Action:
        def run(name: str, store: QueueStore) -> object:
            message_id, token = handles[name][value]
            queue = queue_of[value]
            if kind == "ack":
                return store.ack(queue, message_id, token)
            if kind == "release":
                return _shape(store.release(queue, message_id, token, delay=2.0, error=b"1"))
            if kind == "dead":
                return _shape(store.dead_letter(queue, message_id, token, error=b"2"))
            if kind == "extend":
                return _shape(store.extend_lease(queue, message_id, token, 3.0))
            if kind == "requeue":
                return _shape(store.requeue_dead(queue, message_id, delay=1.0))
            return _shape(store.get(queue, message_id))

        return run

    for step in range(1500):
        queue = rng.choice(QUEUES)
        op = rng.random()
        if op < 0.25:
            values = [b"%d" % (step * 10 + k) for k in range(rng.choice([1, 1, 3]))]
            queue_of.update(dict.fromkeys(values, queue))
            both(put(queue, values, rng.choice([0.0, 0.0, 5.0])))
        elif op < 0.45:
            both(lease(queue, rng.choice([1.0, 10.0])))
        elif op < 0.75 and queue_of:
            value = rng.choice(sorted(queue_of))
            kinds = ["ack", "release", "dead", "extend", "requeue", "get"]
            both(settle(value, rng.choice(kinds)))
        elif op < 0.8:
            both(lambda name, store, q=queue: store.requeue_all_dead(q, delay=1.0))
        elif op < 0.82:
            dead_only = rng.random() < 0.5
            both(lambda name, store, q=queue, d=dead_only: store.purge(q, dead_only=d))
        else:
            twins.now += rng.choice([0.5, 1.0, 3.0])
        for q in QUEUES:
            both(lambda name, store, q=q: store.stats(q))
            both(lambda name, store, q=q: store.next_visible_in(q))
            listed = both(lambda name, store, q=q: [_shape(row) for row in store.dead_letters(q)])
            seen["dead letters listed"] += bool(listed[1])
        both(lambda name, store: store.queues())
    stores["lmdb"].close()
    # the script reached every corner: fenced settles, refused requeues, rows, dead letters
    assert seen["LeaseLostError"] > 20 and seen["MessageNotFoundError"] > 20
    assert seen["Row"] > 100 and seen["QueueStats"] > 1000
    assert seen["dead letters listed"] > 100
