"""One LMDB environment per directory per process, shared by every store opened on it.

LMDB's rules, and how this module keeps them:

* **Never open one environment twice in a process** (its fcntl locks belong to the
  process; closing a second handle would drop the first one's). Stores on the same
  directory share one :class:`SharedEnv`, counted, closed with its last user.
* **Never use an environment across fork().** Closing an inherited handle in the child
  would clear the *parent's* reader slots, and using it would share them. So before
  ``os.fork()`` every environment is closed in the parent (under its lock, so no
  transaction is cut short) and both processes reopen it on next use. An environment
  that was inherited anyway (a fork from C code) is left alone, never closed, and the
  child gets a clear error instead.
* **One write transaction at a time per process, no transaction while resizing the
  map.** Every transaction runs under the environment's lock.
* **Stale readers** (slots of killed processes pin old pages and make the file grow) are
  cleared with ``reader_check`` on every open and before growing a full map.
* **MAP_FULL** aborts the transaction (nothing is written); the map is doubled up to
  ``max_map_size`` and the whole transaction runs again. At the limit the caller gets a
  StoreError and the store stays usable. A map grown by another process is adopted
  (``set_mapsize(0)``) when LMDB reports MAP_RESIZED.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from localqueue.backends import process
from localqueue.errors import StoreError

try:
    import lmdb

    HAVE_LMDB = True
except ImportError:  # the optional extra is not installed
    HAVE_LMDB = False

__all__ = ["HAVE_LMDB", "INSTALL_HINT", "Durability", "Schema", "SharedEnv", "acquire"]

INSTALL_HINT = 'the LMDB backend needs the lmdb package: pip install "localqueue[lmdb]"'
Durability = Literal["full", "normal"]
T = TypeVar("T")
Work = Callable[[Any, Mapping[bytes, Any]], T]  # (transaction, sub-databases by name)

META_DB = b"meta"
_MAX_READERS = 1024
_RESIZE_RETRIES = 8


@dataclass(frozen=True)
class Schema:
    """What an environment holds: ``kind`` names the store type in ``meta``; ``dbs`` are
    the sub-databases besides ``meta``. A store may also live in the environment of
    another kind whose ``dbs`` include its own (its host: see :func:`acquire`).
    ``migrations[n]`` takes an environment of format version ``n`` to ``n + 1`` (called
    with the open write transaction and every sub-database); an older environment runs
    each step it needs, in the one write transaction that opens it, so a crash leaves it
    at its old version."""

    kind: bytes
    version: int
    dbs: tuple[bytes, ...]
    migrations: Mapping[int, Work[None]] = field(default_factory=dict)


class SharedEnv:
    """An environment directory opened (lazily, and again after a fork) by this process."""

    def __init__(
        self,
        path: str,
        schema: Schema,
        *,
        host: Schema | None = None,
        map_size: int,
        max_map_size: int,
        durability: Durability,
    ) -> None:
        self.path = path
        self.schema = schema
        self.host = host
        self.map_size = map_size
        self.max_map_size = max_map_size
        self.durability = durability
        self.lock = threading.RLock()
        self.users = 0
        self.stale_readers_cleared = 0
        self._env: Any = None
        self._dbs: dict[bytes, Any] = {}
        self._pid = 0

    # -- opening ---------------------------------------------------------------------

    def _refuse(self, why: str) -> StoreError:
        return StoreError(f"LMDB store {self.path}: {why}")

    def _opened(self) -> tuple[Any, Mapping[bytes, Any]]:
        """The open environment and its sub-databases; call with ``self.lock`` held."""
        if self._env is not None:
            if self._pid == os.getpid():
                return self._env, self._dbs
            # Inherited through a fork no hook saw: never close it (that would clear the
            # parent's reader slots); py-lmdb will refuse a second open.
            process.keep_inherited(self._env)
            self._env = None
        self._open()
        return self._env, self._dbs

    def _open(self) -> None:
        try:
            os.mkdir(self.path, mode=0o700)
        except FileExistsError:
            if not os.path.isdir(self.path):
                raise self._refuse("not a directory (an LMDB store is a directory)") from None
        except OSError as exc:
            raise self._refuse(f"cannot create the directory: {exc.strerror}") from None
        entries = set(os.listdir(self.path))
        # Another process may be creating this store right now: LMDB makes lock.mdb
        # before data.mdb. Anything else in a directory without data.mdb is not ours.
        if "data.mdb" not in entries and entries - {"lock.mdb"}:
            raise self._refuse("not a localqueue store (the directory holds other files)")
        try:
            env = lmdb.open(
                self.path,
                map_size=self.map_size,
                subdir=True,
                max_dbs=max(len(s.dbs) for s in (self.schema, self.host) if s) + 1,
                max_readers=_MAX_READERS,
                sync=True,
                metasync=self.durability == "full",
                mode=0o600,
                lock=True,
            )
        except lmdb.Error as exc:
            if "already open" in str(exc):
                raise self._refuse(
                    "the environment is already open in this process outside localqueue's"
                    " stores (another lmdb user, or a handle inherited across fork())"
                ) from None
            raise self._refuse(f"cannot open the environment: {exc}") from None
        try:
            self.stale_readers_cleared += env.reader_check()
            self._dbs = self._check_schema(env)
        except BaseException:
            env.close()
            raise
        self._env, self._pid = env, os.getpid()

    def _check_schema(self, env: Any) -> dict[bytes, Any]:
        schema = self.schema
        try:
            with env.begin(write=True) as txn:
                names = set(txn.cursor().iternext(values=False))
                if names and META_DB not in names:
                    raise self._refuse("not a localqueue store (foreign LMDB databases)")
                meta = env.open_db(META_DB, txn=txn)
                kind = txn.get(b"kind", db=meta)
                if self.host is not None and kind == self.host.kind:
                    schema = self.schema = self.host  # this store lives in its host's
                version = schema.version
                if kind is None:
                    txn.put(b"kind", schema.kind, db=meta)
                    txn.put(b"version", str(schema.version).encode(), db=meta)
                    txn.put(b"tag", secrets.token_hex(4).encode(), db=meta)
                elif kind != schema.kind:
                    raise self._refuse(f"holds a {kind.decode()!r} store, not {schema.kind!r}")
                else:
                    version = int(txn.get(b"version", b"0", db=meta))
                    if version > schema.version:
                        raise self._refuse(
                            f"schema version {version} is newer than this localqueue supports"
                            f" ({schema.version}); upgrade localqueue"
                        )
                dbs = {name: env.open_db(name, txn=txn) for name in schema.dbs}
                dbs[META_DB] = meta
                for step in range(version, schema.version):
                    if step not in schema.migrations:
                        raise self._refuse(f"no migration from schema version {step}")
                    schema.migrations[step](txn, dbs)
                if version < schema.version:
                    txn.put(b"version", str(schema.version).encode(), db=meta)
                return dbs
        except lmdb.Error as exc:
            raise self._refuse(f"cannot initialise the environment: {exc}") from None

    def close_env(self) -> None:
        """Close the environment now (with ``self.lock`` held); the next use reopens it."""
        env, self._env, self._dbs = self._env, None, {}
        if env is None:
            return
        if self._pid == os.getpid():
            self.map_size = max(self.map_size, int(env.info()["map_size"]))  # keep growth
            env.close()
        else:
            process.keep_inherited(env)

    # -- transactions ----------------------------------------------------------------

    def read(self, work: Work[T]) -> T:
        """Run ``work(txn, dbs)`` in a read-only transaction (a consistent snapshot)."""
        return self._run(work, write=False)

    def write(self, work: Work[T]) -> T:
        """Run ``work(txn, dbs)`` in one write transaction: committed when it returns,
        rolled back when it raises. It may run more than once (after the map grew), so
        it must not have effects outside the transaction."""
        return self._run(work, write=True)

    def _run(self, work: Work[T], *, write: bool) -> T:
        resized = 0
        with self.lock:
            while True:  # MAP_FULL ends at max_map_size, MAP_RESIZED after a few tries
                env, dbs = self._opened()
                try:
                    with env.begin(write=write) as txn:
                        return work(txn, dbs)
                except lmdb.MapResizedError:
                    resized += 1
                    if resized > _RESIZE_RETRIES:
                        raise self._refuse("the map keeps being resized; giving up") from None
                    env.set_mapsize(0)  # another process grew the map: adopt its size
                except lmdb.MapFullError:
                    self._grow(env)
                except lmdb.Error as exc:
                    raise self._refuse(str(exc)) from None

    def _grow(self, env: Any) -> None:
        if env.reader_check():
            return  # stale readers pinned pages that can now be reused
        current = int(env.info()["map_size"])
        env.set_mapsize(0)  # another process may already have grown the map
        if int(env.info()["map_size"]) > current:
            return
        if current >= self.max_map_size:
            env.set_mapsize(current)
            raise self._refuse(
                f"the store is full (map size {current} bytes reached max_map_size"
                f" {self.max_map_size}); nothing was written. Ack or purge messages, or"
                " open the store with a larger max_map_size"
            )
        env.set_mapsize(min(self.max_map_size, current * 2))

    def current_map_size(self) -> int:
        """The current map size in bytes (opening the environment if needed)."""
        with self.lock:
            env, _ = self._opened()
            return int(env.info()["map_size"])

    def reader_check(self) -> int:
        """Clear reader slots of dead processes now; returns how many were cleared."""
        with self.lock:
            env, _ = self._opened()
            try:
                return int(env.reader_check())
            except lmdb.Error as exc:
                raise self._refuse(str(exc)) from None


# -- the per-process registry -----------------------------------------------------------

_REGISTRY: dict[str, SharedEnv] = {}
_REGISTRY_LOCK = threading.Lock()


def check_options(durability: str, map_size: int, max_map_size: int) -> None:
    """The constructor arguments every LMDB store takes, checked in one place."""
    if durability not in ("full", "normal"):
        raise ValueError(f"durability must be 'full' or 'normal', got {durability!r}")
    if map_size <= 0 or max_map_size < map_size:
        raise ValueError("need 0 < map_size <= max_map_size")


def acquire(
    path: str | os.PathLike[str],
    schema: Schema,
    *,
    host: Schema | None = None,
    map_size: int,
    max_map_size: int,
    durability: Durability,
) -> SharedEnv:
    """The shared environment of directory ``path`` (opened now, so a bad directory fails
    here), with one more user. The first store to open a directory sets its options.

    An environment that holds a ``host`` store (a queue store, for the attempt store) is
    used with the host's schema: the store keeps its sub-databases there, beside the
    host's. Any other environment, a new one included, is a ``schema`` store."""
    if not HAVE_LMDB:
        raise StoreError(INSTALL_HINT)
    name = os.path.realpath(os.fspath(path))
    with _REGISTRY_LOCK:
        shared = _REGISTRY.get(name)
        if shared is None:
            shared = SharedEnv(
                name,
                schema,
                host=host,
                map_size=map_size,
                max_map_size=max_map_size,
                durability=durability,
            )
        elif shared.schema not in (schema, host):
            raise StoreError(f"LMDB store {name}: already open here as {shared.schema.kind!r}")
        with shared.lock:
            shared._opened()
        shared.users += 1
        _REGISTRY[name] = shared
        return shared


def release(shared: SharedEnv) -> None:
    """One user fewer; the last one closes the environment."""
    with _REGISTRY_LOCK:
        shared.users -= 1
        if shared.users > 0:
            return
        if _REGISTRY.get(shared.path) is shared:
            del _REGISTRY[shared.path]
        with shared.lock:
            shared.close_env()


class _Registry(process.ForkHooks):
    """Around a fork, every environment is closed (py-lmdb cannot share one with a child;
    the parent reopens it on its next use) with the registry's locks held, so that the
    child starts with no environment and locks nobody holds."""

    def before(self) -> None:
        _REGISTRY_LOCK.acquire()
        for shared in _REGISTRY.values():
            shared.lock.acquire()
            shared.close_env()

    def after_in_parent(self) -> None:
        for shared in _REGISTRY.values():
            shared.lock.release()
        _REGISTRY_LOCK.release()

    def after_in_child(self) -> None:
        global _REGISTRY_LOCK
        _REGISTRY_LOCK = threading.Lock()
        for shared in _REGISTRY.values():
            shared.lock = threading.RLock()


process.on_fork(_Registry())
