"""The protocol of a persistent retry, shared by the sync and async retryers.

:class:`RetryCore` holds the options (Tenacity's strategies, the key, the attempt store)
and one generator, :meth:`RetryCore.protocol`, that says what one call does, in order.
Every ``yield`` is a named request: a store operation (:class:`LookUp`,
:class:`CountAttempt`, :class:`RecordFailure`, :class:`Forget`), a question to one of the
user's strategies or callbacks (:class:`Ask`), a :class:`Sleep`, or an :class:`Attempt`
(run the function once). A driver in :mod:`localqueue.retry.retrying` performs each
request, synchronously or with ``await``, and sends the answer back, so the sync and
async retryers cannot drift apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import tenacity
from tenacity import Future, RetryAction, RetryCallState, TryAgain

from localqueue import codec
from localqueue.retry.base import AttemptRecord, AttemptStore
from localqueue.retry.errors import (
    NestedRetryError,
    PersistentRetryExhausted,
    RecordedAttemptError,
)
from localqueue.retry.keys import ArgumentKey, KeyFn

__all__ = [
    "Ask",
    "Attempt",
    "CountAttempt",
    "Forget",
    "Hook",
    "LookUp",
    "RecordFailure",
    "Request",
    "RetryCore",
    "Sleep",
    "Steps",
    "StoreRequest",
]

Hook = Callable[[RetryCallState], Any]


# -- the requests the protocol makes of a driver ---------------------------------------


class StoreRequest:
    """An attempt-store operation; :meth:`apply` performs it and returns the answer."""

    __slots__ = ()

    def apply(self, store: AttemptStore) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class LookUp(StoreRequest):
    """The key's record (``AttemptRecord | None``)."""

    key: str

    def apply(self, store: AttemptStore) -> AttemptRecord | None:
        return store.get(self.key)


@dataclass(frozen=True, slots=True)
class CountAttempt(StoreRequest):
    """Count one more attempt, durably, before it runs; answers the new record."""

    key: str
    now: float

    def apply(self, store: AttemptStore) -> AttemptRecord:
        return store.record_attempt(self.key, self.now)


@dataclass(frozen=True, slots=True)
class RecordFailure(StoreRequest):
    """Store the latest attempt's encoded error; ``exhausted`` marks the budget spent."""

    key: str
    error: bytes | None
    exhausted: bool

    def apply(self, store: AttemptStore) -> None:
        store.record_failure(self.key, self.error, exhausted=self.exhausted)


@dataclass(frozen=True, slots=True)
class Forget(StoreRequest):
    """Clear the key (after a success)."""

    key: str

    def apply(self, store: AttemptStore) -> None:
        store.clear(self.key)


@dataclass(frozen=True, slots=True)
class Ask:
    """Call one of the user's strategies or callbacks with the retry state; answers what
    it returns (awaited first when the async driver gets an awaitable)."""

    hook: Hook


@dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep with the retryer's ``sleep`` between two attempts."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """Run the wrapped function once and put its outcome on the retry state."""


Request = StoreRequest | Ask | Sleep | Attempt
#: A protocol run: yields requests, is sent their answers, returns what the call returns.
Steps = Generator[Request, Any, Any]


def _encode_error(error: BaseException | None) -> bytes | None:
    if error is None:
        return None
    try:
        return codec.encode(codec.error_to_dict(error))
    except Exception:  # a broken __str__ must not hide the real failure
        return codec.encode({"type": type(error).__qualname__, "module": None, "message": ""})


def _decode_error(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        decoded = codec.decode(data)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _describe(error: BaseException | None) -> dict[str, Any] | None:
    if isinstance(error, RecordedAttemptError):
        return error.error
    return _decode_error(_encode_error(error))


class RetryCore:
    """What the sync and async retryers share: options, key, store and the protocol."""

    _tenacity_class: type[tenacity.BaseRetrying] = tenacity.Retrying

    def __init__(
        self,
        *,
        key: str | None = None,
        key_fn: KeyFn | None = None,
        store: AttemptStore | None = None,
        store_path: str | None = None,
        stop: Any = tenacity.stop_never,
        wait: Any = None,
        retry: Any = None,
        before: Hook | None = None,
        after: Hook | None = None,
        before_sleep: Hook | None = None,
        retry_error_callback: Hook | None = None,
        sleep: Callable[[float], Any] | None = None,
        name: str | None = None,
        reraise: bool = False,
        retry_error_cls: type[tenacity.RetryError] | None = None,
        enabled: bool = True,
    ) -> None:
        if key is None and key_fn is None:
            raise ValueError(
                "a persistent retry needs an explicit key: pass key='job:42' for one logical"
                " job, or key_fn=key_from_argument('job_id') to key each call"
            )
        if key is not None and key_fn is not None:
            raise ValueError("pass either key or key_fn, not both")
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        if store is not None and store_path is not None:
            raise ValueError("pass either store or store_path, not both")
        if store_path is not None:
            from localqueue.retry.stores import lmdb_attempt_store

            store = lmdb_attempt_store(store_path)
        self.key = key
        self.key_fn = key_fn
        self.stop = stop
        self.wait = tenacity.wait_none() if wait is None or wait == 0 else wait
        self.retry = tenacity.retry_if_exception_type() if retry is None else retry
        self.before = before
        self.after = after
        self.before_sleep = before_sleep
        self.retry_error_callback = retry_error_callback
        self.reraise = reraise
        self.retry_error_cls = retry_error_cls
        self.enabled = enabled
        self.name = name
        self._sleep = sleep
        self._store = store
        self._store_lock = threading.Lock()
        self._local = threading.local()
        tenacity_options: dict[str, Any] = {
            "stop": self.stop,
            "wait": self.wait,
            "retry": self.retry,
            "before_sleep": before_sleep,
            "retry_error_callback": retry_error_callback,
            "name": name,
        }
        if sleep is not None:
            tenacity_options["sleep"] = sleep
        if before is not None:
            tenacity_options["before"] = before
        if after is not None:
            tenacity_options["after"] = after
        #: The Tenacity retryer the rebuilt states point to (``retry_state.retry_object``).
        self.tenacity = self._tenacity_class(**tenacity_options)

    def __str__(self) -> str:
        return self.name if self.name is not None else "<unknown>"

    def __getstate__(self) -> dict[str, Any]:
        # the lock and the thread-local statistics cannot be pickled
        return {k: v for k, v in self.__dict__.items() if k not in ("_store_lock", "_local")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._store_lock = threading.Lock()
        self._local = threading.local()

    @property
    def statistics(self) -> dict[str, Any]:
        """Tenacity's statistics of this thread's latest call: ``start_time``,
        ``attempt_number`` (the key's persisted count), ``idle_for`` and
        ``delay_since_first_attempt``."""
        if not hasattr(self._local, "statistics"):
            self._local.statistics = {}
        stats: dict[str, Any] = self._local.statistics
        return stats

    def begin(self) -> None:
        """Start this thread's statistics for a new call (a driver does, before the
        protocol's first request)."""
        stats = self.statistics
        stats.clear()
        stats.update(
            start_time=time.monotonic(), attempt_number=1, idle_for=0, delay_since_first_attempt=0
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} key={self.key or self.key_fn!r} store={self._store!r}"
            f" stop={self.stop!r} wait={self.wait!r} retry={self.retry!r}>"
        )

    # -- store and keys ---------------------------------------------------------------

    @property
    def store(self) -> AttemptStore:
        """The attempt store; the default SQLite file is opened on first use."""
        store = self._store
        if store is None:
            with self._store_lock:
                if self._store is None:
                    from localqueue.retry.sqlite import SQLiteAttemptStore

                    self._store = SQLiteAttemptStore()
                store = self._store
        return store

    def copy(self, **changes: Any) -> Any:
        """A retryer with the same options except ``changes`` (and the same store)."""
        options: dict[str, Any] = {
            "key": self.key,
            "key_fn": self.key_fn,
            "store": self._store,
            "stop": self.stop,
            "wait": self.wait,
            "retry": self.retry,
            "before": self.before,
            "after": self.after,
            "before_sleep": self.before_sleep,
            "retry_error_callback": self.retry_error_callback,
            "sleep": self._sleep,
            "name": self.name,
            "reraise": self.reraise,
            "retry_error_cls": self.retry_error_cls,
            "enabled": self.enabled,
            **changes,
        }
        if changes.get("key") is not None:
            options.pop("key_fn")
        elif changes.get("key_fn") is not None:
            options.pop("key")
        if "store_path" in changes:
            options.pop("store")
        return type(self)(**options)

    def reset(self, key: str | None = None) -> None:
        """Forget ``key`` (default: this retryer's fixed key), restoring its full budget."""
        self.store.clear(self._fixed_key(key))

    def attempt_record(self, key: str | None = None) -> AttemptRecord | None:
        """What the store knows about ``key`` (default: this retryer's fixed key)."""
        return self.store.get(self._fixed_key(key))

    def _fixed_key(self, key: str | None) -> str:
        if key is not None:
            return key
        if self.key is None:
            raise ValueError("this retryer keys each call with key_fn: name the key to use")
        return self.key

    def key_function(self, fn: Callable[..., Any]) -> KeyFn:
        """The function mapping a call of ``fn`` to its key (checked against ``fn`` now)."""
        fixed = self.key
        if fixed is not None:
            return lambda *args, **kwargs: fixed
        key_fn = self.key_fn
        assert key_fn is not None
        if isinstance(key_fn, ArgumentKey):
            return key_fn.bind(fn)
        return key_fn

    @staticmethod
    def _checked_key(key: object) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError(f"key_fn must return a non-empty string, got {key!r}")
        return key

    # -- the protocol -----------------------------------------------------------------

    def protocol(self, key: str, state: RetryCallState) -> Steps:
        """One call under the budget of ``key``, as the requests a driver performs."""
        # 1. Attempts spent by earlier calls (or processes that died) count: is any left?
        record: AttemptRecord | None = yield LookUp(key)
        if record is not None:
            recorded = self._load_recorded(state, record)
            spent = record.exhausted
            if not spent:
                spent = yield Ask(self.stop)
                if spent:
                    yield RecordFailure(key, record.last_error, exhausted=True)
            if spent:
                return (yield from self._give_up(key, record.attempts, recorded, state))
        while True:
            # 2. Count the attempt, durably, and only then make it.
            record = yield CountAttempt(key, time.time())
            assert record is not None
            self._load(state, record)
            if self.before is not None:
                yield Ask(self.before)
            yield Attempt()
            # 3. Tenacity's order: retry, after, wait, stop, before_sleep, sleep.
            outcome = state.outcome
            assert outcome is not None
            error = outcome.exception() if outcome.failed else None
            if isinstance(error, TryAgain):  # the function asked for another attempt
                retry = True
                error = error.__cause__ or error.__context__ or error
            elif isinstance(error, NestedRetryError):  # a mistake no attempt can undo
                retry = False
            else:
                retry = yield Ask(self.retry)
            if not retry:
                if error is None:
                    yield Forget(key)
                    return outcome.result()
                yield RecordFailure(key, _encode_error(error), exhausted=False)
                raise error
            encoded = _encode_error(error)
            if self.after is not None:
                yield Ask(self.after)
            wait = yield Ask(self.wait)
            state.upcoming_sleep = float(wait or 0.0)
            self.statistics["delay_since_first_attempt"] = state.seconds_since_start
            spent = yield Ask(self.stop)
            yield RecordFailure(key, encoded, exhausted=bool(spent))
            if spent:
                return (yield from self._give_up(key, record.attempts, error, state))
            state.next_action = RetryAction(state.upcoming_sleep)
            state.idle_for += state.upcoming_sleep
            self.statistics["idle_for"] += state.upcoming_sleep
            if self.before_sleep is not None:
                yield Ask(self.before_sleep)
            yield Sleep(state.upcoming_sleep)

    def _load(self, state: RetryCallState, record: AttemptRecord) -> None:
        """Point ``state`` (and the statistics) at the persisted attempt: its number, and a
        start time such that ``seconds_since_start`` is wall-clock time since the key's
        first attempt."""
        elapsed = max(0.0, time.time() - record.first_attempt_at)
        state.start_time = time.monotonic() - elapsed
        state.attempt_number = record.attempts
        state.outcome = None
        state.outcome_timestamp = None
        state.next_action = None
        state.upcoming_sleep = 0.0
        self.statistics["attempt_number"] = record.attempts

    def _load_recorded(self, state: RetryCallState, record: AttemptRecord) -> RecordedAttemptError:
        """:meth:`_load`, with the recorded error as the outcome the strategies see."""
        self._load(state, record)
        error = RecordedAttemptError(record.key, record.attempts, _decode_error(record.last_error))
        state.outcome = Future.construct(record.attempts, error, True)
        state.outcome_timestamp = time.monotonic()
        self.statistics["delay_since_first_attempt"] = state.seconds_since_start
        return error

    def _give_up(
        self, key: str, attempts: int, cause: BaseException | None, state: RetryCallState
    ) -> Steps:
        if self.retry_error_callback is not None:
            return (yield Ask(self.retry_error_callback))
        last_attempt = state.outcome
        assert last_attempt is not None
        error: tenacity.RetryError
        if self.retry_error_cls is not None:
            error = self.retry_error_cls(last_attempt)
        else:
            error = PersistentRetryExhausted(key, attempts, _describe(cause), last_attempt)
        if self.reraise:
            error.reraise()
        raise error from cause

    @staticmethod
    def leaving(key: str, state: RetryCallState) -> StoreRequest | None:
        """What leaving a ``for attempt in retryer`` loop early (``return``/``break``)
        records: the last attempt's success clears the key, its failure is stored."""
        outcome = state.outcome
        if outcome is None:
            return None
        if not outcome.failed:
            return Forget(key)
        return RecordFailure(key, _encode_error(outcome.exception()), exhausted=False)
