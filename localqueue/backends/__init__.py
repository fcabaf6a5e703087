"""The backends: the one place that opens files and connections.

* :mod:`~localqueue.backends.sqlite_file`: one SQLite file (pragmas, schema, errors);
* :mod:`~localqueue.backends.lmdb_env`: LMDB environments, shared per process;
* :mod:`~localqueue.backends.pg` and :mod:`~localqueue.backends.pg_listen`: PostgreSQL
  sessions that survive a lost connection, and LISTEN;
* :mod:`~localqueue.backends.process`: what this process holds, and the fork rule.

The queue stores (:mod:`localqueue.stores`) and the attempt stores
(:mod:`localqueue.retry`) are built on them. :func:`backend_of` says which backend a
store path or URL names, for both.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    import os
    from typing import Literal, TypeAlias

    Kind: TypeAlias = Literal["sqlite", "lmdb", "postgres"]

__all__ = ["OPTIONAL", "backend_of"]

#: backend -> (the module it needs, the extra that installs it, its name for people).
OPTIONAL = {
    "lmdb": ("lmdb", "lmdb", "LMDB"),
    "postgres": ("psycopg", "postgres", "PostgreSQL"),
}


def backend_of(path: str | os.PathLike[str]) -> tuple[Kind, str]:
    """Which backend a store path names, and where: ``("postgres", url)`` for
    ``postgresql://...`` or ``postgres://...``, ``("lmdb", directory)`` for
    ``lmdb://DIR``, else ``("sqlite", file)``."""
    import os

    text = os.fspath(path)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgres", text
    if text.startswith("lmdb://"):
        return "lmdb", text[len("lmdb://") :]
    return "sqlite", text
