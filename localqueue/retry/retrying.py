"""PersistentRetrying and PersistentAsyncRetrying: Tenacity's retry model, with the budget
kept in an attempt store so it survives restarts and crashes.

How one call goes:

1. Look the key up. An exhausted record raises :class:`PersistentRetryExhausted` before the
   function runs. A record left by an earlier call (or a process that died mid-attempt)
   counts as spent attempts: the user's ``stop`` strategy is asked, with a
   ``RetryCallState`` rebuilt from the stored numbers, whether the budget allows another.
2. Count the attempt in the store (durable) and only then run the function.
3. Ask the user's own Tenacity strategies, in Tenacity's order: ``retry`` (is this
   outcome worth retrying?), ``after``, ``wait``, ``stop``, ``before_sleep``, sleep.
   Success clears the key; a failure that is not retried is stored and re-raised;
   a spent budget marks the key exhausted and raises PersistentRetryExhausted chained to
   the last error (or returns ``retry_error_callback(state)`` when one is given).

The ``RetryCallState`` carries the persisted attempt number, and its ``start_time`` is
placed so that ``seconds_since_start`` is the *wall-clock* time since the key's first
attempt, which is what makes ``stop_after_delay`` work across processes.

Tenacity is wrapped, not subclassed: the strategies are plain callables it provides, and
a ``tenacity.Retrying`` built from the same arguments serves as ``retry_state.retry_object``.
One protocol generator (:mod:`localqueue.retry._core`) holds the logic. One driver per
flavour (:class:`_SyncDriver`, :class:`_AsyncDriver`) performs its requests up to each
attempt; the call form (``retryer(fn)``, decorators) and the loop form (``for attempt in
retryer``) share it and differ only in who makes the attempt.

A call (``retryer(fn)``, a decorated function) may not run inside another call on the
same key, in the same thread or asyncio task: the inner call would count in, and on
success clear, the budget the outer call is spending, so the outer one could retry
forever. :func:`_one_call_per_key` refuses it with :class:`NestedRetryError`. The loop
form is not checked: a generator left early is closed whenever its owner lets go of it,
so it cannot mark a key reliably.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, ParamSpec, Protocol, TypeVar

import tenacity
from tenacity import RetryCallState

from localqueue.retry._core import Ask, Attempt, Request, RetryCore, Sleep, StoreRequest
from localqueue.retry.base import AttemptStore
from localqueue.retry.errors import NestedRetryError
from localqueue.retry.keys import KeyFn

__all__ = [
    "PersistentAsyncRetrying",
    "PersistentRetryDecorated",
    "PersistentRetrying",
    "persistent_async_retry",
    "persistent_retry",
]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
_C = TypeVar("_C", bound=RetryCore)

#: The keys whose calls are running in this thread or asyncio task (a context variable:
#: a new thread starts with none, a task starts with its creator's).
_running: ContextVar[frozenset[str]] = ContextVar("localqueue_retry_running", default=frozenset())


@contextlib.contextmanager
def _one_call_per_key(key: str) -> Iterator[None]:
    """Mark ``key`` as running for the duration of one call; a nested call on it raises
    :class:`NestedRetryError`."""
    running = _running.get()
    if key in running:
        raise NestedRetryError(key)
    _running.set(running | {key})
    try:
        yield
    finally:
        _running.set(_running.get() - {key})


class PersistentRetryDecorated(Protocol[P, R_co]):
    """A function wrapped by a persistent retryer, with its controls attached."""

    retry: Any  #: the PersistentRetrying / PersistentAsyncRetrying doing the work
    statistics: dict[str, Any]  #: Tenacity's statistics of the latest call
    key_for: KeyFn  #: the key a call with these arguments uses

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def reset(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Forget the key that a call with these arguments uses."""

    def retry_with(self, **changes: Any) -> PersistentRetryDecorated[P, R_co]: ...


class _Driver:
    """Performs one call's protocol (:meth:`RetryCore.protocol`): every request up to the
    next attempt, which it leaves to the caller. The call form and the loop form of a
    retryer share it; :class:`_SyncDriver` and :class:`_AsyncDriver` differ only in how
    a request is performed."""

    def __init__(
        self, retrying: RetryCore, store: AttemptStore, key: str, state: RetryCallState
    ) -> None:
        self.retrying = retrying
        self.store = store
        self.key = key
        self.state = state
        self.value: Any = None  #: what the call returns, once the protocol has finished
        retrying.begin()
        self._steps = retrying.protocol(key, state)

    def _next(self, answer: Any) -> Request | None:
        """The protocol's next request, or None when it has returned (into ``value``)."""
        try:
            return self._steps.send(answer)
        except StopIteration as done:
            self.value = done.value
            return None

    def leave(self) -> None:
        """Record the attempt the caller left the loop from (``return``, ``break``). Not
        awaited, even by the async loop: a closing asynchronous generator may not be able to."""
        request = self.retrying.leaving(self.key, self.state)
        if request is not None:
            request.apply(self.store)


class _SyncDriver(_Driver):
    def next_attempt(self) -> bool:
        """Perform requests until the protocol asks for an attempt (True) or returns."""
        answer: Any = None
        while (request := self._next(answer)) is not None:
            match request:
                case Attempt():
                    return True
                case StoreRequest():
                    answer = request.apply(self.store)
                case Ask(hook):
                    answer = hook(self.state)
                case Sleep(seconds):
                    answer = self.retrying.tenacity.sleep(seconds)
        return False


class _AsyncDriver(_Driver):
    async def next_attempt(self) -> bool:
        """:meth:`_SyncDriver.next_attempt`, with store I/O in a worker thread (the event
        loop never blocks on it) and awaitable answers awaited."""
        answer: Any = None
        while (request := self._next(answer)) is not None:
            match request:
                case Attempt():
                    return True
                case StoreRequest():
                    answer = await asyncio.to_thread(request.apply, self.store)
                case Ask(hook):
                    answer = await _resolved(hook(self.state))
                case Sleep(seconds):
                    answer = await _resolved(self.retrying.tenacity.sleep(seconds))
        return False


class PersistentRetrying(RetryCore):
    """Retry a function with Tenacity strategies and a budget that survives restarts.

    Arguments follow ``tenacity.Retrying`` (``stop``, ``wait``, ``retry``, ``before``,
    ``after``, ``before_sleep``, ``retry_error_callback``, ``sleep``) plus an explicit key
    (``key="email:42"`` or ``key_fn=key_from_argument("email_id")``) and where the budget
    lives: ``store=`` any AttemptStore, ``store_path=`` an LMDB directory
    (``localqueue[lmdb]``), or by default the SQLite file ``./localqueue_retries.sqlite3``.
    """

    def __call__(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        key = self._checked_key(self.key_function(fn)(*args, **kwargs))
        return self.run(key, fn, *args, **kwargs)

    def run(self, key: str, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Call ``fn(*args, **kwargs)`` under the budget of ``key``."""
        if not self.enabled:
            return fn(*args, **kwargs)
        store = self.store
        state = RetryCallState(self.tenacity, fn, args, kwargs)
        key = self._checked_key(key)
        driver = _SyncDriver(self, store, key, state)
        with _one_call_per_key(key):
            while driver.next_attempt():
                try:
                    result = fn(*args, **kwargs)
                except BaseException:
                    state.set_exception(sys.exc_info())  # type: ignore[arg-type]
                else:
                    state.set_result(result)
        value: R = driver.value
        return value

    def __iter__(self) -> Iterator[tenacity.AttemptManager]:
        """Tenacity's loop form, for a retryer with a fixed ``key``::

        for attempt in PersistentRetrying(key="sync:orders", stop=stop_after_attempt(3)):
            with attempt:
                sync_orders()

        Leaving the loop from an attempt (``return``, ``break``) records its outcome: a
        success clears the key.
        """
        if not self.enabled:
            yield from _attempt_once(self.tenacity)
            return
        store = self.store
        state = RetryCallState(self.tenacity, None, (), {})
        driver = _SyncDriver(self, store, self._fixed_key(None), state)
        while driver.next_attempt():
            try:
                yield tenacity.AttemptManager(retry_state=state)
            except GeneratorExit:
                driver.leave()
                raise
            if state.outcome is None:
                raise RuntimeError("run each attempt inside `with attempt:`")

    def wraps(self, fn: Callable[P, R]) -> PersistentRetryDecorated[P, R]:
        """Decorate ``fn``; a ``key_fn`` naming an argument ``fn`` lacks fails here."""
        if inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"{fn.__qualname__} is a coroutine function: use persistent_async_retry"
                " / PersistentAsyncRetrying for it"
            )
        key_for = self.key_function(fn)

        @functools.wraps(fn, _WRAPPER_ASSIGNMENTS)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if not self.enabled:
                return fn(*args, **kwargs)
            key = self._checked_key(key_for(*args, **kwargs))
            return _call_copy(self, wrapped).run(key, fn, *args, **kwargs)

        return _attach(wrapped, self, fn, key_for)


class PersistentAsyncRetrying(RetryCore):
    """The asyncio twin of :class:`PersistentRetrying`. Store I/O runs in a worker thread
    (``asyncio.to_thread``) so the event loop never blocks on it; strategies and callbacks
    may be coroutine functions, as with ``tenacity.AsyncRetrying``."""

    _tenacity_class = tenacity.AsyncRetrying

    async def __call__(self, fn: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
        key = self._checked_key(self.key_function(fn)(*args, **kwargs))
        return await self.run(key, fn, *args, **kwargs)

    async def run(self, key: str, fn: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
        """Await ``fn(*args, **kwargs)`` under the budget of ``key``; a sync ``fn`` is
        called normally, as ``tenacity.AsyncRetrying`` does."""
        is_async = _is_coroutine_callable(fn)
        if not self.enabled:
            return (await fn(*args, **kwargs)) if is_async else fn(*args, **kwargs)  # type: ignore[return-value]
        store = await asyncio.to_thread(lambda: self.store)
        state = RetryCallState(self.tenacity, fn, args, kwargs)
        key = self._checked_key(key)
        driver = _AsyncDriver(self, store, key, state)
        with _one_call_per_key(key):
            while await driver.next_attempt():
                try:
                    result = (await fn(*args, **kwargs)) if is_async else fn(*args, **kwargs)
                except BaseException:
                    state.set_exception(sys.exc_info())  # type: ignore[arg-type]
                else:
                    state.set_result(result)
        value: R = driver.value
        return value

    async def __aiter__(self) -> AsyncIterator[tenacity.AttemptManager]:
        """Tenacity's ``async for attempt in ...: with attempt: ...`` form (fixed ``key``).
        Leaving the loop from an attempt records its outcome (a success clears the key)
        when the event loop closes this generator."""
        if not self.enabled:
            for attempt in _attempt_once(self.tenacity):
                yield attempt
            return
        store = await asyncio.to_thread(lambda: self.store)
        key = self._fixed_key(None)
        state = RetryCallState(self.tenacity, None, (), {})
        driver = _AsyncDriver(self, store, key, state)
        while await driver.next_attempt():
            try:
                yield _SettlingAttempt(self, key, store, state)
            except GeneratorExit:
                driver.leave()
                raise
            if state.outcome is None:
                raise RuntimeError("run each attempt inside `with attempt:`")

    def wraps(
        self, fn: Callable[P, Awaitable[R]]
    ) -> PersistentRetryDecorated[P, Coroutine[Any, Any, R]]:
        """Decorate the coroutine function ``fn``."""
        key_for = self.key_function(fn)

        @functools.wraps(fn, _WRAPPER_ASSIGNMENTS)
        async def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if not self.enabled:
                return await fn(*args, **kwargs)
            key = self._checked_key(key_for(*args, **kwargs))
            return await _call_copy(self, wrapped).run(key, fn, *args, **kwargs)

        return _attach(wrapped, self, fn, key_for)


class _SettlingAttempt(tenacity.AttemptManager):
    """The async loop's attempt: a success that the (synchronous) ``retry`` strategy
    accepts clears the key as the ``with`` block ends. Leaving an ``async for`` loop
    closes its generator only later, when the event loop gets to it (if it still runs),
    so the generic record-on-leave cannot be relied upon there."""

    def __init__(
        self, retrying: RetryCore, key: str, store: AttemptStore, state: RetryCallState
    ) -> None:
        super().__init__(retry_state=state)
        self._retrying = retrying
        self._key = key
        self._store = store

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> bool | None:
        swallowed = super().__exit__(exc_type, exc_value, traceback)
        retry = self._retrying.retry
        if exc_type is None and not _is_coroutine_callable(retry):
            try:
                settled = not retry(self.retry_state)
            except Exception:  # the loop body may set the result after the `with` block:
                settled = False  # the loop asks ``retry`` again then, and raises its error
            if settled:
                self._store.clear(self._key)
        return swallowed


_WRAPPER_ASSIGNMENTS = (*functools.WRAPPER_ASSIGNMENTS, "__defaults__", "__kwdefaults__")


def _attempt_once(retrying: tenacity.BaseRetrying) -> Iterator[tenacity.AttemptManager]:
    """The loop form of a disabled retryer: one attempt, its error raised."""
    state = RetryCallState(retrying, None, (), {})
    yield tenacity.AttemptManager(retry_state=state)
    if state.outcome is not None and state.outcome.failed:
        raise state.outcome.exception()  # type: ignore[misc]


async def _resolved(answer: Any) -> Any:
    return (await answer) if inspect.isawaitable(answer) else answer


def _is_coroutine_callable(fn: Callable[..., Any]) -> bool:
    if inspect.isclass(fn):
        return False
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)


def _call_copy(retrying: _C, wrapped: Callable[..., Any]) -> _C:
    """A copy of ``retrying`` for one call of ``wrapped`` (as Tenacity does, so nested
    calls keep their own statistics); its statistics are ``wrapped.statistics``."""
    copy: _C = retrying.copy()
    stats: dict[str, Any] = wrapped.statistics  # type: ignore[attr-defined]
    stats.clear()
    copy._local.statistics = stats
    retrying._local.statistics = stats
    return copy


def _attach(
    wrapped: Callable[P, R],
    retrying: RetryCore,
    fn: Callable[..., Any],
    key_for: KeyFn,
) -> PersistentRetryDecorated[P, R]:
    def reset(*args: Any, **kwargs: Any) -> None:
        retrying.store.clear(retrying._checked_key(key_for(*args, **kwargs)))

    def retry_with(**changes: Any) -> Any:
        return retrying.copy(**changes).wraps(fn)

    for name, value in (
        ("statistics", {}),
        ("retry", retrying),
        ("key_for", key_for),
        ("reset", reset),
        ("retry_with", retry_with),
    ):
        setattr(wrapped, name, value)
    return wrapped  # type: ignore[return-value]


def persistent_retry(**options: Any) -> Callable[[Callable[P, R]], PersistentRetryDecorated[P, R]]:
    """Decorator form of :class:`PersistentRetrying`: ``@persistent_retry(key_fn=...,
    stop=stop_after_attempt(3))``. A missing key fails here, at decoration time. On an
    ``async def`` (or with an async ``sleep``) it is :func:`persistent_async_retry`, as
    ``tenacity.retry`` picks ``AsyncRetrying``."""
    retrying = PersistentRetrying(**options)

    def wrap(fn: Callable[P, R]) -> PersistentRetryDecorated[P, R]:
        sleep = options.get("sleep")
        if _is_coroutine_callable(fn) or (sleep is not None and _is_coroutine_callable(sleep)):
            return PersistentAsyncRetrying(**options).wraps(fn)  # type: ignore[arg-type,return-value]
        return retrying.wraps(fn)

    return wrap


def persistent_async_retry(
    **options: Any,
) -> Callable[[Callable[P, Awaitable[R]]], PersistentRetryDecorated[P, Coroutine[Any, Any, R]]]:
    """Decorator form of :class:`PersistentAsyncRetrying` for coroutine functions."""
    retrying = PersistentAsyncRetrying(**options)
    return retrying.wraps
