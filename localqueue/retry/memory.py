"""MemoryAttemptStore: attempt records in a dict, for tests and single-process use.

It keeps the whole contract (atomic counting, exhaustion, clearing) but nothing survives
the process: use SQLiteAttemptStore or LMDBAttemptStore when budgets must outlive it.
"""

from __future__ import annotations

import threading

from localqueue.retry.base import AttemptRecord, AttemptStore

__all__ = ["MemoryAttemptStore"]


class MemoryAttemptStore(AttemptStore):
    """Per-key attempt records in process memory. Thread-safe."""

    def __init__(self) -> None:
        self._records: dict[str, AttemptRecord] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryAttemptStore()"

    def get(self, key: str) -> AttemptRecord | None:
        with self._lock:
            return self._records.get(key)

    def record_attempt(self, key: str, now: float) -> AttemptRecord:
        with self._lock:
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
