"""The one attempt-store contract, run over every backend (``attempt_store`` fixture)."""

from __future__ import annotations

import threading
import time

import pytest

from localqueue.retry.base import AttemptRecord, AttemptStore

NOW = 1_700_000_000.25


def test_unknown_key_has_no_record(attempt_store: AttemptStore) -> None:
    assert attempt_store.get("nothing") is None


def test_first_attempt_creates_the_record(attempt_store: AttemptStore) -> None:
    record = attempt_store.record_attempt("job:1", NOW)
    assert record == AttemptRecord("job:1", 1, NOW, NOW, False, None)
    assert attempt_store.get("job:1") == record


def test_later_attempts_count_up_and_keep_the_first_time(attempt_store: AttemptStore) -> None:
    attempt_store.record_attempt("job:1", NOW)
    second = attempt_store.record_attempt("job:1", NOW + 5)
    third = attempt_store.record_attempt("job:1", NOW + 9.5)
    assert (second.attempts, third.attempts) == (2, 3)
    assert third.first_attempt_at == NOW
    assert third.last_attempt_at == NOW + 9.5
    assert attempt_store.get("job:1") == third


def test_keys_are_independent(attempt_store: AttemptStore) -> None:
    attempt_store.record_attempt("a", NOW)
    attempt_store.record_attempt("a", NOW)
    attempt_store.record_attempt("b", NOW + 1)
    a, b = attempt_store.get("a"), attempt_store.get("b")
    assert a is not None and b is not None
    assert (a.attempts, b.attempts) == (2, 1)
    assert b.first_attempt_at == NOW + 1


def test_failure_stores_the_error_and_exhaustion(attempt_store: AttemptStore) -> None:
    attempt_store.record_attempt("k", NOW)
    attempt_store.record_failure("k", b'{"type":"ConnectionError"}', exhausted=False)
    record = attempt_store.get("k")
    assert record is not None
    assert record.last_error == b'{"type":"ConnectionError"}'
    assert record.exhausted is False
    attempt_store.record_failure("k", b'{"type":"TimeoutError"}', exhausted=True)
    record = attempt_store.get("k")
    assert record is not None
    assert (record.exhausted, record.last_error) == (True, b'{"type":"TimeoutError"}')
    assert record.attempts == 1


def test_exhaustion_is_sticky_until_cleared(attempt_store: AttemptStore) -> None:
    attempt_store.record_attempt("k", NOW)
    attempt_store.record_failure("k", None, exhausted=True)
    attempt_store.record_failure("k", b"{}", exhausted=False)
    record = attempt_store.get("k")
    assert record is not None and record.exhausted
    attempt_store.record_attempt("k", NOW + 1)
    record = attempt_store.get("k")
    assert record is not None and record.exhausted and record.attempts == 2


def test_failure_without_a_record_is_ignored(attempt_store: AttemptStore) -> None:
    attempt_store.record_failure("ghost", b"{}", exhausted=True)
    assert attempt_store.get("ghost") is None


def test_clear_forgets_the_key_and_restarts_the_count(attempt_store: AttemptStore) -> None:
    attempt_store.record_attempt("k", NOW)
    attempt_store.record_attempt("k", NOW)
    attempt_store.record_failure("k", b"{}", exhausted=True)
    attempt_store.clear("k")
    assert attempt_store.get("k") is None
    attempt_store.clear("k")  # absent: no error
    fresh = attempt_store.record_attempt("k", NOW + 7)
    assert fresh == AttemptRecord("k", 1, NOW + 7, NOW + 7, False, None)


def test_record_attempts_forgets_some_keys_and_counts_others_at_once(
    attempt_store: AttemptStore,
) -> None:
    attempt_store.record_attempt("done", NOW)
    attempt_store.record_attempt("next", NOW)
    records = attempt_store.record_attempts(["next", "new"], NOW + 1, clear=["done", "absent"])
    assert records == [
        AttemptRecord("next", 2, NOW, NOW + 1, False, None),
        AttemptRecord("new", 1, NOW + 1, NOW + 1, False, None),
    ]
    assert attempt_store.get("done") is None
    assert attempt_store.record_attempts([], NOW + 2, clear=["next"]) == []
    assert attempt_store.get("next") is None


def test_uncount_attempt_gives_back_the_latest_attempt(attempt_store: AttemptStore) -> None:
    attempt_store.record_attempt("k", NOW)
    attempt_store.record_attempt("k", NOW + 1)
    attempt_store.uncount_attempt("k")
    record = attempt_store.get("k")
    assert record is not None and (record.attempts, record.first_attempt_at) == (1, NOW)
    attempt_store.uncount_attempt("k")
    assert attempt_store.get("k") is None
    attempt_store.uncount_attempt("absent")  # no error


def test_uncount_attempt_keeps_the_error_and_the_exhaustion(attempt_store: AttemptStore) -> None:
    attempt_store.record_attempt("k", NOW)
    attempt_store.record_attempt("k", NOW + 1)
    attempt_store.record_failure("k", b"boom", exhausted=True)
    attempt_store.uncount_attempt("k")
    assert attempt_store.get("k") == AttemptRecord("k", 1, NOW, NOW + 1, True, b"boom")


def test_concurrent_record_attempts_never_lose_a_count_or_a_clear(
    attempt_store: AttemptStore,
) -> None:
    threads, per_thread = 4, 20
    barrier = threading.Barrier(threads)

    def hammer(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            attempt_store.record_attempt(f"done-{n}-{i}", time.time())
            attempt_store.record_attempts(
                ["shared", f"own-{n}"], time.time(), clear=[f"done-{n}-{i}"]
            )

    workers = [threading.Thread(target=hammer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    shared = attempt_store.get("shared")
    assert shared is not None and shared.attempts == threads * per_thread
    for n in range(threads):
        own = attempt_store.get(f"own-{n}")
        assert own is not None and own.attempts == per_thread
        assert all(attempt_store.get(f"done-{n}-{i}") is None for i in range(per_thread))


def test_odd_and_long_keys(attempt_store: AttemptStore) -> None:
    keys = ["ünïcode:✓", "with space", "x" * 5000, "process-video:42"]
    for key in keys:
        attempt_store.record_attempt(key, NOW)
    for key in keys:
        record = attempt_store.get(key)
        assert record is not None and record.key == key and record.attempts == 1
    attempt_store.clear("x" * 5000)
    assert attempt_store.get("x" * 5000) is None
    assert attempt_store.get("x" * 4999) is None


def test_concurrent_threads_never_lose_an_attempt(attempt_store: AttemptStore) -> None:
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)

    def hammer() -> None:
        barrier.wait()
        for _ in range(per_thread):
            attempt_store.record_attempt("shared", time.time())

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    record = attempt_store.get("shared")
    assert record is not None and record.attempts == threads * per_thread


def test_close_is_idempotent(attempt_store: AttemptStore) -> None:
    attempt_store.record_attempt("k", NOW)
    attempt_store.close()
    attempt_store.close()


@pytest.mark.parametrize("error", [None, b"", b'{"message":"\\u00e9 \\n"}'])
def test_error_bytes_round_trip(attempt_store: AttemptStore, error: bytes | None) -> None:
    attempt_store.record_attempt("k", NOW)
    attempt_store.record_failure("k", error, exhausted=False)
    record = attempt_store.get("k")
    assert record is not None and record.last_error == error


def test_a_record_is_an_immutable_value():
    record = AttemptRecord("k", 2, NOW, NOW + 1, False, b'{"type":"E"}')
    assert record == AttemptRecord("k", 2, NOW, NOW + 1, False, b'{"type":"E"}')
    assert record != AttemptRecord("k", 3, NOW, NOW + 1, False, b'{"type":"E"}')
    assert record != ("k", 2, NOW, NOW + 1, False, b'{"type":"E"}')
    assert len({record, AttemptRecord("k", 2, NOW, NOW + 1, False, b'{"type":"E"}')}) == 1
    with pytest.raises(AttributeError):
        record.attempts = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del record.key  # type: ignore[misc]
    bumped = record.replace(attempts=3, exhausted=True)
    assert (bumped.attempts, bumped.exhausted, bumped.key) == (3, True, "k")
    assert record.attempts == 2
    assert repr(record).startswith("AttemptRecord(key='k', attempts=2, ")


def test_attempt_records_and_the_memory_store_pickle_by_value() -> None:
    import pickle

    from localqueue.retry import MemoryAttemptStore

    store = MemoryAttemptStore()
    record = store.record_attempt("k", NOW)
    assert pickle.loads(pickle.dumps(record)) == record
    copy = pickle.loads(pickle.dumps(store))
    assert copy.get("k") == record
    copy.record_attempt("k", NOW + 1)  # the copy counts on its own
    assert store.get("k") == record
