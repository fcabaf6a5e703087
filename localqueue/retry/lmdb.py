"""LMDBAttemptStore: retry budgets in one LMDB environment directory (``localqueue[lmdb]``),
its own or a queue store's (an ``attempts`` sub-database beside the queues).

The environment handling is the queue store's (:mod:`localqueue.backends.lmdb_env`): one
environment per directory per process, shared by every store on it; never used across
``fork()``; stale reader slots of crashed processes cleared (``reader_check``) on open;
a full map grows. Every change is one LMDB write transaction (LMDB serialises writers
across processes), so counting an attempt is atomic.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from localqueue.backends import lmdb_env
from localqueue.backends.lmdb_env import Durability, Schema
from localqueue.retry.base import AttemptRecord, AttemptStore
from localqueue.stores.lmdb import ATTEMPTS as _ATTEMPTS
from localqueue.stores.lmdb import SCHEMA as QUEUE_SCHEMA

if not lmdb_env.HAVE_LMDB:
    raise ImportError(f"LMDBAttemptStore: {lmdb_env.INSTALL_HINT}")

__all__ = ["LMDBAttemptStore"]

DEFAULT_MAP_SIZE = 16 * 1024**2
DEFAULT_MAX_MAP_SIZE = 4 * 1024**3
SCHEMA = Schema(b"localqueue-attempts", 1, (_ATTEMPTS,))
# attempts, first_attempt_at, last_attempt_at, exhausted, has_error; then the error bytes.
_HEADER = struct.Struct("<qddBB")
_MAX_KEY = 511  # LMDB's default key size limit; longer keys are stored by their hash


def _encode(record: AttemptRecord) -> bytes:
    error = record.last_error
    header = _HEADER.pack(
        record.attempts,
        record.first_attempt_at,
        record.last_attempt_at,
        int(record.exhausted),
        int(error is not None),
    )
    return header + (error or b"")


def _decode(key: str, raw: bytes) -> AttemptRecord:
    attempts, first, last, exhausted, has_error = _HEADER.unpack_from(raw)
    error = bytes(raw[_HEADER.size :]) if has_error else None
    return AttemptRecord(key, attempts, first, last, bool(exhausted), error)


def _db_key(key: str) -> bytes:
    raw = key.encode()
    if not raw or len(raw) > _MAX_KEY:
        return b"\x00sha256:" + hashlib.sha256(raw).digest()
    return raw


class LMDBAttemptStore(AttemptStore):
    """Attempt records in the LMDB environment directory ``path`` (created 0700, files
    0600): beside the queues when it holds an LMDBQueueStore (where its workers keep
    their budgets by default), else in an environment of its own. A directory holding
    anything else, or an attempt store's environment opened as a queue store, is refused
    with StoreError. ``durability`` and the map sizes work as for LMDBQueueStore."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = DEFAULT_MAX_MAP_SIZE,
        durability: Durability = "full",
    ) -> None:
        lmdb_env.check_options(durability, map_size, max_map_size)
        self.path = os.fspath(path)
        self._options: dict[str, Any] = {
            "map_size": map_size,
            "max_map_size": max_map_size,
            "durability": durability,
        }
        self._shared: lmdb_env.SharedEnv | None = lmdb_env.acquire(
            self.path, SCHEMA, host=QUEUE_SCHEMA, **self._options
        )

    def __repr__(self) -> str:
        return f"LMDBAttemptStore({self.path!r})"

    def _env(self) -> lmdb_env.SharedEnv:
        shared = self._shared
        if shared is None:  # used again after close()
            shared = self._shared = lmdb_env.acquire(
                self.path, SCHEMA, host=QUEUE_SCHEMA, **self._options
            )
        return shared

    def get(self, key: str) -> AttemptRecord | None:
        db_key = _db_key(key)

        def read(txn: Any, dbs: Mapping[bytes, Any]) -> AttemptRecord | None:
            raw = txn.get(db_key, db=dbs[_ATTEMPTS])
            return None if raw is None else _decode(key, raw)

        return self._env().read(read)

    def record_attempt(self, key: str, now: float) -> AttemptRecord:
        return self.record_attempts([key], now)[0]

    def record_attempts(
        self, keys: Sequence[str], now: float, *, clear: Sequence[str] = ()
    ) -> list[AttemptRecord]:
        """One write transaction (one commit) for all of them."""

        def count(txn: Any, dbs: Mapping[bytes, Any]) -> list[AttemptRecord]:
            db = dbs[_ATTEMPTS]
            for cleared in clear:
                txn.delete(_db_key(cleared), db=db)
            records: list[AttemptRecord] = []
            for key in keys:
                db_key = _db_key(key)
                raw = txn.get(db_key, db=db)
                if raw is None:
                    record = AttemptRecord(key, 1, now, now, False, None)
                else:
                    old = _decode(key, raw)
                    record = old.replace(attempts=old.attempts + 1, last_attempt_at=now)
                txn.put(db_key, _encode(record), db=db)
                records.append(record)
            return records

        if not keys and not clear:
            return []
        return self._env().write(count)

    def uncount_attempt(self, key: str) -> None:
        """One write transaction: the count goes down by one (the record is forgotten
        at zero)."""
        db_key = _db_key(key)

        def uncount(txn: Any, dbs: Mapping[bytes, Any]) -> None:
            raw = txn.get(db_key, db=dbs[_ATTEMPTS])
            if raw is None:
                return
            old = _decode(key, raw)
            if old.attempts <= 1:
                txn.delete(db_key, db=dbs[_ATTEMPTS])
            else:
                txn.put(db_key, _encode(old.replace(attempts=old.attempts - 1)), db=dbs[_ATTEMPTS])

        self._env().write(uncount)

    def record_failure(self, key: str, error: bytes | None, *, exhausted: bool) -> None:
        db_key = _db_key(key)

        def fail(txn: Any, dbs: Mapping[bytes, Any]) -> None:
            raw = txn.get(db_key, db=dbs[_ATTEMPTS])
            if raw is not None:
                old = _decode(key, raw)
                new = old.replace(last_error=error, exhausted=old.exhausted or exhausted)
                txn.put(db_key, _encode(new), db=dbs[_ATTEMPTS])

        self._env().write(fail)

    def clear(self, key: str) -> None:
        db_key = _db_key(key)
        self._env().write(lambda txn, dbs: txn.delete(db_key, db=dbs[_ATTEMPTS]))

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            lmdb_env.release(shared)
