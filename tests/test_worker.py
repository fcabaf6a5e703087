"""persistent_worker / persistent_async_worker in one process, over real queue stores."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from tenacity import retry_if_exception_type, wait_fixed

from localqueue import (
    Empty,
    LeaseLostError,
    MemoryQueueStore,
    PersistentQueue,
    PersistentWorkerConfig,
    persistent_async_worker,
    persistent_worker,
)
from localqueue.retry import (
    MemoryAttemptStore,
    PersistentRetryExhausted,
    SQLiteAttemptStore,
)


@pytest.fixture(params=["memory", "sqlite"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        q = PersistentQueue("jobs", store=MemoryQueueStore())
    else:
        q = PersistentQueue("jobs", tmp_path / "queue.sqlite3")
    yield q
    q.close()


def config(**options: Any) -> PersistentWorkerConfig:
    options.setdefault("retry_store", MemoryAttemptStore())
    options.setdefault("block", False)
    return PersistentWorkerConfig(**options)


def test_success_acks_and_returns_the_result(queue: PersistentQueue) -> None:
    queue.put({"to": "a@b.c"})
    seen = []

    @persistent_worker(queue, config=config())
    def handler(job: dict[str, str], suffix: str = "") -> str:
        seen.append(job)
        return job["to"] + suffix

    assert handler("!") == "a@b.c!"
    assert seen == [{"to": "a@b.c"}]
    assert queue.stats().total == 0
    with pytest.raises(Empty):
        handler()


def test_retries_in_process_then_acks(queue: PersistentQueue) -> None:
    message = queue.put("x")
    store = MemoryAttemptStore()
    calls = []

    @persistent_worker(queue, config=config(retry_store=store, max_tries=3))
    def handler(value: str) -> int:
        calls.append(value)
        if len(calls) < 3:
            raise ConnectionError("later")
        return len(calls)

    assert handler() == 3
    assert queue.stats().total == 0
    assert store.get(message.id) is None


def test_exhaustion_dead_letters_with_the_handlers_error(queue: PersistentQueue) -> None:
    message = queue.put({"n": 1})
    store = MemoryAttemptStore()
    calls = 0

    @persistent_worker(queue, config=config(retry_store=store, max_tries=2), worker_id="w1")
    def handler(value: dict[str, int]) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"smtp down {calls}")

    with pytest.raises(PersistentRetryExhausted) as caught:
        handler()
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert calls == 2
    [dead] = queue.dead_letters()
    assert dead.id == message.id and dead.state == "dead"
    assert dead.last_error == {
        "type": "ConnectionError",
        "module": "builtins",
        "message": "smtp down 2",
    }
    assert store.get(message.id) is None  # the queue holds its fate now

    queue.requeue_dead(dead)  # after a fix, a requeued dead letter gets a fresh budget
    calls = -10
    with pytest.raises(PersistentRetryExhausted):
        handler()
    assert calls == -8


def test_non_retryable_error_dead_letters_at_once(queue: PersistentQueue) -> None:
    queue.put("bad")
    calls = 0

    @persistent_worker(
        queue, config=config(max_tries=5, retry=retry_if_exception_type(ConnectionError))
    )
    def handler(value: str) -> None:
        nonlocal calls
        calls += 1
        raise ValueError(f"cannot parse {value}")

    with pytest.raises(ValueError, match="cannot parse bad"):
        handler()
    assert calls == 1
    [dead] = queue.dead_letters()
    assert dead.last_error is not None and dead.last_error["type"] == "ValueError"


def test_release_instead_of_dead_letter(queue: PersistentQueue) -> None:
    message = queue.put("x")

    @persistent_worker(
        queue, config=config(max_tries=1), dead_letter_on_failure=False, release_delay=30
    )
    def handler(value: str) -> None:
        raise ConnectionError("nope")

    with pytest.raises(PersistentRetryExhausted):
        handler()
    after = queue.inspect(message.id)
    assert after is not None and after.state == "delayed"
    assert after.last_error is not None and after.last_error["message"] == "nope"
    assert after.available_at is not None and after.available_at > time.time() + 20
    assert queue.dead_letters() == []


def test_config_validation_and_overrides(queue: PersistentQueue) -> None:
    with pytest.raises(ValueError, match="max_tries"):
        PersistentWorkerConfig(max_tries=0)
    with pytest.raises(ValueError, match="budget"):
        PersistentWorkerConfig(max_tries=None)
    with pytest.raises(ValueError, match="either"):
        PersistentWorkerConfig(retry_store=MemoryAttemptStore(), retry_store_path="x")
    with pytest.raises(TypeError):
        persistent_worker(queue, no_such_option=1)
    base = PersistentWorkerConfig(max_tries=7)

    @persistent_worker(queue, config=base, worker_id="w9")
    def handler(value: Any) -> None: ...

    assert handler.worker.config.max_tries == 7  # type: ignore[attr-defined]
    assert handler.worker.config.worker_id == "w9"  # type: ignore[attr-defined]
    assert base.worker_id is None


def test_worker_id_is_recorded_on_the_lease(queue: PersistentQueue) -> None:
    message = queue.put(1)
    seen = []

    @persistent_worker(queue, config=config(worker_id="worker-1"))
    def handler(value: int) -> None:
        seen.append(queue.inspect(message.id))

    handler()
    assert seen[0].leased_by == "worker-1" and seen[0].state == "inflight"


def test_default_retry_store_follows_the_queue(tmp_path: Path, monkeypatch: Any) -> None:
    elsewhere, app = tmp_path / "elsewhere", tmp_path / "app"
    elsewhere.mkdir()
    app.mkdir()
    monkeypatch.chdir(elsewhere)
    memory_queue = PersistentQueue("jobs", store=MemoryQueueStore())

    @persistent_worker(memory_queue, block=False)
    def a(value: Any) -> None: ...

    assert isinstance(a.worker.attempt_store, MemoryAttemptStore)  # type: ignore[attr-defined]
    file_queue = PersistentQueue("jobs", app / "q.sqlite3")
    file_queue.put("poison")

    @persistent_worker(file_queue, block=False, max_tries=2, dead_letter_on_failure=True)
    def b(value: Any) -> None:
        raise RuntimeError(value)

    with pytest.raises(PersistentRetryExhausted):
        b()
    store = b.worker.attempt_store  # type: ignore[attr-defined]
    assert isinstance(store, SQLiteAttemptStore)
    assert store.path == app / "localqueue_retries.sqlite3"
    assert file_queue.stats().dead == 1
    assert list(elsewhere.iterdir()) == []  # nothing written where the worker runs
    path_store = persistent_worker(file_queue, retry_store_path=tmp_path / "r.sqlite3")(
        lambda v: None
    )
    assert path_store.worker.attempt_store.path == tmp_path / "r.sqlite3"  # type: ignore[attr-defined]


def _steal(queue: PersistentQueue, message_id: str, thief: PersistentQueue) -> None:
    """Make ``message_id``'s lease someone else's: give it back and lease it elsewhere."""
    queue.release(message_id)  # no token: an operator's release, unfenced
    stolen = thief.get_message(block=False)
    assert stolen.id == message_id


def test_lost_lease_is_never_acked(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = PersistentQueue("jobs", path, lease_timeout=0.3)
    thief = PersistentQueue("jobs", path, lease_timeout=60)
    message = queue.put("long job")

    @persistent_worker(queue, config=config())
    def handler(value: str) -> str:
        _steal(queue, message.id, thief)
        return "finished"

    with pytest.raises(LeaseLostError):
        handler()
    after = thief.inspect(message.id)
    assert after is not None and after.state == "inflight"  # the thief still holds it
    thief.ack(after)
    assert thief.stats().total == 0


class _Reporting:
    """A handler that keeps a report of each delivery for its history record, as
    ``queue exec``'s does (``job_report``: the worker engine takes it back)."""

    def __init__(self, work: Any) -> None:
        self.work = work
        self.reports: dict[tuple[str, str | None], tuple[int, str]] = {}

    def __call__(self, message: Any) -> None:
        self.work(message)
        self.reports[(message.id, message.lease_token)] = (0, "printed")

    def job_report(self, message: Any) -> tuple[int | None, Any]:
        return self.reports.pop((message.id, message.lease_token), (None, None))


def test_a_report_of_a_delivery_whose_lease_was_lost_is_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = PersistentQueue("jobs", path, lease_timeout=0.3)
    thief = PersistentQueue("jobs", path, lease_timeout=60)
    queue.put("job")

    def steal_and_wait(message: Any) -> None:
        _steal(queue, message.id, thief)
        deadline = time.monotonic() + 30
        while not decorated.worker.heartbeat.is_lost(message):  # its next beat finds out
            assert time.monotonic() < deadline, "the heartbeat never saw the lease lost"
            time.sleep(0.01)

    handler = _Reporting(steal_and_wait)
    decorated = persistent_worker(queue, config=config())(handler)
    decorated.worker.takes_message = True  # as queue exec's worker calls its handler
    with pytest.raises(LeaseLostError):
        decorated()
    assert handler.reports == {}  # nothing left behind for a record never written
    queue.close()
    thief.close()


def test_a_lost_lease_stops_the_retry_waits(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = PersistentQueue("jobs", path, lease_timeout=0.3)
    thief = PersistentQueue("jobs", path, lease_timeout=60)
    message = queue.put("job")
    calls = 0

    # A wait far beyond the test's timeout (pytest-timeout): only cutting it short passes.
    @persistent_worker(queue, config=config(max_tries=5, wait=wait_fixed(3600)))
    def handler(value: str) -> None:
        nonlocal calls
        calls += 1
        _steal(queue, message.id, thief)
        raise ConnectionError("down")

    with pytest.raises(LeaseLostError):
        handler()
    assert calls == 1
    held = thief.inspect(message.id)
    assert held is not None and held.state == "inflight" and held.last_error is None


# -- async ------------------------------------------------------------------------------


def test_async_worker_acks_retries_and_dead_letters(queue: PersistentQueue) -> None:
    ok = queue.put({"n": 1})
    calls: list[Any] = []

    @persistent_async_worker(queue, config=config(max_tries=3))
    async def handler(value: dict[str, int]) -> int:
        calls.append(value)
        await asyncio.sleep(0)
        if len(calls) == 1 or value["n"] == 2:
            raise ConnectionError("flaky")
        return value["n"] * 10

    async def main() -> None:
        assert await handler() == 10
        assert queue.inspect(ok.id) is None
        bad = queue.put({"n": 2})
        with pytest.raises(PersistentRetryExhausted):
            await handler()
        [dead] = queue.dead_letters()
        assert dead.id == bad.id and dead.last_error is not None
        assert dead.last_error["message"] == "flaky"
        with pytest.raises(Empty):
            await handler()

    asyncio.run(main())
    assert len(calls) == 5


def test_async_worker_blocking_lease_with_timeout(queue: PersistentQueue) -> None:
    @persistent_async_worker(queue, config=config(block=True, timeout=0.2))
    async def handler(value: Any) -> Any:
        return value

    async def main() -> None:
        with pytest.raises(Empty):
            await handler()
        queue.put("late")
        assert await handler() == "late"

    asyncio.run(main())


def test_a_cancelled_async_call_releases_what_its_lease_got_meanwhile(
    queue: PersistentQueue,
) -> None:
    ran: list[Any] = []

    @persistent_async_worker(queue, config=config(block=True))
    async def handler(value: Any) -> None:
        ran.append(value)

    async def main() -> None:
        call = asyncio.ensure_future(handler())
        await asyncio.sleep(0.2)  # its lease waits in a thread on the empty queue
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        queue.put("arrives after the cancel")  # that thread leases it...

    asyncio.run(main())
    deadline = time.monotonic() + 10
    while [(m.state, m.attempts) for m in queue.peek()] != [("ready", 1)]:
        assert time.monotonic() < deadline, queue.peek()  # ...and gives it back
        time.sleep(0.02)
    assert ran == []


def test_the_async_retry_wait_stops_when_the_lease_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = PersistentQueue("jobs", path, lease_timeout=0.3)
    thief = PersistentQueue("jobs", path, lease_timeout=60)
    message = queue.put("job")
    calls = 0

    # A wait far beyond the test's timeout (pytest-timeout): only cutting it short passes.
    @persistent_async_worker(queue, config=config(max_tries=5, wait=wait_fixed(3600)))
    async def handler(value: str) -> None:
        nonlocal calls
        calls += 1
        await asyncio.to_thread(_steal, queue, message.id, thief)
        raise ConnectionError("down")

    with pytest.raises(LeaseLostError):
        asyncio.run(handler())
    assert calls == 1


def test_coroutine_handlers_need_the_async_decorators(queue: PersistentQueue) -> None:
    # (persistent_retry on an async def picks the async retryer, as tenacity.retry does:
    # tests/retry/test_tenacity_compat.py)
    async def handler(value: Any) -> None: ...

    with pytest.raises(TypeError, match="persistent_async_worker"):
        persistent_worker(queue)(handler)
    assert queue.stats().total == 0


def test_a_locked_attempt_store_gives_the_message_back(tmp_path: Path) -> None:
    import sqlite3

    from localqueue import StoreLockedError

    queue = PersistentQueue("jobs", tmp_path / "q.sqlite3")
    message = queue.put("x")
    store = SQLiteAttemptStore(tmp_path / "r.sqlite3", busy_timeout=0.1)
    blocker = sqlite3.connect(tmp_path / "r.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    calls = 0

    @persistent_worker(queue, config=config(retry_store=store))
    def handler(value: str) -> None:
        nonlocal calls
        calls += 1

    try:
        with pytest.raises(StoreLockedError):
            handler()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert calls == 0  # never ran without its attempt being counted
    after = queue.inspect(message.id)
    assert after is not None and after.state == "ready" and after.last_error is None
    handler()  # the lock is gone: processed normally
    assert calls == 1 and queue.stats().total == 0
    store.close()
    queue.close()


def test_an_interrupted_handler_gives_the_message_back(queue: PersistentQueue) -> None:
    message = queue.put("x")

    @persistent_worker(queue, config=config())
    def handler(value: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        handler()
    after = queue.inspect(message.id)
    assert after is not None and after.state == "ready" and queue.dead_letters() == []


def test_an_unusable_retry_store_leases_nothing(tmp_path: Path, queue: PersistentQueue) -> None:
    from localqueue import StoreError

    message = queue.put("x")
    (tmp_path / "notes.txt").write_text("not a database\n" * 20)

    @persistent_worker(queue, retry_store_path=tmp_path / "notes.txt", block=False)
    def handler(value: str) -> None: ...

    with pytest.raises(StoreError, match=r"notes\.txt"):
        handler()
    after = queue.inspect(message.id)
    assert after is not None and after.state == "ready" and after.attempts == 0


def test_a_worker_run_twice_keeps_its_leases_alive_both_times(tmp_path: Path) -> None:
    from localqueue import Worker
    from localqueue.stores.sqlite import SQLiteQueueStore

    store = SQLiteQueueStore(tmp_path / "q.sqlite3")
    # A beat every 0.2 s keeps a 0.6 s lease: 0.4 s of slack for a loaded CI machine.
    queue = PersistentQueue("jobs", store=store, lease_timeout=0.6)
    stolen: list[str] = []

    def slow(value: int) -> None:
        time.sleep(1.8)  # three lease timeouts: only the heartbeat keeps the lease
        thief = queue.get_messages(1)  # an expired lease would be handed out here
        stolen.extend(m.id for m in thief)

    worker = Worker(queue, slow, retry_store=MemoryAttemptStore())
    for value in (1, 2):
        queue.put(value)
        summary = worker.run()
        assert (summary.acked, summary.lost) == (1, 0)
    assert stolen == []
    queue.close()
