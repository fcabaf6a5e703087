"""The backends: the one place that opens files and connections.

* :mod:`~localqueue.backends.sqlite_file`: one SQLite file (pragmas, schema, errors);
* :mod:`~localqueue.backends.lmdb_env`: LMDB environments, shared per process;
* :mod:`~localqueue.backends.pg` and :mod:`~localqueue.backends.pg_listen`: PostgreSQL
  sessions that survive a lost connection, and LISTEN;
* :mod:`~localqueue.backends.process`: what this process holds, and the fork rule.

The queue stores (:mod:`localqueue.stores`) and the attempt stores
(:mod:`localqueue.retry`) are built on them. A store's path or URL is parsed once into a
:class:`StoreAddress`, which both kinds of store open and from which the attempt store
beside a queue store is derived (:meth:`StoreAddress.attempts`).
"""

from __future__ import annotations

import collections
import os

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from typing import Literal, NamedTuple, TypeAlias

    Kind: TypeAlias = Literal["sqlite", "lmdb", "postgres"]

    class _Fields(NamedTuple):
        kind: Kind
        where: str

else:  # typing.NamedTuple's fields, without importing typing (the CLI's fast path)
    _Fields = collections.namedtuple("StoreAddress", ("kind", "where"))

__all__ = ["DEFAULT_ATTEMPT_FILE", "OPTIONAL", "StoreAddress"]

#: backend -> (the module it needs, the extra that installs it, its name for people).
OPTIONAL = {
    "lmdb": ("lmdb", "lmdb", "LMDB"),
    "postgres": ("psycopg", "postgres", "PostgreSQL"),
}

#: The SQLite file that keeps the retry budgets of a SQLite queue store's workers, in
#: the queue store's own directory.
DEFAULT_ATTEMPT_FILE = "localqueue_retries.sqlite3"

_LMDB = "lmdb://"


class StoreAddress(_Fields):
    """Which backend a store path or URL names (``kind``), and where (``where``): a
    SQLite file, an LMDB environment directory, or a PostgreSQL URL. Parse a path once
    (:meth:`parse`) and pass the value on; ``str()`` gives the path or URL back."""

    __slots__ = ()

    @classmethod
    def parse(cls, path: str | os.PathLike[str] | StoreAddress) -> StoreAddress:
        """``postgresql://...`` or ``postgres://...``: ``("postgres", url)``;
        ``lmdb://DIR``: ``("lmdb", DIR)``; anything else a SQLite file. An address is
        returned as it is."""
        if isinstance(path, StoreAddress):
            return path
        text = os.fspath(path)
        if text.startswith(("postgresql://", "postgres://")):
            return cls("postgres", text)
        if text.startswith(_LMDB):
            return cls("lmdb", text[len(_LMDB) :])
        return cls("sqlite", text)

    def __str__(self) -> str:
        return _LMDB + self.where if self.kind == "lmdb" else self.where

    def attempts(self) -> StoreAddress:
        """Where the workers of this queue store count attempts unless told otherwise:
        with the queue, so that every worker of the queue, wherever it runs, spends one
        budget per message. For a SQLite file, ``localqueue_retries.sqlite3`` in the
        same directory; an LMDB environment and a PostgreSQL schema hold the counts
        themselves (the address is this one)."""
        if self.kind != "sqlite":
            return self
        return StoreAddress(
            "sqlite", os.path.join(os.path.dirname(self.where), DEFAULT_ATTEMPT_FILE)
        )

    def absolute(self) -> StoreAddress:
        """The address with its file or directory made absolute from the current
        directory (a URL as it is)."""
        if self.kind == "postgres":
            return self
        return StoreAddress(self.kind, os.path.abspath(self.where))
