"""PersistentRetrying / PersistentAsyncRetrying in one process: Tenacity's model, with the
budget in an attempt store."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest
from tenacity import (
    RetryCallState,
    TryAgain,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
)

from localqueue.errors import LocalQueueError
from localqueue.retry import (
    MemoryAttemptStore,
    PersistentAsyncRetrying,
    PersistentRetryExhausted,
    PersistentRetrying,
    RecordedAttemptError,
    SQLiteAttemptStore,
    idempotency_key_from_id,
    key_from_argument,
    key_from_attr,
    persistent_async_retry,
    persistent_retry,
)
from localqueue.retry.base import AttemptStore


class Flaky:
    """Fails with ``error`` the first ``failures`` calls, then returns ``"ok"``."""

    def __init__(self, failures: int, error: type[BaseException] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


def retrying(store: AttemptStore, **options: Any) -> PersistentRetrying:
    options.setdefault("key", "job")
    options.setdefault("sleep", lambda seconds: None)
    return PersistentRetrying(store=store, **options)


def test_missing_key_is_an_error_at_decoration_time() -> None:
    with pytest.raises(ValueError, match="explicit key"):
        persistent_retry(stop=stop_after_attempt(3))
    with pytest.raises(ValueError, match="explicit key"):
        PersistentAsyncRetrying(store=MemoryAttemptStore())
    with pytest.raises(ValueError, match="either key or key_fn"):
        PersistentRetrying(key="a", key_fn=key_from_argument("x"))


def test_key_argument_missing_from_the_signature_fails_at_decoration() -> None:
    decorate = persistent_retry(key_fn=key_from_argument("email_id"), store=MemoryAttemptStore())
    with pytest.raises(TypeError, match="email_id"):

        @decorate
        def send(address: str) -> None: ...


def test_success_returns_and_clears_the_key(attempt_store: AttemptStore) -> None:
    fn = Flaky(2)
    r = retrying(attempt_store, stop=stop_after_attempt(5))
    assert r(fn) == "ok"
    assert fn.calls == 3
    assert attempt_store.get("job") is None


def test_exhaustion_chains_the_last_error_and_blocks_later_calls(
    attempt_store: AttemptStore,
) -> None:
    fn = Flaky(100)
    r = retrying(attempt_store, stop=stop_after_attempt(3))
    with pytest.raises(PersistentRetryExhausted) as caught:
        r(fn)
    assert fn.calls == 3
    exc = caught.value
    assert isinstance(exc, LocalQueueError)
    assert isinstance(exc.__cause__, ConnectionError) and str(exc.__cause__) == "failure 3"
    assert (exc.key, exc.attempts) == ("job", 3)
    assert exc.last_error == {
        "type": "ConnectionError",
        "module": "builtins",
        "message": "failure 3",
    }
    record = attempt_store.get("job")
    assert record is not None and record.exhausted and record.attempts == 3

    with pytest.raises(PersistentRetryExhausted) as again:
        r(fn)
    assert fn.calls == 3  # not called again
    assert isinstance(again.value.__cause__, RecordedAttemptError)
    assert again.value.last_error == exc.last_error
    assert "failure 3" in str(again.value)


def test_reset_restores_the_budget(attempt_store: AttemptStore) -> None:
    fn = Flaky(3)
    r = retrying(attempt_store, stop=stop_after_attempt(3))
    with pytest.raises(PersistentRetryExhausted):
        r(fn)
    r.reset()
    assert attempt_store.get("job") is None
    assert r(fn) == "ok"


def test_non_retryable_error_is_raised_and_counted(attempt_store: AttemptStore) -> None:
    fn = Flaky(1, error=ValueError)
    r = retrying(attempt_store, stop=stop_after_attempt(2), retry=retry_if_exception_type(OSError))
    with pytest.raises(ValueError, match="failure 1"):
        r(fn)
    record = attempt_store.get("job")
    assert record is not None and record.attempts == 1 and not record.exhausted
    assert record.last_error is not None and b"ValueError" in record.last_error
    assert r(fn) == "ok"
    assert attempt_store.get("job") is None


def test_the_budget_spans_calls(attempt_store: AttemptStore) -> None:
    """Each call runs until the budget is spent; the spent part carries over."""
    fn = Flaky(100)
    r = retrying(attempt_store, stop=stop_after_attempt(4), retry=retry_if_exception_type(OSError))
    fn.error = ValueError  # not retried: one attempt per call
    for expected in (1, 2, 3):
        with pytest.raises(ValueError):
            r(fn)
        record = attempt_store.get("job")
        assert record is not None and record.attempts == expected
    fn.error = ConnectionError  # retryable, but only one attempt of the four is left
    with pytest.raises(PersistentRetryExhausted) as caught:
        r(fn)
    assert fn.calls == 4 and caught.value.attempts == 4


def test_strategies_see_the_persisted_attempt_number(attempt_store: AttemptStore) -> None:
    seen: list[tuple[str, int]] = []
    attempt_store.record_attempt("job", time.time())
    attempt_store.record_attempt("job", time.time())  # two attempts spent elsewhere
    waits: list[float] = []
    r = retrying(
        attempt_store,
        stop=stop_after_attempt(5),
        wait=wait_exponential(multiplier=1, max=100),
        before=lambda rs: seen.append(("before", rs.attempt_number)),
        after=lambda rs: seen.append(("after", rs.attempt_number)),
        before_sleep=lambda rs: waits.append(rs.next_action.sleep),  # type: ignore[union-attr]
    )
    assert r(Flaky(2)) == "ok"
    assert seen == [("before", 3), ("after", 3), ("before", 4), ("after", 4), ("before", 5)]
    assert waits == [4.0, 8.0]  # wait_exponential follows the persisted attempt number


def test_sleeps_are_the_wait_strategy(attempt_store: AttemptStore) -> None:
    slept: list[float] = []
    r = retrying(
        attempt_store, stop=stop_after_attempt(3), wait=wait_fixed(0.25), sleep=slept.append
    )
    assert r(Flaky(2)) == "ok"
    assert slept == [0.25, 0.25]


def test_stop_after_delay_counts_wall_clock_time_since_the_first_attempt(
    attempt_store: AttemptStore,
) -> None:
    # The first attempt happened 120 s ago (in another process, say): the budget is spent.
    attempt_store.record_attempt("job", time.time() - 120)
    fn = Flaky(100)
    r = retrying(attempt_store, stop=stop_after_delay(60))
    with pytest.raises(PersistentRetryExhausted):
        r(fn)
    assert fn.calls == 0
    # A recent first attempt leaves room.
    attempt_store.clear("job")
    attempt_store.record_attempt("job", time.time() - 1)
    assert r(Flaky(1)) == "ok"


def test_seconds_since_start_is_wall_clock(attempt_store: AttemptStore) -> None:
    attempt_store.record_attempt("job", time.time() - 50)
    elapsed: list[float] = []

    def after(rs: RetryCallState) -> None:
        assert rs.seconds_since_start is not None
        elapsed.append(rs.seconds_since_start)

    retrying(attempt_store, stop=stop_after_attempt(9), after=after)(Flaky(1))
    assert len(elapsed) == 1 and 49 < elapsed[0] < 60


def test_result_based_retry(attempt_store: AttemptStore) -> None:
    answers = iter([None, None, 7])
    r = retrying(
        attempt_store, stop=stop_after_attempt(5), retry=retry_if_result(lambda v: v is None)
    )
    assert r(lambda: next(answers)) == 7
    r2 = retrying(
        attempt_store, key="never", stop=stop_after_attempt(2), retry=retry_if_result(bool)
    )
    with pytest.raises(PersistentRetryExhausted) as caught:
        r2(lambda: 1)
    assert caught.value.__cause__ is None and caught.value.attempts == 2


def test_try_again_forces_a_retry(attempt_store: AttemptStore) -> None:
    calls = []

    def fn() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TryAgain
        return "done"

    r = retrying(attempt_store, stop=stop_after_attempt(5), retry=retry_if_exception_type(OSError))
    assert r(fn) == "done"


def test_retry_error_callback_replaces_the_exhaustion_error(attempt_store: AttemptStore) -> None:
    def fallback(rs: RetryCallState) -> str:
        return f"gave up after {rs.attempt_number}"

    r = retrying(attempt_store, stop=stop_after_attempt(2), retry_error_callback=fallback)
    fn = Flaky(100)
    assert r(fn) == "gave up after 2"
    assert r(fn) == "gave up after 2"  # later calls: still exhausted, fn not called
    assert fn.calls == 2


def test_crashed_attempts_count_as_spent(attempt_store: AttemptStore) -> None:
    """Attempts recorded with no outcome (the process died) still spend the budget."""
    for _ in range(3):
        attempt_store.record_attempt("job", time.time())
    fn = Flaky(0)
    with pytest.raises(PersistentRetryExhausted) as caught:
        retrying(attempt_store, stop=stop_after_attempt(3))(fn)
    assert fn.calls == 0
    cause = caught.value.__cause__
    assert isinstance(cause, RecordedAttemptError) and cause.error is None
    assert "did not report an outcome" in str(cause)


# -- keys -------------------------------------------------------------------------------


@dataclass
class Task:
    id: int
    owner: Any = None


def test_key_helpers() -> None:
    store = MemoryAttemptStore()

    @persistent_retry(key_fn=key_from_argument("email_id"), store=store, stop=stop_after_attempt(1))
    def send_email(email_id: str, address: str) -> str:
        raise ValueError(address)

    with pytest.raises(PersistentRetryExhausted):
        send_email("42", address="a@b.c")
    assert store.get("42") is not None
    assert send_email.key_for("42", "x") == "42"
    send_email.reset(email_id="42", address="x")
    assert store.get("42") is None

    @persistent_retry(key_fn=key_from_attr("task", "id", prefix="process-video"), store=store)
    def process(task: Task) -> int:
        return task.id

    assert process.key_for(Task(7)) == "process-video:7"
    assert process(Task(7)) == 7

    by_id = idempotency_key_from_id("task", prefix="pv")
    nested = key_from_attr("task", "owner", "id")

    def handler(task: Task, **extra: Any) -> None: ...

    assert by_id.bind(handler)(Task(3)) == "pv:3"
    assert nested.bind(handler)(task=Task(1, owner=Task(9))) == "9"
    with pytest.raises(ValueError, match="None"):
        key_from_argument("task").bind(handler)(None)
    assert key_from_argument("tenant").bind(handler)(Task(1), tenant="acme") == "acme"


def test_key_fn_may_be_any_callable_of_the_arguments() -> None:
    store = MemoryAttemptStore()
    r = PersistentRetrying(
        key_fn=lambda user, n: f"user:{user}:{n}", store=store, stop=stop_after_attempt(1)
    )
    with pytest.raises(PersistentRetryExhausted) as caught:
        r(Flaky(1), "ann", 3)
    assert caught.value.key == "user:ann:3"
    bad = PersistentRetrying(key_fn=lambda: "", store=store)
    with pytest.raises(ValueError, match="non-empty"):
        bad(Flaky(0))


def test_decorated_function_keeps_its_metadata_and_retry_with() -> None:
    store = MemoryAttemptStore()

    @persistent_retry(key="k", store=store, stop=stop_after_attempt(1))
    def documented() -> None:
        """Docs."""
        raise ConnectionError

    assert documented.__name__ == "documented" and documented.__doc__ == "Docs."
    assert isinstance(documented.retry, PersistentRetrying)
    more = documented.retry_with(stop=stop_after_attempt(3), sleep=lambda s: None)
    with pytest.raises(PersistentRetryExhausted) as caught:
        more()
    assert caught.value.attempts == 3
    assert more.retry.store is store


def test_default_store_is_the_sqlite_file_in_the_current_directory(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    r = PersistentRetrying(key="job")
    assert not (tmp_path / "localqueue_retries.sqlite3").exists()  # opened on first use
    assert r(lambda: 5) == 5
    assert isinstance(r.store, SQLiteAttemptStore)
    assert (tmp_path / "localqueue_retries.sqlite3").exists()
    r.store.close()


def test_store_path_selects_lmdb(tmp_path: Any) -> None:
    pytest.importorskip("lmdb")
    from localqueue.retry import LMDBAttemptStore

    r = PersistentRetrying(key="job", store_path=str(tmp_path / "retries"))
    assert isinstance(r.store, LMDBAttemptStore)
    r.store.close()


# -- async ------------------------------------------------------------------------------


def test_sync_and_async_retryers_ask_the_same_questions_in_tenacitys_order(
    attempt_store: AttemptStore,
) -> None:
    """One protocol drives both retryers: a resumed key asks ``stop`` first, then each
    attempt goes before, (function), retry, after, wait, stop, before_sleep, sleep."""

    def run(retryer_class: type[PersistentRetrying | PersistentAsyncRetrying]) -> list[Any]:
        log: list[Any] = []

        def hook(name: str, answer: Any = None) -> Any:
            def call(rs: RetryCallState) -> Any:
                log.append((name, rs.attempt_number))
                return answer(rs) if callable(answer) else answer

            return call

        key = f"order:{retryer_class.__name__}"
        attempt_store.record_attempt(key, time.time())  # one attempt spent elsewhere
        retryer = retryer_class(
            key=key,
            store=attempt_store,
            before=hook("before"),
            after=hook("after"),
            retry=hook("retry", lambda rs: rs.outcome.failed),
            wait=hook("wait", 0.5),
            stop=hook("stop", False),
            before_sleep=hook("before_sleep"),
            sleep=log.append,
        )
        flaky = Flaky(1)
        if retryer_class is PersistentRetrying:
            assert retryer(flaky) == "ok"
        else:

            async def work() -> str:
                return flaky()

            assert asyncio.run(retryer(work)) == "ok"
        assert attempt_store.get(key) is None
        return log

    expected = [
        ("stop", 1),
        ("before", 2),
        ("retry", 2),
        ("after", 2),
        ("wait", 2),
        ("stop", 2),
        ("before_sleep", 2),
        0.5,
        ("before", 3),
        ("retry", 3),
    ]
    assert run(PersistentRetrying) == expected
    assert run(PersistentAsyncRetrying) == expected


def test_async_retry_persists_the_budget(attempt_store: AttemptStore) -> None:
    calls = 0
    slept: list[float] = []

    async def nap(seconds: float) -> None:
        slept.append(seconds)

    @persistent_async_retry(
        key_fn=key_from_argument("job_id"),
        store=attempt_store,
        stop=stop_after_attempt(3),
        wait=wait_fixed(0.5),
        sleep=nap,
    )
    async def fetch(job_id: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise ConnectionError(f"down {calls}")

    async def main() -> None:
        with pytest.raises(PersistentRetryExhausted) as caught:
            await fetch("j1")
        assert isinstance(caught.value.__cause__, ConnectionError)
        with pytest.raises(PersistentRetryExhausted):
            await fetch("j1")

    asyncio.run(main())
    assert calls == 3 and slept == [0.5, 0.5]


def test_async_success_and_async_strategies(attempt_store: AttemptStore) -> None:
    async def retry_on_connection(rs: RetryCallState) -> bool:
        assert rs.outcome is not None
        return isinstance(rs.outcome.exception(), ConnectionError)

    flaky = Flaky(2)

    async def work() -> str:
        return flaky()

    r = PersistentAsyncRetrying(
        key="a", store=attempt_store, retry=retry_on_connection, stop=stop_after_attempt(5)
    )
    assert asyncio.run(r(work)) == "ok"
    assert attempt_store.get("a") is None


def test_loop_form_like_tenacity(attempt_store: AttemptStore) -> None:
    fn = Flaky(2)
    ran = 0
    for attempt in retrying(attempt_store, key="loop", stop=stop_after_attempt(5)):
        with attempt:
            ran += 1
            fn()
    assert ran == 3 and attempt_store.get("loop") is None

    always = Flaky(100)
    with pytest.raises(PersistentRetryExhausted):
        for attempt in retrying(attempt_store, key="loop", stop=stop_after_attempt(2)):
            with attempt:
                always()
    with pytest.raises(PersistentRetryExhausted):  # later loops never enter the block
        for attempt in retrying(attempt_store, key="loop", stop=stop_after_attempt(2)):
            with attempt:
                always()
    assert always.calls == 2
    with pytest.raises(ValueError, match="key_fn"):
        iter(PersistentRetrying(key_fn=key_from_argument("x"), store=attempt_store)).__next__()


def test_async_loop_form(attempt_store: AttemptStore) -> None:
    flaky = Flaky(2)

    async def main() -> int:
        ran = 0
        async for attempt in PersistentAsyncRetrying(
            key="aloop", store=attempt_store, stop=stop_after_attempt(5)
        ):
            with attempt:
                ran += 1
                flaky()
        return ran

    assert asyncio.run(main()) == 3
    assert attempt_store.get("aloop") is None
