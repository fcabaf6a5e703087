"""Fixtures for the docs tests: a clean environment (no ``LOCALQUEUE_*``, ``HOME`` and the
config directory in ``tmp_path``) and real SQLite stores."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCALQUEUE = str(BIN / "localqueue")


def needs(*programs: str) -> pytest.MarkDecorator:
    """Skip (with the reason) when one of ``programs`` is not installed."""
    missing = [p for p in programs if shutil.which(p) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user with no localqueue settings, HOME in ``tmp_path``."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LOCALQUEUE_", "_LOCALQUEUE_", "_TYPER_", "COMP_"))
        or key.startswith("LOCALQUEUE_TEST_")
    }
    for key in list(clean):  # curl must reach the test's own server on 127.0.0.1
        if key.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            del clean[key]
    (tmp_path / "home").mkdir()
    clean.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        LC_ALL="C.UTF-8",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    clean.pop("SOURCE_DATE_EPOCH", None)
    return clean


def make_store(path: Path, queues: dict[str, Iterable[object]]) -> dict[str, list[str]]:
    """A real SQLite store at ``path`` holding ``queues``; the ids of each queue's messages."""
    from localqueue import PersistentQueue
    from localqueue.stores.sqlite import SQLiteQueueStore

    store = SQLiteQueueStore(str(path), durability="normal")
    ids: dict[str, list[str]] = {}
    try:
        for name, values in queues.items():
            queue = PersistentQueue(name, store=store)
            ids[name] = [message.id for message in queue.put_many(list(values))]
    finally:
        store.close()
    return ids
