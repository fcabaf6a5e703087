"""Tenacity's namespace with its retryers swapped for localqueue's persistent ones.

``scripts/tenacity_suite.py`` points the ``import tenacity`` lines of Tenacity's own test
files here: every other name is Tenacity's; ``Retrying``, ``AsyncRetrying`` and ``retry``
are the persistent retryers, each instance or decorated function with a fresh key and its
own :class:`~localqueue.retry.MemoryAttemptStore`.
"""

from __future__ import annotations

import itertools
import types
from typing import Any

import tenacity
from tenacity import *  # noqa: F403  (the namespace the tests import from)
from tenacity import asyncio as _tenacity_asyncio

from localqueue.retry import (
    MemoryAttemptStore,
    PersistentAsyncRetrying,
    PersistentRetrying,
    persistent_retry,
)

_keys = itertools.count(1)


def _fresh(options: dict[str, Any]) -> dict[str, Any]:
    if "key" not in options and "key_fn" not in options:
        options["key"] = f"tenacity-suite:{next(_keys)}"
    options.setdefault("store", MemoryAttemptStore())
    return options


class Retrying(PersistentRetrying):
    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **_fresh(options))


class AsyncRetrying(PersistentAsyncRetrying):
    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **_fresh(options))


def retry(*dargs: Any, **options: Any) -> Any:
    """``@retry`` and ``@retry(...)``, as Tenacity's decorator is used."""
    if len(dargs) == 1 and callable(dargs[0]) and not options:
        return retry()(dargs[0])
    return persistent_retry(**_fresh(options))


for _name in dir(tenacity):
    if not _name.startswith("__") and _name not in globals():
        globals()[_name] = getattr(tenacity, _name)

asyncio = types.ModuleType("tenacity.asyncio")
asyncio.__dict__.update(vars(_tenacity_asyncio))
asyncio.AsyncRetrying = AsyncRetrying  # type: ignore[attr-defined]
