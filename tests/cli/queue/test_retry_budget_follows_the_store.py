"""With no retry store set, ``queue exec`` and ``queue process`` count attempts with the
queue store (a SQLite store's directory, the LMDB environment, the PostgreSQL schema):
workers started from any directory, or host, spend one budget per message."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import SUBPROCESS
from tests.conftest import fresh_schema, postgres_url, unavailable

pytestmark = SUBPROCESS

# One delivery per run, released for an immediate retry: each run is one attempt.
EXEC_FALSE = ("--max-jobs", "1", "--release-delay", "0", "--", "false")


def outcomes(result: Any) -> list[tuple[str, int]]:
    lines = map(json.loads, result.stdout.splitlines())
    return [(line["status"], line["attempts"]) for line in lines]


def files(directory: Path) -> list[str]:
    """The files in ``directory``, without SQLite's passing -wal and -shm files."""
    return sorted(n for n in os.listdir(directory) if not n.endswith(("-wal", "-shm")))


@pytest.fixture
def dirs(home: Path) -> tuple[Path, Path, Path]:
    """``srv/app`` (where the store is) and two directories workers run in."""
    made = home / "srv" / "app", home / "a", home / "b"
    for directory in made:
        directory.mkdir(parents=True)
    return made


def test_workers_run_from_three_directories_spend_one_budget(
    cli: Any, dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, a, b = dirs
    monkeypatch.setenv("LOCALQUEUE_STORE_PATH", str(app / "q.sqlite3"))
    cli.json("queue", "add", "fail", "--value", "1", store=False)
    argv = ("queue", "exec", "fail", "--max-tries", "2", *EXEC_FALSE)
    runs = [cli(*argv, store=False, cwd=where) for where in (a, b, a)]
    assert [outcomes(run) for run in runs] == [[("released", 1)], [("dead", 2)], []]
    assert [run.returncode for run in runs] == [6, 5, 0]
    assert files(app) == ["localqueue_retries.sqlite3", "q.sqlite3"]
    assert files(a) == [] and files(b) == []
    [settings] = cli.json("config", "show", store=False, cwd=b)
    assert settings["retry_store_path"] == str(app / "localqueue_retries.sqlite3")


def test_the_default_store_keeps_the_retry_file_in_the_current_directory(cli: Any) -> None:
    cli.json("queue", "add", "q", "--value", "1", store=False)
    cli.json("queue", "process", "q", "tests_handlers:fail", "--max-tries", "1", store=False)
    assert files(cli.cwd) == [
        "localqueue_queue.sqlite3",
        "localqueue_retries.sqlite3",
        "tests_handlers.py",
    ]


@pytest.mark.parametrize("how", ["flag", "environment", "config"])
def test_a_retry_store_that_is_set_is_used(
    cli: Any, dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    app, a, _ = dirs
    monkeypatch.setenv("LOCALQUEUE_STORE_PATH", str(app / "q.sqlite3"))
    cli.json("queue", "add", "fail", "--value", "1", store=False)
    flags: tuple[str, ...] = ()
    if how == "flag":
        flags = ("--retry-store-path", "mine.sqlite3")
    elif how == "environment":
        monkeypatch.setenv("LOCALQUEUE_RETRY_STORE_PATH", "mine.sqlite3")
    else:
        cli.json("config", "set", "retry_store_path", "mine.sqlite3", store=False)
    result = cli("queue", "exec", "fail", *flags, *EXEC_FALSE, store=False, cwd=a)
    assert outcomes(result) == [("released", 1)]
    assert files(a) == ["mine.sqlite3"]
    assert files(app) == ["q.sqlite3"]


def test_lmdb_workers_keep_the_budget_in_the_environment(
    cli: Any, dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        from localqueue.retry.lmdb import LMDBAttemptStore
    except ImportError as exc:
        unavailable(f"LMDB attempt store not importable: {exc}")
    app, a, b = dirs
    monkeypatch.setenv("LOCALQUEUE_STORE_PATH", f"lmdb://{app / 'env'}")
    [message] = cli.json("queue", "add", "fail", "--value", "1", store=False)
    argv = ("queue", "exec", "fail", "--max-tries", "2", *EXEC_FALSE)
    assert outcomes(cli(*argv, store=False, cwd=a)) == [("released", 1)]
    attempts = LMDBAttemptStore(app / "env")
    record = attempts.get(message["id"])
    attempts.close()
    assert record is not None and record.attempts == 1
    assert outcomes(cli(*argv, store=False, cwd=b)) == [("dead", 2)]
    assert files(app / "env") == ["data.mdb", "lock.mdb"]
    assert files(a) == [] and files(b) == []


@pytest.fixture
def store_url() -> Iterator[str]:
    url = postgres_url()
    psycopg = pytest.importorskip("psycopg", reason="psycopg (localqueue[postgres]) is missing")
    schema = fresh_schema()
    yield f"{url}{'&' if '?' in url else '?'}schema={schema}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_postgres_workers_in_two_directories_share_one_budget(
    cli: Any, dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    from localqueue.retry.postgres import PostgresAttemptStore

    _, a, b = dirs
    monkeypatch.setenv("LOCALQUEUE_STORE_PATH", store_url)
    [message] = cli.json("queue", "add", "fail", "--value", "1", store=False)
    argv = ("queue", "exec", "fail", "--max-tries", "3", *EXEC_FALSE)
    first, second = cli(*argv, store=False, cwd=a), cli(*argv, store=False, cwd=b)
    assert (outcomes(first), outcomes(second)) == ([("released", 1)], [("released", 2)])
    attempts = PostgresAttemptStore(store_url)  # the queue's schema holds the count
    record = attempts.get(message["id"])
    attempts.close()
    assert record is not None and record.attempts == 2
    runs = [cli(*argv, store=False, cwd=where) for where in (a, b)]
    assert [outcomes(run) for run in runs] == [[("dead", 3)], []]
    assert files(a) == [] and files(b) == []
