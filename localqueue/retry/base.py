"""The attempt store contract: persistent retry budgets, one record per key.

An attempt store remembers, per retry key, how many attempts were made and when the
first one started, so a retry budget survives process restarts and crashes. It moves
plain numbers and JSON-encoded error bytes; encoding lives in ``localqueue.codec``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["AttemptRecord", "AttemptStore"]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What an attempt store knows about one key. Immutable; compares by value."""

    key: str
    attempts: int  # attempts started so far (>= 1 once a record exists)
    first_attempt_at: float  # wall clock (epoch seconds) of the first attempt
    last_attempt_at: float  # wall clock of the latest attempt
    exhausted: bool  # the budget is spent: later calls must not run the function
    last_error: bytes | None  # JSON-encoded error of the latest failure, if recorded

    def replace(self, **changes: Any) -> AttemptRecord:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


class AttemptStore(ABC):
    """Persistent per-key attempt counters. Thread-safe; the persistent ones are safe
    across processes."""

    @abstractmethod
    def get(self, key: str) -> AttemptRecord | None:
        """The record for ``key``, or None when no attempt was recorded (or it was cleared)."""

    @abstractmethod
    def record_attempt(self, key: str, now: float) -> AttemptRecord:
        """Atomically count one more attempt for ``key`` (creating the record with
        ``first_attempt_at`` = ``now`` on the first) and return the new record. It is
        durable before this returns: a process that dies during the attempt has spent it."""

    @abstractmethod
    def record_failure(self, key: str, error: bytes | None, *, exhausted: bool) -> None:
        """Store the latest attempt's error and, with ``exhausted``, mark the budget spent.
        A key without a record is left alone."""

    @abstractmethod
    def clear(self, key: str) -> None:
        """Forget ``key`` (after a success, or to reset its budget). No error when absent."""

    def record_attempts(
        self, keys: Sequence[str], now: float, *, clear: Sequence[str] = ()
    ) -> list[AttemptRecord]:
        """:meth:`clear` every key of ``clear``, then :meth:`record_attempt` for each of
        ``keys`` (distinct), in ONE commit where the store can: a worker with several
        jobs counts their attempts (and forgets the messages it finished) at once.
        Returns the new records in ``keys`` order; durable before this returns. The
        default makes the calls one by one."""
        for cleared in clear:
            self.clear(cleared)
        return [self.record_attempt(key, now) for key in keys]

    def uncount_attempt(self, key: str) -> None:
        """Give back the latest attempt of ``key`` (a worker stopped it before it could
        finish: it was not the handler's verdict). The record keeps its first-attempt
        time; with no attempt left it is forgotten. No error when absent. The default
        rebuilds the record with one attempt fewer; stores may do it in one commit."""
        record = self.get(key)
        if record is None:
            return
        self.clear(key)
        for _ in range(record.attempts - 1):
            self.record_attempt(key, record.first_attempt_at)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and file handles."""
