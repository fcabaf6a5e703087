"""The executable as a whole: help, version, usage errors, exit codes, fast path vs Typer."""

from __future__ import annotations

import sqlite3

import pytest

from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS


def test_help_lists_the_groups_and_exit_codes(cli):
    result = cli("--help", store=False)
    assert result.returncode == 0
    assert "queue" in result.stdout and "config" in result.stdout
    assert "65" in result.stdout and "75" in result.stdout


def test_no_arguments_shows_help_on_stderr_and_exits_2(cli):
    result = cli(store=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Usage:" in result.stderr


def test_version(cli):
    from localqueue import __version__
    from localqueue.stores import _sqlite_sql

    line = cli("--version", store=False).stdout
    assert line.startswith(f"localqueue {__version__} (store schema: SQLite 7, LMDB 5, ")
    assert _sqlite_sql.SCHEMA_VERSION == 7 and line.endswith(", PostgreSQL 6)\n")


@pytest.mark.parametrize(
    "command",
    [
        "add", "size", "stats", "list", "inspect", "dead", "requeue-dead", "pop", "ack",
        "release", "process", "exec", "purge", "wait",
    ],
)  # fmt: skip
def test_every_queue_command_has_help(cli, command):
    result = cli("queue", command, "--help", store=False)
    assert result.returncode == 0, result.stderr
    assert f"localqueue queue {command}" in result.stdout


def test_add_help_goes_through_typer(cli):
    result = cli("queue", "add", "--help", store=False)
    assert result.returncode == 0
    assert "--value" in result.stdout and "--raw" in result.stdout


def test_unknown_command_is_a_usage_error(cli):
    result = cli("queue", "frobnicate", store=False)
    assert result.returncode == 2
    assert result.stderr.startswith("localqueue: error:")


def test_not_a_store_is_a_runtime_error_1(cli, home):
    junk = home / "junk.db"
    junk.write_text("this is not a database")
    result = cli("queue", "size", "q", "--store-path", str(junk), store=False)
    assert result.returncode == 1
    assert result.stderr.startswith("localqueue: error:")
    assert junk.read_text() == "this is not a database"  # never modified


@pytest.mark.slow
def test_store_locked_past_its_busy_timeout_exits_75(cli):
    cli.add("q", 1)
    holder = sqlite3.connect(cli.store, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        result = cli("queue", "add", "q", "--value", "2")
    finally:
        holder.close()
    assert result.returncode == 75
    assert "try again" in result.stderr
    assert cli.stats("q")["total"] == 1


def test_the_typer_path_never_imports_rich_or_pydantic(cli):
    import subprocess
    import sys

    code = (
        "import sys, os\n"
        "from localqueue.cli.app import run\n"
        "for args in (['queue', 'stats', 'q', '--store-path', sys.argv[1]],"
        " ['queue', 'stats', '--help'], ['queue', 'add', 'q', '--bogus']):\n"
        "    run(args)\n"
        "heavy = {m.split('.')[0] for m in sys.modules} & {'rich', 'pydantic', 'tenacity'}\n"
        "print(sorted(heavy), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(cli.store)], capture_output=True, text=True
    )
    assert result.stderr.splitlines()[-1] == "[]"
