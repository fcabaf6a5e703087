"""The persistent retryers behave like Tenacity's where persistence allows (issue 19)."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest
from tenacity import RetryError, retry_if_result, stop_after_attempt

from localqueue.retry import (
    MemoryAttemptStore,
    NestedRetryError,
    PersistentAsyncRetrying,
    PersistentRetryExhausted,
    PersistentRetrying,
    RecordedAttemptError,
    persistent_async_retry,
    persistent_retry,
)
from localqueue.retry.base import AttemptStore


def no_sleep(seconds: float) -> None:
    pass


def test_returning_from_a_successful_loop_attempt_clears_the_key(
    attempt_store: AttemptStore,
) -> None:
    def sync_orders() -> str:
        for attempt in PersistentRetrying(
            key="sync:orders", store=attempt_store, stop=stop_after_attempt(3)
        ):
            with attempt:
                return "synced"
        raise AssertionError("unreachable")

    assert [sync_orders() for _ in range(5)] == ["synced"] * 5
    assert attempt_store.get("sync:orders") is None


def test_breaking_out_of_a_successful_loop_attempt_clears_the_key(
    attempt_store: AttemptStore,
) -> None:
    for _ in range(4):
        for attempt in PersistentRetrying(
            key="sync:break", store=attempt_store, stop=stop_after_attempt(2)
        ):
            with attempt:
                pass
            break
    assert attempt_store.get("sync:break") is None


def test_returning_from_a_successful_async_loop_attempt_clears_the_key(
    attempt_store: AttemptStore,
) -> None:
    async def sync_orders() -> str:
        async for attempt in PersistentAsyncRetrying(
            key="async:orders", store=attempt_store, stop=stop_after_attempt(3)
        ):
            with attempt:
                return "synced"
        raise AssertionError("unreachable")

    async def main() -> list[str]:
        return [await sync_orders() for _ in range(5)]

    assert asyncio.run(main()) == ["synced"] * 5
    assert attempt_store.get("async:orders") is None


def test_async_retryer_runs_a_sync_function_once_when_it_succeeds() -> None:
    store = MemoryAttemptStore()
    calls: list[int] = []

    def side_effect(n: int) -> int:
        calls.append(n)
        return n * 2

    decorated = persistent_async_retry(key="sync-fn", store=store, stop=stop_after_attempt(3))(
        side_effect
    )
    retryer = PersistentAsyncRetrying(key="sync-fn2", store=store, stop=stop_after_attempt(3))
    assert asyncio.run(decorated(21)) == 42  # type: ignore[arg-type]
    assert asyncio.run(retryer(side_effect, 4)) == 8  # type: ignore[arg-type]
    assert calls == [21, 4]
    assert store.get("sync-fn") is None and store.get("sync-fn2") is None


def test_exhaustion_is_a_tenacity_retry_error_with_the_last_attempt() -> None:
    store = MemoryAttemptStore()
    retryer = PersistentRetrying(key="k", store=store, stop=stop_after_attempt(2), sleep=no_sleep)

    def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(RetryError) as spent:
        retryer(fail)
    assert isinstance(spent.value, PersistentRetryExhausted)
    assert spent.value.last_attempt.attempt_number == 2
    with pytest.raises(ConnectionError, match="down"):
        spent.value.reraise()
    with pytest.raises(PersistentRetryExhausted) as later:
        retryer(fail)
    with pytest.raises(RecordedAttemptError, match="down"):
        later.value.reraise()
    # the worker's constructor still works
    built = PersistentRetryExhausted("id", 3, {"type": "OSError", "module": None, "message": "x"})
    assert built.key == "id" and built.attempts == 3 and built.last_attempt.failed


def test_reraise_raises_the_last_error_on_the_spending_call_and_later_calls() -> None:
    store = MemoryAttemptStore()
    retryer = PersistentRetrying(
        key="k", store=store, stop=stop_after_attempt(2), sleep=no_sleep, reraise=True
    )
    calls = 0

    def fail() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with pytest.raises(ConnectionError, match="down"):
        retryer(fail)
    with pytest.raises(RecordedAttemptError, match="down"):
        retryer(fail)
    assert calls == 2


def test_retry_error_cls_replaces_the_exhaustion_error() -> None:
    class Spent(RetryError):
        pass

    retryer = PersistentRetrying(
        key="k", store=MemoryAttemptStore(), stop=stop_after_attempt(1), retry_error_cls=Spent
    )
    with pytest.raises(Spent) as spent:
        retryer(lambda: 1 / 0)
    assert spent.value.last_attempt.attempt_number == 1


def test_statistics_have_tenacitys_keys_on_retryers_and_decorated_functions() -> None:
    store = MemoryAttemptStore()
    failures = iter([True, True, False])

    @persistent_retry(key="stats", store=store, stop=stop_after_attempt(5), sleep=no_sleep)
    def flaky() -> str:
        if next(failures):
            raise ConnectionError("down")
        return "ok"

    assert flaky() == "ok"
    keys = {"start_time", "attempt_number", "idle_for", "delay_since_first_attempt"}
    assert set(flaky.statistics) == keys and flaky.statistics["attempt_number"] == 3
    retryer = PersistentRetrying(key="s2", store=store)
    retryer(lambda: None)
    assert set(retryer.statistics) == keys and retryer.statistics["attempt_number"] == 1


def test_disabled_retryers_call_the_function_once_without_the_store() -> None:
    store = MemoryAttemptStore()
    calls = 0

    @persistent_retry(key="off", store=store, enabled=False)
    def fail() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        fail()
    assert calls == 1 and store.get("off") is None


def test_persistent_retry_on_a_coroutine_function_uses_the_async_retryer() -> None:
    @persistent_retry(key="co", store=MemoryAttemptStore())
    async def compute(x: int = 1, *, y: int = 2) -> int:
        return x + y

    assert isinstance(compute.retry, PersistentAsyncRetrying)
    assert asyncio.run(compute()) == 3  # type: ignore[arg-type]
    assert compute.__defaults__ == (1,) and compute.__kwdefaults__ == {"y": 2}


def test_str_pickle_and_copy_follow_tenacity() -> None:
    retryer = PersistentRetrying(key="k", name="orders", stop=stop_after_attempt(3))
    assert str(retryer) == "orders"
    clone = pickle.loads(pickle.dumps(retryer))
    assert isinstance(clone, PersistentRetrying) and clone.key == "k"
    retryer.stop = stop_after_attempt(7)
    copied = retryer.copy()
    assert copied.stop is retryer.stop and copied.name == "orders"

    def fn() -> None:
        pass

    decorated = PersistentRetrying(key="k2", store=MemoryAttemptStore()).wraps(fn)
    decorated.retry.stop = stop_after_attempt(9)
    assert decorated.retry_with(name="x").retry.stop is decorated.retry.stop


def test_retry_with_shares_the_key_and_store() -> None:
    store = MemoryAttemptStore()
    attempts: list[int] = []

    @persistent_retry(key="shared", store=store, stop=stop_after_attempt(2), sleep=no_sleep)
    def fail() -> Any:
        attempts.append(1)
        raise ConnectionError("down")

    with pytest.raises(PersistentRetryExhausted):
        fail()
    with pytest.raises(PersistentRetryExhausted):
        fail.retry_with(stop=stop_after_attempt(2))()
    assert len(attempts) == 2


def test_async_loop_result_set_after_the_with_block_is_what_retry_if_result_sees() -> None:
    async def count() -> int:
        attempts = 0
        retrying = PersistentAsyncRetrying(
            key="k", store=MemoryAttemptStore(), retry=retry_if_result(lambda n: n < 3)
        )
        async for attempt in retrying:
            with attempt:
                attempts += 1
            attempt.retry_state.set_result(attempts)
        return attempts

    assert asyncio.run(count()) == 3


def test_a_call_nested_in_a_call_on_the_same_key_is_refused_before_it_runs(
    attempt_store: AttemptStore,
) -> None:
    # Tenacity's issue 478 pattern: the retry strategy calls the decorated function again.
    # On one persistent key the inner success would clear the outer call's budget, and the
    # outer call would retry forever; it fails at once instead, naming the key.
    ran: list[str] = []

    def fix_then_retry(state: Any) -> bool:
        work("fix")
        return True

    @persistent_retry(key="orders", store=attempt_store, retry=fix_then_retry, sleep=no_sleep)
    def work(subject: str) -> None:
        ran.append(subject)
        if subject == "error":
            raise ValueError(subject)

    with pytest.raises(NestedRetryError, match="'orders' was called inside another call"):
        work("error")
    assert ran == ["error"]
    record = attempt_store.get("orders")
    assert record is not None and record.attempts == 1


def test_an_async_call_nested_in_a_call_on_the_same_key_is_refused(
    attempt_store: AttemptStore,
) -> None:
    @persistent_async_retry(key="orders", store=attempt_store, stop=stop_after_attempt(2))
    async def work(depth: int) -> int:
        return depth if depth == 0 else await work(depth - 1)

    with pytest.raises(NestedRetryError, match="inside another call on the same key"):
        asyncio.run(work(1))


def test_nested_calls_on_different_keys_and_repeated_calls_on_one_key_run(
    attempt_store: AttemptStore,
) -> None:
    @persistent_retry(key_fn=lambda n: f"depth:{n}", store=attempt_store)
    def count_down(n: int) -> int:
        return 0 if n == 0 else 1 + count_down(n - 1)

    assert count_down(3) == 3
    assert count_down(3) == 3  # the first call's marks are gone once it returned

    async def twice() -> list[int]:
        @persistent_async_retry(key="shared", store=attempt_store)
        async def one() -> int:
            await asyncio.sleep(0)
            return 1

        # sibling tasks on one key are concurrent calls (one budget), not nested ones
        return list(await asyncio.gather(one(), one()))

    assert asyncio.run(twice()) == [1, 1]
