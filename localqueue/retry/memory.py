"""MemoryAttemptStore: attempt records in a dict, for tests and single-process use.

It keeps the whole contract (atomic counting, exhaustion, clearing) but nothing survives
the process: use SQLiteAttemptStore or LMDBAttemptStore when budgets must outlive it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from localqueue.retry.base import AttemptRecord, AttemptStore

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["MemoryAttemptStore"]


class MemoryAttemptStore(AttemptStore):
    """Per-key attempt records in process memory. Thread-safe."""

    def __init__(self) -> None:
        self._records: dict[str, AttemptRecord] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryAttemptStore()"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with its records and without its lock (a retryer that holds one
        pickles, as Tenacity's do); the copy counts on its own from then on."""
        with self._lock:
            return {"records": dict(self._records)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._records = state["records"]
        self._lock = threading.Lock()

    def get(self, key: str) -> AttemptRecord | None:
        with self._lock:
            return self._records.get(key)

    def record_attempt(self, key: str, now: float) -> AttemptRecord:
        with self._lock:
            return self._count(key, now)

    def record_attempts(
        self, keys: Sequence[str], now: float, *, clear: Sequence[str] = ()
    ) -> list[AttemptRecord]:
        """Under one hold of the lock: no thread sees the clears without the counts."""
        with self._lock:
            for cleared in clear:
                self._records.pop(cleared, None)
            return [self._count(key, now) for key in keys]

    def uncount_attempt(self, key: str) -> None:
        """The count goes down by one under the lock (forgotten at zero); the record
        keeps its error and exhaustion."""
        with self._lock:
            old = self._records.get(key)
            if old is None:
                return
            if old.attempts <= 1:
                del self._records[key]
            else:
                self._records[key] = old.replace(attempts=old.attempts - 1)

    def _count(self, key: str, now: float) -> AttemptRecord:
        old = self._records.get(key)
        if old is None:
            new = AttemptRecord(key, 1, now, now, False, None)
        else:
            new = old.replace(attempts=old.attempts + 1, last_attempt_at=now)
        self._records[key] = new
        return new

    def record_failure(self, key: str, error: bytes | None, *, exhausted: bool) -> None:
        with self._lock:
            old = self._records.get(key)
            if old is not None:
                self._records[key] = old.replace(
                    last_error=error, exhausted=old.exhausted or exhausted
                )

    def clear(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)
