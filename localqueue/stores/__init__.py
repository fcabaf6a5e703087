"""Queue store backends and :func:`open_store`, which picks one from a path or URL.

Backends are imported on first use, so ``import localqueue`` never pays for (or needs)
an optional backend's dependencies.
"""

from __future__ import annotations

import os

from localqueue.stores.base import ROW_FIELDS, QueueStore, Row

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from typing import Any

    from localqueue.backends import StoreAddress
    from localqueue.stores.lmdb import LMDBQueueStore
    from localqueue.stores.memory import MemoryQueueStore
    from localqueue.stores.postgres import PostgresQueueStore
    from localqueue.stores.sqlite import SQLiteQueueStore

__all__ = [
    "ROW_FIELDS",
    "LMDBQueueStore",
    "MemoryQueueStore",
    "PostgresQueueStore",
    "QueueStore",
    "Row",
    "SQLiteQueueStore",
    "open_store",
]

_LAZY = {
    "SQLiteQueueStore": "localqueue.stores.sqlite",
    "MemoryQueueStore": "localqueue.stores.memory",
    "LMDBQueueStore": "localqueue.stores.lmdb",
    "PostgresQueueStore": "localqueue.stores.postgres",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def open_store(path: str | os.PathLike[str] | StoreAddress, **options: Any) -> QueueStore:
    """Open the queue store that ``path`` (or its parsed :class:`StoreAddress`) names.

    * ``postgresql://...`` (or ``postgres://``): PostgresQueueStore (``localqueue[postgres]``);
    * ``lmdb://DIR``: LMDBQueueStore on the environment directory DIR (``localqueue[lmdb]``;
      ``durability`` applies to it);
    * anything else: a SQLite file (``options`` such as ``durability`` and ``busy_timeout``
      apply to it).
    """
    from localqueue.backends import StoreAddress

    kind, where = StoreAddress.parse(path)
    if kind == "postgres":
        from localqueue.stores.postgres import PostgresQueueStore

        return PostgresQueueStore(where)
    if kind == "lmdb":
        from localqueue.stores.lmdb import LMDBQueueStore

        return LMDBQueueStore(where, durability=options.get("durability", "full"))
    from localqueue.stores.sqlite import SQLiteQueueStore

    return SQLiteQueueStore(where, **options)
