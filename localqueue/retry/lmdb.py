"""LMDBAttemptStore: retry budgets in one LMDB environment directory (``localqueue[lmdb]``).

Every change is one LMDB write transaction (LMDB serialises writers across processes), so
counting an attempt is atomic. LMDB forbids opening one environment twice in a process,
so stores on the same directory share one environment; an environment inherited across
``fork()`` is never used in the child, which opens its own. Stale reader slots left by
crashed processes are cleared (``reader_check``) when the environment is opened.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localqueue.errors import StoreError, StoreLockedError
from localqueue.retry.base import AttemptRecord, AttemptStore

try:
    import lmdb
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "LMDBAttemptStore needs the lmdb package: pip install 'localqueue[lmdb]'"
    ) from exc

__all__ = ["LMDBAttemptStore"]

SCHEMA_VERSION = 1
KIND = b"localqueue-attempts"
_META_DB, _ATTEMPTS_DB = b"localqueue_meta", b"localqueue_attempts"
# attempts, first_attempt_at, last_attempt_at, exhausted, has_error; then the error bytes.
_HEADER = struct.Struct("<qddBB")
_DEFAULT_MAP_SIZE = 256 * 1024 * 1024


@dataclass
class _Shared:
    env: Any
    meta: Any
    attempts: Any
    pid: int
    max_key_size: int
    users: int = 0


_ENVS: dict[str, _Shared] = {}
_ENVS_LOCK = threading.Lock()


def _reset_lock_in_child() -> None:
    global _ENVS_LOCK
    _ENVS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


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


class LMDBAttemptStore(AttemptStore):
    """Attempt records in the LMDB environment directory ``path`` (created 0700 with
    0600 files when missing). A directory holding anything else is refused."""

    def __init__(self, path: str | os.PathLike[str], *, map_size: int = _DEFAULT_MAP_SIZE) -> None:
        self.path = Path(path)
        self.map_size = map_size
        self._lock = threading.Lock()
        self._shared: _Shared | None = None
        self._pid = 0
        self._handles()  # open now: a foreign directory fails at construction

    def __repr__(self) -> str:
        return f"LMDBAttemptStore({str(self.path)!r})"

    # -- environment ------------------------------------------------------------------

    def _refuse(self, why: str) -> StoreError:
        return StoreError(f"{self.path}: {why}")

    def _prepare_directory(self) -> None:
        try:
            self.path.mkdir(mode=0o700)
            return
        except FileExistsError:
            pass
        except OSError as exc:
            raise self._refuse(f"cannot create the store directory: {exc.strerror}") from None
        if not self.path.is_dir():
            raise self._refuse("not a directory (an LMDB attempt store is a directory)")
        if not (self.path / "data.mdb").exists() and any(self.path.iterdir()):
            raise self._refuse("not a localqueue attempt store (directory holds other files)")

    def _open(self) -> _Shared:
        self._prepare_directory()
        try:
            env = lmdb.open(
                str(self.path), map_size=self.map_size, max_dbs=4, mode=0o600, subdir=True
            )
        except lmdb.Error as exc:
            raise self._refuse(f"cannot open the LMDB environment: {exc}") from None
        try:
            env.reader_check()
            meta = self._check_meta(env)
            attempts = env.open_db(_ATTEMPTS_DB)
        except BaseException:
            env.close()
            raise
        return _Shared(env, meta, attempts, os.getpid(), env.max_key_size())

    def _check_meta(self, env: Any) -> Any:
        with env.begin(write=True) as txn:
            names = set(txn.cursor().iternext(values=False))
            if names - {_META_DB, _ATTEMPTS_DB}:
                raise self._refuse("not a localqueue attempt store (foreign LMDB databases)")
            meta = env.open_db(_META_DB, txn=txn)
            kind = txn.get(b"kind", db=meta)
            if kind is None:
                if names:
                    raise self._refuse("not a localqueue attempt store (metadata missing)")
                txn.put(b"kind", KIND, db=meta)
                txn.put(b"schema_version", str(SCHEMA_VERSION).encode(), db=meta)
                return meta
            if kind != KIND:
                raise self._refuse(f"not a localqueue attempt store (kind {bytes(kind)!r})")
            version = int(txn.get(b"schema_version", b"0", db=meta))
            if version > SCHEMA_VERSION:
                raise self._refuse(
                    f"schema version {version} is newer than this localqueue supports"
                    f" ({SCHEMA_VERSION}); upgrade localqueue"
                )
        return meta

    def _handles(self) -> _Shared:
        shared = self._shared
        if shared is not None and self._pid == os.getpid():
            return shared
        name = os.path.realpath(self.path)
        with _ENVS_LOCK:
            shared = _ENVS.get(name)
            if shared is not None and shared.pid != os.getpid():
                # Inherited across fork(): py-lmdb only forgets it here, the parent keeps it.
                shared.env.close()
                del _ENVS[name]
                shared = None
            if shared is None:
                shared = _ENVS[name] = self._open()
            shared.users += 1
        self._shared, self._pid = shared, os.getpid()
        return shared

    @contextmanager
    def _txn(self, key: str, *, write: bool) -> Iterator[tuple[Any, Any, bytes]]:
        """A transaction, the attempts database and ``key`` as an LMDB key."""
        with self._lock:
            shared = self._handles()
            raw = key.encode()
            if len(raw) > shared.max_key_size:
                raw = b"#sha256:" + hashlib.sha256(raw).digest()
            try:
                with shared.env.begin(write=write) as txn:
                    yield txn, shared.attempts, raw
            except lmdb.MapFullError:
                raise self._refuse("the LMDB map is full; open it with a larger map_size") from None
            except lmdb.LockError as exc:
                raise StoreLockedError(f"{self.path}: {exc}") from None
            except lmdb.Error as exc:
                raise self._refuse(str(exc)) from None

    # -- contract ---------------------------------------------------------------------

    def get(self, key: str) -> AttemptRecord | None:
        with self._txn(key, write=False) as (txn, db, raw_key):
            raw = txn.get(raw_key, db=db)
            return None if raw is None else _decode(key, raw)

    def record_attempt(self, key: str, now: float) -> AttemptRecord:
        with self._txn(key, write=True) as (txn, db, raw_key):
            raw = txn.get(raw_key, db=db)
            if raw is None:
                record = AttemptRecord(key, 1, now, now, False, None)
            else:
                old = _decode(key, raw)
                record = dataclasses.replace(old, attempts=old.attempts + 1, last_attempt_at=now)
            txn.put(raw_key, _encode(record), db=db)
        return record

    def record_failure(self, key: str, error: bytes | None, *, exhausted: bool) -> None:
        with self._txn(key, write=True) as (txn, db, raw_key):
            raw = txn.get(raw_key, db=db)
            if raw is not None:
                old = _decode(key, raw)
                new = dataclasses.replace(
                    old, last_error=error, exhausted=old.exhausted or exhausted
                )
                txn.put(raw_key, _encode(new), db=db)

    def clear(self, key: str) -> None:
        with self._txn(key, write=True) as (txn, db, raw_key):
            txn.delete(raw_key, db=db)

    def close(self) -> None:
        with self._lock:
            shared, self._shared = self._shared, None
            if shared is None or self._pid != os.getpid():
                return
            name = os.path.realpath(self.path)
            with _ENVS_LOCK:
                shared.users -= 1
                if shared.users <= 0:
                    if _ENVS.get(name) is shared:
                        del _ENVS[name]
                    shared.env.close()
