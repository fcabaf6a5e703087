"""Errors of the retry layer."""

from __future__ import annotations

from typing import Any

import tenacity

from localqueue.errors import LocalQueueError

__all__ = ["NestedRetryError", "PersistentRetryExhausted", "RecordedAttemptError"]


class PersistentRetryExhausted(LocalQueueError, tenacity.RetryError):
    """The retry budget of ``key`` is spent; the function was not (or no longer) called.

    Raised by the call that spent the budget, chained (``__cause__``) to the last error,
    and by every later call with the same key before the function runs, chained to a
    :class:`RecordedAttemptError` describing the last recorded error. ``last_error`` is
    that error as a ``{"type", "module", "message"}`` dict (None when the last attempt
    never reported: its process died, or a result was retried).

    It is a ``tenacity.RetryError``: ``last_attempt`` is the last attempt's outcome (a
    :class:`RecordedAttemptError` when only the store knows it) and ``reraise()`` raises it.
    """

    def __init__(
        self,
        key: str,
        attempts: int,
        last_error: dict[str, Any] | None,
        last_attempt: tenacity.Future | None = None,
    ) -> None:
        self.key = key
        self.attempts = attempts
        self.last_error = last_error
        if last_attempt is None:
            recorded = RecordedAttemptError(key, attempts, last_error)
            last_attempt = tenacity.Future.construct(attempts, recorded, True)
        self.last_attempt = last_attempt
        Exception.__init__(self, key, attempts, last_error)

    def __str__(self) -> str:
        tries = "attempt" if self.attempts == 1 else "attempts"
        text = f"retry budget for key {self.key!r} is exhausted after {self.attempts} {tries}"
        if self.last_error is not None:
            text += f"; last error: {_describe(self.last_error)}"
        return text


class RecordedAttemptError(LocalQueueError):
    """An earlier attempt's failure, known only from the attempt store.

    Stands in for the original exception (which lived in another call or process) as the
    ``__cause__`` of :class:`PersistentRetryExhausted` and as the failed outcome Tenacity's
    strategies see when a call resumes a key. ``attempt`` is how many attempts were spent;
    ``error`` is the last error the store recorded (None when none was: the attempt's
    process died while it ran). An attempt that died after an earlier one failed leaves
    that earlier error as the last one recorded.
    """

    def __init__(self, key: str, attempt: int, error: dict[str, Any] | None) -> None:
        self.key = key
        self.attempt = attempt
        self.error = error
        super().__init__(key, attempt, error)

    def __str__(self) -> str:
        if self.error is None:
            return (
                f"attempt {self.attempt} for key {self.key!r} did not report an outcome"
                " (its process may have died while it ran)"
            )
        return (
            f"last error recorded for key {self.key!r} (after {self.attempt} attempts):"
            f" {_describe(self.error)}"
        )


def _describe(error: dict[str, Any]) -> str:
    kind = str(error.get("type") or "Error")
    message = str(error.get("message") or "")
    return f"{kind}: {message}" if message else kind


class NestedRetryError(LocalQueueError, RuntimeError):
    """A call under the budget of ``key`` was made inside another call on the same key, in
    the same thread or asyncio task (the function calling itself, or a strategy calling
    the function). The inner call would spend, and on success clear, the outer call's
    budget, so the outer call could retry forever: the inner call raises this before it
    runs, and an outer call whose attempt raised it does not retry it."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"a persistent retry on key {key!r} was called inside another call on the same"
            " key: the inner call would spend, and on success clear, the outer call's"
            " budget. Give the inner call a key of its own."
        )
